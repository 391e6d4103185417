#!/usr/bin/env bash
# The session trace viewer's test in a real headless Chromium: installs Debian's chromium and chromium-driver (apt)
# and Selenium (PyPI, in a virtual environment under ~/.cache/corral/venv-viewer) when missing, brings the light
# API server up unless one answers at $CORRAL_STATE/kubeconfig (or $KUBECONFIG), applies the CRDs, builds the
# gateway, the harness and the sandbox daemon, and runs e2e/viewer/test_viewer.py, which saves a screenshot of the
# timeline to $CORRAL_VIEWER_SCREENSHOT (default $CORRAL_STATE/viewer.png; the one in docs/ was made with
# CORRAL_VIEWER_SCREENSHOT=docs/viewer.png).
# Honours CORRAL_STATE and CORRAL_API_PORT like hack/cli-it.sh. Needs root.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$(dirname "${BASH_SOURCE[0]}")/.."

command -v redis-server >/dev/null || hack/tools.sh
browser_tools

with_light_apiserver

log "building the gateway, the harness and the sandbox daemon"
cargo build -q -p corral-gateway -p corral-harness -p corral-sandbox --bins

log "running the viewer test in headless chromium"
# Selenium must use the Debian driver, never download one.
export CORRAL_VIEWER_SCREENSHOT=${CORRAL_VIEWER_SCREENSHOT:-$CORRAL_STATE/viewer.png}
SE_OFFLINE=true "$BROWSER_PYTHON" e2e/viewer/test_viewer.py "$@"
