"""The pytest plugin: ``@pytest.mark.counterpoint_explore(...)`` on an ``async def`` test
explores it with ``cp.explore`` and fails it with ``report.assert_ok()``'s message.

Installed with the package (a ``pytest11`` entry point), so nothing needs enabling::

    @pytest.mark.counterpoint_explore(max_schedules=5000)
    async def test_deposits_add_up():
        ...  # runs once per schedule, each time on a fresh VM

The marker's keywords are ``cp.explore``'s (``strategy``, ``max_schedules``, ``seed``,
``preemption_bound``, ...) plus ``allow_partial`` for ``assert_ok``.  Each execution
calls the test function again with the same fixture values.  See docs/explore.md,
"A pytest plugin", for the rules chosen here.
"""

from __future__ import annotations

import inspect
import re
import shlex
from typing import Any

import pytest

MARKER = "counterpoint_explore"

_ORIGINAL = pytest.StashKey[Any]()  # the test function as collected (before any wrapping)
_SUMMARIES = pytest.StashKey[list]()  # (nodeid, summary line) of each explored test


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("counterpoint", "Counterpoint exploration")
    group.addoption(
        "--counterpoint-max-schedules",
        type=int,
        default=None,
        metavar="N",
        help="override max_schedules of every @pytest.mark.counterpoint_explore test",
    )
    group.addoption(
        "--counterpoint-schedule",
        default=None,
        metavar="SCHEDULE",
        help="run each @pytest.mark.counterpoint_explore test once under this schedule "
        "(a finding's, e.g. cp1:0112) instead of exploring: it fails with its own traceback",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(strategy='dfs', max_schedules=1000, allow_partial=False, **explore_keywords): "
        "explore this async def test under many schedules with counterpoint.explore and fail "
        "it unless the search is exhaustive and finds no failure or deadlock",
    )
    config.stash[_SUMMARIES] = []


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Keep the function as collected: another async plugin (pytest-asyncio) may swap
    # ``item.obj`` for a synchronous wrapper while the test runs.
    for item in items:
        if isinstance(item, pytest.Function) and item.get_closest_marker(MARKER) is not None:
            item.stash[_ORIGINAL] = item.obj


def pytest_runtest_setup(item: pytest.Item) -> None:
    if not isinstance(item, pytest.Function) or item.get_closest_marker(MARKER) is None:
        return
    # (not "asyncio": pytest-asyncio's auto mode marks every async test so; its wrapper
    # never runs a marked test, since pytest_pyfunc_call below runs the function as
    # collected and returns first)
    rivals = [name for name in ("anyio", "trio") if item.get_closest_marker(name)]
    if rivals:
        pytest.fail(
            f"{item.nodeid} is marked both {MARKER} and {rivals[0]}: one plugin must run it. "
            f"Counterpoint runs the test on its own VM (cp.* operations only); remove the "
            f"{rivals[0]} mark",
            pytrace=False,
        )


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    marker = pyfuncitem.get_closest_marker(MARKER)
    if marker is None:
        return None
    function = pyfuncitem.stash.get(_ORIGINAL, pyfuncitem.obj)
    keywords, allow_partial = _explore_keywords(pyfuncitem, marker, function)
    override = pyfuncitem.config.getoption("counterpoint_max_schedules")
    if override is not None:
        keywords["max_schedules"] = override
    arguments = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}

    def program() -> Any:
        return function(**arguments)

    # the findings' replay lines call the program by this name
    program.__name__ = function.__name__
    if arguments:
        passed = ", ".join(f"{name}={name}" for name in arguments)
        program.__name__ = f"(lambda: {function.__name__}({passed}))"

    import counterpoint as cp

    schedule = pyfuncitem.config.getoption("counterpoint_schedule")
    if schedule is not None:  # one run, as the finding's replay line would make it
        seed, max_steps = keywords.get("seed", 0), keywords.get("max_steps", 100_000)
        cp.VM(schedule=schedule, seed=seed, max_steps=max_steps).run(program())
        return True
    report = cp.explore(program, **keywords)
    summary = report.summary()
    pyfuncitem.user_properties.append((MARKER, summary))
    pyfuncitem.config.stash[_SUMMARIES].append((pyfuncitem.nodeid, summary))
    try:
        report.assert_ok(allow_partial=allow_partial)
    except AssertionError as error:
        failure = str(error)
    else:
        return True
    found = re.search(r"replay it: cp\.VM\(schedule='(cp1:[^']*)'", failure)
    if found:
        rerun = f"pytest {shlex.quote(pyfuncitem.nodeid)} --counterpoint-schedule={found[1]}"
        failure += f"\nrun it alone, with its traceback: {rerun}"
    # outside the except block: the message is the whole story, with no chained traceback
    pytest.fail(failure, pytrace=False)


def _explore_keywords(
    item: pytest.Function, marker: pytest.Mark, function: Any
) -> tuple[dict[str, Any], bool]:
    """The marker's keywords for ``cp.explore`` and its ``allow_partial``; the test
    fails with a message saying what to change when the marker cannot work."""
    where = f"@pytest.mark.{MARKER} on {item.nodeid}"
    if not inspect.iscoroutinefunction(function):
        pytest.fail(
            f"{where}: the test is a plain `def`; the marker explores an `async def` test "
            f"(each execution runs it as a fresh coroutine on a Counterpoint VM). Make it "
            f"`async def`, or call cp.explore(...) yourself in a plain test",
            pytrace=False,
        )
    if marker.args:
        pytest.fail(
            f"{where}: the marker takes keywords only (strategy=..., max_schedules=...), "
            f"not {marker.args!r}",
            pytrace=False,
        )
    import counterpoint as cp

    accepted = set(inspect.signature(cp.explore).parameters) - {"program"}
    keywords = dict(marker.kwargs)
    allow_partial = keywords.pop("allow_partial", False)
    unknown = sorted(set(keywords) - accepted)
    if unknown:
        pytest.fail(
            f"{where}: unknown keyword {unknown[0]!r}; the marker takes cp.explore's keywords "
            f"({', '.join(sorted(accepted))}) and allow_partial",
            pytrace=False,
        )
    keywords.setdefault("progress", False)  # no progress bar inside pytest's output
    return keywords, allow_partial


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    summaries = config.stash.get(_SUMMARIES, [])
    if not summaries or config.getoption("verbose") < 1:
        return
    terminalreporter.section("counterpoint explore")
    for nodeid, summary in summaries:
        terminalreporter.write_line(f"{nodeid}: {summary}")
