#!/usr/bin/env bash
# The conformance suite: the official `anthropic` Python SDK (requirements.txt) against a running Corral gateway.
#
#   e2e/conformance/run.sh [--base-url URL] [--gateway-bin FILE] [PYTEST_ARGS...]
#
# Needs Corral installed with Helm (hack/e2e.sh or make demo) on the cluster of KUBECONFIG, else on the local
# cluster ($CORRAL_STATE, default e2e/.state). It creates two tenant namespaces with an API key each
# (`corral-gateway create-key`) and the scripts' ConfigMaps, reaches the gateway Service (a forward on the local
# cluster, `kubectl port-forward` elsewhere) unless --base-url is given, runs pytest in a virtual environment kept in
# ${CORRAL_CACHE:-$HOME/.cache/corral}/venv-conformance, and deletes the namespaces (CONFORMANCE_KEEP=1 keeps them).
# The exit status is pytest's.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
source "$repo/hack/lib.sh"

base_url=""
gateway_bin="$repo/target/debug/corral-gateway"
release_ns=${CORRAL_NAMESPACE:-corral-system}
while (($#)); do
  case "$1" in
    --base-url) base_url=$2; shift 2 ;;
    --gateway-bin) gateway_bin=$2; shift 2 ;;
    *) break ;;
  esac
done

python=$("$here/venv.sh")

# --- the cluster ---
local_cluster=0
if [[ -z ${KUBECONFIG:-} ]]; then
  state=${CORRAL_STATE:-$repo/e2e/.state}
  export KUBECONFIG=$state/kubeconfig PATH="$state/bin:$PATH"
  local_cluster=1
elif [[ -n ${CORRAL_STATE:-} && $KUBECONFIG == "$CORRAL_STATE/kubeconfig" ]] ||
  [[ -z ${CORRAL_STATE:-} && $KUBECONFIG == "$repo/e2e/.state/kubeconfig" ]]; then
  local_cluster=1
fi
kubectl get --raw /readyz >/dev/null || die "no cluster at KUBECONFIG=$KUBECONFIG (make cluster-up, then install Corral)"
if [[ ! -x $gateway_bin ]]; then
  log "building corral-gateway (for create-key)"
  (cd "$repo" && cargo build -q -p corral-gateway --bin corral-gateway)
fi

suffix=$(head -c4 /dev/urandom | od -An -tx1 | tr -d ' \n')
tenant=conformance-$suffix
other=conformance-$suffix-b
pids=()
cleanup() {
  local rc=$?
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  if ((local_cluster)) && [[ -z $base_url_given ]]; then "$repo/e2e/cluster/forward.sh" stop "conformance-$suffix" 2>/dev/null || true; fi
  if [[ ${CONFORMANCE_KEEP:-} != 1 ]]; then
    kubectl delete namespace "$tenant" "$other" --wait=false --ignore-not-found >/dev/null 2>&1 || true
  else
    log "kept namespaces $tenant and $other (CONFORMANCE_KEEP=1)"
  fi
  exit "$rc"
}
base_url_given=$base_url
trap cleanup EXIT

key=$("$gateway_bin" create-key --namespace "$tenant" 2>/dev/null)
other_key=$("$gateway_bin" create-key --namespace "$other" 2>/dev/null)
kubectl label namespace "$tenant" "$other" corral.dev/e2e=conformance >/dev/null
kubectl -n "$tenant" create configmap hello-script --from-file=script.yaml="$repo/examples/scripts/hello-tool.yaml" >/dev/null
kubectl -n "$tenant" create configmap weather-script --from-file=script.yaml="$here/scripts/weather.yaml" >/dev/null
kubectl -n "$tenant" create configmap resources-script --from-file=script.yaml="$here/scripts/file-resources.yaml" >/dev/null
kubectl -n "$tenant" create configmap skills-script --from-file=script.yaml="$here/scripts/skills.yaml" >/dev/null
kubectl -n "$tenant" create configmap attachments-script --from-file=script.yaml="$here/scripts/attachments.yaml" >/dev/null
kubectl -n "$tenant" create configmap outputs-script --from-file=script.yaml="$here/scripts/outputs.yaml" >/dev/null
kubectl -n "$tenant" create configmap config-map-skill-script --from-file=script.yaml="$here/scripts/config-map-skill.yaml" >/dev/null
kubectl -n "$tenant" apply -f "$here/manifests/config-map-skill.yaml" >/dev/null
log "tenant namespaces $tenant (keys and scripts) and $other (a stranger's key)"

# --- the gateway ---
if [[ -z $base_url ]]; then
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  if ((local_cluster)); then
    ip=$(kubectl -n "$release_ns" get svc corral-gateway -o jsonpath='{.spec.clusterIP}')
    svc_port=$(kubectl -n "$release_ns" get svc corral-gateway -o jsonpath='{.spec.ports[0].port}')
    "$repo/e2e/cluster/forward.sh" to-cluster "conformance-$suffix" "$port" "$ip:$svc_port" 2>/dev/null
  else
    kubectl -n "$release_ns" port-forward svc/corral-gateway "$port:http" >/dev/null &
    pids+=($!)
  fi
  base_url=http://127.0.0.1:$port
fi
for _ in $(seq 1 60); do
  if "$python" -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1] + '/readyz', timeout=2)" \
    "$base_url" 2>/dev/null; then
    break
  fi
  sleep 0.5
done

log "running the conformance suite against $base_url (anthropic $("$python" -c 'import anthropic; print(anthropic.__version__)'))"
rc=0
CORRAL_BASE_URL=$base_url CORRAL_API_KEY=$key CORRAL_OTHER_API_KEY=$other_key \
  CORRAL_HELLO_SCRIPT=hello-script CORRAL_WEATHER_SCRIPT=weather-script CORRAL_RESOURCES_SCRIPT=resources-script \
  CORRAL_SKILLS_SCRIPT=skills-script CORRAL_ATTACHMENTS_SCRIPT=attachments-script CORRAL_OUTPUTS_SCRIPT=outputs-script \
  CORRAL_CONFIG_MAP_SKILL_AGENT=cm-reporter \
  PYTHONDONTWRITEBYTECODE=1 "$python" -m pytest "$here" -p no:cacheprovider "$@" || rc=$?
if ((rc != 0)); then
  log "conformance suite FAILED (pytest exit status $rc)"
  log "gateway logs:"
  kubectl -n "$release_ns" logs -l app.kubernetes.io/component=gateway --tail=50 --prefix >&2 || true
  log "harness logs:"
  kubectl -n "$tenant" logs -l app.kubernetes.io/name=corral --all-containers --tail=80 --prefix >&2 || true
  log "object store logs:"
  kubectl -n "$release_ns" logs -l app.kubernetes.io/component=object-store --all-containers --tail=40 --prefix >&2 || true
fi
exit $rc
