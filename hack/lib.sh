# Shared helpers for the scripts in hack/. Source it; do not run it.
# Tools the project installs itself live outside the repository, keyed by version.
CORRAL_CACHE="${CORRAL_CACHE:-$HOME/.cache/corral}"
TOOLS_BIN="$CORRAL_CACHE/tools/bin"
export PATH="$TOOLS_BIN:$PATH"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# apt_install PKG... installs the Debian packages that are missing (apt-get update once, only when needed).
apt_install() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  ((${#missing[@]} == 0)) && return 0
  [ "$(id -u)" -eq 0 ] || die "need root to install ${missing[*]}"
  log "installing Debian packages: ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

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
