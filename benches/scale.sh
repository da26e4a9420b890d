#!/usr/bin/env bash
# Scale check: memory, state size and start-up times of runner as the number of items grows.
#
#   benches/scale.sh                       # 10k, 100k and 1M items (1M takes ~50 min on 2 cores)
#   SIZES="10000 1000000" benches/scale.sh
#   SIZES=10000000 CRASH=0 RUN=0 benches/scale.sh   # selection only, at 10M
#
# For each size N, a `true` map over `seq 1 N` at max_parallel 8:
#   1. selection: `runner run --dry-run` (parse, select, give ids, spill; nothing runs):
#      wall time and peak RSS;
#   2. run (RUN=1): the whole job: wall time, peak RSS, items/s, the finished job
#      directory's size, `status --json` of it;
#   3. crash (CRASH=1): the same job run again and killed with SIGKILL once 90% of its items
#      are recorded (a real crash: the records since the last checkpoint are replayed), then
#      `status` of it, and `resume` timed until it starts dispatching ("map: N of M items
#      to run") and its peak RSS until it finishes.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=${SIZES:-"10000 100000 1000000"}
RUN=${RUN:-1}
CRASH=${CRASH:-1}
cargo build --release -q
RUNNER=$PWD/target/release/runner
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
export RUNNER_STATE_DIR=$work/state

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
mib() { awk '{ printf "%.0f MiB", $1 / 1024 }' "$1"; }
successful() { "$RUNNER" status "$1" --json 2>/dev/null | awk -F'[:,]' '/"successful"/ { gsub(/ /, "", $2); print $2; exit }'; }

# Start `resume`/`run` in the background and wait for "items to run" on its stderr; prints
# the seconds it took.
until_dispatching() {
  local t0=$1 err=$2 pid=$3
  until grep -q "items to run" "$err" 2>/dev/null; do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.01
  done
  elapsed "$t0" "$(now)"
}

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
  echo "== $n items"
  t0=$(now)
  /usr/bin/time -f "%M" -o rss.txt "$RUNNER" run wf.yml --dry-run >/dev/null 2>&1
  echo "selection (--dry-run): $(elapsed "$t0" "$(now)") s, peak RSS $(mib rss.txt)"

  if [ "$RUN" = 1 ]; then
    t0=$(now)
    /usr/bin/time -f "%M" -o rss.txt "$RUNNER" -q run wf.yml --job-id s$n 2>/dev/null
    wall=$(elapsed "$t0" "$(now)")
    t0=$(now); "$RUNNER" status s$n --json >/dev/null; st=$(elapsed "$t0" "$(now)")
    dir=$(du -sh "state/jobs/s$n" | cut -f1)
    awk -v n="$n" -v w="$wall" -v r="$(mib rss.txt)" -v s="$st" -v d="$dir" \
      'BEGIN { printf "run: %s s, peak RSS %s, %.0f items/s, job dir %s, status %s s\n", w, r, n / w, d, s }'
  fi

  if [ "$CRASH" = 1 ]; then
    "$RUNNER" -q run wf.yml --job-id c$n 2>/dev/null &
    pid=$!
    target=$((n * 9 / 10))
    until [ "$(successful c$n || echo 0)" -ge "$target" ] 2>/dev/null; do
      kill -0 $pid 2>/dev/null || break
      sleep 0.2
    done
    kill -9 $pid 2>/dev/null || true
    wait $pid 2>/dev/null || true
    # The lock is released when the process is gone.
    until "$RUNNER" status c$n >/dev/null 2>&1; do sleep 0.05; done
    t0=$(now); "$RUNNER" status c$n --json >/dev/null; st=$(elapsed "$t0" "$(now)")
    done_before=$(successful c$n)
    t0=$(now)
    /usr/bin/time -f "%M" -o rss.txt "$RUNNER" resume c$n 2> resume.err &
    pid=$!
    rs=$(until_dispatching "$t0" resume.err $pid)
    wait $pid || true
    echo "crash at 90%: $done_before recorded; status $st s, resume start $rs s, resume peak RSS $(mib rss.txt)"
  fi
done
