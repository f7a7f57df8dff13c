"""Exceptions from the providers' SDKs map to stable codes, and mapping them imports neither SDK."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import openai
import pytest
from zhipuai.core import _errors as zhipu_errors

from shared.providers.upstream_errors import classify_embedding_error, classify_upstream_error
from shared.streams.events import ErrorCode

REQUEST = httpx.Request("POST", "http://upstream.invalid/v1/chat/completions")


def _response(status: int) -> httpx.Response:
    return httpx.Response(status, request=REQUEST, json={"error": {"message": "no"}})


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (openai.APITimeoutError(REQUEST), ErrorCode.UPSTREAM_TIMEOUT),
        (openai.RateLimitError("slow down", response=_response(429), body=None), ErrorCode.RATE_LIMITED),
        (openai.InternalServerError("broken", response=_response(500), body=None), ErrorCode.UPSTREAM),
        (openai.APIConnectionError(request=REQUEST), ErrorCode.UPSTREAM),
        (zhipu_errors.APIReachLimitError("slow down", response=_response(429)), ErrorCode.RATE_LIMITED),
        (zhipu_errors.APIInternalError("broken", response=_response(500)), ErrorCode.UPSTREAM),
        (httpx.ReadTimeout("read", request=REQUEST), ErrorCode.UPSTREAM_TIMEOUT),
        (httpx.ConnectError("refused", request=REQUEST), ErrorCode.UPSTREAM),
        (ValueError("ours"), ErrorCode.INTERNAL),
    ],
)
def test_an_answers_exception_gets_its_code(exc: BaseException, code: ErrorCode) -> None:
    assert classify_upstream_error(exc)[0] == code


def test_an_upstream_status_is_named_in_the_message() -> None:
    exc = openai.InternalServerError("broken", response=_response(503), body=None)
    assert "HTTP 503" in classify_upstream_error(exc)[1]
    assert "HTTP 503" in classify_embedding_error(exc)[1]
    assert classify_embedding_error(ValueError("ours"))[0] is None


def test_classifying_an_error_imports_no_provider_sdk() -> None:
    probe = (
        "from shared.providers.upstream_errors import classify_upstream_error\n"
        "classify_upstream_error(TimeoutError())\n"
        "import json, sys\nprint(json.dumps(sorted(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    loaded = set(json.loads(out.splitlines()[-1]))
    assert not {"openai", "zhipuai"} & loaded
