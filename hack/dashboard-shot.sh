#!/usr/bin/env bash
# make dashboard-shot: the dashboard (charts/corral/dashboards/corral.json) with live figures from a demo run, saved
# as docs/dashboard.png.
#
#   1. the local cluster with Corral installed by `make demo` (runs hack/demo.sh when Corral is not installed, and
#      then brings the cluster down at the end if it started it);
#   2. prices the scripted model in the chart's harness.pricing (helm upgrade --reuse-values), so the cost panel has
#      figures, and applies hack/dashboard/agent.yaml in the demo namespace;
#   3. a real Prometheus on the host (Debian's package, unpacked under ~/.cache/corral) scraping every Corral
#      component's /metrics every 5 s (operator, gateway, egress proxy, harness pods) through port forwards into
#      the cluster's network namespace;
#   4. traffic through the gateway: hack/dashboard/traffic.py (the official anthropic SDK) runs rounds of concurrent
#      sessions of the scripted agent;
#   5. hack/dashboard/render.py queries every panel's PromQL from that Prometheus and draws the panels at their
#      grid places with uPlot (from npm); headless Chromium (Debian) screenshots the page via Selenium.
#
# Grafana itself cannot be installed here (not in Debian, refused by the Go module proxy, no build on npm or PyPI),
# so the picture is a rendering of the dashboard's queries, not Grafana: see docs/observability.md.
#
# Knobs: CORRAL_STATE / CORRAL_API_PORT (a second local cluster), CORRAL_DASHBOARD_SCREENSHOT (default
# docs/dashboard.png), CORRAL_DASHBOARD_ROUNDS / CORRAL_DASHBOARD_SESSIONS (traffic, default 6 rounds of 3). Exits 1
# when a panel has no data. Needs root.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PROMETHEUS_DEB_VERSION=2.42.0+ds-5+deb12u1
UPLOT_VERSION=1.6.32
RELEASE=corral
SYSTEM_NS=${CORRAL_NAMESPACE:-corral-system}
DEMO_NS=corral-demo
SHOT=${CORRAL_DASHBOARD_SCREENSHOT:-docs/dashboard.png}
[[ -z ${KUBECONFIG:-} ]] || die "the dashboard shot runs on the local cluster only: unset KUBECONFIG"
state=${CORRAL_STATE:-$PWD/e2e/.state}
export CORRAL_STATE=$state
kubectl=$state/bin/kubectl

# The Sessions of the dashboard agent (a previous run's, or this run's at the end): deleted with their sandboxes.
delete_dashboard_sessions() {
  local names=()
  mapfile -t names < <(kubectl -n "$DEMO_NS" get sessions.corral.dev 2>/dev/null \
    -o jsonpath='{range .items[?(@.spec.agent.name=="dashboard")]}{.metadata.name}{"\n"}{end}')
  ((${#names[@]} == 0)) || kubectl -n "$DEMO_NS" delete sessions.corral.dev "${names[@]}" --wait=false >/dev/null
}

# --- tools: Prometheus (Debian's package, unpacked: no service, no postinst), uPlot (npm), Chromium + Selenium.
prometheus_tool() {
  local dir=$CORRAL_CACHE/tools/prometheus-$PROMETHEUS_DEB_VERSION
  if [[ ! -x $dir/usr/bin/prometheus ]]; then
    log "unpacking Prometheus $PROMETHEUS_DEB_VERSION from Debian's package into $dir (once)"
    local tmp
    tmp=$(mktemp -d)
    (cd "$tmp" && apt-get download -q "prometheus=$PROMETHEUS_DEB_VERSION" >/dev/null 2>&1) ||
      { DEBIAN_FRONTEND=noninteractive apt-get update -qq && (cd "$tmp" && apt-get download -q "prometheus=$PROMETHEUS_DEB_VERSION" >/dev/null); }
    mkdir -p "$dir"
    dpkg-deb -x "$tmp"/prometheus_*.deb "$dir"
    rm -rf "$tmp"
  fi
  PROMETHEUS=$dir/usr/bin/prometheus
}
uplot_tool() {
  UPLOT=$CORRAL_CACHE/uplot-$UPLOT_VERSION/node_modules/uplot
  if [[ ! -f $UPLOT/dist/uPlot.iife.min.js ]]; then
    log "installing uPlot $UPLOT_VERSION from npm (once)"
    command -v npm >/dev/null || apt_install npm
    npm install --silent --no-audit --no-fund --prefix "$CORRAL_CACHE/uplot-$UPLOT_VERSION" "uplot@$UPLOT_VERSION" >&2
  fi
}
prometheus_tool
uplot_tool
browser_tools
python=$(e2e/conformance/venv.sh)

# --- the cluster with Corral.
cluster_started=0
if ! KUBECONFIG=$state/kubeconfig "$kubectl" get --raw /readyz >/dev/null 2>&1; then
  cluster_started=1
fi
export KUBECONFIG=$state/kubeconfig PATH="$state/bin:$PATH"
tmp=$(mktemp -d)
forwards=()
prometheus_pid=""
cleanup() {
  local rc=$?
  [[ -n $prometheus_pid ]] && kill "$prometheus_pid" 2>/dev/null && wait "$prometheus_pid" 2>/dev/null
  local f
  for f in "${forwards[@]}"; do e2e/cluster/forward.sh stop "$f" 2>/dev/null || true; done
  rm -rf "$tmp"
  ((cluster_started)) || delete_dashboard_sessions || true
  if ((cluster_started)); then
    log "stopping the local cluster this script started"
    make --no-print-directory cluster-down >&2 || true
  fi
  exit $rc
}
trap cleanup EXIT
if ((cluster_started)) || ! kubectl -n "$SYSTEM_NS" get deploy "$RELEASE-gateway" >/dev/null 2>&1; then
  log "Corral is not installed on the local cluster: running hack/demo.sh"
  env -u KUBECONFIG hack/demo.sh >&2   # demo.sh takes a set KUBECONFIG for a cluster of the user's
fi

# --- prices for the scripted model, the agent and the environment.
pricing=$(helm get values "$RELEASE" -n "$SYSTEM_NS" -o json | python3 -c '
import json, sys
prices = (json.load(sys.stdin).get("harness") or {}).get("pricing") or []
if not any(p.get("model") == "scripted" for p in prices):
    prices.append({"model": "scripted", "input": 3, "output": 15, "cacheRead": 0.3, "cacheWrite": 3.75})
    print(json.dumps(prices))')
gateway_ip=$(kubectl -n "$SYSTEM_NS" get svc "$RELEASE"-gateway -o jsonpath='{.spec.clusterIP}')
# The agent's allowed host is the gateway's Service, an internal address: only the operator-level allow-list of the
# egress proxy (egress.internalHosts) opens it.
upgrade=(--set-json "egress.internalHosts=[\"$gateway_ip:80\"]")
if [[ -n $pricing ]]; then
  log "pricing the scripted model (harness.pricing) so the cost panel has figures"
  upgrade+=(--set-json "harness.pricing=$pricing")
fi
helm dependency build charts/corral >/dev/null
helm upgrade "$RELEASE" charts/corral -n "$SYSTEM_NS" --reuse-values "${upgrade[@]}" --wait --timeout 5m >/dev/null
kubectl -n "$SYSTEM_NS" rollout status deploy/"$RELEASE"-operator --timeout=180s >&2
delete_dashboard_sessions
kubectl create namespace "$DEMO_NS" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
sed "s/@GATEWAY_IP@/$gateway_ip/g" hack/dashboard/agent.yaml | kubectl -n "$DEMO_NS" apply --server-side -f - >/dev/null
kubectl -n "$DEMO_NS" wait --for=condition=Ready agent/dashboard environment/dashboard --timeout=120s >/dev/null
log "waiting for the harness of $DEMO_NS to run with the price table"
for _ in $(seq 1 90); do
  kubectl -n "$SYSTEM_NS" get deploy -l "app.kubernetes.io/component=harness,corral.dev/tenant-namespace=$DEMO_NS" \
    -o jsonpath='{.items[*].spec.template.spec.containers[*].env}' | grep -q scripted && break
  sleep 2
done
for d in $(kubectl -n "$SYSTEM_NS" get deploy -l "app.kubernetes.io/component=harness,corral.dev/tenant-namespace=$DEMO_NS" -o name); do
  kubectl -n "$SYSTEM_NS" rollout status "$d" --timeout=180s >&2
done
gateway_bin=target/debug/corral-gateway
[[ -x $gateway_bin ]] || cargo build -q -p corral-gateway --bin corral-gateway
kubectl -n "$DEMO_NS" delete secret dashboard-api-key --ignore-not-found >/dev/null
key=$("$gateway_bin" create-key --namespace "$DEMO_NS" --name dashboard-api-key 2>/dev/null)

# --- forwards: the gateway, and every component's metrics endpoint.
port=$(free_port)
forwards+=(dash-gateway)
e2e/cluster/forward.sh to-cluster dash-gateway "$port" "$gateway_ip:80" 2>/dev/null
gateway=http://127.0.0.1:$port
# namespace pod component ip port, for every running Corral pod with a metrics port.
kubectl get pods -A -l 'app.kubernetes.io/name=corral,app.kubernetes.io/component in (operator,gateway,harness,egress-proxy)' \
  -o json | python3 -c '
import json, sys
for pod in json.load(sys.stdin)["items"]:
    if pod["status"].get("phase") != "Running" or not pod["status"].get("podIP"):
        continue
    ports = {p.get("name"): p["containerPort"] for c in pod["spec"]["containers"] for p in c.get("ports", [])}
    port = ports.get("metrics") or ports.get("http")
    if port:
        print(pod["metadata"]["namespace"], pod["metadata"]["name"],
              pod["metadata"]["labels"]["app.kubernetes.io/component"], pod["status"]["podIP"], port)' >"$tmp/targets"
[[ -s $tmp/targets ]] || die "no Corral pods with a metrics port"
i=0
: >"$tmp/static"
while read -r ns pod component ip mport; do
  i=$((i + 1))
  hport=$(free_port)
  forwards+=("dash-metrics-$i")
  e2e/cluster/forward.sh to-cluster "dash-metrics-$i" "$hport" "$ip:$mport" 2>/dev/null
  printf '      - targets: ["127.0.0.1:%s"]\n        labels: {job: "%s", namespace: "%s", pod: "%s"}\n' \
    "$hport" "$component" "$ns" "$pod" >>"$tmp/static"
  log "scraping $component $ns/$pod ($ip:$mport) at 127.0.0.1:$hport"
done <"$tmp/targets"
cat >"$tmp/prometheus.yml" <<EOF
global: {scrape_interval: 5s, evaluation_interval: 5s}
scrape_configs:
  - job_name: corral
    honor_labels: true
    static_configs:
$(cat "$tmp/static")
EOF

# --- Prometheus, the traffic, the picture.
prom_port=$(free_port)
prometheus=http://127.0.0.1:$prom_port
"$PROMETHEUS" --config.file="$tmp/prometheus.yml" --storage.tsdb.path="$tmp/data" \
  --web.listen-address="127.0.0.1:$prom_port" >"$tmp/prometheus.log" 2>&1 &
prometheus_pid=$!
started=$SECONDS
for _ in $(seq 1 60); do curl -fsS "$prometheus/-/ready" >/dev/null 2>&1 && break; sleep 0.5; done
curl -fsS "$prometheus/-/ready" >/dev/null || { cat "$tmp/prometheus.log" >&2; die "Prometheus did not start"; }
log "Prometheus $prometheus scrapes $i targets"
sleep 15
log "traffic: ${CORRAL_DASHBOARD_ROUNDS:-6} rounds of ${CORRAL_DASHBOARD_SESSIONS:-3} sessions through $gateway"
"$python" hack/dashboard/traffic.py --base-url "$gateway" --api-key "$key" --agent dashboard \
  --environment dashboard --rounds "${CORRAL_DASHBOARD_ROUNDS:-6}" --sessions "${CORRAL_DASHBOARD_SESSIONS:-3}" >&2
# The operator samples its gauges every 15 s: let the last turn's figures reach a scrape.
sleep 20
down=$(curl -fsS "$prometheus/api/v1/query?query=up==0" | python3 -c 'import json,sys; print(" ".join(r["metric"]["pod"] for r in json.load(sys.stdin)["data"]["result"]))')
[[ -z $down ]] || log "warning: targets down at the end: $down"
minutes=$(((SECONDS - started) / 60 + 1))
log "rendering the dashboard's last $minutes minutes to $SHOT"
SE_OFFLINE=true "$BROWSER_PYTHON" hack/dashboard/render.py --dashboard charts/corral/dashboards/corral.json \
  --prometheus "$prometheus" --uplot "$UPLOT" --minutes "$minutes" --out "$CORRAL_CACHE/dashboard.html" \
  --screenshot "$SHOT" --require-data
log "done: $SHOT (the page: $CORRAL_CACHE/dashboard.html)"
