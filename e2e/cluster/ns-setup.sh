#!/usr/bin/env bash
# Runs INSIDE the cluster's private network + mount namespace (via nsenter from
# up.sh), once, right after the namespace holder is created. Everything here
# changes only that namespace: the host's mounts, network and sysctls stay as
# they are.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Refuse to run anywhere but in a namespace distinct from the host's (pid 1's).
if [[ $(readlink /proc/self/ns/net) == "$(readlink /proc/1/ns/net)" ||
      $(readlink /proc/self/ns/mnt) == "$(readlink /proc/1/ns/mnt)" ]]; then
  die "ns-setup.sh must run inside the private namespace, not on the host"
fi
[[ ${LIBMOUNT_UTAB:-} == "$STATE_DIR"/* ]] || die "LIBMOUNT_UTAB must point into $STATE_DIR"

# --- mounts ---------------------------------------------------------------
mount --make-rprivate /
mkdir -p "$STATE_DIR/var/upper" "$STATE_DIR/var/work" "$STATE_DIR/etc" "$STATE_DIR/sysctl"

# A private /run: containerd's shim sockets, runc state, netns, locks.
mount -t tmpfs -o mode=0755,size=512m corral-run /run
mkdir -p /run/lock
# A copy-on-write /var: pod logs (/var/log/pods) and anything else written
# under /var land in the state directory.
mount -t overlay corral-var \
  -o "lowerdir=/var,upperdir=$STATE_DIR/var/upper,workdir=$STATE_DIR/var/work" /var

# containerd's content store and snapshots live in memory: imported images
# are gone with the namespace, and tearing down never has to delete hundreds
# of megabytes of small files from disk.
mkdir -p "$STATE_DIR/containerd/root"
mount -t tmpfs -o mode=0700,size=50% corral-containerd "$STATE_DIR/containerd/root"

# A private resolver config and hosts file. There is no DNS server in the
# cluster: lookups fail fast (the nameserver is a local address with nothing
# listening); address services by IP or by their environment variables.
printf 'nameserver %s\noptions ndots:1 timeout:1 attempts:1\n' "$NODE_PEER_IP" >"$STATE_DIR/etc/resolv.conf"
printf '127.0.0.1 localhost\n%s %s\n%s host.corral.internal\n' \
  "$NODE_IP" "$NODE_NAME" "$NODE_PEER_IP" >"$STATE_DIR/etc/hosts"
mount --bind "$STATE_DIR/etc/resolv.conf" /etc/resolv.conf
mount --bind "$STATE_DIR/etc/hosts" /etc/hosts

# kubelet (protectKernelDefaults: false) rewrites these global, non-namespaced
# sysctls when they differ from what it wants. Show it the values it wants by
# bind-mounting plain files over them inside this mount namespace only.
while read -r key want; do
  if [[ $(<"/proc/sys/$key") != "$want" ]]; then
    f="$STATE_DIR/sysctl/${key//\//.}"
    echo "$want" >"$f"
    mount --bind "$f" "/proc/sys/$key"
  fi
done <<'SYSCTLS'
vm/overcommit_memory 1
vm/panic_on_oom 0
kernel/panic 10
kernel/panic_on_oops 1
kernel/keys/root_maxkeys 1000000
kernel/keys/root_maxbytes 25000000
SYSCTLS

# --- network --------------------------------------------------------------
# The kernel has no dummy interfaces: the node IP lives on one end of a veth
# pair whose other end (the "host side" address) is in this namespace too.
ip link set lo up
ip link add veth0 type veth peer name veth1
ip addr add "$NODE_IP/24" dev veth0
ip addr add "$NODE_PEER_IP/32" dev veth1
ip link set veth0 up
ip link set veth1 up
ip route add default dev veth0 src "$NODE_IP"
echo 1 >/proc/sys/net/ipv4/ip_forward
# Nothing arriving on the peer end is forwarded: traffic for any address
# outside the namespace gets "unreachable" instead of looping.
echo 0 >/proc/sys/net/ipv4/conf/veth1/forwarding
echo 1 >/proc/sys/net/ipv4/conf/all/route_localnet
