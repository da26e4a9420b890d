#!/usr/bin/env bash
# A throwaway PostgreSQL cluster on 127.0.0.1 for the PostgreSQL executor's tests
# (tests/postgres*.rs), installing Debian's `postgresql` when missing; adapted from a
# reference recipe. Prints the `export` lines to eval:
#   eval "$(bash scripts/ci-postgres-setup.sh [DIR] [PORT])"
# RUNNER_POSTGRES_URL is the server; RUNNER_POSTGRES_DIR lets scripts/postgres-ctl.sh stop
# and start it (the restart test). Stop and remove it with scripts/ci-postgres-teardown.sh.
# The server runs as the `postgres` user (it refuses root). fsync=off is for tests only.
set -euo pipefail
dir=${1:-$(mktemp -d /tmp/runner-pg-XXXXXX)}
port=${2:-$((20000 + RANDOM % 20000))}
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$pgbin" ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 && apt-get install -y -qq postgresql >&2
  pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
fi
mkdir -p "$dir/data"
echo "$pgbin" > "$dir/pgbin"
echo "$port" > "$dir/port"
chown -R postgres "$dir"
if [ "$(id -u)" = 0 ]; then as_pg() { su postgres -c "$1"; }; else as_pg() { sh -c "$1"; }; fi
as_pg "$pgbin/initdb -D $dir/data -A trust -U runner" >"$dir/initdb.log" 2>&1
bash "$(dirname "$0")/postgres-ctl.sh" start "$dir" >&2
echo "export RUNNER_POSTGRES_URL=postgres://runner@127.0.0.1:$port/postgres"
echo "export RUNNER_POSTGRES_DIR=$dir"
