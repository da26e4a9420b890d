#!/usr/bin/env bash
# Stop and remove the cluster of scripts/ci-postgres-setup.sh (DIR default: $RUNNER_POSTGRES_DIR).
set -u
dir=${1:-${RUNNER_POSTGRES_DIR:-}}
[ -n "$dir" ] && [ -f "$dir/pgbin" ] || exit 0
bash "$(dirname "$0")/postgres-ctl.sh" stop "$dir" >/dev/null 2>&1
rm -rf "$dir"
