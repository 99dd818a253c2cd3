"""The unit of work of exploration (``run_prefix`` -> a plain ``RunSummary``), and how an
exploration report words what it found."""

from __future__ import annotations

import base64
import html
import os
import pickle
import subprocess
import sys
import textwrap

import pytest
from test_explore import lost_update, lost_update_checked  # (no assert / with one)

import counterpoint as cp
from counterpoint._explore import RunOptions, RunSummary, run_prefix
from counterpoint._reduction import Step, footprint, footprints
from counterpoint._schedule import decode_schedule

# A program with every kind of footprint a summary carries: tasks spawned and woken,
# a channel, a lock, a timer, a cp.choose and an unhashable result.  Kept as source so
# that a second process can define exactly the same program.
PROGRAM = textwrap.dedent(
    """\
    import counterpoint as cp

    async def program():
        box = {"log": []}
        lock = cp.Lock()
        ch = cp.channel(1)

        async def producer():
            for i in range(2):
                await ch.send(i)
            ch.close()

        async def consumer():
            async for value in ch:
                async with lock:
                    box["log"].append(value)
                await cp.sleep(1)

        async def poker():
            seen = len(box["log"])
            await cp.checkpoint()
            box["log"].append(("poked", seen, cp.choose("xy")))

        await cp.par(producer(), consumer(), poker())
        return box["log"]
    """
)
NAMESPACE: dict = {}
exec(compile(PROGRAM, "<program>", "exec"), NAMESPACE)
program = NAMESPACE["program"]


def plain_leaves(value, path="summary"):
    """Every leaf of a summary: ``(path, type name)`` for anything that is not plain
    data (None, bool, int, str, or tuples, lists and frozensets of those)."""
    if value is None or type(value) in (bool, int, str):
        return []
    if isinstance(value, tuple | list | frozenset):
        return [leaf for i, item in enumerate(value) for leaf in plain_leaves(item, f"{path}[{i}]")]
    return [(path, type(value).__name__)]


# -- run_prefix: one execution, as plain data ------------------------------------------------------


def test_a_run_summary_is_plain_data():
    summary = run_prefix(program, [])
    assert isinstance(summary, RunSummary)
    assert plain_leaves(summary) == []


def test_a_run_summary_pickles_to_an_equal_summary():
    summary = run_prefix(program, [2, 0, 1])
    again = pickle.loads(pickle.dumps(summary))
    assert again == summary
    assert again.schedule == summary.schedule


def test_running_the_same_prefix_twice_gives_an_equal_summary():
    for prefix in ([], [1], [2, 0, 1], [0, 2, 2, 1]):
        assert run_prefix(program, prefix) == run_prefix(program, prefix)


def test_a_run_summary_is_the_same_in_another_process_with_another_hash_seed():
    prefix = [2, 0, 1]
    code = PROGRAM + textwrap.dedent(
        f"""
        import base64, pickle, sys
        from counterpoint._explore import run_prefix
        summary = run_prefix(program, {prefix!r})
        sys.stdout.write(base64.b64encode(pickle.dumps(summary)).decode())
        """
    )
    here = run_prefix(program, prefix)
    seeds = {os.environ.get("PYTHONHASHSEED"), "1", "2"}  # differs from ours in some run
    for seed in sorted(seed for seed in seeds if seed is not None):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
        )
        assert done.returncode == 0, done.stderr
        there = pickle.loads(base64.b64decode(done.stdout))
        assert there == here


def test_a_summary_follows_its_prefix_then_the_default_decisions():
    summary = run_prefix(program, [2, 0, 1])
    chosen = [point.chosen for point in summary.points]
    assert chosen[:3] == [2, 0, 1]
    assert decode_schedule(summary.schedule) == chosen
    # (the result is a list, unhashable: the outcome is its repr)
    assert repr(cp.VM(schedule=summary.schedule).run(program())) == summary.outcome


def test_a_summary_tells_how_the_run_ended():
    async def failing():
        if cp.choose([1, 0]) == 0:
            raise ZeroDivisionError("the 0 was chosen")
        return "fine"

    ok, failed = run_prefix(failing, [0]), run_prefix(failing, [1])
    assert (ok.kind, ok.outcome, ok.message) == ("ok", "fine", "")
    assert (failed.kind, failed.outcome) == ("failure", "ZeroDivisionError")
    assert failed.message == "the 0 was chosen"


def test_a_deadlocks_summary_names_the_blocked_tasks_as_plain_tuples():
    async def stuck():
        ch = cp.channel()
        await ch.recv()

    summary = run_prefix(stuck, [])
    assert summary.kind == "deadlock" and summary.outcome == "Deadlock"
    assert summary.blocked and all(type(entry) is tuple for entry in summary.blocked)
    assert plain_leaves(summary) == []


def test_a_summary_has_a_footprint_per_step_only_when_asked():
    summary = run_prefix(program, [])
    assert len(summary.footprints) == summary.steps > 0
    tasks = [Step._make(step).task for step in summary.footprints]
    assert set(tasks) == {1, 2, 3, 4}  # the root and its three children
    assert Step._make(summary.footprints[0]).point is None  # the root was alone
    without = run_prefix(program, [], RunOptions(footprints=False))
    assert without.footprints is None and without.steps == summary.steps
    assert without.points == summary.points


def test_the_footprint_of_a_send_is_its_channel_and_of_a_spawn_the_new_task():
    async def main():
        ch = cp.channel(1)
        await ch.send("x")
        cp.spawn(cp.checkpoint())
        return 0

    summary = run_prefix(main, [])
    steps = [Step._make(step) for step in summary.footprints]
    touched = set().union(*(step.touched for step in steps))
    woke = set().union(*(step.woke for step in steps))
    channels = {obj for obj in touched if obj[0] == "channel"}
    assert len(channels) == 1
    assert 2 in woke  # the spawned task (the root is task 1)


def test_footprint_reads_one_steps_records_and_its_record_free_reads():
    vm = cp.VM()

    async def main():
        await cp.channel(1).send(1)

    vm.run(main())
    journal = vm.journal
    step = Step._make(footprint(1, None, journal._rows, iter(journal._vals), [("event", 9)]))
    assert ("event", 9) in step.touched
    assert any(obj[0] == "channel" for obj in step.touched)
    assert step.cancelled == frozenset()


def test_footprints_of_a_run_without_steps_are_empty():
    assert footprints(cp.Journal(), [], [], []) == ((), frozenset())


# -- what the report says ----------------------------------------------------------------------


def test_a_search_without_failures_whose_runs_differ_names_its_distinct_outcomes():
    report = cp.explore(lost_update)
    assert report.failures == [] and sorted(report.outcomes) == [1, 2]
    summary = report.summary()
    assert "0 failures" not in summary
    assert "no failures or deadlocks, 2 distinct outcomes: 1, 2" in summary
    text = repr(report)
    assert "0 failures" not in text and "2 distinct outcomes" in text
    page = report._repr_html_()
    assert "0 failures" not in page and "2 distinct outcomes" in page


def test_counts_of_one_are_singular():
    async def main():
        return 7

    report = cp.explore(main)
    assert report.summary() == "dfs: 1 schedule, exhaustive; no failures or deadlocks, 1 outcome: 7"
    assert repr(report).startswith(
        "<ExploreReport dfs: 1 schedule (exhaustive), no failures or deadlocks, 1 outcome>"
    )


def test_a_finding_reads_in_how_many_schedules_with_how_many_preemptions():
    report = cp.explore(lost_update_checked, por=False, preemption_bound=1)
    (finding,) = report.failures
    assert finding.preemptions == 1 and finding.count == 2
    assert "AssertionError (in 2 schedules, 1 preemption): an update was lost" in repr(report)
    assert "1 failure, no deadlocks" in report.summary()
    assert "1 preemptions" not in repr(report) and "1 failures" not in repr(report)


def test_a_finding_seen_once_reads_in_1_schedule():
    async def main():
        if cp.choose([1, 0]) == 0:
            raise ZeroDivisionError("the 0 was chosen")

    text = repr(cp.explore(main))
    assert "ZeroDivisionError (in 1 schedule, 0 preemptions): the 0 was chosen" in text


def test_an_exception_outcome_is_named_bare_and_a_returned_string_quoted():
    async def main():
        if cp.choose([0, 1]):
            raise ValueError("no")
        return "ValueError?"

    report = cp.explore(main)
    assert "2 distinct outcomes: ValueError, 'ValueError?'" in report.summary()
    assert "outcomes: 'ValueError?' x1, ValueError x1" in repr(report)
    assert ">ValueError</td>" in report._repr_html_()


def test_a_summary_lists_six_outcomes_and_counts_the_rest():
    async def main():
        return cp.choose(range(9))

    summary = cp.explore(main).summary()
    assert summary.endswith("9 distinct outcomes: 0, 1, 2, 3, 4, 5, ... (3 more)")


def test_a_search_where_every_run_was_pruned_has_no_outcomes():
    async def main():
        cp.require(False)

    report = cp.explore(main)
    assert report.summary() == (
        "dfs: 1 schedule, exhaustive; no failures or deadlocks, no outcomes; 1 pruned"
    )


def test_deadlocks_are_counted_in_words():
    async def main():
        ch = cp.channel()
        if cp.choose([0, 1]):
            await ch.recv()
        return "fine"

    report = cp.explore(main)
    assert "no failures, 1 deadlock, 2 distinct outcomes" in report.summary()
    assert html.escape("no failures, 1 deadlock") in report._repr_html_()


@pytest.mark.parametrize("bound", [1, 2])
def test_the_bound_assumption_is_singular_for_a_bound_of_1(bound):
    report = cp.explore(lost_update, strategy="random", preemption_bound=bound, max_schedules=3)
    (sentence,) = report.assumptions
    assert f"at most {bound} preemption{'' if bound == 1 else 's'} were explored" in sentence
