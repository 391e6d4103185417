#!/usr/bin/env bash
# The gateway's handler tests against a real kube-apiserver (the light mode: etcd + kube-apiserver only), a real
# redis-server, a real S3 server for the Files API (SeaweedFS, built by e2e/cluster/s3-binary.sh) and the official
# Python SDK for the field walk (e2e/conformance/venv.sh). Brings the light API server up unless one already answers
# at $CORRAL_STATE/kubeconfig (or $KUBECONFIG), applies the CRDs, runs
# `cargo test -p corral-gateway --features integration`, and brings the API server down again if this script started
# it. Needs root (the light mode runs in its own namespaces).
# Honours CORRAL_STATE (default e2e/.state) and CORRAL_API_PORT (default 6443), so it can run beside another
# engineer's cluster.
# Extra arguments go to `cargo test` (for example a test name filter).
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$(dirname "${BASH_SOURCE[0]}")/.."

command -v redis-server >/dev/null || hack/tools.sh
# The Files API's tests need a real S3 server: SeaweedFS's weed, built once from Go modules.
CORRAL_WEED=${CORRAL_WEED:-$(e2e/cluster/s3-binary.sh)}
export CORRAL_WEED
with_light_apiserver

log "running the gateway's integration tests"
cargo test -p corral-gateway --features integration --test integration -- "$@"
