#!/usr/bin/env bash
# Start or stop the ragqueue stack in the background under supervisord, which restarts any part that dies:
# index worker, query workers, beat (the reaper), Flower, API.
#   scripts/stack.sh up | down | status
# Ports and Redis come from the environment: API_PORT (8000), FLOWER_PORT (5555), REDIS_URL; sizes from
# INDEX_CONCURRENCY (1), QUERY_WORKERS (one per core, at most 4), QUERY_CONCURRENCY (32 threads each) and
# API_WORKERS (1); how long a program must stay up before its start counts from SUPERVISOR_STARTSECS (10); the
# API's keep-alive from the API_KEEPALIVE_S setting (environment or .env, see shared/settings.py).
# VECTOR_STORE=postgres starts a PostgreSQL with pgvector under $RUN_DIR/postgres for the store, unless
# VECTOR_STORE_URL names one. RUN_DIR (.run) holds supervisord's config, socket and log, each
# program's log, and the data of the Redis and PostgreSQL started here.
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
RUN_DIR=$(mkdir -p "${RUN_DIR:-.run}" && cd "${RUN_DIR:-.run}" && pwd)  # absolute: supervisord's paths
export RUN_DIR
BIN=.venv/bin
CONF=$RUN_DIR/supervisord.conf

ctl() { $BIN/supervisorctl -c "$CONF" "$@"; }

supervisord_answers() { [ -f "$CONF" ] && ctl pid >/dev/null 2>&1; }

running() { # pid: alive and not a zombie. Redis and supervisord daemonize, so init reaps them once they exit: some
  # inits (a Firecracker VM's) take up to 2 s, and `kill -0` succeeds on a zombie until then.
  kill -0 "$1" 2>/dev/null || return 1
  [ -r "/proc/$1/stat" ] || return 0
  [[ $(sed -E 's/^.*\) (.).*/\1/' "/proc/$1/stat" 2>/dev/null) != Z ]]
}

stop() { # name: a process with a pid file in RUN_DIR
  local pidfile="$RUN_DIR/$1.pid"
  [ -f "$pidfile" ] || return 0
  local pid; pid=$(cat "$pidfile")
  if running "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do running "$pid" || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    echo "  $1 stopped"
  fi
  rm -f "$pidfile"
}

wait_ready() {
  for i in $(seq 120); do
    if curl -fsS "http://127.0.0.1:$API_PORT/readyz" >/dev/null 2>&1; then return 0; fi
    if ((i % 4 == 0)) && [[ $(ctl status 2>&1 || true) == *FATAL* ]]; then break; fi  # it gave up on one
    sleep 0.5
  done
  echo "The API did not become ready; last answer from /readyz:" >&2
  curl -sS "http://127.0.0.1:$API_PORT/readyz" >&2 || true
  echo >&2
  $BIN/python scripts/stack_status.py --run-dir "$RUN_DIR" >&2 || true
  echo "Logs are in $RUN_DIR/*.log" >&2
  return 1
}

case "${1:-}" in
  up)
    scripts/ensure_redis.sh
    if [ "${VECTOR_STORE:-}" = postgres ] && [ -z "${VECTOR_STORE_URL:-}" ]; then
      # PostgreSQL + pgvector for the store, started here when no VECTOR_STORE_URL is given.
      VECTOR_STORE_URL=$($BIN/python scripts/ensure_postgres.py --folder "$RUN_DIR/postgres")
      export VECTOR_STORE_URL
    fi
    # Flower's basic auth (generated into .env on first run) goes to supervisord's environment, which the
    # programs inherit, never to --basic-auth, so the password never shows in `ps`. The other programs
    # read the same .env through their settings anyway.
    FLOWER_BASIC_AUTH=$(PYTHONPATH=. $BIN/python scripts/flower_auth.py)
    export FLOWER_BASIC_AUTH
    echo "Starting ragqueue (Redis $REDIS_URL, store ${VECTOR_STORE_URL:-embedded SQLite under DATA_DIR}):"
    if supervisord_answers; then
      # Its environment and config were fixed when it started: `make down && make up` applies new settings.
      echo "  supervisord already running (pid $(ctl pid)); starting whatever is stopped"
      ctl start all | grep -v "ERROR (already started)" || true
    else
      PYTHONPATH=. $BIN/python scripts/supervisor_conf.py --run-dir "$RUN_DIR" --api-port "$API_PORT" \
        --flower-port "$FLOWER_PORT" --api-workers "$API_WORKERS" --index-concurrency "$INDEX_CONCURRENCY" \
        --query-workers "$QUERY_WORKERS" --query-concurrency "$QUERY_CONCURRENCY" \
        --startsecs "${SUPERVISOR_STARTSECS:-10}" >"$CONF"
      $BIN/supervisord -c "$CONF"
      echo "  supervisord started (config $CONF); each program logs to $RUN_DIR/<program>.log"
    fi
    wait_ready
    echo "ragqueue is up: API http://127.0.0.1:$API_PORT/docs  Flower http://127.0.0.1:$FLOWER_PORT (login: FLOWER_BASIC_AUTH in .env)  (status: make status, stop: make down)"
    ;;
  down)
    if supervisord_answers; then
      # supervisord's own shutdown stops by priority, highest first (`stop all` would signal all at once): the
      # API stops taking jobs, then Flower and beat, then the workers finish their running tasks
      # (scripts/supervisor_conf.py); it exits when all have stopped.
      supervisord_pid=$(cat "$RUN_DIR/supervisord.pid")
      ctl shutdown >/dev/null
      waited=0
      while running "$supervisord_pid"; do
        if ((++waited % 50 == 0)); then echo "  waiting for running tasks to finish (see $RUN_DIR/supervisord.log)"; fi
        sleep 0.2
      done
      echo "  supervisord and its programs stopped"
    fi
    # Pid files left by a stack started before supervisord ran it, then the Redis that ensure_redis.sh started.
    for pidfile in "$RUN_DIR"/*.pid; do
      name=$(basename "$pidfile" .pid)
      if [ -e "$pidfile" ] && [ "$name" != redis ]; then stop "$name"; fi
    done
    stop redis
    if [ -d "$RUN_DIR/postgres" ]; then $BIN/python scripts/ensure_postgres.py --folder "$RUN_DIR/postgres" --stop; fi
    ;;
  status)
    rc=0
    $BIN/python scripts/stack_status.py --run-dir "$RUN_DIR" || rc=$?
    if [ -f "$RUN_DIR/redis.pid" ] && running "$(cat "$RUN_DIR/redis.pid")"; then
      echo "redis: running (pid $(cat "$RUN_DIR/redis.pid"), append-only file in $RUN_DIR/redis)"
    else
      echo "redis: none started here (make up starts one when nothing answers at $REDIS_URL)"
    fi
    pg_pid=$(head -n 1 "$RUN_DIR/postgres/postmaster.pid" 2>/dev/null || true)
    if [ -n "$pg_pid" ] && running "$pg_pid"; then
      echo "postgres: running (pid $pg_pid, data in $RUN_DIR/postgres)"
    fi
    exit "$rc"
    ;;
  *) echo "usage: scripts/stack.sh up|down|status" >&2; exit 2 ;;
esac
