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
grep -q 'CORRAL_LEADER_ELECTION' "$out/ha.yaml" && grep -A1 'CORRAL_LEADER_ELECTION' "$out/ha.yaml" | grep -q '"true"' \
  || die "leader election must be on"
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
log "charts lint clean"
