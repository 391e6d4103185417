#!/usr/bin/env bash
# Install the Debian packages the local cluster and the image pipeline need.
# Idempotent: does nothing when every package is already installed.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PACKAGES=(
  etcd-server containerd runc containernetworking-plugins
  iptables conntrack socat iproute2 util-linux procps kmod
  openssl buildah debootstrap gcc libc6-dev
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  exit 0
fi

require_root
log "installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

# The Debian packages start their own services where an init system runs; this
# cluster runs its own copies inside a private namespace, so stop those.
for svc in containerd etcd; do
  if command -v systemctl >/dev/null && systemctl is-active --quiet "$svc" 2>/dev/null; then
    systemctl disable --now "$svc" >/dev/null 2>&1 || true
  fi
done
log "Debian packages installed"
