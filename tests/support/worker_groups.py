"""How `make test` splits the suite between pytest-xdist worker processes.

Each xdist worker builds its own session fixtures (its own Redis, stacks, fake upstream), so the unit of
distribution is what a fixture costs to build, not a test:
- a test module is one unit: its module-scoped stacks start once, in one worker;
- the modules that use a session fixture too costly to build twice are one unit together (SHARED);
- the longest units run first (SECONDS, measured), then the rest by what they start: stacks first, in-process
  ones last. A worker takes its next unit when it is nearly done with its last, so with the long work handed out
  first the workers finish together instead of one running a 40 s module while the others have nothing left.
The scheduler runs in the controlling process, which sees only test ids, so SHARED names modules by path;
every worker checks at collection that the table is complete (a module that starts using such a fixture
without being listed fails the run instead of silently building the fixture twice).
Without xdist this plugin only orders the modules (each stays whole, in the order above).
"""

from __future__ import annotations

from typing import Any

import pytest

# Session fixtures that cost tens of seconds of CPU to build, and the modules that use them.
SHARED: dict[str, tuple[str, ...]] = {
    # the sample docs embedded with the local model
    "offline_kb": (
        "tests/e2e/test_cli_eval.py",
        "tests/e2e/test_evaluation_keys.py",
        "tests/integration/test_evaluation.py",
        "tests/integration/test_job_listing.py",
        "tests/integration/test_metrics.py",
        "tests/integration/test_offline_default.py",
        "tests/integration/test_query_batches.py",
    ),
    # a stack of its own for JSON logs and coalesced tokens
    "json_coalescing_stack": ("tests/integration/test_json_logs.py", "tests/integration/test_token_coalescing.py"),
}
UNIT_OF = {module: fixture for fixture, modules in SHARED.items() for module in modules}

# Seconds the longest units took (their tests' setup, call and teardown), `pytest -n 4` on 2 cores, 2026-12-03.
# They set only the order: a stale or missing figure costs balance, never a test. Measure again when a unit
# grows or shrinks by several seconds (time each test's start and end per worker in a throwaway plugin).
SECONDS: dict[str, float] = {
    "tests/integration/test_faults.py": 46,
    "tests/integration/test_make_up.py": 42,
    "offline_kb": 36,
    "tests/integration/test_reaper.py": 29,
    "tests/integration/test_stream_endings.py": 23,
    "tests/e2e/test_schema_fuzz.py": 19,
    "tests/integration/test_admission.py": 16,
    "tests/integration/test_key_limits_stack.py": 15,
    "tests/e2e/test_browser_eventsource.py": 15,
    "tests/integration/test_redis_restart_stream.py": 13,
    "tests/e2e/test_auth_browser.py": 12,
    "tests/e2e/test_auth.py": 12,
    "tests/e2e/test_cli.py": 12,
    "tests/unit/test_ocr_loaders.py": 11,
    "tests/integration/test_real_folder.py": 10,
    "tests/integration/test_readiness_codes.py": 9,
    "tests/integration/test_self_hosted_models.py": 6,
    "tests/integration/test_bulk_indexing.py": 6,
    "tests/e2e/test_web_page.py": 6,
    "tests/e2e/test_idempotency_in_progress.py": 6,
    "tests/integration/test_openai_compatible.py": 6,
    "tests/e2e/test_keepalive.py": 6,
    "tests/integration/test_postgres_stack.py": 6,
    "tests/unit/test_zhipu_llm.py": 6,
    "tests/e2e/test_bad_input.py": 5,
    "tests/e2e/test_feedback.py": 5,
    "tests/store/test_search_indexes.py": 5,
}
STACK_FIXTURES = ("offline_stack", "zhipu_stack", "keyed_api", *SHARED)


def unit_of(nodeid: str) -> str:
    """The unit of work a test belongs to: its module, or the shared fixture's name."""
    module = nodeid.split("::", 1)[0]
    return UNIT_OF.get(module, module)


def _fixture_names(item: pytest.Item) -> list[str]:
    """The fixtures a test uses (a test function's; other items, such as a doctest, use none)."""
    return list(getattr(item, "fixturenames", ()))


def _cost(item: pytest.Item) -> int:
    """2: the module starts something of its own; 1: it uses a session stack; 0: it runs in process."""
    definitions = item._fixtureinfo.name2fixturedefs  # type: ignore[attr-defined]
    if any(definitions[name][-1].scope == "module" for name in _fixture_names(item) if name in definitions):
        return 2
    return 1 if any(name in _fixture_names(item) for name in STACK_FIXTURES) else 0


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    unlisted = sorted(
        {
            f"{item.nodeid.split('::', 1)[0]} uses {fixture}"
            for item in items
            for fixture in SHARED
            if fixture in _fixture_names(item) and UNIT_OF.get(item.nodeid.split("::", 1)[0]) != fixture
        }
    )
    if unlisted:
        raise pytest.UsageError(f"add to SHARED in {__file__}: " + "; ".join(unlisted))
    cost: dict[str, int] = {}
    first: dict[str, int] = {}
    for index, item in enumerate(items):
        unit = unit_of(item.nodeid)
        cost[unit] = max(cost.get(unit, 0), _cost(item))
        first.setdefault(unit, index)
    position = {id(item): index for index, item in enumerate(items)}
    items.sort(key=lambda item: _order(unit_of(item.nodeid), cost, first, position[id(item)]))


def _order(unit: str, cost: dict[str, int], first: dict[str, int], position: int) -> tuple[float, int, int, int]:
    """Where a test goes: longest measured unit first, then the unmeasured by cost, each unit whole, in file order."""
    return (-SECONDS.get(unit, 0.0), -cost[unit], first[unit], position)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Whole units to each worker, in collection order (the order above), for any of xdist's load modes."""
    if config.getoption("dist") not in ("load", "loadscope", "loadfile", "loadgroup"):
        return None
    from xdist.scheduler import LoadScopeScheduling

    class UnitScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return unit_of(nodeid)

    config.option.loadscopereorder = False  # keep the longest-first order instead of the most-tests-first one
    return UnitScheduling(config, log)
