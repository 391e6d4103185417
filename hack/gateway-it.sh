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

command -v redis-server >/dev/null || hack/tools.sh
with_light_apiserver

log "running the gateway's integration tests"
cargo test -p corral-gateway --features integration --test integration -- "$@"
