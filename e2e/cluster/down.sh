#!/usr/bin/env bash
# Tear the local cluster down: stop exactly what up.sh started (by recorded
# process ids and by membership of the cluster's namespace and cgroups),
# remove the cgroups it created, then remove the state directory.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_root
t0=$SECONDS

if [[ ! -d $STATE_DIR ]]; then
  log "nothing to tear down ($STATE_DIR does not exist)"
  exit 0
fi

# Processes whose network or mount namespace is the cluster's (one find over
# /proc: no process per pid). NETNS and MNTNS are read at the start from a
# process of ours that lives in the namespace.
NETNS='' MNTNS=''
ns_members() {
  [[ -n $NETNS && -n $MNTNS ]] || return 0
  local netns=${NETNS//[/\\[} mntns=${MNTNS//[/\\[}
  netns=${netns//]/\\]}
  mntns=${mntns//]/\\]}
  find /proc/[0-9]*/ns/ -maxdepth 1 \( -name net -lname "$netns" -o -name mnt -lname "$mntns" \) \
    -printf '%h\n' 2>/dev/null | cut -d/ -f3 | sort -u | grep -vxF -e "${holder:-0}" -e "$$" || true
}

# Processes in the pods' cgroups (containers run in their own namespaces).
cgroup_members() {
  local hier
  while read -r hier; do
    [[ -d $hier/$CGROUP_NAME ]] || continue
    find "$hier/$CGROUP_NAME" -name cgroup.procs -exec cat {} + 2>/dev/null
  done < <(findmnt -rn -t cgroup,cgroup2 -o TARGET)
}

kill_all() { # SIGNAL PIDS...
  local sig=$1
  shift
  (($# == 0)) || kill "-$sig" "$@" 2>/dev/null || true
}

holder=$(ns_pid || true)
# The namespace, from its holder or, if the holder died, from any component
# of ours still running in it.
for anchor in "$holder" $(cat "$PID_DIR"/*.pid 2>/dev/null | cut -d' ' -f1); do
  [[ -n $anchor ]] || continue
  if [[ $anchor == "$holder" ]] || { owned_by_record "$anchor" && [[ $(readlink "/proc/$anchor/ns/net") != "$(host_netns)" ]]; }; then
    NETNS=$(readlink "/proc/$anchor/ns/net" 2>/dev/null) || continue
    MNTNS=$(readlink "/proc/$anchor/ns/mnt" 2>/dev/null) || continue
    break
  fi
done
t_ms() { echo $((${EPOCHREALTIME/./} / 1000 - t0_ms)); }
t0_ms=$((${EPOCHREALTIME/./} / 1000))

# 1. kubelet first, so nothing restarts the containers.
stop_daemon kubelet 5
log "  kubelet stopped ($(t_ms) ms)"
# 2. the containers' processes.
for _ in 1 2 3; do
  mapfile -t pids < <(cgroup_members | sort -u)
  ((${#pids[@]} == 0)) && break
  kill_all KILL "${pids[@]}"
  sleep 0.2
done
log "  containers' processes killed ($(t_ms) ms)"
# 3. the components and the forwards, all at once.
names=(corral-netpol kube-proxy kube-scheduler kube-controller-manager containerd kube-apiserver etcd)
for pidfile in "$PID_DIR"/fwd-*.pid; do
  [[ -e $pidfile ]] || continue
  name=${pidfile##*/}
  names+=("${name%.pid}")
done
stop_daemons 5 "${names[@]}"
log "  components stopped ($(t_ms) ms)"
# 4. anything else left in the namespace (containerd shims, socat children),
#    then the namespace holder itself.
for _ in 1 2 3 4 5; do
  mapfile -t pids < <(ns_members)
  ((${#pids[@]} == 0)) && break
  kill_all KILL "${pids[@]}"
  sleep 0.2
done
if [[ -n $holder ]]; then
  kill -KILL "$holder" 2>/dev/null || true
  for _ in {1..50}; do pid_alive "$holder" || break; sleep 0.1; done
fi
rm -f "$NS_PIDFILE"
log "  namespace released ($(t_ms) ms)"

# 5. the cgroups kubelet and containerd created (deepest first).
while read -r hier; do
  [[ -d $hier/$CGROUP_NAME ]] || continue
  find "$hier/$CGROUP_NAME" -depth -type d -exec rmdir {} + 2>/dev/null || true
  [[ -d $hier/$CGROUP_NAME ]] && log "warning: could not remove cgroup $hier/$CGROUP_NAME"
done < <(findmnt -rn -t cgroup,cgroup2 -o TARGET)

# 6. the state. With the namespace gone, its mounts are gone too; refuse to
#    delete if anything under the state directory is still mounted here.
if findmnt -rn -o TARGET | grep -qF "$STATE_DIR"; then
  die "something is still mounted under $STATE_DIR; not removing it"
fi
log "  cgroups removed ($(t_ms) ms)"
rm -rf --one-file-system "$STATE_DIR"
log "  state removed ($(t_ms) ms)"
log "cluster down in $((SECONDS - t0)) s"
