# shellcheck shell=bash
# shellcheck disable=SC2034  # variables are used by the scripts that source this file
# Common settings for the local cluster scripts. Sourced, never executed.
#
# Environment knobs (all optional):
#   CORRAL_CACHE        cache root outside the repo (default: $HOME/.cache/corral)
#   CORRAL_K8S_VERSION  Kubernetes version to build and run (default below)
#   CORRAL_STATE        state directory (default: <repo>/e2e/.state)
#   CORRAL_API_PORT     host port of the API server bridge on 127.0.0.1 (default 6443)

E2E_CLUSTER_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
E2E_DIR="$(dirname "$E2E_CLUSTER_DIR")"
REPO_ROOT="$(dirname "$E2E_DIR")"

K8S_VERSION="${CORRAL_K8S_VERSION:-v1.33.13}"
CACHE_DIR="${CORRAL_CACHE:-${HOME:-/root}/.cache/corral}"
K8S_BIN_DIR="$CACHE_DIR/k8s/$K8S_VERSION/bin"
STATE_DIR="${CORRAL_STATE:-$E2E_DIR/.state}"
API_PORT="${CORRAL_API_PORT:-6443}"

# Addresses inside the private network namespace. The host never sees them:
# both ends of the veth pair live inside the namespace.
NODE_IP=10.201.0.2          # node end of the veth (kubelet, apiserver advertise)
NODE_PEER_IP=10.201.0.1     # other end of the veth, the namespace's default gateway
NODE_CIDR=10.201.0.0/24
POD_CIDR=10.202.0.0/16
POD_BRIDGE=cni0
SERVICE_CIDR=10.203.0.0/16
KUBERNETES_SVC_IP=10.203.0.1
NODE_NAME=corral-node
# Pods' cgroups go under /<this> in each cgroup hierarchy; one name per state
# directory, so two checkouts never touch each other's cgroups.
CGROUP_NAME="corral-e2e-$(printf '%s' "$STATE_DIR" | md5sum | cut -c1-8)"

# Layout of the state directory.
NS_PIDFILE="$STATE_DIR/ns.pid"        # the namespace holder
PID_DIR="$STATE_DIR/pids"
LOG_DIR="$STATE_DIR/logs"
CERT_DIR="$STATE_DIR/pki"
CFG_DIR="$STATE_DIR/config"
KUBECONFIG_HOST="$STATE_DIR/kubeconfig"
MODE_FILE="$STATE_DIR/mode"

LOG_TAG=corral-cluster
# shellcheck source=hack/common.sh
source "$REPO_ROOT/hack/common.sh"


SOCK_DIR="$STATE_DIR/s"

host_netns() { readlink /proc/1/ns/net; }

# pid of the namespace holder, if it is alive and really holds a private
# network namespace (never hand the host's namespaces to a caller).
ns_pid() {
  local pid
  [[ -f $NS_PIDFILE ]] || return 1
  read -r pid _ <"$NS_PIDFILE"
  owned_pid "$NS_PIDFILE" >/dev/null || return 1
  [[ $(readlink "/proc/$pid/ns/net") != "$(host_netns)" ]] || return 1
  printf '%s\n' "$pid"
}

# Start time (clock ticks since boot) of a process: with its pid it names one
# process for good, so a recycled pid is never mistaken for ours.
proc_starttime() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  # shellcheck disable=SC2086
  set -- $stat
  printf '%s\n' "${20}"
}

# record_pid FILE PID
record_pid() { printf '%s %s\n' "$2" "$(proc_starttime "$2")" >"$1"; }

# owned_pid FILE: prints the pid recorded in FILE if that process still runs.
owned_pid() {
  local pid start
  [[ -f $1 ]] || return 1
  read -r pid start <"$1" || return 1
  [[ -n $pid && -n $start ]] || return 1
  [[ $(proc_starttime "$pid" 2>/dev/null) == "$start" ]] || return 1
  printf '%s\n' "$pid"
}

# owned_by_record PID: PID is recorded in one of $PID_DIR/*.pid with its
# current start time.
owned_by_record() {
  local f
  for f in "$PID_DIR"/*.pid; do
    [[ -e $f ]] || continue
    [[ $(owned_pid "$f" 2>/dev/null) == "$1" ]] && return 0
  done
  return 1
}

# Run a command inside the cluster's network + mount namespace.
in_ns() {
  local pid
  pid=$(ns_pid) || die "cluster namespace is not running (make cluster-up)"
  nsenter --target "$pid" --net --mount -- env LIBMOUNT_UTAB="$STATE_DIR/utab" "$@"
}

# start_daemon NAME ns|host CMD...: start a long-running process in its own
# session, log to $LOG_DIR/NAME.log, record its pid. No-op if already running.
# write_if_changed FILE: writes stdin to FILE only when it differs, so that a
# second `up` leaves files alone that running daemons watch (kube-proxy exits
# when its config file changes, even to the same bytes).
write_if_changed() {
  local file=$1 tmp
  tmp=$(mktemp "$file.XXXXXX")
  cat >"$tmp"
  if [[ -f $file ]] && cmp -s "$tmp" "$file"; then
    rm -f "$tmp"
  else
    mv "$tmp" "$file"
  fi
}

start_daemon() {
  local name=$1 where=$2 pidfile="$PID_DIR/$1.pid" pid
  shift 2
  if owned_pid "$pidfile" >/dev/null; then
    log "$name already running"
    return 0
  fi
  mkdir -p "$PID_DIR" "$LOG_DIR"
  if [[ $where == ns ]]; then
    pid=$(ns_pid) || die "cluster namespace is not running"
    setsid nsenter --target "$pid" --net --mount -- \
      env LIBMOUNT_UTAB="$STATE_DIR/utab" "$@" >>"$LOG_DIR/$name.log" 2>&1 </dev/null &
  else
    setsid "$@" >>"$LOG_DIR/$name.log" 2>&1 </dev/null &
  fi
  record_pid "$pidfile" "$!"
}

# stop_daemons SECONDS NAME...: SIGTERM the process groups of the named
# daemons together, SIGKILL whatever is left after SECONDS.
stop_daemons() {
  local wait=$1 name pid left deadline
  shift
  local -a pids=()
  for name in "$@"; do
    if pid=$(owned_pid "$PID_DIR/$name.pid"); then
      pids+=("$pid")
      kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    fi
  done
  deadline=$((${EPOCHREALTIME/./} + wait * 1000000))
  while ((${EPOCHREALTIME/./} < deadline)); do
    left=0
    for pid in "${pids[@]}"; do pid_alive "$pid" && left=1; done
    ((left)) || break
    sleep 0.05
  done
  for pid in "${pids[@]}"; do
    if pid_alive "$pid"; then
      log "  $pid did not stop on SIGTERM within ${wait}s: SIGKILL"
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  for name in "$@"; do rm -f "$PID_DIR/$name.pid"; done
}
stop_daemon() { stop_daemons "${2:-5}" "$1"; }

# A zombie counts as gone. Builtins only: this is polled in tight loops.
pid_alive() {
  local stat
  [[ -n ${1:-} ]] || return 1
  { read -r stat <"/proc/$1/stat"; } 2>/dev/null || return 1
  stat=${stat##*) }
  [[ ${stat:0:1} != Z ]]
}

# wait_for SECONDS DESCRIPTION CMD...: poll CMD every 0.2 s.
wait_for() {
  local secs=$1 what=$2 deadline
  shift 2
  deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

# forward_to_cluster NAME HOST_PORT TARGET_IP:PORT
#   127.0.0.1:HOST_PORT on the host -> TARGET inside the namespace. Two socat
#   processes joined by a unix socket in the state directory (a pathname socket
#   is reachable from both network namespaces).
forward_to_cluster() {
  local name=$1 port=$2 target=$3 sock="$SOCK_DIR/$1.sock"
  mkdir -p "$SOCK_DIR"
  ((${#sock} < 100)) || die "socket path too long: $sock (set CORRAL_STATE to a shorter path)"
  if ! owned_pid "$PID_DIR/fwd-$name-host.pid" >/dev/null &&
    port_listening "$port"; then
    die "127.0.0.1:$port is already in use on the host (another cluster? set CORRAL_API_PORT / pick another port)"
  fi
  start_daemon "fwd-$name-ns" ns socat "UNIX-LISTEN:$sock,fork,unlink-early" "TCP4:$target"
  wait_for 5 "socket" test -S "$sock" || die "forward $name: socket $sock did not appear"
  start_daemon "fwd-$name-host" host socat "TCP4-LISTEN:$port,bind=127.0.0.1,reuseaddr,fork" "UNIX-CONNECT:$sock"
  wait_for 5 "listener" port_listening "$port" || die "forward $name: nothing listens on 127.0.0.1:$port"
}

port_listening() { [[ -n $(ss -Hltn "sport = :$1" 2>/dev/null) ]]; }
ns_port_listening() { [[ -n $(in_ns ss -Hltn "sport = :$1" 2>/dev/null) ]]; }

# forward_from_host NAME NS_PORT HOST_PORT
#   $NODE_PEER_IP:NS_PORT inside the namespace (reachable from pods) ->
#   127.0.0.1:HOST_PORT on the host.
forward_from_host() {
  local name=$1 nsport=$2 hostport=$3 sock="$SOCK_DIR/$1.sock"
  mkdir -p "$SOCK_DIR"
  ((${#sock} < 100)) || die "socket path too long: $sock (set CORRAL_STATE to a shorter path)"
  start_daemon "fwd-$name-host" host socat "UNIX-LISTEN:$sock,fork,unlink-early" "TCP4:127.0.0.1:$hostport"
  wait_for 5 "socket" test -S "$sock" || die "forward $name: socket $sock did not appear"
  start_daemon "fwd-$name-ns" ns socat "TCP4-LISTEN:$nsport,bind=$NODE_PEER_IP,reuseaddr,fork" "UNIX-CONNECT:$sock"
  wait_for 5 "listener" ns_port_listening "$nsport" ||
    die "forward $name: nothing listens on $NODE_PEER_IP:$nsport"
}
