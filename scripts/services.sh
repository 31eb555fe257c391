#!/usr/bin/env bash
# Start Redis and PostgreSQL on loopback for development, with their files in a temporary directory;
# prints the settings to export. Stop them with `scripts/services.sh stop`.
#
#   scripts/services.sh            # Redis on 127.0.0.1:6390, PostgreSQL on 127.0.0.1:5433
#   eval "$(scripts/services.sh)"  # ... and export R42_REDIS_URL and R42_DATABASE_URL
#   scripts/services.sh stop
#
# Needs Debian's redis-server and postgresql (apt-get install redis-server postgresql). Nothing
# listens beyond loopback. PostgreSQL trusts local connections: a developer's server, not a production one.
# PostgreSQL refuses to run as root: as root, its data directory belongs to the `postgres` user.
set -euo pipefail
state="${R42_SERVICES_DIR:-${TMPDIR:-/tmp}/r42-services}"
redis_port="${R42_SERVICES_REDIS_PORT:-6390}"
pg_port="${R42_SERVICES_PG_PORT:-5433}"
pg_data="$state/postgres"

as_postgres() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_bin() {
    local found
    found="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
    [ -n "$found" ] && [ -x "$found/initdb" ] && echo "$found"
}

stop() {
    if [ -f "$state/redis.pid" ]; then
        kill "$(cat "$state/redis.pid")" 2>/dev/null || true
        rm -f "$state/redis.pid"
        echo "# redis stopped" >&2
    fi
    if [ -f "$pg_data/postmaster.pid" ] && bin="$(pg_bin)"; then
        as_postgres "$bin/pg_ctl" -D "$pg_data" -m fast stop >/dev/null 2>&1 || true
        echo "# postgresql stopped" >&2
    fi
}

start_postgres() {
    local bin
    bin="$(pg_bin)" || { echo "scripts/services.sh: error: PostgreSQL is not installed (apt-get install postgresql)" >&2; exit 1; }
    if [ ! -f "$pg_data/PG_VERSION" ]; then
        mkdir -p "$pg_data"
        [ "$(id -u)" = 0 ] && chown postgres:postgres "$pg_data"
        as_postgres "$bin/initdb" -D "$pg_data" -U r42 --auth=trust -E UTF8 >/dev/null
    fi
    if as_postgres "$bin/pg_ctl" -D "$pg_data" status >/dev/null 2>&1; then
        echo "# postgresql already running" >&2
    else
        as_postgres "$bin/pg_ctl" -D "$pg_data" -w -l "$pg_data/server.log" \
            -o "-c listen_addresses=127.0.0.1 -p $pg_port -c unix_socket_directories=$pg_data" start >/dev/null
        echo "# postgresql on 127.0.0.1:$pg_port (files in $pg_data)" >&2
    fi
    as_postgres "$bin/psql" -h 127.0.0.1 -p "$pg_port" -U r42 -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = 'r42'" | grep -q 1 \
        || as_postgres "$bin/createdb" -h 127.0.0.1 -p "$pg_port" -U r42 r42
}

case "${1:-start}" in
    stop) stop; exit 0 ;;
    start) ;;
    *) echo "usage: $0 [start|stop]" >&2; exit 2 ;;
esac

command -v redis-server >/dev/null || { echo "scripts/services.sh: error: redis-server is not installed (apt-get install redis-server)" >&2; exit 1; }
mkdir -p "$state" && chmod 700 "$state"
[ "$(id -u)" = 0 ] && chmod 711 "$state"  # the postgres user may pass through to its own directory
if [ -f "$state/redis.pid" ] && kill -0 "$(cat "$state/redis.pid")" 2>/dev/null; then
    echo "# redis already running (pid $(cat "$state/redis.pid"))" >&2
else
    redis-server --bind 127.0.0.1 --port "$redis_port" --dir "$state" --save "" --appendonly no \
        --daemonize yes --pidfile "$state/redis.pid" --logfile "$state/redis.log" >/dev/null
    for _ in $(seq 50); do [ -s "$state/redis.pid" ] && break; sleep 0.1; done
    echo "# redis on 127.0.0.1:$redis_port (files in $state)" >&2
fi
start_postgres
echo "export R42_REDIS_URL=redis://127.0.0.1:$redis_port/0"
echo "export R42_DATABASE_URL=postgresql://r42@127.0.0.1:$pg_port/r42"
