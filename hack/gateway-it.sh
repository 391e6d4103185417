#!/usr/bin/env bash
# The gateway's handler tests against a real kube-apiserver (the light mode: etcd + kube-apiserver only) and a
# real redis-server. Brings the light API server up unless one already answers at $CORRAL_STATE/kubeconfig (or
# $KUBECONFIG), applies the CRDs, runs `cargo test -p corral-gateway --features integration`, and brings the API
# server down again if this script started it. Needs root (the light mode runs in its own namespaces).
# Honours CORRAL_STATE (default e2e/.state) and CORRAL_API_PORT (default 6443), so it can run beside another
# engineer's cluster.
# Extra arguments go to `cargo test` (for example a test name filter).
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$(dirname "${BASH_SOURCE[0]}")/.."

state=${CORRAL_STATE:-$PWD/e2e/.state}
export CORRAL_STATE=$state CORRAL_API_PORT=${CORRAL_API_PORT:-6443}

command -v redis-server >/dev/null || hack/tools.sh
started=0
if [[ -z ${KUBECONFIG:-} ]]; then
  export KUBECONFIG=$state/kubeconfig
  if ! "$state/bin/kubectl" get --raw /readyz >/dev/null 2>&1; then
    log "starting the light API server (etcd + kube-apiserver) in $state on port $CORRAL_API_PORT"
    make --no-print-directory apiserver-up
    started=1
  fi
fi
cleanup() {
  local rc=$?
  if ((started)); then
    log "stopping the light API server"
    make --no-print-directory apiserver-down || true
  fi
  exit $rc
}
trap cleanup EXIT

KUBECTL=kubectl
[[ -x $state/bin/kubectl ]] && KUBECTL=$state/bin/kubectl
"$KUBECTL" apply --server-side -f crds/ >/dev/null
for crd in agents environments sessions; do
  "$KUBECTL" wait --for=condition=Established --timeout=60s "crd/$crd.corral.dev" >/dev/null
done

log "running the gateway's integration tests"
cargo test -p corral-gateway --features integration --test integration -- "$@"
