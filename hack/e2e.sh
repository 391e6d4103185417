#!/usr/bin/env bash
# The end-to-end suite: brings the local cluster up (unless KUBECONFIG names another cluster), builds Corral's
# images from the workspace's binaries and imports them, installs Corral with Helm, and runs the e2e tests, then the
# conformance suite of the official Python SDK against the installed gateway (e2e/conformance/; skip it with
# E2E_CONFORMANCE=0). E2E_INSTALL_ONLY=1 stops once Corral is installed (the benchmarks use that).
# A cluster this script started is stopped again when it ends under CI (or with E2E_CLUSTER_DOWN=1).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$(dirname "${BASH_SOURCE[0]}")/.."

RELEASE=corral
NAMESPACE=${CORRAL_NAMESPACE:-corral-system}
export CORRAL_NAMESPACE=$NAMESPACE

hack/tools.sh
started_cluster=0
state=${CORRAL_STATE:-$PWD/e2e/.state}
if [[ -z ${KUBECONFIG:-} ]]; then
  if ! KUBECONFIG=$state/kubeconfig "$state/bin/kubectl" get --raw /readyz >/dev/null 2>&1; then
    log "starting the local cluster (the first run builds Kubernetes from source: about 10 minutes)"
    make --no-print-directory cluster-up
    started_cluster=1
  fi
  export KUBECONFIG=$state/kubeconfig
  export PATH="$state/bin:$PATH"
  local_cluster=1
else
  local_cluster=0
fi
cleanup() {
  local rc=$?
  if ((started_cluster)) && [[ ${CI:-} == true || ${E2E_CLUSTER_DOWN:-} == 1 ]]; then
    make --no-print-directory cluster-down || true
  fi
  exit "$rc"
}
trap cleanup EXIT

log "building Corral's binaries"
cargo build -p corral-operator --bin corral-operator -p corral-harness --bin corral-harness \
  -p corral-egress --bin corral-egress -p corral-gateway --bin corral-gateway
# The sandbox daemon is copied into arbitrary images, so it is linked statically.
RUSTFLAGS='-C target-feature=+crt-static' cargo build -p corral-sandbox --bin corral-sandbox \
  --target x86_64-unknown-linux-gnu
daemon=target/x86_64-unknown-linux-gnu/debug/corral-sandbox
if ((local_cluster)); then
  log "building and importing images"
  e2e/images/build.sh component operator target/debug/corral-operator
  e2e/images/build.sh component sandbox "$daemon"
  e2e/images/build.sh component harness target/debug/corral-harness
  e2e/images/build.sh component gateway target/debug/corral-gateway
  e2e/images/build.sh component egress target/debug/corral-egress
  e2e/images/build.sh redis
  e2e/images/build.sh seaweedfs
  e2e/images/build.sh git-server # the git remote of e2e/tests/repositories.rs
fi

# Images keep the tag `dev`: a digest of the binary in a pod annotation rolls the pods when the code changed.
build_id=$(cat target/debug/corral-operator "$daemon" target/debug/corral-harness | sha256sum | cut -c1-16)
egress_build_id=$(sha256sum target/debug/corral-egress | cut -c1-16)
gateway_build_id=$(sha256sum target/debug/corral-gateway | cut -c1-16)
log "installing Corral with Helm into $NAMESPACE"
# harness.resources.requests.cpu: the one local node has 2 CPUs and the tests run several namespaces at once, each
# with a harness Deployment of 2 replicas (removed by the operator as soon as the namespace's last Agent goes).
# gateway.limits.maxSessionEvents: small, so e2e/tests/wall_limits.rs fills a session to its cap in one request.
# sandbox.networkPolicyProbe: every 5 s, so e2e/tests/wall_sandbox.rs sees the probe's verdict quickly.
# egress.internalHosts: the tests' upstream servers run on the host side of the cluster network (10.201.0.1), an
# internal address the egress proxy refuses unless the operator-level allow-list names it.
helm dependency build charts/corral >/dev/null
helm upgrade --install "$RELEASE" charts/corral --namespace "$NAMESPACE" --create-namespace \
  --wait --timeout 5m \
  --set image.pullPolicy=IfNotPresent --set operator.replicas=2 \
  --set-string "operator.podAnnotations.corral\\.dev/build=$build_id" \
  --set gateway.logFormat=text \
  --set-string "gateway.podAnnotations.corral\\.dev/build=$gateway_build_id" \
  --set-string "egress.podAnnotations.corral\\.dev/build=$egress_build_id" --set egress.logFormat=text \
  --set redis.image.repository=corral/redis --set redis.image.tag=dev \
  --set redis.persistence.ephemeral=true \
  --set objectStore.image.repository=corral/seaweedfs --set objectStore.image.tag=dev \
  --set objectStore.persistence.ephemeral=true \
  --set 'egress.internalHosts={10.201.0.1}' --set sandbox.networkPolicyProbe.intervalSeconds=5 \
  --set harness.resources.requests.cpu=20m --set gateway.limits.maxSessionEvents=5000 \
  --set harness.sandboxUnschedulableTimeout=60s \
  --set operator.logFormat=text --set-string "operator.logLevel=info\\,corral_operator=debug"
kubectl -n "$NAMESPACE" rollout status deploy/"$RELEASE"-operator --timeout=120s
kubectl -n "$NAMESPACE" rollout status deploy/"$RELEASE"-gateway --timeout=120s
kubectl -n "$NAMESPACE" rollout status deploy/"$RELEASE"-egress --timeout=120s
export CORRAL_E2E_GATEWAY_BIN=$PWD/target/debug/corral-gateway

if ((local_cluster)); then
  redis_ip=$(kubectl -n "$NAMESPACE" get svc "$RELEASE"-redis -o jsonpath='{.spec.clusterIP}')
  # A free host port: clusters of other checkouts (CORRAL_STATE) may run next to this one.
  redis_port=$(free_port)
  e2e/cluster/forward.sh stop e2e-redis # a forward of an earlier run (another port, maybe another IP)
  e2e/cluster/forward.sh to-cluster e2e-redis "$redis_port" "$redis_ip:6379"
  # Redis requires Corral's system user; the tests read and check the session logs with it.
  redis_password=$(kubectl -n "$NAMESPACE" get secret "$RELEASE"-redis-auth -o jsonpath='{.data.password}' | base64 -d)
  export CORRAL_E2E_REDIS_URL=redis://corral:$redis_password@127.0.0.1:$redis_port
fi

if [[ ${E2E_INSTALL_ONLY:-0} == 1 ]]; then
  log "Corral is installed (E2E_INSTALL_ONLY=1: no tests run)"
  exit 0
fi

# Tests that kill a shared component (Redis) or take every free CPU of the node (capacity.rs: names with
# `full_node`) run alone, after everything else, so they cannot break other tests.
DISRUPTIVE=a_redis_restart_loses_no_acknowledged_event
FULL_NODE=full_node
log "running the e2e tests"
rc=0
results=$state/e2e-results.txt
cargo test -p corral-e2e --features e2e --no-fail-fast -- --test-threads=4 --skip "$DISRUPTIVE" --skip "$FULL_NODE" "$@" \
  2>&1 | tee "$results" || rc=$?
# A test that failed beside three others runs once more alone. It is reported as FLAKY either way: a failure under
# load is worth a look (one was an operator bug), but one busy moment on a 2-core machine does not fail the build.
if ((rc != 0)); then
  mapfile -t failed < <(sed -n 's/^test \([A-Za-z0-9_:]*\) \.\.\. FAILED$/\1/p' "$results" | sort -u)
  if ((${#failed[@]} > 0)); then
    rc=0
    for t in "${failed[@]}"; do
      log "FLAKY? $t failed beside other tests; running it again alone"
      if cargo test -p corral-e2e --features e2e -- --exact "$t"; then
        log "FLAKY: $t failed beside other tests and passed alone"
      else
        log "FAILED: $t failed again alone"
        rc=1
      fi
    done
  fi
fi

# The official SDK against the installed gateway; it runs even when a Rust test failed, and either failure fails.
if [[ ${E2E_CONFORMANCE:-1} != 0 ]]; then
  log "running the conformance suite (official anthropic Python SDK) against the installed gateway"
  e2e/conformance/run.sh --gateway-bin target/debug/corral-gateway || rc=$?
fi

if (($# == 0)) || [[ $DISRUPTIVE == *"$1"* ]]; then
  log "running the disruptive e2e tests alone"
  cargo test -p corral-e2e --features e2e --test recovery -- --exact "$DISRUPTIVE" || rc=$?
fi
if (($# == 0)) || [[ $1 == *"$FULL_NODE"* || $1 == capacity ]]; then
  log "running the full-node e2e tests alone, one at a time"
  cargo test -p corral-e2e --features e2e --test capacity -- --test-threads=1 || rc=$?
fi
exit "$rc"
