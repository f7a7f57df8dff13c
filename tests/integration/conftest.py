"""Integration fixtures built on the session's stacks."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import SAMPLE_DOCS, client_for
from tests.support.jobs import index_and_wait
from tests.support.processes import Stack

OFFLINE_KB = "kb"


@pytest.fixture(scope="session")
def offline_kb(offline_stack: Stack) -> dict[str, Any]:
    """The sample docs indexed once on the offline stack into `OFFLINE_KB`; the finished index job's record.

    The local embedding model makes this the costliest index job of the session (tens of seconds of CPU on a
    small machine); tests that only read the collection share it, and none of them changes it.
    """
    with client_for(offline_stack) as client:
        return index_and_wait(client, OFFLINE_KB, [str(SAMPLE_DOCS)])  # the sample docs are an allowed import root
