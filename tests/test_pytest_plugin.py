"""The pytest plugin: ``@pytest.mark.counterpoint_explore`` explores an ``async def`` test.

Each test writes a small test file and runs pytest on it (``pytester``): in this process,
and once in a subprocess that finds the plugin only through its ``pytest11`` entry point.
"""

from __future__ import annotations

import re

import pytest

pytest_plugins = ["pytester"]

LOST_UPDATE = """
import pytest
import counterpoint as cp

@pytest.mark.counterpoint_explore(strategy="dfs", max_schedules=1000)
async def test_two_deposits():
    box = {"n": 0}

    async def add():
        seen = box["n"]
        await cp.checkpoint()
        box["n"] = seen + 1

    await cp.par(add(), add())
    assert box["n"] == 2, "an update was lost"
"""

LOCKED_COUNTER = """
import pytest
import counterpoint as cp

@pytest.mark.counterpoint_explore(max_schedules=1000)
async def test_locked_deposits():
    box = {"n": 0}
    lock = cp.Lock()

    async def add():
        async with lock:
            seen = box["n"]
            await cp.checkpoint()
            box["n"] = seen + 1

    await cp.par(add(), add(), add())
    assert box["n"] == 3
"""


def _output(result: pytest.RunResult) -> str:
    return "\n".join(result.outlines + result.errlines)


def test_a_race_free_test_passes_and_verbose_output_shows_the_search_summary(pytester):
    pytester.makepyfile(LOCKED_COUNTER)
    result = pytester.runpytest("-v", "--strict-markers")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "*counterpoint explore*",
            "test_a_race_free_test_passes*::test_locked_deposits: dfs: * schedules, exhaustive;*",
        ]
    )


def test_the_search_summary_is_a_user_property_in_the_junit_report(pytester):
    pytester.makepyfile(LOCKED_COUNTER)
    result = pytester.runpytest("--junitxml=report.xml")
    result.assert_outcomes(passed=1)
    xml = (pytester.path / "report.xml").read_text()
    assert re.search(r'<property name="counterpoint_explore" value="dfs: \d+ schedules', xml)


def test_a_lost_update_fails_with_the_finding_and_the_replay_line(pytester):
    pytester.makepyfile(LOST_UPDATE)
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*cp.explore found 1 problem: 1 failure, no deadlocks in * schedules",
            "*AssertionError (in * schedules, 1 preemption): an update was lost*",
            "*replay it: cp.VM(schedule='cp1:*', seed=0).run(test_two_deposits())",
        ]
    )
    output = _output(result)
    assert "pytest_plugin.py" not in output  # the message, not the plugin's frames
    failures = output.split("short test summary info")[0]  # on CI the summary repeats the message
    assert failures.count("replay it: ") == 1  # once: no chained traceback repeats it


def test_the_replay_line_reproduces_the_failure(pytester):
    pytester.makepyfile(LOST_UPDATE)
    result = pytester.runpytest()
    line = next(line for line in result.outlines if "replay it: " in line)
    schedule = re.search(r"schedule='(cp1:[^']*)'", line).group(1)
    module = pytester.path / "test_the_replay_line_reproduces_the_failure.py"
    namespace: dict = {}
    exec(compile(module.read_text(), str(module), "exec"), namespace)
    import counterpoint as cp

    with pytest.raises(AssertionError, match="an update was lost"):
        cp.VM(schedule=schedule, seed=0).run(namespace["test_two_deposits"]())


def test_a_search_stopped_by_max_schedules_fails_unless_allow_partial(pytester):
    pytester.makepyfile(
        """
        import pytest
        import counterpoint as cp

        async def choices():
            return cp.choose(range(10)) + cp.choose(range(10))

        @pytest.mark.counterpoint_explore(max_schedules=5)
        async def test_partial():
            await choices()

        @pytest.mark.counterpoint_explore(max_schedules=5, allow_partial=True)
        async def test_partial_allowed():
            await choices()
        """
    )
    result = pytester.runpytest("-v")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*::test_partial FAILED*",
            "*::test_partial_allowed PASSED*",
            "*cp.explore found no problem, but the search is not exhaustive: it ran 5 schedules*",
        ],
        consecutive=False,
    )


def test_the_command_line_overrides_max_schedules(pytester):
    pytester.makepyfile(LOCKED_COUNTER)
    pytester.runpytest().assert_outcomes(passed=1)
    result = pytester.runpytest("--counterpoint-max-schedules=2")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*not exhaustive: it ran 2 schedules*"])


def test_a_lock_order_deadlock_fails_saying_who_holds_what(pytester):
    pytester.makepyfile(
        """
        import pytest
        import counterpoint as cp

        @pytest.mark.counterpoint_explore()
        async def test_transfers():
            a, b = cp.Lock(name="a"), cp.Lock(name="b")

            async def take(first, second):
                async with first:
                    await cp.checkpoint()
                    async with second:
                        pass

            await cp.par(take(a, b), take(b, a))
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*cp.explore found 1 problem: no failures, 1 deadlock in * schedules",
            "*waits to acquire lock*(held by task*",
            "*replay it: cp.VM(schedule='cp1:*', seed=0).run(test_transfers())",
        ],
        consecutive=False,
    )


def test_the_marker_on_a_plain_def_test_fails_saying_to_make_it_async(pytester):
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.counterpoint_explore()
        def test_sync():
            pass
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*test_sync: the test is a plain `def`*async def*"])


def test_the_marker_refuses_positional_arguments_and_unknown_keywords(pytester):
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.counterpoint_explore("dfs")
        async def test_positional():
            pass

        @pytest.mark.counterpoint_explore(max_schedule=10)
        async def test_misspelt():
            pass
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "*test_positional: the marker takes keywords only*('dfs',)*",
            "*test_misspelt: unknown keyword 'max_schedule'*max_schedules*",
        ],
        consecutive=False,
    )


def test_fixture_values_are_passed_to_every_execution_and_named_in_the_replay_line(pytester):
    pytester.makepyfile(
        """
        import pytest
        import counterpoint as cp

        @pytest.fixture
        def start():
            return 5

        @pytest.mark.counterpoint_explore()
        async def test_with_fixture(start):
            box = {"n": start}

            async def add():
                seen = box["n"]
                await cp.checkpoint()
                box["n"] = seen + 1

            await cp.par(add(), add())
            assert box["n"] == start + 2
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*replay it: cp.VM(schedule=*).run((lambda: test_with_fixture(start=start))())"]
    )


def test_state_kept_in_a_fixture_between_executions_is_reported_as_nondeterminism(pytester):
    pytester.makepyfile(
        """
        import pytest
        import counterpoint as cp

        @pytest.fixture
        def seen():
            return []

        @pytest.mark.counterpoint_explore()
        async def test_keeps_state(seen):
            seen.append(1)
            await cp.checkpoint()
            assert len(seen) == 1
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*NondeterminismError*"])


def test_a_test_marked_for_another_async_plugin_too_is_refused_and_not_run(pytester):
    pytester.makepyfile(
        """
        import pytest

        RUNS = []

        @pytest.mark.anyio
        @pytest.mark.counterpoint_explore()
        async def test_both():
            RUNS.append(1)

        def test_never_ran():
            assert RUNS == []
        """
    )
    result = pytester.runpytest()
    outcomes = result.parseoutcomes()  # an error for each anyio backend; test_never_ran passes
    assert outcomes.get("passed") == 1 and outcomes.get("errors", 0) >= 1, outcomes
    assert "failed" not in outcomes
    result.stdout.fnmatch_lines(["*marked both counterpoint_explore and anyio*"])


def _replay_line(result: pytest.RunResult) -> str:
    return next(line for line in result.outlines if line.startswith("replay it: "))


def test_the_plugin_loads_through_its_entry_point_and_fails_the_same_way_there(
    pytester, monkeypatch
):
    pytester.makepyfile(LOST_UPDATE)
    pytester.makepyfile(test_locked=LOCKED_COUNTER)
    here = _replay_line(pytester.runpytest("-p", "no:cacheprovider"))
    monkeypatch.setenv("PYTHONHASHSEED", "4242")
    result = pytester.runpytest_subprocess("--strict-markers", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    assert "counterpoint-" in result.stdout.str()  # "plugins: counterpoint-0.1.0, ..."
    assert _replay_line(result) == here  # the same finding in another process
    assert re.fullmatch(
        r"replay it: cp\.VM\(schedule='cp1:\w+', seed=0\)\.run\(test_two_deposits\(\)\)", here
    )


def test_a_plugin_that_swaps_the_test_for_a_sync_wrapper_does_not_run_a_marked_test(pytester):
    # what pytest-asyncio does (auto mode): mark every async test "asyncio", and run it
    # with item.obj swapped for a synchronous wrapper that drives an event loop
    pytester.makeconftest(
        """
        import functools
        import inspect
        import pytest

        def pytest_configure(config):
            config.addinivalue_line("markers", "asyncio: run on an event loop")

        def pytest_collection_modifyitems(items):
            for item in items:
                if inspect.iscoroutinefunction(item.obj):
                    item.add_marker("asyncio")

        @pytest.hookimpl(tryfirst=True)
        def pytest_runtest_call(item):
            original = item.obj
            if not inspect.iscoroutinefunction(original):
                return

            @functools.wraps(original)
            def on_an_event_loop(*args, **kwargs):
                raise AssertionError("the wrapper ran the test")

            item.obj = on_an_event_loop
        """
    )
    pytester.makepyfile(
        """
        import pytest
        import counterpoint as cp

        RUNS = []

        @pytest.mark.counterpoint_explore()
        async def test_explored():
            RUNS.append(cp.choose([1, 2]))
            await cp.checkpoint()

        def test_each_execution_ran_once():
            # 2 schedules, and the first once more (the determinism check)
            assert sorted(RUNS) == [1, 1, 2]
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=2)


def test_explore_keywords_reach_the_search(pytester):
    pytester.makepyfile(
        """
        import pytest
        import counterpoint as cp

        @pytest.mark.counterpoint_explore(shared_only=True, allow_partial=False)
        async def test_shared():
            box = cp.shared({"n": 0})

            async def add():
                async with lock:
                    seen = box["n"]
                    await cp.checkpoint()
                    box["n"] = seen + 1

            lock = cp.Lock()
            await cp.par(add(), add())
            assert box["n"] == 2
        """
    )
    import counterpoint as cp

    namespace: dict = {}
    exec(compile(next(pytester.path.glob("*.py")).read_text(), "test", "exec"), namespace)
    expected = cp.explore(namespace["test_shared"], shared_only=True).summary()
    assert expected != cp.explore(namespace["test_shared"]).summary()  # the keyword matters
    result = pytester.runpytest("-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"*::test_shared: {expected}"])


def test_the_failure_names_a_pytest_command_that_reruns_the_finding_with_its_traceback(pytester):
    pytester.makepyfile(LOST_UPDATE)
    explored = pytester.runpytest()
    line = next(line for line in explored.outlines if line.startswith("run it alone"))
    command = line.split(": ", 1)[1].split()
    (module,) = pytester.path.glob("*.py")
    assert command[:2] == ["pytest", f"{module.name}::test_two_deposits"]
    schedule = command[2].split("=", 1)[1]
    assert f"replay it: cp.VM(schedule='{schedule}', seed=0)" in explored.stdout.str()
    rerun = pytester.runpytest(command[1], command[2])
    rerun.assert_outcomes(failed=1)
    rerun.stdout.fnmatch_lines(
        [
            '>       assert box["n"] == 2, "an update was lost"',  # the test's own traceback
            "E       AssertionError: an update was lost",
        ]
    )
    # the serial schedule (each task runs to its end) does not lose the update
    pytester.runpytest(command[1], "--counterpoint-schedule=cp1:").assert_outcomes(passed=1)
