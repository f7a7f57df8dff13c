"""Exceptions from the providers' SDKs map to stable codes, and mapping them imports neither SDK."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import httpx2
import openai
import pytest
from zhipuai.core import _errors as zhipu_errors

from shared.providers.upstream_errors import classify_embedding_error, classify_upstream_error
from shared.streams.events import ErrorCode

URL = "http://upstream.invalid/v1/chat/completions"
# zhipuai's SDK is built on httpx, openai's (3.x) on its fork httpx2: each error carries its own library's objects.
REQUEST = httpx.Request("POST", URL)
OPENAI_REQUEST = httpx2.Request("POST", URL)


def _response(status: int) -> httpx.Response:
    return httpx.Response(status, request=REQUEST, json={"error": {"message": "no"}})


def _openai_response(status: int) -> httpx2.Response:
    return httpx2.Response(status, request=OPENAI_REQUEST, json={"error": {"message": "no"}})


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (openai.APITimeoutError(OPENAI_REQUEST), ErrorCode.UPSTREAM_TIMEOUT),
        (openai.RateLimitError("slow down", response=_openai_response(429), body=None), ErrorCode.RATE_LIMITED),
        (openai.InternalServerError("broken", response=_openai_response(500), body=None), ErrorCode.UPSTREAM),
        (openai.APIConnectionError(request=OPENAI_REQUEST), ErrorCode.UPSTREAM),
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
    exc = openai.InternalServerError("broken", response=_openai_response(503), body=None)
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
