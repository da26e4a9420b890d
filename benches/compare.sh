#!/usr/bin/env bash
# Compare runner's dispatch overhead with `xargs -P` and GNU parallel on this machine,
# in one run, interleaving the tools so machine noise hits them alike.
#
#   benches/compare.sh                  # 2,000 and 20,000 items, 5 runs each (20k: 3)
#   SIZES=2000 RUNS=9 benches/compare.sh
#   PARALLEL_LARGE=0 benches/compare.sh # skip GNU parallel on 20k (it is slow)
#
# Three workloads, 8 at a time, every tool running the same thing per item: simple (the
# simple command `true`, which runner runs without a shell; `xargs -I{} true`), shell
# (`: ${item}` / `xargs -I{} sh -c ': {}'`) and echo (`echo ${item} > /dev/null` through
# the shell). runner runs with full durability (journal group commit with fdatasync,
# checkpoint, per-item state). Prints medians of wall seconds, the ratios runner/xargs and
# runner/(parallel --joblog), and runner's own CPU per item: (CPU of runner's process tree
# - CPU of xargs's tree) / items, both trees running the same children.
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

# Each timing is "wall cpu": wall seconds, and the CPU seconds (user + system) of the tool's
# whole process tree, children included (/usr/bin/time reports what wait4 returns).
timed() { # cmd...
  /usr/bin/time -f "%e %U %S" -o "$work/time.txt" "$@" || { echo "failed: $*" >&2; exit 1; }
  awk '{ printf "%s %.3f", $1, $2 + $3 }' "$work/time.txt"
}
time_runner() { # name
  rm -rf state
  RUNNER_STATE_DIR=state timed "$RUNNER" -q run "$1.yml" 2>/dev/null
}
time_xargs() { # size xargs-command (with {} for the item)
  timed sh -c "seq 1 $1 | xargs -P $JOBS -I{} $2"
}
time_parallel() { # size cmd joblog?
  command -v parallel >/dev/null || { echo "nan nan"; return; }
  local log=""; [ "$3" = yes ] && log="--joblog $work/joblog" && rm -f "$work/joblog"
  timed sh -c "seq 1 $1 | parallel --will-cite -j $JOBS $log '$2'"
}

printf '# %s, %s cores, %s, load %s\n' "$(uname -sr)" "$(nproc)" "$(date -u +%Y-%m-%dT%H:%MZ)" "$(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-22s %6s %8s %8s %9s %12s %8s %11s %14s\n' workload items runner xargs parallel parallel+log "r/xargs" "r/par+log" "runner CPU/item"
for size in $SIZES; do
  runs=$RUNS; [ "$size" -gt 5000 ] && runs=$RUNS_LARGE
  for kind in simple shell echo; do
    case $kind in
      # A simple command: runner runs it without a shell, xargs runs it directly.
      simple) rcmd='true'; xcmd='true'; pcmd='true' ;;
      # Needs the shell everywhere.
      shell) rcmd=': ${item}'; xcmd="sh -c ': {}'"; pcmd=': {}' ;;
      echo) rcmd='echo ${item} > /dev/null'; xcmd="sh -c 'echo {} > /dev/null'"; pcmd='echo {} > /dev/null' ;;
    esac
    workflow "$kind-$size" "$size" "$rcmd"
    r=""; x=""; p=""; pl=""; rc=""; xc=""
    for _ in $(seq 1 "$runs"); do
      read -r w c <<< "$(time_runner "$kind-$size")"; r="$r $w"; rc="$rc $c"
      read -r w c <<< "$(time_xargs "$size" "$xcmd")"; x="$x $w"; xc="$xc $c"
      if [ "$size" -le 5000 ] || [ "$PARALLEL_LARGE" = 1 ]; then
        read -r w _ <<< "$(time_parallel "$size" "$pcmd" no)"; p="$p $w"
        read -r w _ <<< "$(time_parallel "$size" "$pcmd" yes)"; pl="$pl $w"
      fi
    done
    mr=$(echo "$r" | median); mx=$(echo "$x" | median); mp=$(echo "$p" | median); mpl=$(echo "$pl" | median)
    mrc=$(echo "$rc" | median); mxc=$(echo "$xc" | median)
    awk -v w="$kind ($runs runs)" -v n="$size" -v r="$mr" -v x="$mx" -v p="$mp" -v pl="$mpl" \
        -v rc="$mrc" -v xc="$mxc" 'BEGIN {
      rpl = (pl == "nan") ? "-" : sprintf("%.2f", r / pl)
      ps = (p == "nan") ? "-" : p "s"; pls = (pl == "nan") ? "-" : pl "s"
      printf "%-22s %6d %7.2fs %7.2fs %9s %12s %8.2f %11s %11.3f ms\n", w, n, r, x, ps, pls, r / x, rpl, (rc - xc) * 1000 / n
    }'
  done
done
