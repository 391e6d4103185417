#!/usr/bin/env bash
# The noisy-neighbour benchmark (`make bench-noisy`): tenant B's send → delivery p99 through one gateway, alone and
# then while tenant A abuses the same gateway and Redis, several times in one run (bench/src/bin/noisy_neighbour/:
# the release corral-gateway, B's client and A's client are three processes). Release build. Writes bench/noisy-neighbour.md and puts it into docs/benchmarks.md (bench/run.sh keeps it there).
# Uses the light kube-apiserver at $CORRAL_STATE/kubeconfig, started here unless one answers. BENCH_NOISY_SHORT=1
# runs the short form (fewer events and streams). Honours CORRAL_STATE and CORRAL_API_PORT.
set -euo pipefail
# shellcheck source=SCRIPTDIR/../hack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../hack/lib.sh"
cd "$(dirname "${BASH_SOURCE[0]}")/.."

command -v redis-server >/dev/null || hack/tools.sh
if [[ ${BENCH_NOISY_SHORT:-0} == 1 ]]; then args=(200 120 2 1); else args=(1000 150 4 5); fi
load=$(awk '{print $1}' /proc/loadavg)
log "building the noisy-neighbour benchmark (release)"
cargo build -q --release -p corral-bench --bin noisy_neighbour -p corral-gateway --bin corral-gateway
target_dir=$(cargo metadata --format-version 1 --no-deps | sed -nE 's/.*"target_directory":"([^"]+)".*/\1/p')
with_light_apiserver
work=$(mktemp -d)
log "tenant B alone, then while tenant A abuses (${args[*]})"
"$target_dir/release/noisy_neighbour" "${args[@]}" | tee "$work/noisy.txt"

pick() { sed -nE "s#$1#\1#p" "$work/noisy.txt" | head -1; }
alone=$(pick '^B alone: send → delivery over (.*)$')
abused=$(pick '^B while A abuses: send → delivery over (.*)$')
ratio=$(pick '^ratio p99 abused/alone: ([0-9.]+) .*$')
each=$(pick '^ratio p99 abused/alone: [0-9.]+ \(median of runs: (.*)\)$')
verdict=$(awk -v r="$ratio" 'BEGIN { print (r != "" && r <= 1.5) ? "met" : "**missed**" }')
cpu=$(awk '/model name/ {sub(/.*: /, ""); print; exit}' /proc/cpuinfo)
mem=$(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)
{
  echo "## Noisy neighbour"
  echo
  echo "Written by \`make bench-noisy\` (\`bench/noisy.sh\`) on $(date -u +%Y-%m-%d) at commit \`$(git rev-parse --short HEAD)\`:"
  echo "$(nproc) cores ($cpu), $mem, Linux $(uname -r), release build, the gateway's default limits, load before the"
  echo "run $load (the machine is shared). The release \`corral-gateway\`, tenant B's client and tenant A's client are"
  echo "three processes. Tenant B sends a small \`user.message\` every 25 ms to one session and reads it back on that"
  echo "session's event stream; first alone, then while tenant A, on the same gateway and Redis, sends events of the"
  echo "largest size (every tenth one over it) from several connections as fast as they go, tries to hold more event"
  echo "streams than its cap, and fills fresh sessions towards their cap. Each run measures both phases; the verdict"
  echo "is the median over the runs of the ratio of B's p99s. Per run: Redis's longest fsync in each phase, B's"
  echo "messages over 50 ms and how many of them were slow in the send (the append) rather than the delivery, and the"
  echo "gateway's CPU. What A may do is set by the byte budgets; why they are sized as they are, and what the earlier,"
  echo "larger ones did to B: [limits.md](limits.md#byte-budgets)."
  echo
  echo "| figure | value | target | verdict | command |"
  echo "|---|---|---|---|---|"
  echo "| B: send → delivery, alone | ${alone:-?} | — | — | \`target/release/noisy_neighbour ${args[*]}\` (light kube-apiserver) |"
  echo "| B: send → delivery, while A abuses | ${abused:-?} | median p99 ratio ≤ 1.5 | $verdict (median ratio ${ratio:-?}; runs ${each:-?}) | same |"
  echo
  echo "| run | load | B alone | B while A abuses | ratio | A: what it did and got |"
  echo "|---|---|---|---|---|---|"
  sed -nE 's#^run ([0-9]+) \(load ([0-9.]+)\): B alone (.*); while A abuses (.*); ratio ([0-9.]+); A: (.*)$#| \1 | \2 | \3 | \4 | \5 | \6 |#p' "$work/noisy.txt"
  echo
  sed -nE 's#^run ([0-9]+) (redis|gateway): (.*)$#- run \1, \2: \3#p' "$work/noisy.txt"
  echo
} >bench/noisy-neighbour.md
rm -rf "$work"
# docs/benchmarks.md: this section replaces the previous one (or goes before the local cluster's).
python3 - <<'PY'
import re
doc = open("docs/benchmarks.md").read()
section = open("bench/noisy-neighbour.md").read()
doc = re.sub(r"## Noisy neighbour\n.*?(?=\n## |\Z)", "", doc, flags=re.S).rstrip("\n") + "\n"
marker = "## The local cluster"
doc = doc.replace(marker, section + marker, 1) if marker in doc else doc + "\n" + section
open("docs/benchmarks.md", "w").write(doc)
PY
log "wrote bench/noisy-neighbour.md and docs/benchmarks.md"
