#!/usr/bin/env bash
# Slurm throughput: N `true` items (default 10,000) on the local Slurm, batched per task.
#
#   benches/slurm.sh                          # 10,000 items, max_parallel 16, 4 per task at once
#   N=2000 MAX_PARALLEL=8 PER_TASK=2 POLL=1s benches/slurm.sh
#
# Needs a usable Slurm (`sinfo`; `scripts/ci-slurm-setup.sh` starts a single-node one as
# root) and a state directory the node can see (this script's temporary directory, on the
# same machine). Prints the wall time of `runner run`, ms per item, and how the items were
# batched (arrays, tasks, items per task) from the job's `slurm/submissions.jsonl`.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-10000}
MAX_PARALLEL=${MAX_PARALLEL:-16}
PER_TASK=${PER_TASK:-4}
POLL=${POLL:-500ms}
timeout 5 sinfo -h -o '%t' | grep -qE '^(idle|mix|alloc)' || { echo "no usable Slurm node (sinfo)" >&2; exit 1; }
if [ -z "${RUNNER:-}" ]; then   # RUNNER=path/to/runner: measure that binary, no build
  cargo build --release -q
  RUNNER=$PWD/target/release/runner
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
cd "$work"
cat > wf.yml <<YML
name: slurm-bench
executor: slurm
slurm:
  poll_interval: $POLL
  parallel_per_task: $PER_TASK
map:
  input:
    command: "seq 1 $N"
  max_parallel: $MAX_PARALLEL
  agent_template:
    - shell: "true"
YML
t0=$(date +%s.%N)
RUNNER_STATE_DIR=state "$RUNNER" -q run wf.yml --job-id bench
t1=$(date +%s.%N)
subs=state/jobs/bench/slurm/submissions.jsonl
arrays=$(wc -l < "$subs")
tasks=$(jq -s 'map(.tasks | length) | add' "$subs")
sizes=$(jq -c -s 'map(.tasks | map(length) | unique)' "$subs")
awk -v n="$N" -v a="$t0" -v b="$t1" -v arrays="$arrays" -v tasks="$tasks" -v sizes="$sizes" 'BEGIN {
  w = b - a
  printf "%d items on Slurm: %.2f s wall, %.2f ms per item (%d arrays, %d tasks, items per task by array: %s)\n", n, w, 1000 * w / n, arrays, tasks, sizes
}'
