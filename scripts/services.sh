#!/usr/bin/env bash
# Start Redis (and nginx in front of r42 serve, when asked) on loopback for development, with their
# files in a temporary directory; prints the settings to export. Stop them with `scripts/services.sh stop`.
#
#   scripts/services.sh            # Redis on 127.0.0.1:6390
#   eval "$(scripts/services.sh)"  # ... and export R42_REDIS_URL
#   scripts/services.sh stop
#
# Needs Debian's redis-server (apt-get install redis-server). Nothing listens beyond loopback.
set -euo pipefail
state="${R42_SERVICES_DIR:-${TMPDIR:-/tmp}/r42-services}"
redis_port="${R42_SERVICES_REDIS_PORT:-6390}"

stop() {
    if [ -f "$state/redis.pid" ]; then
        kill "$(cat "$state/redis.pid")" 2>/dev/null || true
        rm -f "$state/redis.pid"
        echo "# redis stopped" >&2
    fi
}

case "${1:-start}" in
    stop) stop; exit 0 ;;
    start) ;;
    *) echo "usage: $0 [start|stop]" >&2; exit 2 ;;
esac

command -v redis-server >/dev/null || { echo "scripts/services.sh: error: redis-server is not installed (apt-get install redis-server)" >&2; exit 1; }
mkdir -p "$state" && chmod 700 "$state"
if [ -f "$state/redis.pid" ] && kill -0 "$(cat "$state/redis.pid")" 2>/dev/null; then
    echo "# redis already running (pid $(cat "$state/redis.pid"))" >&2
else
    redis-server --bind 127.0.0.1 --port "$redis_port" --dir "$state" --save "" --appendonly no \
        --daemonize yes --pidfile "$state/redis.pid" --logfile "$state/redis.log" >/dev/null
    for _ in $(seq 50); do [ -s "$state/redis.pid" ] && break; sleep 0.1; done
    echo "# redis on 127.0.0.1:$redis_port (files in $state)" >&2
fi
echo "export R42_REDIS_URL=redis://127.0.0.1:$redis_port/0"
