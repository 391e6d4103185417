#!/usr/bin/env bash
# The corral CLI's integration tests: the real `corral` binary against a real `corral-gateway serve` (a child
# process of each test), a real redis-server and a real kube-apiserver (the light mode: etcd + kube-apiserver).
# Brings the light API server up unless one already answers at $CORRAL_STATE/kubeconfig (or $KUBECONFIG),
# applies the CRDs, builds the gateway, runs `cargo test -p corral-cli --features integration`, and brings the
# API server down again if this script started it. Needs root (the light mode runs in its own namespaces).
# Honours CORRAL_STATE (default e2e/.state) and CORRAL_API_PORT (default 6443), so it can run beside another
# engineer's cluster. Extra arguments go to `cargo test` (for example a test name filter).
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$(dirname "${BASH_SOURCE[0]}")/.."

command -v redis-server >/dev/null || hack/tools.sh
with_light_apiserver

log "building the gateway"
cargo build -q -p corral-gateway --bin corral-gateway
export CORRAL_GATEWAY_BIN=${CORRAL_GATEWAY_BIN:-$PWD/target/debug/corral-gateway}

log "running the CLI's integration tests"
cargo test -p corral-cli --features integration --test integration -- "$@"
