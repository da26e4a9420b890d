#!/usr/bin/env bash
# Compare two runner binaries on the dispatch benchmark's workload, interleaved so that
# machine noise hits both alike: `true` and `echo ${item} > /dev/null` over N items, 8 at
# a time, full durability. Prints the median wall time of each and the ratio new/old.
#
#   benches/ab.sh OLD_BINARY NEW_BINARY            # 2,000 items, 7 runs each
#   SIZE=5000 RUNS=5 benches/ab.sh old/runner target/release/runner
set -euo pipefail
OLD=$(realpath "$1")
NEW=$(realpath "$2")
SIZE=${SIZE:-2000}
RUNS=${RUNS:-7}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

now() { date +%s.%N; }
median() { tr ' ' '\n' | { grep -v '^$' || true; } | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

time_one() { # binary workflow
  rm -rf state
  local t0; t0=$(now)
  RUNNER_STATE_DIR=state "$1" -q run "$2" 2>/dev/null || { echo "$1 failed" >&2; exit 1; }
  awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'
}

printf '# %s, %s cores, %s, %s items, %s runs each\n' "$(uname -sr)" "$(nproc)" "$(date -u +%Y-%m-%dT%H:%MZ)" "$SIZE" "$RUNS"
printf '%-10s %9s %9s %7s\n' workload old new new/old
for kind in true echo; do
  cmd='true'; [ $kind = echo ] && cmd='echo ${item} > /dev/null'
  cat > "$kind.yml" <<YML
name: ab-$kind
map:
  input:
    command: "seq 1 $SIZE"
  max_parallel: 8
  agent_template:
    - shell: '$cmd'
YML
  o=""; n=""
  for i in $(seq 1 "$RUNS"); do
    if [ $((i % 2)) = 1 ]; then
      o="$o $(time_one "$OLD" "$kind.yml")"; n="$n $(time_one "$NEW" "$kind.yml")"
    else
      n="$n $(time_one "$NEW" "$kind.yml")"; o="$o $(time_one "$OLD" "$kind.yml")"
    fi
  done
  mo=$(echo "$o" | median); mn=$(echo "$n" | median)
  awk -v w="$kind" -v o="$mo" -v n="$mn" 'BEGIN { printf "%-10s %8.2fs %8.2fs %7.3f\n", w, o, n, n / o }'
done
