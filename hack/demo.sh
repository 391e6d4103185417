#!/usr/bin/env bash
# make demo: Corral end to end in one command.
#
#   1. a cluster: the one KUBECONFIG names, else the local single-node cluster (make cluster-up);
#   2. on the local cluster, Corral's images built from this checkout and imported;
#   3. Corral installed with Helm (operator, gateway, Redis; a harness per namespace with agents, in Corral's namespace);
#   4. the namespace corral-demo with an API key, an agent and an environment: the scripted example agent, or a
#      real Claude agent when ANTHROPIC_API_KEY is set (the key is stored in a Secret the harness reads);
#   5. a session created through the gateway with the official anthropic SDK, one message sent, and the events
#      printed as they stream in until the agent is idle.
#
# Knobs: KUBECONFIG (use your cluster), ANTHROPIC_API_KEY (a real model; ANTHROPIC_MODEL, default
# claude-sonnet-4-5), CORRAL_DEMO_MESSAGE, CORRAL_IMAGE_REPOSITORY / CORRAL_IMAGE_TAG (images for your cluster),
# CORRAL_STATE / CORRAL_API_PORT (a second local cluster), CORRAL_DEMO_PORT (host port of the gateway, local cluster).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$(dirname "${BASH_SOURCE[0]}")/.."

RELEASE=corral
SYSTEM_NS=${CORRAL_NAMESPACE:-corral-system}
DEMO_NS=corral-demo
MESSAGE=${CORRAL_DEMO_MESSAGE:-Say hello and check the sandbox works}
start=$SECONDS

step() { printf '\n\033[1m==> %s\033[0m\n' "$*" >&2; }

hack/tools.sh >&2
state=${CORRAL_STATE:-$PWD/e2e/.state}
if [[ -n ${KUBECONFIG:-} ]]; then
  local_cluster=0
  step "using the cluster of KUBECONFIG=$KUBECONFIG"
  kubectl version >/dev/null || die "kubectl cannot reach the cluster of KUBECONFIG=$KUBECONFIG"
else
  local_cluster=1
  # Only when it is not up already: cluster-up rewrites the components' configuration files, and a running
  # kube-proxy exits when its file changes.
  if ! KUBECONFIG=$state/kubeconfig "$state/bin/kubectl" get --raw /readyz >/dev/null 2>&1; then
    step "starting the local cluster (the first run builds Kubernetes from source: about 10 minutes)"
    make --no-print-directory cluster-up >&2
  else
    step "using the local cluster (already up; KUBECONFIG=$state/kubeconfig)"
  fi
  export KUBECONFIG=$state/kubeconfig PATH="$state/bin:$PATH"
fi

helm_args=(--set gateway.enabled=true --set harness.enabled=true)
if ((local_cluster)); then
  step "building Corral and its images"
  cargo build -p corral-operator -p corral-harness -p corral-gateway -p corral-egress --bins >&2
  RUSTFLAGS='-C target-feature=+crt-static' cargo build -p corral-sandbox --bin corral-sandbox \
    --target x86_64-unknown-linux-gnu >&2
  daemon=target/x86_64-unknown-linux-gnu/debug/corral-sandbox
  for c in operator harness gateway egress; do e2e/images/build.sh component "$c" "target/debug/corral-$c" >&2; done
  e2e/images/build.sh component sandbox "$daemon" >&2
  e2e/images/build.sh redis >&2
  e2e/images/build.sh seaweedfs >&2
  # Images keep the tag `dev`: a digest of the binaries in the pod annotations rolls the pods when they changed.
  build=$(cat target/debug/corral-operator target/debug/corral-harness "$daemon" | sha256sum | cut -c1-16)
  gateway_build=$(sha256sum target/debug/corral-gateway | cut -c1-16)
  egress_build=$(sha256sum target/debug/corral-egress | cut -c1-16)
  helm_args+=(--set image.pullPolicy=IfNotPresent
    --set-string "operator.podAnnotations.corral\\.dev/build=$build"
    --set-string "gateway.podAnnotations.corral\\.dev/build=$gateway_build"
    --set-string "egress.podAnnotations.corral\\.dev/build=$egress_build"
    --set redis.image.repository=corral/redis --set redis.image.tag=dev --set redis.persistence.ephemeral=true
    --set objectStore.image.repository=corral/seaweedfs --set objectStore.image.tag=dev
    --set objectStore.persistence.ephemeral=true
    --set operator.logFormat=text --set gateway.logFormat=text --set egress.logFormat=text)
else
  [[ -n ${CORRAL_IMAGE_REPOSITORY:-} ]] && helm_args+=(--set "image.repository=$CORRAL_IMAGE_REPOSITORY")
  [[ -n ${CORRAL_IMAGE_TAG:-} ]] && helm_args+=(--set "image.tag=$CORRAL_IMAGE_TAG")
fi

step "installing Corral with Helm into $SYSTEM_NS"
helm dependency build charts/corral >/dev/null
helm upgrade --install "$RELEASE" charts/corral --namespace "$SYSTEM_NS" --create-namespace --wait --timeout 5m \
  "${helm_args[@]}" >/dev/null
kubectl -n "$SYSTEM_NS" rollout status deploy/"$RELEASE"-operator --timeout=180s >&2
kubectl -n "$SYSTEM_NS" rollout status deploy/"$RELEASE"-gateway --timeout=180s >&2

step "creating the namespace $DEMO_NS with an API key, an agent and an environment"
gateway_bin=target/debug/corral-gateway
[[ -x $gateway_bin ]] || cargo build -q -p corral-gateway --bin corral-gateway
# One key per demo run: the previous one is revoked (its Secret deleted), the new one printed at the end.
kubectl -n "$DEMO_NS" delete secret demo-api-key --ignore-not-found >/dev/null 2>&1 || true
key=$("$gateway_bin" create-key --namespace "$DEMO_NS" --name demo-api-key 2>/dev/null)
if [[ -n ${ANTHROPIC_API_KEY:-} ]]; then
  agent=coder
  # The label marks the Secret as a model key: an apiKeySecretRef names no other Secret.
  kubectl -n "$DEMO_NS" create secret generic anthropic --from-literal=api-key="$ANTHROPIC_API_KEY" \
    --dry-run=client -o yaml | kubectl label --local -f - corral.dev/credential=model -o yaml \
    | kubectl apply -f - >/dev/null
  # examples/agent.yaml's shape: Claude through the Messages API, the key read by the harness from the Secret.
  kubectl -n "$DEMO_NS" apply --server-side -f - >/dev/null <<EOF
apiVersion: corral.dev/v1alpha1
kind: Agent
metadata:
  name: coder
spec:
  name: Coder
  description: Writes and runs code in its sandbox.
  model:
    id: ${ANTHROPIC_MODEL:-claude-sonnet-4-5}
    provider:
      type: anthropic
      apiKeySecretRef: { name: anthropic, key: api-key }
  system: You are a careful software engineer. Run code to check your work. Be brief.
  tools:
    - type: agent_toolset_20260401
      defaultConfig: { enabled: true, permissionPolicy: always_allow }
      configs:
        - { name: web_search, enabled: false }
        - { name: web_fetch, enabled: false }
EOF
  log "agent: coder (Anthropic ${ANTHROPIC_MODEL:-claude-sonnet-4-5}; the key is in Secret $DEMO_NS/anthropic)"
else
  agent=scripted
  kubectl -n "$DEMO_NS" apply --server-side -f examples/agent-scripted.yaml >/dev/null
  log "agent: scripted (plays examples/scripts/hello-tool.yaml; set ANTHROPIC_API_KEY for a real model)"
fi
# The demo's sandbox: the default image, a scratch workspace, reaped after 10 idle minutes.
kubectl -n "$DEMO_NS" apply --server-side -f - >/dev/null <<'EOF'
apiVersion: corral.dev/v1alpha1
kind: Environment
metadata:
  name: demo
spec:
  name: Demo sandbox
  config:
    networking: { type: unrestricted }
  sandbox:
    workspace: { type: ephemeral }
    idleTimeout: 10m
EOF
kubectl -n "$DEMO_NS" wait --for=condition=Ready "agent/$agent" environment/demo --timeout=120s >/dev/null

# The gateway from this machine.
port_forward_pid=""
if ((local_cluster)); then
  e2e/cluster/forward.sh stop demo-gateway 2>/dev/null || true
  port=${CORRAL_DEMO_PORT:-18080}
  if ! python3 -c 'import socket,sys; s=socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1])))' "$port" 2>/dev/null; then
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  fi
  ip=$(kubectl -n "$SYSTEM_NS" get svc "$RELEASE"-gateway -o jsonpath='{.spec.clusterIP}')
  e2e/cluster/forward.sh to-cluster demo-gateway "$port" "$ip:80" 2>/dev/null
else
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  kubectl -n "$SYSTEM_NS" port-forward svc/"$RELEASE"-gateway "$port:http" >/dev/null &
  port_forward_pid=$!
  trap '[[ -n $port_forward_pid ]] && kill "$port_forward_pid" 2>/dev/null' EXIT
fi
url=http://127.0.0.1:$port
for _ in $(seq 1 60); do
  curl -fsS "$url/readyz" >/dev/null 2>&1 && break
  sleep 0.5
done

python=$(e2e/conformance/venv.sh)
step "a session through the gateway (official anthropic SDK, base_url=$url)"
"$python" hack/demo.py --base-url "$url" --api-key "$key" --agent "$agent" --environment demo \
  --message "$MESSAGE"

kube_hint=""
((local_cluster)) && kube_hint="export KUBECONFIG=$KUBECONFIG PATH=$state/bin:\$PATH   # the local cluster's kubectl"$'\n'"  "
cat <<EOF

$(printf '\033[1m')The demo ran in $((SECONDS - start)) s. Carry on:$(printf '\033[0m')
  ${kube_hint}kubectl get corral -n $DEMO_NS                 # agents, environments, sessions (and kubectl get pods -n $DEMO_NS)

  Gateway:  $url$( ((local_cluster)) || echo "   (only while this script runs; later: kubectl -n $SYSTEM_NS port-forward svc/$RELEASE-gateway 8080:80)")
  API key:  $key   (tenant namespace $DEMO_NS)

  python:   client = anthropic.Anthropic(base_url="$url", api_key="$key")
            client.beta.sessions.list()
  curl:     curl -s $url/v1/sessions -H "x-api-key: $key" | python3 -m json.tool
  corral:   export CORRAL_URL=$url CORRAL_API_KEY=$key
            cargo run -q -p corral-cli -- run --agent $agent --environment demo "Hello again"

Tear down: $( ((local_cluster)) && echo "make cluster-down$([[ -n ${CORRAL_STATE:-} ]] && echo " (with CORRAL_STATE=$CORRAL_STATE)")" || echo "helm uninstall $RELEASE -n $SYSTEM_NS && kubectl delete namespace $DEMO_NS")
EOF
