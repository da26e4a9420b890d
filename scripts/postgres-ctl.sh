#!/usr/bin/env bash
# Stop or start the cluster made by scripts/ci-postgres-setup.sh:
#   bash scripts/postgres-ctl.sh stop|start [DIR]      (DIR default: $RUNNER_POSTGRES_DIR)
set -euo pipefail
what=$1
dir=${2:-${RUNNER_POSTGRES_DIR:?RUNNER_POSTGRES_DIR is not set}}
pgbin=$(cat "$dir/pgbin")
port=$(cat "$dir/port")
if [ "$(id -u)" = 0 ]; then as_pg() { su postgres -c "$1"; }; else as_pg() { sh -c "$1"; }; fi
case $what in
  start) as_pg "$pgbin/pg_ctl -D $dir/data -l $dir/server.log -w -t 30 -o \"-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200\" start" ;;
  stop) as_pg "$pgbin/pg_ctl -D $dir/data -m fast -w -t 30 stop" ;;
  *) echo "usage: postgres-ctl.sh stop|start [DIR]" >&2; exit 2 ;;
esac
