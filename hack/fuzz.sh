#!/usr/bin/env bash
# The API fuzzing suite (e2e/fuzz/, docs/fuzzing.md): schemathesis against gateway/openapi.yaml and hand-written
# hostile requests, against a real `corral-gateway serve`, a real redis-server, a real S3 server (SeaweedFS) and a
# real kube-apiserver (the light mode). Installs schemathesis in ~/.cache/corral/venv-fuzz (PyPI, pinned), builds
# the gateway, brings the light API server up unless one answers at $CORRAL_STATE/kubeconfig (or $KUBECONFIG) and
# down again if it started it.
# FUZZ_SHORT=1 is the time-boxed form `make check` runs (schemathesis for FUZZ_MAX_TIME=60 s); without it, the full
# run (FUZZ_MAX_TIME=600 s). FUZZ_SEED=<n> replays one schemathesis run (the short form uses a fixed one). Extra arguments go to pytest.
# Honours CORRAL_STATE and CORRAL_API_PORT like hack/gateway-it.sh. Needs root.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$(dirname "${BASH_SOURCE[0]}")/.."

command -v redis-server >/dev/null || hack/tools.sh
python=$(e2e/fuzz/venv.sh)
CORRAL_WEED=${CORRAL_WEED:-$(e2e/cluster/s3-binary.sh)}
export CORRAL_WEED
if [[ ${FUZZ_SHORT:-0} == 1 ]]; then
  export FUZZ_MAX_TIME=${FUZZ_MAX_TIME:-60}
  # A fixed seed keeps `make check` close to repeatable (two workers and a time budget still vary it). `make fuzz` draws a new
  # seed each run and is where new findings come from.
  export FUZZ_SEED=${FUZZ_SEED:-20261206}
else
  export FUZZ_MAX_TIME=${FUZZ_MAX_TIME:-600}
fi
with_light_apiserver

log "building the gateway"
cargo build -q -p corral-gateway --bin corral-gateway

log "fuzzing the API (schemathesis for ${FUZZ_MAX_TIME}s, then the hostile cases)"
start=$SECONDS
"$python" -m pytest -p no:cacheprovider -q -rA e2e/fuzz "$@"
log "fuzzing took $((SECONDS - start)) s"
