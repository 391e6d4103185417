#!/usr/bin/env bash
# The benchmark suite in one command (`make bench`): runs every benchmark once and writes docs/benchmarks.md with
# the machine, the commands, the figures and each one against its target.
#
# Local figures: the harness's time-to-first-token overhead with a provider that answers at once, its memory per
# active session, session-log append throughput and append → follower latency, and event sends plus SSE delivery
# through one gateway to 1,000 concurrent streams (on the light kube-apiserver, started here unless one answers at
# $CORRAL_STATE/kubeconfig).
# Cluster figures, on the local cluster (started here unless it is up, and stopped again if it was started here)
# with Corral built from this checkout and installed (`E2E_INSTALL_ONLY=1 hack/e2e.sh`): time to first token
# through the installed gateway, lazy versus eager sandbox provisioning, warm-pool claim versus cold pod creation,
# Files API throughput and what a 100 MiB file resource adds to a first tool call, and recovery after the harness
# is killed mid-turn. BENCH_CLUSTER=0 leaves them out (their rows then say "not
# measured in this run"). Debug builds, like the tests. Honours CORRAL_STATE and CORRAL_API_PORT.
set -euo pipefail
# shellcheck source=SCRIPTDIR/../hack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../hack/lib.sh"
cd "$(dirname "${BASH_SOURCE[0]}")/.."

state=${CORRAL_STATE:-$PWD/e2e/.state}
export CORRAL_STATE=$state CORRAL_API_PORT=${CORRAL_API_PORT:-6443}
out=${BENCH_OUT:-docs/benchmarks.md}
work=$(mktemp -d)
started=0
started_cluster=0
cleanup() {
  local rc=$?
  if ((started)); then make --no-print-directory apiserver-down >/dev/null 2>&1 || true; fi
  if ((started_cluster)); then make --no-print-directory cluster-down >/dev/null 2>&1 || true; fi
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
# The session log's throughput is Redis's and the client's: measured on a release build (a debug client is the
# bottleneck), so its figures compare with the speed issue's targets.
cargo build -q --release -p corral-session --features test-support --example throughput

log "harness overhead and memory (about 2 min)"
target/debug/harness_overhead 100 | tee "$work/harness.txt"
log "session log throughput (appendfsync always, then everysec; 64 concurrent sessions)"
target/release/examples/throughput always 64 4 | tee "$work/log.txt"
target/release/examples/throughput everysec 64 4 | tee "$work/log-everysec.txt"

log "sends and SSE delivery through one gateway to 1,000 streams"
kubeconfig=$state/kubeconfig
if ! "$state/bin/kubectl" --kubeconfig "$kubeconfig" get --raw /readyz >/dev/null 2>&1; then
  make --no-print-directory apiserver-up >/dev/null
  started=1
fi
KUBECTL="$state/bin/kubectl --kubeconfig $kubeconfig"
# The installed chart may own the CRDs already (a cluster left up): they are this checkout's either way.
$KUBECTL apply --server-side --force-conflicts -f crds/ >/dev/null
for crd in agents environments sessions; do
  $KUBECTL wait --for=condition=Established --timeout=60s "crd/$crd.corral.dev" >/dev/null
done
KUBECONFIG=$kubeconfig target/debug/sse_fanout 1000 10 50 | tee "$work/sse.txt"
if ((started)); then
  make --no-print-directory apiserver-down >/dev/null
  started=0
fi

if [[ ${BENCH_CLUSTER:-1} != 0 ]]; then
  if ! "$state/bin/kubectl" --kubeconfig "$kubeconfig" get node -o name 2>/dev/null | grep -q .; then
    log "starting the local cluster"
    make --no-print-directory cluster-up >/dev/null
    started_cluster=1
  fi
  log "building Corral's images and installing it on the local cluster"
  (unset KUBECONFIG; E2E_INSTALL_ONLY=1 hack/e2e.sh >"$work/install.log" 2>&1) || {
    tail -30 "$work/install.log" >&2
    die "installing Corral on the local cluster failed"
  }
  log "warm-pool claim vs cold pod creation"
  KUBECONFIG=$kubeconfig target/debug/sandbox_provisioning 10 | tee "$work/sandbox.txt"
  log "warm-pool claim → first tool call answered, through the installed harness"
  # The benchmark reads the session's log with Corral's system Redis user, through a forward to the Redis Service.
  redis_ip=$("$state/bin/kubectl" --kubeconfig "$kubeconfig" -n corral-system get svc corral-redis -o jsonpath='{.spec.clusterIP}')
  redis_port=$(free_port)
  e2e/cluster/forward.sh to-cluster bench-redis "$redis_port" "$redis_ip:6379"
  redis_password=$("$state/bin/kubectl" --kubeconfig "$kubeconfig" -n corral-system get secret corral-redis-auth -o jsonpath='{.data.password}' | base64 -d)
  KUBECONFIG=$kubeconfig CORRAL_E2E_REDIS_URL="redis://corral:$redis_password@127.0.0.1:$redis_port" \
    target/debug/warm_tool_call 20 | tee "$work/warm_call.txt"
  e2e/cluster/forward.sh stop bench-redis
  log "Files API throughput and what a 100 MiB file resource adds to the first tool call (about 3 min)"
  KUBECONFIG=$kubeconfig target/debug/files_transfer 100 3 | tee "$work/files.txt"
  log "turns through the installed gateway: time to first token, lazy vs eager, recovery (about 5 min)"
  KUBECONFIG=$kubeconfig target/debug/cluster_turns 30 8 3 | tee "$work/turns.txt"
fi

# --- the report ---------------------------------------------------------------------------------------------------
# Pulls a figure out of a result file: the first match of an extended regex's group 1.
pick() { sed -nE "s#$2#\1#p" "$work/$1" 2>/dev/null | head -1 || true; }
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
log64=$(pick log.txt 'fenced append, 64 concurrent sessions, 1 events per call.*= ([0-9]+) events\/s')
log64b=$(pick log.txt 'fenced append, 64 concurrent sessions, 4 events per call.*= ([0-9]+) events\/s')
log64e=$(pick log-everysec.txt 'fenced append, 64 concurrent sessions, 1 events per call.*= ([0-9]+) events\/s')
log64be=$(pick log-everysec.txt 'fenced append, 64 concurrent sessions, 4 events per call.*= ([0-9]+) events\/s')
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
warm_ratio=$(pick sandbox.txt '^ratio warm/cold p50: ([0-9.]+)')
# "<what> over N samples: p50 Xms, p95 Yms" of cluster_turns: N, p50 and p95 in ms.
turns_n() { pick turns.txt "^$1 over ([0-9]+) samples.*"; }
wcall50=$(pick warm_call.txt '.*p50 ([0-9.]+) ms.*')
wcall95=$(pick warm_call.txt '.*p95 ([0-9.]+) ms.*')
up_rate=$(pick files.txt '^upload of .* = ([0-9.]+) MiB/s$')
down_rate=$(pick files.txt '^download of .* = ([0-9.]+) MiB/s$')
res_without=$(pick files.txt '^first tool call .*without the file p50 ([0-9]+)ms.*')
res_with=$(pick files.txt '^first tool call .*file resource p50 ([0-9]+)ms.*')
res_added=$(pick files.txt '^first tool call .* added ([0-9-]+)ms$')
turns_p50() { pick turns.txt "^$1 over [0-9]+ samples: p50 ([0-9.]+)ms.*"; }
turns_p95() { pick turns.txt "^$1 over [0-9]+ samples: .*p95 ([0-9.]+)ms$"; }
ttft_what='time to first token through the gateway, runtime overhead'
lazy_what='time to first token of a new session, lazy provisioning'
eager_what='time to first token of a new session, eager provisioning'
recovery_what='recovery: every harness SIGKILLed mid-turn → the turn ends \(replaying its 4.5 s model call\)'
cttft_n=$(turns_n "$ttft_what"); cttft50=$(turns_p50 "$ttft_what"); cttft95=$(turns_p95 "$ttft_what")
lazy_n=$(turns_n "$lazy_what"); lazy50=$(turns_p50 "$lazy_what"); lazy95=$(turns_p95 "$lazy_what")
eager50=$(turns_p50 "$eager_what"); eager95=$(turns_p95 "$eager_what")
ratio50=$(pick turns.txt '^lazy/eager: p50 ([0-9.]+),.*')
ratio95=$(pick turns.txt '^lazy/eager: .*p95 ([0-9.]+)$')
rec_n=$(turns_n "$recovery_what"); rec50=$(turns_p50 "$recovery_what"); rec95=$(turns_p95 "$recovery_what")
# The command of a cluster row: $2 when its figure $1 was measured, else how to measure it.
either() { if [[ -n $1 ]]; then echo "$2"; else echo "$cluster_cmd"; fi; }
sec() { [[ -n $1 ]] && awk -v v="$1" 'BEGIN { printf "%.1f", v / 1000 }'; }

not_run="not measured in this run"
cluster_cmd="\`make bench\` (needs the local cluster; BENCH_CLUSTER=0 skips it)"
turns_cmd="\`target/debug/cluster_turns 30 8 3\` (installed gateway and harness on \`make cluster-up\`)"
{
  echo "# Benchmarks"
  echo
  cpu=$(awk '/model name/ {sub(/.*: /, ""); print; exit}' /proc/cpuinfo)
  mem=$(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)
  echo "Written by \`make bench\` (\`bench/run.sh\`) from one run on $(date -u +%Y-%m-%d) at commit \`$(git rev-parse --short HEAD)\`:"
  echo "$(nproc) cores ($cpu), $mem, Linux $(uname -r). Debug builds (release where a row says so); the machine is shared with builds and other"
  echo "processes (\`uptime\` load before the run: $load), so compare only figures of one run. Targets are Corral's own."
  echo
  echo "| figure | value | target | verdict | command |"
  echo "|---|---|---|---|---|"
  echo "| runtime overhead of time to first token, local: wake-up → first \`agent.message\`, provider answering at once | p50 ${ttft50:-?} ms, p95 ${ttft95:-?} ms (100 turns) | p50 < 50 ms, p95 < 100 ms | $(verdict "$ttft50" lt 50) / $(verdict "$ttft95" lt 100) | \`target/debug/harness_overhead 100\` |"
  if [[ -n $cttft50 ]]; then cttft="p50 $cttft50 ms, p95 $cttft95 ms ($cttft_n turns of one session)"; else cttft=$not_run; fi
  echo "| runtime overhead of time to first token, on the real cluster: client sends \`user.message\` to the installed gateway → first \`agent.*\` event on its SSE stream, provider answering at once | $cttft | p50 ≤ 5 ms, p95 ≤ 15 ms (release builds) | $(verdict "$cttft50" lt 5.01) / $(verdict "$cttft95" lt 15.01) | $(either "$cttft50" "$turns_cmd") |"
  if [[ -n $lazy50 ]]; then
    lazy_eager="lazy p50 $lazy50 ms, p95 $lazy95 ms; eager p50 $(sec "$eager50") s, p95 $(sec "$eager95") s; lazy/eager p50 $ratio50, p95 $ratio95 ($lazy_n new sessions each)"
  else lazy_eager=$not_run; fi
  echo "| time to first token of a new session's first turn, lazy vs eager sandbox provisioning (\`sandbox.provisioning: Eager\`: the turn waits for a cold sandbox pod), same client path (the anchor reports −60% p50, −90% p95) | $lazy_eager | lazy/eager p50 < 0.4, p95 < 0.1 | $(verdict "$ratio50" lt 0.4) / $(verdict "$ratio95" lt 0.1) | same |"
  echo "| warm-pool claim, request → ready endpoint | ${warm:-$not_run} | warm/cold p50 < 0.5 | $(verdict "$warm_ratio" lt 0.5) (ratio ${warm_ratio:-—}) | $(either "$warm" "\`target/debug/sandbox_provisioning 10\`") |"
  echo "| cold pod creation, request → ready endpoint | ${cold:-$not_run} | — | — | same |"
  if [[ -n $wcall50 ]]; then wcall="p50 $wcall50 ms, p95 $wcall95 ms (20 new sessions)"; else wcall=$not_run; fi
  echo "| warm-pool claim → first tool call answered: the harness's \`agent.tool_use\` → its \`agent.tool_result\` (ask for a sandbox, claim, the harness learns of it through its Session watch, file sync, \`bash\`) | $wcall | p50 ≤ 20 ms, p95 ≤ 50 ms | $(verdict "$wcall50" lt 20) / $(verdict "$wcall95" lt 50) | $(either "$wcall50" "\`target/debug/warm_tool_call 20\`") |"
  if [[ -n $up_rate ]]; then files_up="upload p50 $up_rate MiB/s, download p50 $down_rate MiB/s (3 files of 100 MiB)"; else files_up=$not_run; fi
  echo "| Files API: one 100 MiB file streamed through the installed gateway to the bundled object store and back (\`POST /v1/files\`, \`GET /v1/files/{id}/content\`) | $files_up | ≥ 50 MiB/s each way | $(verdict "$up_rate" gt 50) / $(verdict "$down_rate" gt 50) | $(either "$up_rate" "\`target/debug/files_transfer 100 3\`") |"
  if [[ -n $res_added ]]; then files_res="adds $res_added ms (first tool call p50 $res_without ms without, $res_with ms with; 3 new sessions each)"; else files_res=$not_run; fi
  echo "| a 100 MiB \`file\` resource: what it adds to a new session's first tool call (\`agent.tool_use\` → \`agent.tool_result\`, lazy sandbox both times; gateway → harness → daemon, streamed) | $files_res | ≤ 2,000 ms | $(verdict "$res_added" lt 2000) | same |"
  echo "| harness: events appended per second (one session, whole turn loop) | ${appended:-?}/s | — | — | same as the first row |"
  echo "| harness: memory per concurrent active session, (RSS(200) − RSS(1)) / 199 | ${mem200:-?} KiB | < 256 KiB | $(verdict "$mem200" lt 256) | same |"
  echo "| harness: resident memory with 200 active sessions | ${rss200:-?} MiB | < 128 MiB | $(verdict "$rss200" lt 128) | same |"
  echo "| concurrent active sessions per harness replica | 200 held in their model call at once (the largest N measured) | ≥ 200 | $( [[ -n $rss200 ]] && echo met || echo — ) | same |"
  echo "| session log: fenced append, 1 event per call (\`appendfsync always\`), release | ${log1:-?} events/s | — | — | \`target/release/examples/throughput always 64 4\` |"
  echo "| session log: fenced append, 16 events per call, release | ${log16:-?} events/s | — | — | same |"
  echo "| session log appends, one Redis, 64 concurrent sessions, \`appendfsync always\`, release: 1 event per call / 4 events per call | ${log64:-?} / ${log64b:-?} events/s | ≥ 100,000 events/s | $(verdict "$log64" gt 100000) / $(verdict "$log64b" gt 100000) | same |"
  echo "| the same with \`appendfsync everysec\` (up to a second of acknowledged events lost on a Redis crash; the chart keeps \`always\`) | ${log64e:-?} / ${log64be:-?} events/s | — | — | \`target/release/examples/throughput everysec 64 4\` |"
  echo "| session log: append → follower | p50 ${follow50:-?} ms, p99 ${follow99:-?} ms | p99 < 50 ms | $(verdict "$follow99" lt 50) | same |"
  echo "| gateway: \`POST /v1/sessions/{id}/events\` (session lookup on the API server, append, wake-up) | ${sends:-?}/s sequential, p50 ${send50:-?} ms | p50 < 50 ms | $(verdict "$send50" lt 50) | \`target/debug/sse_fanout 1000 10 50\` (light kube-apiserver) |"
  echo "| gateway: SSE delivery to 1,000 concurrent streams (10 sessions × 100 streams) | ${delivered:-?} events/s (${delivered_of:-?} delivered) | ≥ 1,000 events/s | $(verdict "$delivered" gt 1000) | same |"
  echo "| gateway: send → delivery latency with 1,000 concurrent streams | p50 ${sse50:-?} ms, p99 ${sse99:-?} ms | p99 < 500 ms | $(verdict "$sse99" lt 500) | same |"
  if [[ -n $rec50 ]]; then rec="p50 $(sec "$rec50") s, p95 $(sec "$rec95") s ($rec_n kills; includes the 4.5 s model call replayed from its start)"; else rec=$not_run; fi
  echo "| recovery after a harness pod is killed mid-turn: every harness process of the namespace SIGKILLed while the model streams (pods deleted too) → the turn ends, taken over by a new replica | $rec | < 30 s | $(verdict "$rec95" lt 30000) | $(either "$rec50" "$turns_cmd") |"
  echo
  echo "Figures measured by hand earlier, kept for reference: the sandbox tool round trip \`bash echo hi\`, client →"
  echo "local daemon → client, release static build: median 0.52 ms (3 runs of 200 calls; p99 ≈ 0.8 ms), target < 5 ms"
  echo "(\`target/x86_64-unknown-linux-gnu/release/examples/roundtrip 200\`, see sandbox/README.md)."
  echo
  # Figures measured by hand, kept as they are until a benchmark of make bench replaces them.
  [[ -f bench/by-hand.md ]] && sed '/^<!--/,/-->$/d' bench/by-hand.md && echo
  # The noisy-neighbour figures come from their own run (`make bench-noisy`, release build).
  [[ -f bench/noisy-neighbour.md ]] && cat bench/noisy-neighbour.md
  cat bench/local-cluster.md
} >"$out.new"
# Each row also shows its value in the table this run replaces (bench/previous.py).
python3 bench/previous.py "$out" "$out.new"
mv "$out.new" "$out"
log "wrote $out"
