"""Log lines never carry a secret, tracebacks included; with LOG_JSON they are JSON objects with the job id."""

from __future__ import annotations

import json
import logging
import sys

from shared.ops.log_setup import REDACTED, RedactingFormatter, job_id_var, secrets_of
from shared.settings import Settings

SETTINGS = Settings(  # type: ignore[call-arg]
    _env_file=None,
    ZHIPU_API_KEY="zhipu-key.abcdef",
    FLOWER_BASIC_AUTH="ops:flower-pass-123",  # type: ignore[arg-type]  # pydantic makes the SecretStr
    REDIS_URL="redis://:redis-pass-456@redis:6379/0",
    VECTOR_STORE_URL="postgresql://rag:pg-pass-789@db:5432/rag",
)
SECRETS = ("zhipu-key.abcdef", "flower-pass-123", "redis-pass-456", "pg-pass-789")


def _record(message: str) -> logging.LogRecord:
    try:
        raise RuntimeError(f"upstream refused key {SECRETS[0]} at redis://:{SECRETS[2]}@redis")
    except RuntimeError:
        return logging.LogRecord("t", logging.ERROR, __file__, 1, message, None, sys.exc_info())


def test_every_secret_setting_is_known() -> None:
    assert set(SECRETS) <= set(secrets_of(SETTINGS))


def test_plain_lines_and_tracebacks_are_redacted() -> None:
    line = RedactingFormatter(secrets_of(SETTINGS), as_json=False).format(_record(f"login {SECRETS[1]} {SECRETS[3]}"))
    assert "Traceback" in line and REDACTED in line
    assert not any(secret in line for secret in SECRETS)


def test_json_lines_carry_the_job_id_and_no_secret() -> None:
    token = job_id_var.set("job-123")
    try:
        line = RedactingFormatter(secrets_of(SETTINGS), as_json=True).format(_record(f"key {SECRETS[0]}"))
    finally:
        job_id_var.reset(token)
    body = json.loads(line)
    assert body["job_id"] == "job-123" and body["level"] == "ERROR" and "RuntimeError" in body["exc"]
    assert not any(secret in line for secret in SECRETS)


def test_uvicorn_lines_keep_their_own_format_and_are_redacted() -> None:
    """Regression: wrapping uvicorn's handlers failed every line with KeyError 'levelprefix' / 'client_addr'."""
    from uvicorn.logging import AccessFormatter, DefaultFormatter

    from shared.ops.log_setup import install

    for name, formatter, args in (
        ("t.uvicorn.error", DefaultFormatter("%(levelprefix)s %(message)s", use_colors=False), ()),
        (
            "t.uvicorn.access",
            AccessFormatter('%(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s', use_colors=False),
            ("127.0.0.1:1", "GET", f"/x?k={SECRETS[0]}", "1.1", 200),
        ),
    ):
        logger = logging.getLogger(name)
        handler = logging.StreamHandler()
        handler.setFormatter(formatter)
        logger.addHandler(handler)
        try:
            install(logger, SETTINGS)
            message = '%s - "%s %s HTTP/%s" %d' if args else f"started with {SECRETS[1]}"
            line = handler.format(logging.LogRecord(name, logging.INFO, __file__, 1, message, args or None, None))
        finally:
            logger.removeHandler(handler)
        assert line.startswith("INFO:")
        assert REDACTED in line and not any(secret in line for secret in SECRETS)
