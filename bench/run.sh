#!/usr/bin/env bash
# The benchmark suite in one command (`make bench`): runs every benchmark once and writes docs/benchmarks.md with
# the machine, the commands, the figures and each one against its target.
#
# Local figures (always): the harness's time-to-first-token overhead with a provider that answers at once, its
# memory per active session, session-log append throughput and append → follower latency, and event sends plus SSE
# delivery through one gateway to 1,000 concurrent streams (on the light kube-apiserver, started here unless one
# answers at $CORRAL_STATE/kubeconfig). Cluster figures (warm-pool claim vs cold pod creation) only with
# BENCH_CLUSTER=1 and KUBECONFIG naming a cluster with Corral installed (`make e2e` leaves one); otherwise their
# rows say "not measured in this run". Debug builds, like the tests. Honours CORRAL_STATE and CORRAL_API_PORT.
set -euo pipefail
# shellcheck source=SCRIPTDIR/../hack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../hack/lib.sh"
cd "$(dirname "${BASH_SOURCE[0]}")/.."

state=${CORRAL_STATE:-$PWD/e2e/.state}
export CORRAL_STATE=$state CORRAL_API_PORT=${CORRAL_API_PORT:-6443}
out=${BENCH_OUT:-docs/benchmarks.md}
work=$(mktemp -d)
started=0
cleanup() {
  local rc=$?
  if ((started)); then make --no-print-directory apiserver-down >/dev/null 2>&1 || true; fi
  rm -rf "$work"
  exit $rc
}
trap cleanup EXIT

command -v redis-server >/dev/null || hack/tools.sh
load=$(awk '{print $1}' /proc/loadavg)
log "building the benchmarks, the harness and the sandbox daemon"
cargo build -q -p corral-bench --bins
cargo build -q -p corral-harness --bin corral-harness
cargo build -q -p corral-sandbox --bins
cargo build -q -p corral-session --features test-support --example throughput

log "harness overhead and memory (about 2 min)"
target/debug/harness_overhead 100 | tee "$work/harness.txt"
log "session log throughput (appendfsync always)"
target/debug/examples/throughput always | tee "$work/log.txt"

log "sends and SSE delivery through one gateway to 1,000 streams"
kubeconfig=${BENCH_KUBECONFIG:-$state/kubeconfig}
if ! "$state/bin/kubectl" --kubeconfig "$kubeconfig" get --raw /readyz >/dev/null 2>&1; then
  make --no-print-directory apiserver-up >/dev/null
  started=1
fi
KUBECTL="$state/bin/kubectl --kubeconfig $kubeconfig"
$KUBECTL apply --server-side -f crds/ >/dev/null
for crd in agents environments sessions; do
  $KUBECTL wait --for=condition=Established --timeout=60s "crd/$crd.corral.dev" >/dev/null
done
KUBECONFIG=$kubeconfig target/debug/sse_fanout 1000 10 50 | tee "$work/sse.txt"

if [[ ${BENCH_CLUSTER:-0} == 1 ]]; then
  log "warm-pool claim vs cold pod creation on the cluster in KUBECONFIG"
  target/debug/sandbox_provisioning 10 | tee "$work/sandbox.txt"
fi

# --- the report ---------------------------------------------------------------------------------------------------
# Pulls a figure out of a result file: the first match of an extended regex's group 1.
pick() { sed -nE "s/$2/\1/p" "$work/$1" 2>/dev/null | head -1 || true; }
# A duration as printed by Rust's Debug (`12.3ms`, `1.2s`, `850.1µs`) in milliseconds.
ms() {
  awk -v d="$1" 'BEGIN { if (d ~ /µs$/) { sub(/µs$/, "", d); printf "%.2f\n", d / 1000 }
                        else if (d ~ /ms$/) { sub(/ms$/, "", d); printf "%.1f\n", d }
                        else if (d ~ /ns$/) { sub(/ns$/, "", d); printf "%.3f\n", d / 1e6 }
                        else if (d ~ /s$/) { sub(/s$/, "", d); printf "%.0f\n", d * 1000 }
                        else print "" }'
}
# "met" / "missed" / "—": value, comparison (lt or gt), target.
verdict() {
  [[ -z $1 ]] && { echo "—"; return; }
  awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN { ok = (op == "lt") ? (v < t) : (v > t); print ok ? "met" : "**missed**" }'
}

ttft50=$(ms "$(pick harness.txt 'wake-up → first agent.message over [0-9]+ turns: p50 ([^,]+),.*')")
ttft95=$(ms "$(pick harness.txt 'wake-up → first agent.message .* p95 ([^ ]+)$')")
appended=$(pick harness.txt 'events appended by the harness: .* = ([0-9]+)\/s.*')
mem200=$(pick harness.txt 'memory per active session, \(RSS\(200\).*: ([0-9.]+) KiB')
rss200=$(pick harness.txt 'corral-harness serve, 200 active session\(s\): VmRSS ([0-9.]+) MiB.*')
log1=$(pick log.txt 'fenced append, 1 event per call.*= ([0-9]+) events\/s')
log16=$(pick log.txt 'fenced append, 16 events per call.*= ([0-9]+) events\/s')
log32=$(pick log.txt 'fenced append, 32 concurrent sessions.*= ([0-9]+) events\/s')
follow50=$(ms "$(pick log.txt 'append -> follower: p50 ([^,]+),.*')")
follow99=$(ms "$(pick log.txt 'append -> follower: .*p99 ([^ ]+) .*')")
sends=$(pick sse.txt 'sends through the API: .* = ([0-9]+)\/s.*')
send50=$(ms "$(pick sse.txt 'sends through the API: .*p50 ([^,]+),.*')")
delivered=$(pick sse.txt 'SSE delivery .* = ([0-9]+) events\/s')
delivered_of=$(pick sse.txt 'SSE delivery .*: ([0-9]+ of [0-9]+) events.*')
sse50=$(ms "$(pick sse.txt 'send → delivery with .*p50 ([^,]+),.*')")
sse99=$(ms "$(pick sse.txt 'send → delivery with .*p99 ([^ ]+)$')")
warm=$(pick sandbox.txt '^warm claim: +(p50 .*)$')
cold=$(pick sandbox.txt '^cold creation: +(p50 .*)$')

not_run="not measured in this run"
cluster_cmd="\`BENCH_CLUSTER=1 KUBECONFIG=… make bench\` on \`make cluster-up\` with Corral installed"
{
  echo "# Benchmarks"
  echo
  cpu=$(awk '/model name/ {sub(/.*: /, ""); print; exit}' /proc/cpuinfo)
  mem=$(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)
  echo "Written by \`make bench\` (\`bench/run.sh\`) from one run on $(date -u +%Y-%m-%d) at commit \`$(git rev-parse --short HEAD)\`:"
  echo "$(nproc) cores ($cpu), $mem, Linux $(uname -r). Debug builds; the machine is shared with builds and other"
  echo "processes (\`uptime\` load before the run: $load), so compare only figures of one run. Targets are Corral's own."
  echo
  echo "| figure | value | target | verdict | command |"
  echo "|---|---|---|---|---|"
  echo "| runtime overhead of time to first token, local: wake-up → first \`agent.message\`, provider answering at once | p50 ${ttft50:-?} ms, p95 ${ttft95:-?} ms (100 turns) | p50 < 50 ms, p95 < 100 ms | $(verdict "$ttft50" lt 50) / $(verdict "$ttft95" lt 100) | \`target/debug/harness_overhead 100\` |"
  echo "| runtime overhead of time to first token, on the real cluster | $not_run | p95 < 150 ms | — | $cluster_cmd (needs a cluster benchmark not written yet) |"
  echo "| time to first token, lazy vs eager sandbox provisioning (the anchor reports −60% p50, −90% p95) | $not_run | lazy/eager p50 < 0.4, p95 < 0.1 | — | needs the cluster and an eager-provisioning switch; not built yet |"
  echo "| warm-pool claim, request → ready endpoint | ${warm:-$not_run} | well under cold | — | ${warm:+\`target/debug/sandbox_provisioning 10\`}${warm:-$cluster_cmd} |"
  echo "| cold pod creation, request → ready endpoint | ${cold:-$not_run} | — | — | same |"
  echo "| harness: events appended per second (one session, whole turn loop) | ${appended:-?}/s | — | — | same as the first row |"
  echo "| harness: memory per concurrent active session, (RSS(200) − RSS(1)) / 199 | ${mem200:-?} KiB | < 256 KiB | $(verdict "$mem200" lt 256) | same |"
  echo "| harness: resident memory with 200 active sessions | ${rss200:-?} MiB | < 128 MiB | $(verdict "$rss200" lt 128) | same |"
  echo "| concurrent active sessions per harness replica | 200 held in their model call at once (the largest N measured) | ≥ 200 | $( [[ -n $rss200 ]] && echo met || echo — ) | same |"
  echo "| session log: fenced append, 1 event per call (\`appendfsync always\`) | ${log1:-?} events/s | — | — | \`target/debug/examples/throughput always\` |"
  echo "| session log: fenced append, 16 events per call | ${log16:-?} events/s | — | — | same |"
  echo "| session log: 32 concurrent sessions | ${log32:-?} events/s | ≥ 1,000 events/s | $(verdict "$log32" gt 1000) | same |"
  echo "| session log: append → follower | p50 ${follow50:-?} ms, p99 ${follow99:-?} ms | p99 < 50 ms | $(verdict "$follow99" lt 50) | same |"
  echo "| gateway: \`POST /v1/sessions/{id}/events\` (session lookup on the API server, append, wake-up) | ${sends:-?}/s sequential, p50 ${send50:-?} ms | p50 < 50 ms | $(verdict "$send50" lt 50) | \`target/debug/sse_fanout 1000 10 50\` (light kube-apiserver) |"
  echo "| gateway: SSE delivery to 1,000 concurrent streams (10 sessions × 100 streams) | ${delivered:-?} events/s (${delivered_of:-?} delivered) | ≥ 1,000 events/s | $(verdict "$delivered" gt 1000) | same |"
  echo "| gateway: send → delivery latency with 1,000 concurrent streams | p50 ${sse50:-?} ms, p99 ${sse99:-?} ms | p99 < 500 ms | $(verdict "$sse99" lt 500) | same |"
  echo "| recovery after a harness pod is killed mid-turn | $not_run | < 30 s | — | \`make e2e\` measures it as a test, not a figure yet |"
  echo
  echo "Figures measured by hand earlier, kept for reference: the sandbox tool round trip \`bash echo hi\`, client →"
  echo "local daemon → client, release static build: median 0.52 ms (3 runs of 200 calls; p99 ≈ 0.8 ms), target < 5 ms"
  echo "(\`target/x86_64-unknown-linux-gnu/release/examples/roundtrip 200\`, see sandbox/README.md). Warm-pool claim p50"
  echo "265 ms, p95 268 ms versus cold creation p50 2.56 s, p95 3.11 s (ratio 0.10, target < 0.5) on \`make cluster-up\`."
  echo
  cat bench/local-cluster.md
} >"$out"
log "wrote $out"
