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

apt_install "${PACKAGES[@]}"
