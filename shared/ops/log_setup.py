"""Logging for every process: secrets redacted always, JSON lines with the job id when LOG_JSON is set.

The job id travels in a context variable: the API sets it where a job is created or looked up
(api/job_records.py), workers where a task starts (workers/log_signals.py), so one `grep job_id` follows a job
across the API and the workers. Redaction happens in the formatter, on the finished line, tracebacks included:
the Zhipu key, Flower's password and the passwords inside REDIS_URL and VECTOR_STORE_URL never reach a log.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from urllib.parse import urlsplit

from shared.settings import Settings

job_id_var: ContextVar[str | None] = ContextVar("ragqueue_job_id", default=None)
REDACTED = "***"
PLAIN_FORMAT = "[%(asctime)s: %(levelname)s/%(processName)s] %(message)s"


@contextmanager
def logging_job(job_id: str) -> Iterator[None]:
    """Log lines inside carry `job_id`; the id they carried before comes back after."""
    token = job_id_var.set(job_id)
    try:
        yield
    finally:
        job_id_var.reset(token)


def secrets_of(settings: Settings) -> list[str]:
    """Every secret value the settings hold, longest first (so a password inside a URL goes whole)."""
    found: list[str] = []
    if settings.ZHIPU_API_KEY:
        found.append(settings.ZHIPU_API_KEY)
    if settings.FLOWER_BASIC_AUTH is not None:
        for entry in settings.FLOWER_BASIC_AUTH.get_secret_value().split(","):
            found.append(entry)
            found.append(entry.partition(":")[2])
    found += [key.get_secret_value() for key in settings.API_KEYS]
    if settings.STREAM_TOKEN_SECRET is not None:
        found.append(settings.STREAM_TOKEN_SECRET.get_secret_value())
    for url in (settings.REDIS_URL, settings.VECTOR_STORE_URL):
        password = urlsplit(url).password if url else None
        if password:
            found.append(password)
    return sorted({s for s in found if len(s) >= 4}, key=len, reverse=True)


class RedactingFormatter(logging.Formatter):
    """A formatter whose every line, traceback included, has the secrets replaced; JSON lines if asked."""

    def __init__(self, secrets: list[str], as_json: bool, inner: logging.Formatter | None = None) -> None:
        super().__init__(PLAIN_FORMAT)
        self.secrets = secrets
        self.as_json = as_json
        # A handler's own formatter (uvicorn's fills `%(levelprefix)s`, `%(client_addr)s`…) keeps formatting
        # the plain lines; a bare `logging.Formatter` with its format string would fail on those fields.
        self.inner = inner

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        return text

    def format(self, record: logging.LogRecord) -> str:
        if not self.as_json:
            plain = self.inner.format(record) if self.inner is not None else super().format(record)
            return self.redact(plain)
        line: dict[str, object] = {
            "ts": round(record.created, 3),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)),
            "level": record.levelname,
            "logger": record.name,
            "process": record.processName,
            "message": record.getMessage(),
        }
        job_id = getattr(record, "job_id", None) or job_id_var.get()
        if job_id:
            line["job_id"] = job_id
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return self.redact(json.dumps(line, ensure_ascii=False))


def install(logger: logging.Logger, settings: Settings) -> None:
    """Give every handler of `logger` the redacting formatter (wrapping a plain handler's own formatter)."""
    for handler in logger.handlers:
        inner = handler.formatter
        if isinstance(inner, RedactingFormatter):  # installed already: wrap what it wrapped
            inner = inner.inner
        handler.setFormatter(RedactingFormatter(secrets_of(settings), settings.LOG_JSON, inner))


def configure_api_logging(settings: Settings) -> None:
    """The API process: our loggers and uvicorn's, on one redacting (and, with LOG_JSON, JSON) format."""
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler())
        root.setLevel(logging.INFO)
    for name in ("", "uvicorn", "uvicorn.error", "uvicorn.access"):
        install(logging.getLogger(name), settings)
