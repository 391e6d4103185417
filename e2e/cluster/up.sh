#!/usr/bin/env bash
# Bring up the local single-node Kubernetes cluster (idempotent).
#
#   up.sh                   full cluster: etcd, kube-apiserver, controller-manager,
#                           scheduler, containerd, kubelet, kube-proxy
#   up.sh --apiserver-only  light mode: etcd + kube-apiserver only
#
# Every component runs inside one private network + mount namespace held by a
# recorded process; see README.md. The API server is reachable from the host at
# https://127.0.0.1:$CORRAL_API_PORT (default 6443) with $STATE/kubeconfig.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

MODE=full
case "${1:-}" in
  --apiserver-only) MODE=apiserver ;;
  "" | --full) ;;
  *) die "usage: $0 [--apiserver-only]" ;;
esac

require_root
t_start=$SECONDS
"$E2E_CLUSTER_DIR/deps.sh"
"$E2E_CLUSTER_DIR/k8s-binaries.sh"
BIN=$K8S_BIN_DIR

mkdir -p "$STATE_DIR" "$PID_DIR" "$LOG_DIR" "$CFG_DIR" "$SOCK_DIR" "$STATE_DIR/bin"
# A full cluster already running satisfies a request for the light mode.
if [[ $MODE == apiserver && $(cat "$MODE_FILE" 2>/dev/null) == full ]] && ns_pid >/dev/null; then
  MODE=full
fi

# --- the namespace holder ----------------------------------------------------
t_bin=$SECONDS
if ! ns_pid >/dev/null; then
  if [[ -e $NS_PIDFILE ]]; then
    die "stale state in $STATE_DIR (namespace holder gone): run 'make cluster-down' first"
  fi
  log "creating the private network + mount namespace"
  setsid unshare --net --mount --propagation private -- sleep infinity </dev/null >/dev/null 2>&1 &
  record_pid "$NS_PIDFILE" "$!"
  wait_for 5 "namespace" test "$(readlink "/proc/$!/ns/net" 2>/dev/null)" != "$(host_netns)" ||
    die "namespace holder did not start"
  wait_for 5 "namespace" ns_pid || die "namespace holder did not start"
  in_ns "$E2E_CLUSTER_DIR/ns-setup.sh" || die "namespace setup failed"
fi
echo "$MODE" >"$MODE_FILE"

"$E2E_CLUSTER_DIR/certs.sh"
P=$CERT_DIR

# kubeconfig FILE SERVER CERT-NAME USER
kubeconfig() {
  cat >"$1" <<KCFG
apiVersion: v1
kind: Config
clusters:
- name: corral-e2e
  cluster:
    server: $2
    certificate-authority-data: $(base64 -w0 "$P/ca.crt")
users:
- name: $4
  user:
    client-certificate-data: $(base64 -w0 "$P/$3.crt")
    client-key-data: $(base64 -w0 "$P/$3.key")
contexts:
- name: corral-e2e
  context:
    cluster: corral-e2e
    user: $4
    namespace: default
current-context: corral-e2e
KCFG
  chmod 600 "$1"
}
IN_SERVER="https://$NODE_IP:6443"
kubeconfig "$CFG_DIR/admin.kubeconfig" "$IN_SERVER" admin corral-admin
kubeconfig "$KUBECONFIG_HOST" "https://127.0.0.1:$API_PORT" admin corral-admin
ln -sfn "$BIN/kubectl" "$STATE_DIR/bin/kubectl"
KCTL=("$BIN/kubectl" --kubeconfig "$KUBECONFIG_HOST")

# --- etcd + kube-apiserver (both modes) -----------------------------------------
start_daemon etcd ns etcd --name corral --data-dir "$STATE_DIR/etcd" \
  --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
  --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
  --initial-cluster corral=http://127.0.0.1:2380 --listen-metrics-urls http://127.0.0.1:2381 \
  --snapshot-count 10000 --quota-backend-bytes 2147483648 --log-level warn

start_daemon kube-apiserver ns "$BIN/kube-apiserver" \
  --etcd-servers=http://127.0.0.1:2379 \
  --advertise-address="$NODE_IP" --bind-address=0.0.0.0 --secure-port=6443 \
  --service-cluster-ip-range="$SERVICE_CIDR" \
  --client-ca-file="$P/ca.crt" --tls-cert-file="$P/apiserver.crt" --tls-private-key-file="$P/apiserver.key" \
  --kubelet-client-certificate="$P/apiserver-kubelet-client.crt" \
  --kubelet-client-key="$P/apiserver-kubelet-client.key" \
  --kubelet-certificate-authority="$P/ca.crt" \
  --kubelet-preferred-address-types=InternalIP \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --service-account-key-file="$P/sa.pub" --service-account-signing-key-file="$P/sa.key" \
  --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
  --allow-privileged=true --profiling=false --event-ttl=1h --v=1

# The host's way in: 127.0.0.1:$API_PORT -> $NODE_IP:6443.
forward_to_cluster api "$API_PORT" "$NODE_IP:6443"

wait_for 60 "kube-apiserver" "${KCTL[@]}" get --raw /readyz || {
  tail -n 30 "$LOG_DIR/kube-apiserver.log" >&2
  die "kube-apiserver did not become ready (logs: $LOG_DIR)"
}
log "kube-apiserver ready ($((SECONDS - t_bin)) s)"

if [[ $MODE == full ]]; then
  # --- containerd --------------------------------------------------------------
  CTRD=$STATE_DIR/containerd
  mkdir -p "$CTRD" "$STATE_DIR/cni/net.d" "$STATE_DIR/cni/ipam"
  cat >"$CFG_DIR/containerd.toml" <<TOML
version = 2
root = "$CTRD/root"
state = "$CTRD/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "$CTRD/containerd.sock"
[ttrpc]
  address = "$CTRD/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.10"
  # root lacks CAP_SYS_RESOURCE here: without this every sandbox fails with
  # "runc create failed: can't get final child's PID from pipe".
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$CTRD/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$STATE_DIR/cni/net.d"
TOML
  cat >"$STATE_DIR/cni/net.d/10-corral.conflist" <<JSON
{
  "cniVersion": "0.4.0",
  "name": "corral",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$POD_BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$STATE_DIR/cni/ipam",
        "ranges": [[{"subnet": "${POD_CIDR%.*.*}.0.0/24"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
JSON
  start_daemon containerd ns containerd --config "$CFG_DIR/containerd.toml"

  # --- controller-manager, scheduler --------------------------------------------
  kubeconfig "$CFG_DIR/controller-manager.kubeconfig" "$IN_SERVER" controller-manager system:kube-controller-manager
  kubeconfig "$CFG_DIR/scheduler.kubeconfig" "$IN_SERVER" scheduler system:kube-scheduler
  kubeconfig "$CFG_DIR/kubelet.kubeconfig" "$IN_SERVER" kubelet-client "system:node:$NODE_NAME"
  kubeconfig "$CFG_DIR/kube-proxy.kubeconfig" "$IN_SERVER" kube-proxy system:kube-proxy

  start_daemon kube-controller-manager ns "$BIN/kube-controller-manager" \
    --kubeconfig="$CFG_DIR/controller-manager.kubeconfig" \
    --authentication-kubeconfig="$CFG_DIR/controller-manager.kubeconfig" \
    --authorization-kubeconfig="$CFG_DIR/controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 --leader-elect=false --use-service-account-credentials=true \
    --service-account-private-key-file="$P/sa.key" --root-ca-file="$P/ca.crt" \
    --cluster-signing-cert-file="$P/ca.crt" --cluster-signing-key-file="$P/ca.key" \
    --service-cluster-ip-range="$SERVICE_CIDR" --allocate-node-cidrs=false \
    --controllers='*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller,-route' --v=1
  start_daemon kube-scheduler ns "$BIN/kube-scheduler" \
    --kubeconfig="$CFG_DIR/scheduler.kubeconfig" \
    --authentication-kubeconfig="$CFG_DIR/scheduler.kubeconfig" \
    --authorization-kubeconfig="$CFG_DIR/scheduler.kubeconfig" \
    --bind-address=127.0.0.1 --leader-elect=false --v=1

  # --- kubelet -------------------------------------------------------------------
  # Pods' cgroups live under /$CGROUP_NAME in every cgroup v1 hierarchy,
  # created here and removed by down.sh. The cgroup mounts are never touched.
  while read -r hier; do
    [[ -d $hier/$CGROUP_NAME ]] && continue
    mkdir "$hier/$CGROUP_NAME"
    if [[ -f $hier/cpuset.cpus ]]; then
      cat "$hier/cpuset.cpus" >"$hier/$CGROUP_NAME/cpuset.cpus"
      cat "$hier/cpuset.mems" >"$hier/$CGROUP_NAME/cpuset.mems"
    fi
  done < <(findmnt -rn -t cgroup -o TARGET)
  write_if_changed "$CFG_DIR/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: /$CGROUP_NAME
cgroupsPerQOS: true
containerRuntimeEndpoint: unix://$CTRD/containerd.sock
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
tlsCertFile: $P/kubelet.crt
tlsPrivateKeyFile: $P/kubelet.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $P/ca.crt}
authorization: {mode: Webhook}
clusterDomain: cluster.local
resolvConf: $STATE_DIR/etc/resolv.conf
protectKernelDefaults: false
oomScoreAdj: 0
failSwapOn: false
serializeImagePulls: false
rotateCertificates: false
serverTLSBootstrap: false
registerNode: true
maxPods: 110
podPidsLimit: -1
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: "100Mi"
  nodefs.available: "1%"
  nodefs.inodesFree: "1%"
  imagefs.available: "1%"
nodeStatusReportFrequency: 10s
YAML
  start_daemon kubelet ns "$BIN/kubelet" --config="$CFG_DIR/kubelet.yaml" \
    --kubeconfig="$CFG_DIR/kubelet.kubeconfig" --root-dir="$STATE_DIR/kubelet" \
    --hostname-override="$NODE_NAME" --node-ip="$NODE_IP" --v=1

  # --- kube-proxy ----------------------------------------------------------------
  write_if_changed "$CFG_DIR/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $CFG_DIR/kube-proxy.kubeconfig}
hostnameOverride: $NODE_NAME
mode: iptables
clusterCIDR: $POD_CIDR
iptables: {masqueradeAll: true}
oomScoreAdj: 0
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
metricsBindAddress: 127.0.0.1:10249
healthzBindAddress: 127.0.0.1:10256
YAML
  start_daemon kube-proxy ns "$BIN/kube-proxy" --config="$CFG_DIR/kube-proxy.yaml" --v=1

  # --- NetworkPolicy enforcement -------------------------------------------------
  # The bridge CNI enforces no NetworkPolicy; corral-netpol (e2e/netpol) does, with
  # iptables rules in the namespace. Built from this repository, copied out of
  # target/ so a later rebuild does not replace the running binary.
  log "building the NetworkPolicy enforcer (e2e/netpol)"
  (cd "$E2E_DIR/.." && cargo build -q -p corral-netpol) || die "could not build corral-netpol"
  install -m 0755 "$E2E_DIR/../target/debug/corral-netpol" "$STATE_DIR/bin/corral-netpol"
  start_daemon corral-netpol ns env KUBECONFIG="$CFG_DIR/admin.kubeconfig" RUST_LOG=info \
    "$STATE_DIR/bin/corral-netpol"

  node_ready() {
    [[ $("${KCTL[@]}" get node "$NODE_NAME" \
      -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null) == True ]]
  }
  wait_for 120 "node Ready" node_ready || {
    tail -n 30 "$LOG_DIR/kubelet.log" >&2
    die "node $NODE_NAME did not become Ready (logs: $LOG_DIR)"
  }

  log "node $NODE_NAME Ready ($((SECONDS - t_bin)) s after the binaries started)"
  # No registry: the pause image and the default sandbox image are imported
  # from the local cache (built on first use: about a minute).
  "$E2E_DIR/images/build.sh" cluster-base
  wait_for 60 "default service account" "${KCTL[@]}" -n default get serviceaccount default ||
    die "the default service account did not appear"
fi

cat >"$STATE_DIR/env" <<ENV
# Source this file: the local Corral e2e cluster ($MODE mode).
export KUBECONFIG=$KUBECONFIG_HOST
export PATH=$STATE_DIR/bin:\$PATH
export CORRAL_E2E_NODE_IP=$NODE_IP
export CORRAL_E2E_HOST_IP=$NODE_PEER_IP
export CORRAL_E2E_CONTAINERD=$STATE_DIR/containerd/containerd.sock
ENV

log "cluster up in $MODE mode ($((SECONDS - t_start)) s total)"
cat >&2 <<MSG

  Kubernetes $K8S_VERSION ($MODE mode) is up; API server at https://127.0.0.1:$API_PORT
    export KUBECONFIG=$KUBECONFIG_HOST
    export PATH=$STATE_DIR/bin:\$PATH      # kubectl $K8S_VERSION
  or:  source $STATE_DIR/env
    kubectl get nodes
  Logs: $LOG_DIR    Stop: make cluster-down

MSG
