#!/usr/bin/env bash
# Start or stop the ragqueue stack in the background: index worker, query workers, beat (the reaper), Flower, API.
#   scripts/stack.sh up | down | status
# Ports and Redis come from the environment: API_PORT (8000), FLOWER_PORT (5555), REDIS_URL; sizes from
# INDEX_CONCURRENCY (1), QUERY_WORKERS (one per core, at most 4), QUERY_CONCURRENCY (32 threads each) and API_WORKERS (1); the API's keep-alive from
# the API_KEEPALIVE_S setting (environment or .env, see shared/settings.py). VECTOR_STORE=postgres starts a
# PostgreSQL with pgvector under $RUN_DIR/postgres for the store, unless VECTOR_STORE_URL names one.
set -euo pipefail
cd "$(dirname "$0")/.."
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379/0}
API_PORT=${API_PORT:-8000}
FLOWER_PORT=${FLOWER_PORT:-5555}
INDEX_CONCURRENCY=${INDEX_CONCURRENCY:-1}
QUERY_CONCURRENCY=${QUERY_CONCURRENCY:-32}
cores=$(nproc 2>/dev/null || echo 1)
QUERY_WORKERS=${QUERY_WORKERS:-$((cores < 4 ? cores : 4))}  # a process is bound by its GIL: one per core
API_WORKERS=${API_WORKERS:-1}
RUN_DIR=${RUN_DIR:-.run}
BIN=.venv/bin

start() { # name, command...
  local name=$1; shift
  if [ -f "$RUN_DIR/$name.pid" ] && kill -0 "$(cat "$RUN_DIR/$name.pid")" 2>/dev/null; then
    echo "  $name already running (pid $(cat "$RUN_DIR/$name.pid"))"; return
  fi
  nohup "$@" >"$RUN_DIR/$name.log" 2>&1 &
  echo $! >"$RUN_DIR/$name.pid"
  echo "  $name started (pid $!, log $RUN_DIR/$name.log)"
}

stop() { # name
  local pidfile="$RUN_DIR/$1.pid"
  [ -f "$pidfile" ] || return 0
  local pid; pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    echo "  $1 stopped"
  fi
  rm -f "$pidfile"
}

wait_ready() {
  for _ in $(seq 120); do
    if curl -fsS "http://127.0.0.1:$API_PORT/readyz" >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  echo "The API did not become ready; last answer from /readyz:" >&2
  curl -sS "http://127.0.0.1:$API_PORT/readyz" >&2 || true
  echo >&2; echo "Logs are in $RUN_DIR/*.log" >&2
  return 1
}

case "${1:-}" in
  up)
    mkdir -p "$RUN_DIR"
    scripts/ensure_redis.sh
    if [ "${VECTOR_STORE:-}" = postgres ] && [ -z "${VECTOR_STORE_URL:-}" ]; then
      # PostgreSQL + pgvector for the store, started here when no VECTOR_STORE_URL is given (issue 8).
      VECTOR_STORE_URL=$($BIN/python scripts/ensure_postgres.py --folder "$RUN_DIR/postgres")
      export VECTOR_STORE_URL
    fi
    echo "Starting ragqueue (Redis $REDIS_URL, store ${VECTOR_STORE_URL:-embedded SQLite under DATA_DIR}):"
    # Every worker also consumes `maintenance` (the reaper), so it runs while any worker lives.
    start worker-index $BIN/celery -A workers.celery_app:app worker -Q index,maintenance -P prefork \
      -c "$INDEX_CONCURRENCY" -n "index@%h" --loglevel=INFO
    for i in $(seq "$QUERY_WORKERS"); do  # one process per core scales past one process's GIL
      start "worker-query-$i" $BIN/celery -A workers.celery_app:app worker -Q query,maintenance -P threads \
        -c "$QUERY_CONCURRENCY" -n "query-$i@%h" --loglevel=INFO
    done
    # Flower with basic auth from FLOWER_BASIC_AUTH (generated into .env on first run); an environment variable,
    # not --basic-auth, so the password never shows in `ps` (issue 10).
    # Sends the reaper every REAPER_INTERVAL_S; several beats are safe (the reaper holds a Redis lock).
    start beat $BIN/celery -A workers.celery_app:app beat -s "$RUN_DIR/celerybeat-schedule" --loglevel=INFO
    flower_auth=$(PYTHONPATH=. $BIN/python scripts/flower_auth.py)
    FLOWER_BASIC_AUTH=$flower_auth start flower $BIN/celery -A workers.celery_app:app flower \
      --port="$FLOWER_PORT" --address=127.0.0.1
    # Idle keep-alive connections outlive the clients' and proxies' own idle timeouts (issue 13).
    keepalive=$($BIN/python -c 'from shared.settings import Settings; print(Settings().API_KEEPALIVE_S)')
    # API_WORKERS uvicorn processes share the port; they share nothing else but Redis, so a stream begun on one
    # resumes on another with Last-Event-ID (issue 10).
    start api $BIN/uvicorn api.main:app --host 127.0.0.1 --port "$API_PORT" --timeout-keep-alive "$keepalive" \
      --workers "$API_WORKERS"
    wait_ready
    echo "ragqueue is up: API http://127.0.0.1:$API_PORT/docs  Flower http://127.0.0.1:$FLOWER_PORT (login: FLOWER_BASIC_AUTH in .env)  (stop: make down)"
    ;;
  down)
    for pidfile in "$RUN_DIR"/worker-query-*.pid; do [ -e "$pidfile" ] && stop "$(basename "$pidfile" .pid)"; done
    for name in api flower beat worker-index; do stop "$name"; done
    stop redis  # only a Redis that ensure_redis.sh started has a pid file here
    if [ -d "$RUN_DIR/postgres" ]; then $BIN/python scripts/ensure_postgres.py --folder "$RUN_DIR/postgres" --stop; fi
    ;;
  status)
    names="api flower beat worker-index redis"
    for pidfile in "$RUN_DIR"/worker-query-*.pid; do [ -e "$pidfile" ] && names="$names $(basename "$pidfile" .pid)"; done
    for name in $names; do
      if [ -f "$RUN_DIR/$name.pid" ] && kill -0 "$(cat "$RUN_DIR/$name.pid")" 2>/dev/null; then
        echo "$name: running (pid $(cat "$RUN_DIR/$name.pid"))"
      else
        echo "$name: stopped"
      fi
    done
    ;;
  *) echo "usage: scripts/stack.sh up|down|status" >&2; exit 2 ;;
esac
