"""`ragq` starts on what its command needs: the evaluation models and the server's settings are not imported by
every run, and a plain-HTTP API gets no certificate store loaded; an HTTPS one still has its certificate checked."""

from __future__ import annotations

import ssl
import subprocess
import sys

from cli.client import ApiClient
from harness.processes import ROOT


def test_importing_ragq_loads_neither_the_settings_nor_the_evaluation_models() -> None:
    heavy = ("pydantic_settings", "shared.settings", "shared.evaluation.result", "cli.evaluation")
    code = f"import sys, cli.main\nloaded = sorted(m for m in sys.modules if m in {heavy!r})\nassert not loaded, loaded"
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr


def _verify_mode(client: ApiClient) -> ssl.VerifyMode:
    context = client.http._transport._pool._ssl_context  # type: ignore[attr-defined]
    return context.verify_mode  # type: ignore[no-any-return]


def test_a_plain_http_api_loads_no_certificates_and_an_https_one_verifies_them() -> None:
    with ApiClient("http://127.0.0.1:8000") as plain, ApiClient("https://rag.example.com") as secure:
        assert _verify_mode(plain) == ssl.CERT_NONE
        assert _verify_mode(secure) == ssl.CERT_REQUIRED
        assert secure.http._transport._pool._ssl_context.check_hostname  # type: ignore[attr-defined]
