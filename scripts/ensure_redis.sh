#!/usr/bin/env bash
# Make sure a Redis answers at REDIS_URL; start a local redis-server for it if none does.
set -euo pipefail
cd "$(dirname "$0")/.."
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379/0}
RUN_DIR=${RUN_DIR:-.run}
hostport=${REDIS_URL#*://}; hostport=${hostport#*@}; hostport=${hostport%%/*}
host=${hostport%:*}; port=${hostport##*:}
[ "$host" = "$hostport" ] && port=6379

ping() { .venv/bin/python - "$REDIS_URL" <<'PY' >/dev/null 2>&1
import sys, redis
redis.Redis.from_url(sys.argv[1], socket_connect_timeout=1).ping()
PY
}

if ping; then exit 0; fi
case "$host" in
  127.0.0.1|localhost|::1) ;;
  *) echo "No Redis answers at $REDIS_URL, and it is not local, so it cannot be started here." >&2; exit 1 ;;
esac
if ! command -v redis-server >/dev/null; then
  echo "No Redis answers at $REDIS_URL and redis-server is not installed." >&2
  echo "Install it (Debian/Ubuntu: sudo apt-get install redis-server) or point REDIS_URL at a running Redis." >&2
  exit 1
fi
mkdir -p "$RUN_DIR"
echo "Starting redis-server on $host:$port (pid in $RUN_DIR/redis.pid)"
redis-server --port "$port" --bind 127.0.0.1 --daemonize yes --save "" --appendonly no \
  --dir "$(pwd)/$RUN_DIR" --pidfile "$(pwd)/$RUN_DIR/redis.pid" --logfile "$(pwd)/$RUN_DIR/redis.log"
for _ in $(seq 50); do ping && exit 0; sleep 0.1; done
echo "redis-server did not come up; see $RUN_DIR/redis.log" >&2
exit 1
