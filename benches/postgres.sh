#!/usr/bin/env bash
# The PostgreSQL executor's numbers (issue 12), on the server in RUNNER_POSTGRES_URL (start a
# throwaway one with `eval "$(bash scripts/ci-postgres-setup.sh)"`). Uses a database of its
# own, dropped at the end.
#
#   benches/postgres.sh                 # everything below
#   ITEMS=2000 RUNS=3 ENQUEUE=100000 benches/postgres.sh
#
# 1. enqueue: ENQUEUE items queued by a coordinator (no workers), time from the first row to
#    the last (`enqueued_at`), and wall time until all are in the table;
# 2. overhead: ITEMS `true` items through 2 workers x 4 slots vs the local backend at
#    max_parallel 8, median of RUNS interleaved runs;
# 3. claim latency: 500 items with max_parallel 4 (so each is queued while a slot is free)
#    on one worker with 8 slots: item queued -> claimed, p50/p95 as the worker reports;
# 4. connections: 4 workers x 25 slots (100 slots) running a job: connections to the
#    database (pg_stat_activity), and one idle worker's RSS.
set -euo pipefail
cd "$(dirname "$0")/.."

: "${RUNNER_POSTGRES_URL:?set RUNNER_POSTGRES_URL (see scripts/ci-postgres-setup.sh)}"
ITEMS=${ITEMS:-2000}
RUNS=${RUNS:-3}
ENQUEUE=${ENQUEUE:-100000}
[ "${BUILD:-1}" = 1 ] && cargo build --release -q
RUNNER=$PWD/target/release/runner

admin=$RUNNER_POSTGRES_URL
db=runner_bench_$$
base=${admin%/*}
export RUNNER_POSTGRES_URL=$base/$db
export RUNNER_POSTGRES_POLL=200ms
psql "$admin" -qAtc "CREATE DATABASE $db"
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  psql "$admin" -qAtc "DROP DATABASE IF EXISTS $db WITH (FORCE)" || true
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work"
export RUNNER_STATE_DIR=$work/state
"$RUNNER" postgres migrate >/dev/null

items() { seq 1 "$1" | awk 'BEGIN{printf "["} NR>1{printf ","} {printf "{\"id\":%d}", $1} END{print "]"}' > items.json; }
wf() { printf 'name: %s\nmap:\n  input: items.json\n%b  agent_template:\n    - shell: "%s"\n' "$1" "$2" "$3" > "$1.yml"; }
q() { psql "$RUNNER_POSTGRES_URL" -qAtc "$1"; }
now() { date +%s.%N; }
workers() { # N SLOTS -> starts N workers, their pids in $wpids
  wpids=()
  for _ in $(seq 1 "$1"); do
    "$RUNNER" worker -v --slots "$2" --poll 200ms 2>>"$work/workers.log" &
    wpids+=($!); pids+=($!)
  done
  until [ "$(q 'SELECT count(*) FROM runner.workers')" -ge "$1" ]; do sleep 0.05; done
}
stop_workers() {
  for p in "${wpids[@]}"; do kill -TERM "$p"; done
  for p in "${wpids[@]}"; do wait "$p" || true; done
  q 'DELETE FROM runner.workers' >/dev/null
}
median() { sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }

echo "== 1. enqueue $ENQUEUE items"
items "$ENQUEUE"
wf enq "" "true"
t0=$(now)
"$RUNNER" -q run enq.yml --executor postgres --job-id enq >/dev/null 2>&1 &
coord=$!; pids+=($coord)
until [ "$(q 'SELECT count(*) FROM runner.items')" -ge "$ENQUEUE" ]; do sleep 0.05; done
t1=$(now)
span=$(q "SELECT extract(epoch FROM max(enqueued_at) - min(enqueued_at)) FROM runner.items")
kill -TERM "$coord"; wait "$coord" || true
printf 'rows written in %.2f s (first row to last: %.2f s); coordinator start to all rows: %.2f s\n' \
  "$span" "$span" "$(echo "$t1 - $t0" | bc)"
q 'DELETE FROM runner.jobs' >/dev/null

echo "== 2. $ITEMS true items: local max_parallel 8 vs postgres 2 workers x 4 slots ($RUNS runs)"
items "$ITEMS"
wf ovh "" "true"
workers 2 4
for r in $(seq 1 "$RUNS"); do
  t0=$(now); "$RUNNER" -q run ovh.yml --max-parallel 8 >/dev/null 2>&1; t1=$(now)
  echo "$t1 - $t0" | bc >> local.times
  t0=$(now); "$RUNNER" -q run ovh.yml --executor postgres >/dev/null 2>&1; t1=$(now)
  echo "$t1 - $t0" | bc >> pg.times
done
stop_workers
l=$(median < local.times); p=$(median < pg.times)
printf 'local: %.2f s (%.0f/s)   postgres: %.2f s (%.0f/s)   postgres/local: %.2f\n' \
  "$l" "$(echo "$ITEMS / $l" | bc -l)" "$p" "$(echo "$ITEMS / $p" | bc -l)" "$(echo "$p / $l" | bc -l)"

echo "== 3. claim latency (500 items, max_parallel 4, 1 worker x 8 slots)"
items 500
wf lat "  max_parallel: 4\n" "true"
: > workers.log
workers 1 8
"$RUNNER" -q run lat.yml --executor postgres >/dev/null 2>&1
stop_workers
grep -o 'claim wait.*' workers.log | tail -1

echo "== 4. 100 slots (4 workers x 25): connections, and an idle worker's RSS"
items 400
wf conn "" "sleep 0.2"
workers 4 25
"$RUNNER" -q run conn.yml --executor postgres >/dev/null 2>&1 &
coord=$!; pids+=($coord)
until [ "$(q "SELECT count(*) FROM runner.items WHERE status = 'claimed'")" -ge 50 ]; do sleep 0.05; done
conns=$(q "SELECT count(*) FROM pg_stat_activity WHERE datname = '$db' AND application_name = 'runner'")
echo "connections to the database while 100 slots and the coordinator run: $conns"
wait "$coord" || true
sleep 2
rss=$(awk '/VmRSS/ {print $2}' "/proc/${wpids[0]}/status")
echo "idle worker RSS: $((rss / 1024)) MiB ($rss kB)"
stop_workers
