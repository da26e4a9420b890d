#!/usr/bin/env bash
# Scale check: memory and start-up time of runner as the number of items grows.
#
#   benches/scale.sh                 # 10k, 100k and 1M items (the 1M run takes ~12 min on 2 cores)
#   SIZES="10000 100000" benches/scale.sh
#
# For each size: a `true` map at max_parallel 8 (peak RSS and wall time of the run), then
# `status --json` of the finished job, then an interruption is simulated by cutting the
# last 1,000 item records off the journal (as a crash would lose them) and `resume` is
# timed until it starts dispatching ("map: N of M items to run").
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=${SIZES:-"10000 100000 1000000"}
cargo build --release -q
RUNNER=$PWD/target/release/runner
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

printf '%-9s %10s %12s %10s %10s %12s %12s\n' items "run wall" "peak RSS" "items/s" "status" "resume start" "journal MB"
for n in $SIZES; do
  cat > wf.yml <<YML
name: scale
map:
  input:
    command: "seq 1 $n"
  max_parallel: 8
  agent_template:
    - shell: "true"
YML
  rm -rf state
  t0=$(now)
  RUNNER_STATE_DIR=state /usr/bin/time -f "%M" -o rss.txt "$RUNNER" -q run wf.yml --job-id s$n 2>/dev/null
  wall=$(elapsed "$t0" "$(now)")
  rss_mb=$(awk '{ printf "%.0f MiB", $1 / 1024 }' rss.txt)
  t0=$(now); RUNNER_STATE_DIR=state "$RUNNER" status s$n --json >/dev/null; st=$(elapsed "$t0" "$(now)")
  j=state/jobs/s$n/journal.log
  jmb=$(du -m "$j" | cut -f1)
  # Simulate a crash that lost the last 1,000 finished items: drop the tail of the journal
  # (item_done/item_started lines and the run end), keep everything before.
  keep=$(($(wc -l < "$j") - 2002))
  head -n "$keep" "$j" > "$j.cut" && mv "$j.cut" "$j"
  rm -f state/jobs/s$n/checkpoint.json.ignored
  t0=$(now)
  RUNNER_STATE_DIR=state "$RUNNER" resume s$n 2> resume.err &
  pid=$!
  until grep -q "items to run" resume.err 2>/dev/null; do
    kill -0 $pid 2>/dev/null || break
    sleep 0.01
  done
  rs=$(elapsed "$t0" "$(now)")
  wait $pid || true
  awk -v n="$n" -v w="$wall" -v r="$rss_mb" -v s="$st" -v rs="$rs" -v j="$jmb" \
    'BEGIN { printf "%-9d %9ss %12s %10.0f %9ss %11ss %12s\n", n, w, r, n / w, s, rs, j }'
done
