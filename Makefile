# ragqueue: the two commands are `make demo` and `make test`.
SHELL := /bin/bash
export REDIS_URL ?= redis://127.0.0.1:6379/0
export API_PORT ?= 8000
export FLOWER_PORT ?= 5555
PY := .venv/bin/python
# pytest-xdist worker processes for `make test` (tests/support/worker_groups.py says what each one takes). More
# processes than cores: much of a test's time is spent waiting on the stacks it starts (heartbeats, restarts,
# idle timeouts), which another process's tests fill; but each process starts its own session stacks, so past a
# point the extra CPU outweighs the overlap. On 2 cores, 844 tests, the same day: 3 took 259 s, 4 took 275 s,
# 2 took 294 s (with the programs forked from harness/launcher.py; before it, 837 tests: 3 took 294-299 s). Again
# with 856 tests on a slower day: 3 took 254 s (369 CPU-s), 2 took 299 s (325 CPU-s). With 865 tests, after a
# session's end stopped costing CPU (an Intel Xeon host, 2026-12-03): 3 took 147 s, 4 took 121 s, 5 took 121 s,
# and 3 and 4 spent the same CPU (153-154 CPU-s; 5: 166), so the fourth process only fills idle time.
TEST_PROCESSES ?= 4

.PHONY: help install bytecode up down status demo test lint

help:  ## List the targets
	@grep -E '^[a-z]+:.*## ' Makefile | sed 's/:.*## /\t/'

install:  ## Create .venv and install ragqueue with dev tools
	@scripts/bootstrap.sh

# Our own modules compiled to bytecode, into their __pycache__ folders (git-ignored); only changed files again. With
# PYTHONDONTWRITEBYTECODE set, as on CI machines, every process would compile what it imports of ours from source
# (about 0.25 s of CPU for a worker or the API), and a test run starts about 170 of them.
bytecode:
	@.venv/bin/python -m compileall -q -j 0 api workers shared cli harness tests bench scripts

up: install bytecode  ## Start Redis (if none answers; append-only, in .run/redis), then workers, beat, Flower and the API under supervisord, restarted if they die (VECTOR_STORE=postgres: on PostgreSQL)
	@scripts/stack.sh up

down:  ## Stop what `make up` started (workers finish their running tasks first)
	@scripts/stack.sh down

status:  ## Each part of the stack: state, pid, uptime, restarts and last exit (exit 1 unless all run)
	@scripts/stack.sh status

demo: up  ## Start the stack, index docs/kb with a progress bar, stream an answer (with the ragq command)
	@export RAGQ_API=http://127.0.0.1:$(API_PORT); \
	echo '$$ ragq index docs/kb --collection demo'; .venv/bin/ragq index docs/kb --collection demo && \
	echo && echo '$$ ragq ask "什么是 KV 缓存？它为什么能加快大模型推理？" --collection demo' && \
	.venv/bin/ragq ask "什么是 KV 缓存？它为什么能加快大模型推理？" --collection demo
	@echo
	@echo "Next: .venv/bin/ragq chat -c demo   ragq --help   the chat page: http://127.0.0.1:$(API_PORT)/"
	@echo "API docs: http://127.0.0.1:$(API_PORT)/docs   Flower: http://127.0.0.1:$(FLOWER_PORT) (login: FLOWER_BASIC_AUTH in .env)   Status: make status   Stop: make down"

lint: install  ## ruff and mypy
	@.venv/bin/ruff check .
	@.venv/bin/mypy

# mypy runs beside the tests, at the lowest priority: the suite leaves a third of the CPU idle while it waits on
# the stacks it starts, and mypy's 16-27 s of CPU (cold) fit there instead of before the first test.
test: install bytecode  ## Lint, then run the test suite in TEST_PROCESSES processes (each starts its own Redis, PostgreSQL and Celery workers)
	@scripts/install_browser.sh
	@.venv/bin/ruff check .
	@typing=$$(mktemp); nice -n 19 .venv/bin/mypy >"$$typing" 2>&1 & mypy=$$!; \
	.venv/bin/pytest -n $(TEST_PROCESSES); tests=$$?; \
	wait $$mypy; typed=$$?; echo "mypy: $$(tail -n 1 "$$typing")"; [ $$typed -eq 0 ] || cat "$$typing"; rm -f "$$typing"; \
	exit $$((tests || typed))
