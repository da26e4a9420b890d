#!/usr/bin/env bash
# Stop the daemons that scripts/ci-slurm-setup.sh started (by pid; only if it started them).
SD=${SLURM_TEST_DIR:-/tmp/slurmtest}
[ -f "$SD/.started-by-ci" ] || exit 0
alive() { local s; s=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1; [ "$s" != Z ] && [ "$s" != X ]; }
for pf in "$SD/run/slurmd.pid" "$SD/run/slurmctld.pid" /run/munge/munged.pid; do
  [ -f "$pf" ] || continue
  pid=$(cat "$pf"); kill "$pid" 2>/dev/null
  for _ in $(seq 1 50); do alive "$pid" || break; sleep 0.1; done
  alive "$pid" && kill -9 "$pid"
done
rm -f "$SD/.started-by-ci"
