"""docker-compose.yml and .env.example agree with the code: modules, queues, settings; nothing open by default.

No Docker engine runs here, so the file itself is checked: a renamed module, queue or setting fails this test.
"""

from __future__ import annotations

import importlib
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.jobs.tasks import INDEX_QUEUE, MAINTENANCE_QUEUE, QUERY_QUEUE
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
APP_SERVICES = {name: s for name, s in SERVICES.items() if s.get("image") == "ragqueue:dev"}
INTERPOLATED = set(re.findall(r"\$\{([A-Z0-9_]+)", (ROOT / "docker-compose.yml").read_text()))


def _dockerfile_command() -> list[str]:
    line = next(x for x in (ROOT / "Dockerfile").read_text().splitlines() if x.startswith("CMD "))
    argv = shlex.split(yaml.safe_load(line.removeprefix("CMD "))[-1])  # ["sh", "-c", "exec uvicorn ..."]
    return argv[1:] if argv[0] == "exec" else argv


def _command(service: dict[str, Any]) -> list[str]:
    command = service.get("command")
    if command is None:
        return _dockerfile_command()
    return command if isinstance(command, list) else shlex.split(command)


def _resolve(target: str) -> Any:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def test_the_deployable_services_are_all_there() -> None:
    assert {"redis", "api", "worker-index", "worker-query", "beat", "flower"} <= set(SERVICES)
    assert SERVICES["postgres"]["profiles"] == ["postgres"] and "pgvector" in SERVICES["postgres"]["image"]
    for name in ("redis", "api", "worker-index", "worker-query", "flower", "postgres"):
        assert SERVICES[name].get("healthcheck"), f"{name} has no healthcheck"


@pytest.mark.parametrize("name", sorted(APP_SERVICES))
def test_every_command_names_a_real_module_queue_and_pool(name: str) -> None:
    argv = _command(APP_SERVICES[name])
    if argv[0] == "uvicorn":
        assert _resolve(argv[1]).__class__.__name__ == "FastAPI"
        return
    assert argv[:2] == ["celery", "-A"], argv
    celery = _resolve(argv[2])
    subcommand = argv[3]
    assert subcommand in {"worker", "beat", "flower"}
    if subcommand == "worker":
        options = dict(zip(argv[4::2], argv[5::2], strict=False))
        known = {q.name for q in celery.conf.task_queues}
        queues = set(options["-Q"].split(","))
        assert queues <= known, queues - known
        assert MAINTENANCE_QUEUE in queues  # every worker runs the reaper
        assert options["-P"] in {"prefork", "threads"}
    if subcommand == "beat":
        assert celery.conf.beat_schedule  # something to send


def test_workers_consume_each_queue_with_the_pool_it_needs() -> None:
    pools = {}
    for name in ("worker-index", "worker-query"):
        argv = _command(SERVICES[name])
        options = dict(zip(argv[4::2], argv[5::2], strict=False))
        for queue in options["-Q"].split(","):
            pools[queue] = options["-P"]
    assert pools[INDEX_QUEUE] == "prefork" and pools[QUERY_QUEUE] == "threads"


@pytest.mark.parametrize("name", sorted(APP_SERVICES))
def test_every_environment_variable_of_the_app_is_a_setting(name: str) -> None:
    unknown = set(APP_SERVICES[name].get("environment") or {}) - set(Settings.model_fields)
    assert not unknown, f"{name} sets {unknown}, which shared/settings.py does not read"


def test_every_key_in_env_example_is_a_setting_or_a_compose_variable() -> None:
    keys = {
        line.split("=", 1)[0].lstrip("# ").strip()
        for line in (ROOT / ".env.example").read_text().splitlines()
        if re.match(r"^#? ?[A-Z][A-Z0-9_]*=", line)
    }
    assert {"REDIS_PASSWORD", "FLOWER_BASIC_AUTH"} <= keys
    unknown = keys - set(Settings.model_fields) - INTERPOLATED
    assert not unknown, unknown
    Settings(_env_file=ROOT / ".env.example")  # type: ignore[call-arg]  # the example as given loads


def test_redis_and_flower_are_not_published_and_need_passwords() -> None:
    for name in ("redis", "flower"):
        assert "ports" not in SERVICES[name], f"{name} must not be published by default"
    redis_command = " ".join(_command(SERVICES["redis"]))
    assert "--requirepass" in redis_command and "--appendonly yes" in redis_command
    assert any(v.startswith("redis:") for v in SERVICES["redis"]["volumes"])
    assert ":${REDIS_PASSWORD:?" in APP_SERVICES["api"]["environment"]["REDIS_URL"]
    assert "FLOWER_BASIC_AUTH:?" in SERVICES["flower"]["environment"]["FLOWER_BASIC_AUTH"]
    assert "FLOWER_UNAUTHENTICATED_API" not in (ROOT / "docker-compose.yml").read_text()
    assert "FLOWER_UNAUTHENTICATED_API" not in (ROOT / "scripts" / "stack.sh").read_text()
