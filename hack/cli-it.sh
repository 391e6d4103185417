#!/usr/bin/env bash
# The corral CLI's integration tests: the real `corral` binary against a real `corral-gateway serve` (a child
# process of each test), a real redis-server, a real kube-apiserver (the light mode: etcd + kube-apiserver) and,
# for `corral files`, a real S3 server (SeaweedFS).
# Brings the light API server up unless one already answers at $CORRAL_STATE/kubeconfig (or $KUBECONFIG),
# applies the CRDs, builds the gateway, runs `cargo test -p corral-cli --features integration`, and brings the
# API server down again if this script started it. Needs root (the light mode runs in its own namespaces).
# Honours CORRAL_STATE (default e2e/.state) and CORRAL_API_PORT (default 6443), so it can run beside another
# engineer's cluster. Extra arguments go to `cargo test` (for example a test name filter).
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$(dirname "${BASH_SOURCE[0]}")/.."

{ command -v redis-server && [[ -x /usr/bin/time ]]; } >/dev/null || hack/tools.sh
# `corral files` needs a real S3 server behind the gateway: SeaweedFS's weed, built once from Go modules (cached,
# shared with hack/gateway-it.sh). The terminal tests run the CLI under util-linux `script` (a pseudo-terminal).
CORRAL_WEED=${CORRAL_WEED:-$(e2e/cluster/s3-binary.sh)}
export CORRAL_WEED
command -v script >/dev/null || die "the terminal tests need util-linux script"
with_light_apiserver

log "building the gateway"
cargo build -q -p corral-gateway --bin corral-gateway
export CORRAL_GATEWAY_BIN=${CORRAL_GATEWAY_BIN:-$PWD/target/debug/corral-gateway}

log "running the CLI's integration tests"
cargo test -p corral-cli --features integration --test integration -- "$@"
