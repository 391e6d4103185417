#!/usr/bin/env bash
# Prints the Python interpreter of a virtual environment holding requirements.txt (schemathesis, requests, pytest),
# kept in ${CORRAL_CACHE:-$HOME/.cache/corral}/venv-fuzz and rebuilt only when requirements.txt changes.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=hack/lib.sh
source "$here/../../hack/lib.sh"

venv="$CORRAL_CACHE/venv-fuzz"
stamp=$(sha256sum "$here/requirements.txt" | cut -c1-16)
if [[ ! -x $venv/bin/python || $(cat "$venv/.corral-stamp" 2>/dev/null) != "$stamp" ]]; then
  command -v python3 >/dev/null || apt_install python3
  python3 -c 'import venv, ensurepip' 2>/dev/null || apt_install python3-venv
  log "creating a Python virtual environment with schemathesis in $venv (once)"
  rm -rf "$venv"
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt" >&2
  echo "$stamp" >"$venv/.corral-stamp"
fi
printf '%s\n' "$venv/bin/python"
