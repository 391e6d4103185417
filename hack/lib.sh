# shellcheck shell=bash
# Shared helpers for the scripts in hack/. Source it; do not run it.
# shellcheck source=hack/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
# Tools the project installs itself live outside the repository, keyed by version.
CORRAL_CACHE="${CORRAL_CACHE:-$HOME/.cache/corral}"
TOOLS_BIN="$CORRAL_CACHE/tools/bin"
export PATH="$TOOLS_BIN:$PATH"

# go_tool NAME MODULE@VERSION builds a Go tool once into $TOOLS_BIN/NAME-VERSION and links $TOOLS_BIN/NAME to it.
go_tool() {
  local name=$1 spec=$2 version=${2##*@}
  local target="$TOOLS_BIN/$name-$version"
  if [ ! -x "$target" ]; then
    log "building $name $version from Go modules (once)"
    mkdir -p "$TOOLS_BIN"
    local tmp
    tmp=$(mktemp -d)
    GOBIN="$tmp" CGO_ENABLED=0 go install -trimpath "$spec"
    mv "$tmp/$name" "$target"
    rmdir "$tmp"
  fi
  ln -sf "$target" "$TOOLS_BIN/$name"
}

# browser_tools: headless Chromium for the scripts that look at a page (Debian's chromium, chromium-driver and a
# font) and Selenium from PyPI in a virtual environment under $CORRAL_CACHE/venv-viewer; installs what is missing
# and sets BROWSER_PYTHON to that environment's interpreter. Selenium must then run with SE_OFFLINE=true, so that it
# uses the Debian driver and never downloads one.
SELENIUM_VERSION=4.38.0
browser_tools() {
  apt_install chromium chromium-driver fonts-dejavu-core
  local venv=$CORRAL_CACHE/venv-viewer
  if ! "$venv/bin/python" -c "import selenium, sys; sys.exit(selenium.__version__ != '$SELENIUM_VERSION')" 2>/dev/null; then
    log "installing selenium $SELENIUM_VERSION in $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q "selenium==$SELENIUM_VERSION"
  fi
  export BROWSER_PYTHON=$venv/bin/python
}

# with_light_apiserver: for the integration scripts. Unless $KUBECONFIG names a cluster, uses the one at
# $CORRAL_STATE (default e2e/.state; CORRAL_API_PORT default 6443), starting the light API server (etcd +
# kube-apiserver) when none answers and stopping it again when the script exits; then applies the CRDs and waits
# until they are established. Sets KUBECONFIG, CORRAL_STATE and KUBECTL. Run from the repository root.
with_light_apiserver() {
  local state=${CORRAL_STATE:-$PWD/e2e/.state}
  export CORRAL_STATE=$state CORRAL_API_PORT=${CORRAL_API_PORT:-6443}
  LIGHT_APISERVER_STARTED=0
  if [[ -z ${KUBECONFIG:-} ]]; then
    export KUBECONFIG=$state/kubeconfig
    if ! "$state/bin/kubectl" get --raw /readyz >/dev/null 2>&1; then
      log "starting the light API server (etcd + kube-apiserver) in $state on port $CORRAL_API_PORT"
      make --no-print-directory apiserver-up
      LIGHT_APISERVER_STARTED=1
    fi
  fi
  trap stop_light_apiserver EXIT
  KUBECTL=kubectl
  [[ -x $state/bin/kubectl ]] && KUBECTL=$state/bin/kubectl
  "$KUBECTL" apply --server-side -f crds/ >/dev/null
  local crd
  for crd in agents environments sessions; do
    "$KUBECTL" wait --for=condition=Established --timeout=60s "crd/$crd.corral.dev" >/dev/null
  done
}

# stop_light_apiserver: the EXIT trap of with_light_apiserver; stops the light API server if it started it.
stop_light_apiserver() {
  local rc=$?
  if ((LIGHT_APISERVER_STARTED)); then
    log "stopping the light API server"
    make --no-print-directory apiserver-down || true
  fi
  exit $rc
}

# free_port prints a loopback TCP port nothing listens on (clusters of other checkouts may run next to this one).
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
