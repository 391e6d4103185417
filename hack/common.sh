# shellcheck shell=bash
# The one logging and install library of every script (hack/, e2e/, bench/). Sourced, never run.
# LOG_TAG names the caller in each line (default: the script's name).

LOG_TAG=${LOG_TAG:-$(basename "${0%.sh}")}

# log MESSAGE... writes a timestamped line to stderr.
log() { printf '[%s %(%H:%M:%S)T] %s\n' "$LOG_TAG" -1 "$*" >&2; }

# die MESSAGE... logs an error and exits 1.
die() {
  log "error: $*"
  exit 1
}

# require_root dies unless the script runs as root.
require_root() {
  [[ $(id -u) -eq 0 ]] || die "must run as root (${1:-this step needs it})"
}

# apt_install PKG... installs the Debian packages that are missing (apt-get update once, only when needed), then
# stops any service a package started where an init system runs: the scripts start their own copies on loopback.
apt_install() {
  local missing=() p svc
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  ((${#missing[@]} == 0)) && return 0
  require_root "installing ${missing[*]}"
  log "installing Debian packages: ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  for svc in redis-server containerd etcd; do
    if command -v systemctl >/dev/null && systemctl is-active --quiet "$svc" 2>/dev/null; then
      systemctl disable --now "$svc" >/dev/null 2>&1 || true
    fi
  done
}
