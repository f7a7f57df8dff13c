"""A skipped test fails the run: a test that silently stops running (a missing service, a missing tool) is a
hole in the suite, not a pass. Set ALLOW_SKIPS=1 to look at a partial run on a machine that lacks something."""

from __future__ import annotations

import os

import pytest


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if exitstatus != pytest.ExitCode.OK or os.environ.get("ALLOW_SKIPS") == "1":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter is not None else []
    if skipped:
        if reporter is not None:
            reporter.ensure_newline()
            reporter.write_line(
                f"{len(skipped)} test(s) skipped: a skip fails the run (ALLOW_SKIPS=1 to allow)", red=True
            )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
