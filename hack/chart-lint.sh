#!/usr/bin/env bash
# Lints both charts and renders the operator chart in its main configurations, failing on any error.
# The rendered manifests are validated against a real API server by the e2e suite (server-side dry run and install).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$(dirname "${BASH_SOURCE[0]}")/.."

helm dependency build charts/corral >/dev/null
helm lint --strict charts/corral-crds
helm lint --strict charts/corral
helm lint --strict charts/corral --set redis.bundled=false --set redis.external.secretName=redis-url

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
helm template corral charts/corral --kube-version 1.33.0 --namespace corral-system >"$out/default.yaml"
helm template corral charts/corral --kube-version 1.33.0 --namespace corral-system --set operator.replicas=2 \
  --set operator.watchNamespace=team-a --set crds.install=false >"$out/ha.yaml"
grep -A1 'CORRAL_LEADER_ELECTION' "$out/ha.yaml" | grep -q '"true"' || die "leader election must be on"
grep -q 'kind: CustomResourceDefinition' "$out/default.yaml" || die "crds.install=true must render the CRDs"
! grep -q 'kind: CustomResourceDefinition' "$out/ha.yaml" || die "crds.install=false must not render the CRDs"

# A misconfiguration must fail with a message that says what to set.
if msg=$(helm template corral charts/corral --kube-version 1.33.0 --set redis.bundled=false 2>&1); then
  die "redis.bundled=false without an external secret must fail"
fi
grep -q 'redis.external.secretName is required' <<<"$msg" || die "unclear error: $msg"
if helm template corral charts/corral --kube-version 1.33.0 --set operator.logFormat=yaml >/dev/null 2>&1; then
  die "values.schema.json must reject operator.logFormat=yaml"
fi
# Monitoring on: monitors for every component and the Grafana dashboard, whose JSON parses and whose every metric is
# one that docs/observability.md lists.
helm template corral charts/corral --kube-version 1.33.0 --namespace corral-system \
  --set metrics.serviceMonitor.enabled=true --set metrics.grafanaDashboard.enabled=true >"$out/monitoring.yaml"
[[ $(grep -c '^kind: ServiceMonitor' "$out/monitoring.yaml") == 2 ]] || die "a ServiceMonitor for the operator and the gateway"
[[ $(grep -c '^kind: PodMonitor' "$out/monitoring.yaml") == 2 ]] || die "a PodMonitor for the harness and the egress proxy pods"
grep -q 'grafana_dashboard: "1"' "$out/monitoring.yaml" || die "the dashboard ConfigMap carries the sidecar's label"
python3 - charts/corral/dashboards/corral.json docs/observability.md <<'PY' || die "dashboard check failed"
import json, re, sys
dashboard = json.load(open(sys.argv[1]))
documented = set(re.findall(r"`(corral_[a-z_]+)", open(sys.argv[2]).read()))
used = {re.sub(r"_(bucket|count|sum)$", "", m)
        for p in dashboard["panels"] for t in p.get("targets", []) for m in re.findall(r"corral_[a-z_]+", t["expr"])}
missing = sorted(used - documented)
if missing:
    sys.exit(f"dashboard metrics not in docs/observability.md: {missing}")
PY
log "charts lint clean"
