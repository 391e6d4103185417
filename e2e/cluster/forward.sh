#!/usr/bin/env bash
# Port forwards between the host and the cluster's private network namespace
# (the cluster must be up). Each forward is a pair of socat processes joined by
# a unix socket in the state directory; down.sh stops them with the rest.
#
#   forward.sh to-cluster NAME HOST_PORT IP:PORT
#       127.0.0.1:HOST_PORT on the host reaches IP:PORT in the cluster (a pod
#       IP, a Service ClusterIP, or the node IP 10.201.0.2).
#   forward.sh from-host NAME PORT [HOST_PORT]
#       pods reach 127.0.0.1:HOST_PORT of the host (default: PORT) at
#       10.201.0.1:PORT ("host.corral.internal"), e.g. a Redis started by a test.
#   forward.sh stop NAME
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_root
ns_pid >/dev/null || die "the cluster is not running (make cluster-up or make apiserver-up)"
name=${2:-}
[[ $name =~ ^[a-z0-9][a-z0-9-]*$ && $name != api ]] || die "give a forward NAME ([a-z0-9-], not 'api')"
case "${1:-}" in
  to-cluster)
    (($# == 4)) || die "usage: $0 to-cluster NAME HOST_PORT IP:PORT"
    forward_to_cluster "$name" "$3" "$4"
    log "127.0.0.1:$3 -> $4 (in the cluster)"
    ;;
  from-host)
    (($# == 3 || $# == 4)) || die "usage: $0 from-host NAME PORT [HOST_PORT]"
    forward_from_host "$name" "$3" "${4:-$3}"
    log "$NODE_PEER_IP:$3 (in the cluster) -> 127.0.0.1:${4:-$3} on the host"
    ;;
  stop)
    stop_daemon "fwd-$name-host" 2
    stop_daemon "fwd-$name-ns" 2
    rm -f "$SOCK_DIR/$name.sock"
    ;;
  *) die "usage: $0 to-cluster|from-host|stop NAME ..." ;;
esac
