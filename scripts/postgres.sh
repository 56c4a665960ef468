#!/usr/bin/env bash
# Starts (or reuses) a throwaway PostgreSQL cluster for airlock's tests, on loopback only, and
# prints the line that exports its URL:
#
#   eval "$(scripts/postgres.sh)"      # sets AIRLOCK_TEST_POSTGRES_URL
#   scripts/postgres.sh stop           # stops the cluster
#
# Idempotent: installs Debian's `postgresql` package if no server binaries are present,
# creates the cluster under $AIRLOCK_PG_DIR (default /var/tmp/airlock-pg) once, starts it on
# 127.0.0.1:$AIRLOCK_PG_PORT (default 55432) unless it already runs, and creates the database
# `airlock_test`. Trust authentication, loopback only: for tests, never for production.
set -euo pipefail

port=${AIRLOCK_PG_PORT:-55432}
dir=${AIRLOCK_PG_DIR:-/var/tmp/airlock-pg}

if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
    echo "postgres.sh: installing Debian's postgresql package" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
fi
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
as_pg() { runuser -u postgres -- "$@"; }

if [ "${1:-}" = stop ]; then
    as_pg "$bin/pg_ctl" -D "$dir/data" -m fast stop >&2 || true
    exit 0
fi

mkdir -p "$dir"
chown postgres:postgres "$dir"
chmod 700 "$dir"
if [ ! -f "$dir/data/PG_VERSION" ]; then
    as_pg "$bin/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 >/dev/null
fi
if ! as_pg "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
    as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=400" \
        start >&2
fi
psql_() { as_pg "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -v ON_ERROR_STOP=1 -qtA "$@"; }
if [ "$(psql_ -c "SELECT 1 FROM pg_database WHERE datname = 'airlock_test'")" != 1 ]; then
    psql_ -c "CREATE DATABASE airlock_test" >&2
fi
echo "export AIRLOCK_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:$port/airlock_test"
