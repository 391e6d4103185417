#!/usr/bin/env bash
# Smoke test of a running cluster (make cluster-up): a pod from
# corral/sandbox-base:dev runs, logs and exec work, a ClusterIP Service reaches
# a pod, pods reach the API server, and the host reaches a Service through a
# forward, a pod reaches a server on the host's loopback through a forward.
# Cleans up after itself. Prints "N passed, N failed".
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

K=("$STATE_DIR/bin/kubectl" --kubeconfig "$KUBECONFIG_HOST")
NS=corral-smoke-$$
pass=0
fail=0
check() { # DESCRIPTION CMD...
  local what=$1
  shift
  if "$@"; then
    pass=$((pass + 1)); log "ok   $what"
  else
    fail=$((fail + 1)); log "FAIL $what"
  fi
}
retry() { # CMD...: up to 15 tries a second apart (kube-proxy syncs Services asynchronously)
  local i
  for ((i = 0; i < 15; i++)); do
    "$@" 2>/dev/null && return 0
    sleep 1
  done
  "$@"
}
web_pid=
cleanup() {
  "${K[@]}" delete namespace "$NS" --wait=false >/dev/null 2>&1 || true
  "$E2E_CLUSTER_DIR/forward.sh" stop smoke >/dev/null 2>&1 || true
  "$E2E_CLUSTER_DIR/forward.sh" stop smoke-host >/dev/null 2>&1 || true
  if [[ -n $web_pid ]]; then kill "$web_pid" 2>/dev/null || true; fi
}
trap cleanup EXIT

"${K[@]}" create namespace "$NS" >/dev/null
"${K[@]}" -n "$NS" wait --for=jsonpath='{.metadata.name}'=default serviceaccount/default --timeout=30s >/dev/null
"${K[@]}" -n "$NS" run client --image=corral/sandbox-base:dev --image-pull-policy=Never \
  --restart=Never -- bash -c 'echo smoke-log-line; sleep 600' >/dev/null
"${K[@]}" -n "$NS" run web --image=corral/sandbox-base:dev --image-pull-policy=Never \
  --restart=Never --port=8080 --labels=app=web -- python3 -m http.server 8080 >/dev/null
"${K[@]}" -n "$NS" expose pod web --port=80 --target-port=8080 --name=web >/dev/null

check "pods reach Running/Ready" "${K[@]}" -n "$NS" wait --for=condition=Ready pod/client pod/web --timeout=120s
logs_ok() { "${K[@]}" -n "$NS" logs client | grep -q smoke-log-line; }
exec_ok() { [[ $("${K[@]}" -n "$NS" exec client -- cat /etc/debian_version) == 12* ]]; }
check "kubectl logs" logs_ok
check "kubectl exec" exec_ok
svc=$("${K[@]}" -n "$NS" get service web -o jsonpath='{.spec.clusterIP}')
check "pod -> ClusterIP Service" retry "${K[@]}" -n "$NS" exec client -- \
  curl -fsS -m 5 -o /dev/null "http://$svc/"
# shellcheck disable=SC2016 # expanded in the pod
check "pod -> API server by Service environment variables" retry "${K[@]}" -n "$NS" exec client -- \
  bash -c 'curl -fsS -k -m 5 -o /dev/null "https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT/version"'
"$E2E_CLUSTER_DIR/forward.sh" to-cluster smoke 18099 "$svc:80" 2>/dev/null
check "host -> Service through forward.sh" retry curl -fsS -m 5 -o /dev/null http://127.0.0.1:18099/

# A server on the host's loopback, reached from a pod at $NODE_PEER_IP.
python3 -m http.server 18098 --bind 127.0.0.1 --directory /usr/share >/dev/null 2>&1 &
web_pid=$!
wait_for 10 "host web server" port_listening 18098
"$E2E_CLUSTER_DIR/forward.sh" from-host smoke-host 18098 2>/dev/null
check "pod -> host service through forward.sh" retry "${K[@]}" -n "$NS" exec client -- \
  curl -fsS -m 5 -o /dev/null "http://$NODE_PEER_IP:18098/"

echo "$pass passed, $fail failed"
((fail == 0))
