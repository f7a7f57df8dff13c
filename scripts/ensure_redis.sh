#!/usr/bin/env bash
# Make sure a Redis answers at REDIS_URL; start a local redis-server for it if none does.
# The one started here keeps its data in $RUN_DIR/redis as an append-only file (fsync every second), so a
# restart of it (or of the machine) keeps the job records, replay buffers and queued tasks.
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
mkdir -p "$RUN_DIR/redis"
run_dir=$(cd "$RUN_DIR" && pwd)
echo "Starting redis-server on $host:$port (append-only file in $RUN_DIR/redis, pid in $RUN_DIR/redis.pid)"
# No RDB snapshots: the append-only file alone is what a restart loads, and Redis 7 compacts it itself.
redis-server --port "$port" --bind 127.0.0.1 --daemonize yes --save "" \
  --appendonly yes --appendfsync everysec --dir "$run_dir/redis" \
  --pidfile "$run_dir/redis.pid" --logfile "$run_dir/redis.log"
for _ in $(seq 300); do ping && exit 0; sleep 0.1; done  # a long append-only file takes a while to load
echo "redis-server did not come up; see $RUN_DIR/redis.log" >&2
exit 1
