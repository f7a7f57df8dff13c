"""Map exceptions from retrieval and upstream providers to a stable error code and a message a person can act on."""

from __future__ import annotations

import sys

import httpx

from shared.store import EmbeddingMismatchError
from shared.streams.events import ErrorCode

# The SDKs' exception classes are looked up only in an SDK already imported: an exception of its types cannot
# exist otherwise, and importing `openai` and `zhipuai` here cost every worker about 0.7 s of CPU at start even
# when no provider uses them (the offline default).
_ZHIPU_ERRORS = "zhipuai.core._errors"


def _sdk_errors(module: str, *names: str) -> tuple[type[BaseException], ...]:
    loaded = sys.modules.get(module)
    return tuple(getattr(loaded, name) for name in names) if loaded is not None else ()


def _timeouts() -> tuple[type[BaseException], ...]:
    sdks = _sdk_errors(_ZHIPU_ERRORS, "APITimeoutError") + _sdk_errors("openai", "APITimeoutError")
    return (*sdks, httpx.TimeoutException, TimeoutError)


def _rate_limits() -> tuple[type[BaseException], ...]:
    return _sdk_errors(_ZHIPU_ERRORS, "APIReachLimitError") + _sdk_errors("openai", "RateLimitError")


def _statuses() -> tuple[type[BaseException], ...]:
    return _sdk_errors(_ZHIPU_ERRORS, "APIStatusError") + _sdk_errors("openai", "APIStatusError")


def _connections() -> tuple[type[BaseException], ...]:
    sdks = _sdk_errors(_ZHIPU_ERRORS, "APIConnectionError") + _sdk_errors("openai", "APIConnectionError")
    return (*sdks, httpx.HTTPError)


def _sdk_failures() -> tuple[type[BaseException], ...]:
    return _sdk_errors(_ZHIPU_ERRORS, "ZhipuAIError") + _sdk_errors("openai", "OpenAIError")


class UpstreamStreamError(Exception):
    """Anything that broke while reading the LLM's answer stream (a malformed chunk, a dropped connection)."""


def classify_upstream_error(exc: BaseException) -> tuple[ErrorCode, str]:
    """(code, message) for an exception raised while answering a query."""
    if isinstance(exc, UpstreamStreamError) and exc.__cause__ is not None:
        code, message = classify_upstream_error(exc.__cause__)
        if code != ErrorCode.INTERNAL:
            return code, message
        cause = exc.__cause__
        return ErrorCode.UPSTREAM, f"the language model's stream broke: {type(cause).__name__}: {cause}"
    if isinstance(exc, EmbeddingMismatchError):
        return ErrorCode.EMBEDDING_MISMATCH, str(exc)
    if isinstance(exc, LookupError):
        return ErrorCode.NOT_FOUND, str(exc)
    if isinstance(exc, _timeouts()):
        return ErrorCode.UPSTREAM_TIMEOUT, f"the language model did not answer in time: {exc}"
    if isinstance(exc, _rate_limits()):
        return ErrorCode.RATE_LIMITED, f"the language model is rate-limiting us (HTTP 429); retry later: {exc}"
    if isinstance(exc, _statuses()):
        return ErrorCode.UPSTREAM, f"the language model answered HTTP {getattr(exc, 'status_code', '?')}: {exc}"
    if isinstance(exc, _connections()):
        return ErrorCode.UPSTREAM, f"could not talk to the language model: {type(exc).__name__}: {exc}"
    if isinstance(exc, _sdk_failures()):
        return ErrorCode.UPSTREAM, f"the language model failed: {type(exc).__name__}: {exc}"
    return ErrorCode.INTERNAL, f"{type(exc).__name__}: {exc}"


def classify_embedding_error(exc: BaseException) -> tuple[ErrorCode | None, str]:
    """(code, message) for an index batch whose embedding failed after its retries; code None: not the upstream's.

    The message names what to do; the attempts made come from the note the embedding client adds when it gives up.
    """
    tried = "; ".join(getattr(exc, "__notes__", ())) or f"{type(exc).__name__}: {exc}"
    if isinstance(exc, _timeouts()):
        return ErrorCode.UPSTREAM_TIMEOUT, (
            f"the embedding service did not answer within UPSTREAM_TIMEOUT_S ({tried}); "
            "check that it is reachable, then index again"
        )
    if isinstance(exc, _rate_limits()):
        return ErrorCode.RATE_LIMITED, (
            f"the embedding service is rate-limiting us (HTTP 429; {tried}); "
            "index again later, or lower EMBED_CONCURRENCY"
        )
    if isinstance(exc, _statuses()):
        return ErrorCode.UPSTREAM, (
            f"the embedding service answered HTTP {getattr(exc, 'status_code', '?')} ({tried}): {exc}; "
            "index again once it recovers"
        )
    if isinstance(exc, _connections() + _sdk_errors(_ZHIPU_ERRORS, "ZhipuAIError")):
        return ErrorCode.UPSTREAM, f"could not use the embedding service ({tried}): {type(exc).__name__}: {exc}"
    return None, f"{type(exc).__name__}: {exc}"
