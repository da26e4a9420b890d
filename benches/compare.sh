#!/usr/bin/env bash
# Compare runner's dispatch overhead with `xargs -P` and GNU parallel on this machine,
# in one run, interleaving the tools so machine noise hits them alike.
#
#   benches/compare.sh                  # 2,000 and 20,000 items, 5 runs each (20k: 3)
#   SIZES=2000 RUNS=9 benches/compare.sh
#   PARALLEL_LARGE=0 benches/compare.sh # skip GNU parallel on 20k (it is slow)
#
# Every tool runs the same `sh -c CMD` per item with 8 at a time; runner runs with full
# durability (journal group commit with fdatasync, checkpoint, per-item state).
# Prints medians (wall seconds), items/s and the ratios runner/xargs and runner/parallel.
set -euo pipefail
cd "$(dirname "$0")/.."

SIZES=${SIZES:-"2000 20000"}
RUNS=${RUNS:-5}
RUNS_LARGE=${RUNS_LARGE:-3}
PARALLEL_LARGE=${PARALLEL_LARGE:-1}
JOBS=8

if ! command -v parallel >/dev/null 2>&1; then
  echo "installing GNU parallel..." >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq parallel) >/dev/null 2>&1 \
    || echo "could not install GNU parallel; its columns will be empty" >&2
fi
cargo build --release -q
RUNNER=$PWD/target/release/runner

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
median() { tr ' ' '\n' | { grep -v '^$' || true; } | sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

workflow() { # name size cmd
  cat > "$1.yml" <<YML
name: bench-$1
map:
  input:
    command: "seq 1 $2"
  max_parallel: $JOBS
  agent_template:
    - shell: '$3'
YML
}

time_runner() { # name
  rm -rf state; local t0; t0=$(now)
  RUNNER_STATE_DIR=state "$RUNNER" -q run "$1.yml" 2>/dev/null || { echo "runner failed" >&2; exit 1; }
  elapsed "$t0" "$(now)"
}
time_xargs() { # size cmd(with {} for the item)
  local t0; t0=$(now)
  seq 1 "$1" | xargs -P $JOBS -I{} sh -c "$2"
  elapsed "$t0" "$(now)"
}
time_parallel() { # size cmd joblog?
  command -v parallel >/dev/null || { echo nan; return; }
  local t0 extra=(); [ "$3" = yes ] && extra=(--joblog "$work/joblog") && rm -f "$work/joblog"
  t0=$(now)
  seq 1 "$1" | parallel --will-cite -j $JOBS "${extra[@]}" "$2"
  elapsed "$t0" "$(now)"
}

printf '# %s, %s cores, %s\n' "$(uname -sr)" "$(nproc)" "$(date -u +%Y-%m-%dT%H:%MZ)"
printf '%-28s %7s %9s %9s %9s %11s %8s %9s %12s\n' workload items runner xargs parallel parallel+log "r/xargs" "r/par" "r/par+log"
for size in $SIZES; do
  runs=$RUNS; [ "$size" -gt 5000 ] && runs=$RUNS_LARGE
  for kind in true echo; do
    if [ $kind = true ]; then rcmd='true'; xcmd='true'; pcmd='true'
    else rcmd='echo ${item} > /dev/null'; xcmd='echo {} > /dev/null'; pcmd='echo {} > /dev/null'; fi
    workflow "$kind-$size" "$size" "$rcmd"
    r=""; x=""; p=""; pl=""
    for _ in $(seq 1 "$runs"); do
      r="$r $(time_runner "$kind-$size")"
      x="$x $(time_xargs "$size" "$xcmd")"
      if [ "$size" -le 5000 ] || [ "$PARALLEL_LARGE" = 1 ]; then
        p="$p $(time_parallel "$size" "$pcmd" no)"
        pl="$pl $(time_parallel "$size" "$pcmd" yes)"
      fi
    done
    mr=$(echo "$r" | median); mx=$(echo "$x" | median); mp=$(echo "$p" | median); mpl=$(echo "$pl" | median)
    awk -v w="$kind ($runs runs)" -v n="$size" -v r="$mr" -v x="$mx" -v p="$mp" -v pl="$mpl" 'BEGIN {
      rp = (p == "nan") ? "-" : sprintf("%.2f", r / p); rpl = (pl == "nan") ? "-" : sprintf("%.2f", r / pl)
      ps = (p == "nan") ? "-" : p "s"; pls = (pl == "nan") ? "-" : pl "s"
      printf "%-28s %7d %8.2fs %8.2fs %9s %11s %8.2f %9s %12s\n", w, n, r, x, ps, pls, r / x, rp, rpl
      printf "%-28s %7s %7.0f/s %7.0f/s\n", "  items/s", "", n / r, n / x
    }'
  done
done
