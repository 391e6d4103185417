#!/usr/bin/env bash
# Lints both charts and renders the operator chart in its main configurations, failing on any error.
# The rendered manifests are validated against a real API server by the e2e suite (server-side dry run and install).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$(dirname "${BASH_SOURCE[0]}")/.."

helm dependency build charts/corral >/dev/null
helm lint --strict charts/corral-crds
helm lint --strict charts/corral
helm lint --strict charts/corral --set redis.bundled=false --set redis.external.secretName=redis-url \
  --set objectStore.bundled=false --set objectStore.external.secretName=files-s3

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
helm template corral charts/corral --kube-version 1.33.0 --namespace corral-system >"$out/default.yaml"
helm template corral charts/corral --kube-version 1.33.0 --namespace corral-system --set operator.replicas=2 \
  --set operator.watchNamespace=team-a --set crds.install=false >"$out/ha.yaml"
grep -A1 'CORRAL_LEADER_ELECTION' "$out/ha.yaml" | grep -q '"true"' || die "leader election must be on"
grep -q 'kind: CustomResourceDefinition' "$out/default.yaml" || die "crds.install=true must render the CRDs"
! grep -q 'kind: CustomResourceDefinition' "$out/ha.yaml" || die "crds.install=false must not render the CRDs"

# By default the egress proxy reads no Secret outside its grants namespace: no ClusterRole bound to its account
# names secrets, and the operator is told where to write the grants. With `source: vaults`, the opposite.
egress_secrets() { # <rendered manifests> <true: grants | false: vaults>
  python3 - "$1" "$2" <<'PY'
import re, sys
docs, grants = open(sys.argv[1]).read().split("\n---"), sys.argv[2] == "true"
def kind(d): return (re.search(r"^kind: (\S+)", d, re.M) or [None, None])[1]
def name(d): return re.search(r"^  name: (\S+)", d, re.M)[1]
bound = {re.search(r"roleRef:(?:\n .*)*?\n  name: (\S+)", d)[1] for d in docs
         if kind(d) == "ClusterRoleBinding" and re.search(r"- kind: ServiceAccount\n\s+name: corral-egress\n", d)}
if not bound:
    sys.exit("no ClusterRoleBinding of the egress proxy")
wide = [name(d) for d in docs if kind(d) == "ClusterRole" and name(d) in bound and "secrets" in d]
if bool(wide) == grants:
    sys.exit(f"egress proxy ClusterRoles naming secrets: {wide} (grants: {grants})")
operator = "".join(d for d in docs if kind(d) == "Deployment" and name(d) == "corral-operator")
if ("CORRAL_EGRESS_GRANTS_NAMESPACE" in operator) != grants:
    sys.exit(f"the operator's CORRAL_EGRESS_GRANTS_NAMESPACE does not follow the source (grants: {grants})")
PY
}
egress_secrets "$out/default.yaml" true || die "the default egress proxy must read Secrets only in its grants namespace"
helm template corral charts/corral --kube-version 1.33.0 --namespace corral-system \
  --set egress.credentials.source=vaults >"$out/vaults.yaml"
egress_secrets "$out/vaults.yaml" false || die "egress.credentials.source=vaults renders wrong"

# Redis: authentication always on (no open default user, users in the ACL file) and admission only from the release
# namespace, never by a label a tenant can put on its own pods.
grep -q 'aclfile /data/users.acl' "$out/default.yaml" || die "the bundled Redis keeps its users in an ACL file"
! grep -q 'protected-mode no' "$out/default.yaml" || die "the bundled Redis runs with protected-mode on"
! grep -q 'redis-client' "$out/default.yaml" || die "no label a tenant can set opens Redis"
grep -q 'kubernetes.io/metadata.name: corral-system' "$out/default.yaml" ||
  die "Redis admits only pods of the release namespace"

# Drains: one budget (maxUnavailable, never minAvailable, so no drain is blocked forever) per replicated component,
# none for Redis; replicas spread over nodes by preference only; slow starts waited for by a startup probe.
[[ $(grep -c '^kind: PodDisruptionBudget' "$out/default.yaml") == 3 ]] || die "budgets for gateway, operator, egress proxy"
! grep -q 'minAvailable' "$out/default.yaml" || die "a minAvailable budget can block a drain forever"
! grep -q 'requiredDuringScheduling' "$out/default.yaml" || die "anti-affinity must be a preference (one-node clusters)"
[[ $(grep -c 'preferredDuringSchedulingIgnoredDuringExecution' "$out/default.yaml") == 3 ]] ||
  die "gateway, operator and egress proxy replicas spread over nodes by default"
[[ $(grep -c 'startupProbe:' "$out/default.yaml") -ge 2 ]] || die "gateway and operator wait for Redis under a startup probe"
[[ $(helm template corral charts/corral --kube-version 1.33.0 --set podDisruptionBudgets.enabled=false |
  grep -c '^kind: PodDisruptionBudget') == 0 ]] || die "podDisruptionBudgets.enabled=false renders no budget"

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
