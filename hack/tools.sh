#!/usr/bin/env bash
# Installs what building, testing and linting Corral needs, idempotently: redis-server from Debian, helm from
# Go modules. Prints the PATH entry to use.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

HELM_VERSION=v3.22.0

apt_install redis-server ca-certificates
# Debian's package starts a system Redis where an init system runs; tests start their own on loopback.
if command -v systemctl >/dev/null && systemctl is-active --quiet redis-server 2>/dev/null; then
  systemctl disable --now redis-server >/dev/null 2>&1 || true
fi
go_tool helm "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
log "tools ready in $TOOLS_BIN"
