"""Spin-waits and livelocks under exploration: the fairness bound of the default
decisions, stopping at the first finding, and short schedule strings for long runs."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import pytest
from explore_programs import generate
from hypothesis import given, settings
from hypothesis import strategies as st

import counterpoint as cp
from counterpoint._explore import RunOptions, run_prefix
from counterpoint._schedule import decode_schedule, encode_schedule
from counterpoint._strategies import FAIRNESS

# -- programs -------------------------------------------------------------------------------------


async def spin_wait():
    """A waiter spins on a plain flag that a second task sets after two steps: it ends
    under any fair schedule, but the default "let the running task go on" never lets
    the setter run."""
    flag = {"set": False}

    async def waiter():
        spins = 0
        while not flag["set"]:
            spins += 1
            await cp.checkpoint()
        return spins

    async def setter():
        await cp.checkpoint()
        flag["set"] = True

    await cp.par(waiter(), setter())
    return "the flag was seen"


async def spin_count():
    """Like spin_wait, but it fails saying how often the waiter spun: a finding whose
    message depends on every choice of its schedule."""
    flag = {"set": False}

    async def waiter():
        spins = 0
        while not flag["set"]:
            spins += 1
            await cp.checkpoint()
        raise ValueError(f"the waiter spun {spins} times")

    async def setter():
        await cp.checkpoint()
        flag["set"] = True

    await cp.par(waiter(), setter())


async def mutual_wait():
    """A genuine livelock: each task waits for the other's flag before it sets its own."""
    flags = {"a": False, "b": False}

    async def polite(mine, other):
        while not flags[other]:
            await cp.checkpoint()
        flags[mine] = True

    await cp.par(polite("a", "b"), polite("b", "a"))


async def event_poll():
    """A waiter polls an event (a read the VM reports, which writes no record)."""
    ready = cp.Event()

    async def waiter():
        while not ready.is_set():
            await cp.checkpoint()
        return "saw it"

    async def setter():
        await cp.checkpoint()
        ready.set()

    seen, _ = await cp.par(waiter(), setter())
    return seen


async def busy_producer():
    """A producer whose every step sends: each step has an effect, so it never yields."""
    box = cp.channel(100)

    async def produce():
        for item in range(30):
            await box.send(item)

    async def consume():
        await cp.checkpoint()
        return len(box)

    _, seen = await cp.par(produce(), consume())
    return seen


def quiet(**options):
    return cp.explore(progress=False, **options)


# -- the fairness bound ---------------------------------------------------------------------------


def test_without_the_fairness_bound_a_spin_wait_runs_into_the_step_limit():
    report = cp.explore(spin_wait, fairness=None, max_steps=500, max_schedules=3, progress=False)
    assert "StepLimitExceeded" in report.outcomes


def test_under_the_fairness_bound_a_spin_wait_ends_with_its_real_outcome():
    report = cp.explore(spin_wait, max_steps=2_000, max_schedules=200, progress=False)
    assert report.outcomes == {"the flag was seen": 200}
    assert report.failures == [] and report.deadlocks == []


def test_a_spin_wait_has_a_schedule_per_number_of_spins_so_dfs_is_never_exhaustive():
    report = cp.explore(spin_wait, max_steps=2_000, max_schedules=50, progress=False)
    assert report.schedules == 50 and not report.exhaustive
    assert "not exhaustive" in report.summary()


def test_a_genuine_livelock_is_still_a_step_limit_finding_under_the_fairness_bound():
    report = cp.explore(mutual_wait, max_steps=3_000, max_schedules=5, progress=False)
    assert set(report.outcomes) == {"StepLimitExceeded"}
    (finding,) = report.failures
    assert finding.outcome == "StepLimitExceeded"
    assert "max_steps=3000" in finding.replay
    with pytest.raises(cp.StepLimitExceeded):
        cp.VM(schedule=finding.schedule, max_steps=3_000).run(mutual_wait())


def test_the_spinning_task_yields_after_fairness_steps_without_effect_round_robin():
    for bound in (1, 3, FAIRNESS):
        summary = run_prefix(mutual_wait, [], RunOptions(max_steps=200, fairness=bound))
        chosen = [point.options[point.chosen] for point in summary.points]
        # the two tasks take turns, each running `bound` steps without effect, then giving way
        turns = [len(list(run)) for _, run in __import__("itertools").groupby(chosen)]
        assert set(turns[1:-1]) == {bound}, (bound, turns[:6])
        assert summary.yields and summary.preemptions == 0
        assert all(summary.points[k].previous == 0 for k in summary.yields)


def test_fairness_none_keeps_the_running_task_going():
    summary = run_prefix(mutual_wait, [], RunOptions(max_steps=200, fairness=None))
    assert summary.yields == ()
    assert {point.chosen for point in summary.points} == {0}


def test_a_read_the_vm_reports_is_no_effect_so_an_event_poll_yields():
    summary = run_prefix(event_poll, [], RunOptions(fairness=3))
    assert summary.outcome == "saw it" and summary.yields


def test_a_step_that_writes_a_record_is_progress_so_a_producer_never_yields():
    summary = run_prefix(busy_producer, [], RunOptions(fairness=1))
    assert summary.yields == ()
    assert summary.outcome == 30  # the producer went on to the end before the consumer


def test_a_spin_wait_finding_replays_exactly_from_its_schedule():
    report = cp.explore(spin_count, max_steps=2_000, max_schedules=20, progress=False)
    assert report.failures
    for finding in report.failures:
        with pytest.raises(ValueError) as caught:
            cp.VM(schedule=finding.schedule, max_steps=2_000).run(spin_count())
        assert str(caught.value) == finding.message  # the same number of spins
        finding.run()  # (checks the outcome too)
    spun = sorted(int(f.message.split()[3]) for f in report.failures)
    assert spun[0] == FAIRNESS  # the default run: the waiter spins FAIRNESS times, then yields


@pytest.mark.parametrize("strategy", ["random", "pct"])
def test_random_and_pct_end_a_spin_wait_too(strategy):
    report = cp.explore(
        spin_wait, strategy=strategy, max_steps=2_000, max_schedules=30, progress=False
    )
    assert report.outcomes == {"the flag was seen": 30}


def test_pct_gives_a_spinning_task_s_turn_to_the_others_whatever_the_priorities():
    # depth 1: no priority changes, so without the bound a waiter with the higher
    # priority spins until max_steps
    options = {"strategy": "pct", "depth": 1, "max_steps": 500, "max_schedules": 30}
    unfair = cp.explore(spin_wait, fairness=None, progress=False, **options)
    assert "StepLimitExceeded" in unfair.outcomes
    fair = cp.explore(spin_wait, progress=False, **options)
    assert fair.outcomes == {"the flag was seen": 30}


def test_a_fair_yield_is_no_preemption_so_a_bound_of_0_still_ends_a_spin_wait():
    report = cp.explore(
        spin_wait, preemption_bound=0, max_steps=2_000, max_schedules=50, progress=False
    )
    assert report.outcomes == {"the flag was seen": report.schedules}


def test_the_default_fairness_bound_changes_no_count_of_the_generated_programs():
    # the soundness generator's programs (tasks of up to 4 operations): the default bound
    # never fires, so the counts, verdicts and outcomes are exactly those without it
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", cp.UnobservedTaskFailure)
        for seed in range(60):
            program = generate(seed)
            reports = [
                cp.explore(
                    program,
                    preemption_bound=program.preemption_bound,
                    max_schedules=3000,
                    progress=False,
                    fairness=fairness,
                )
                for fairness in (None, FAIRNESS)
            ]
            without, with_bound = (
                (r.schedules, r.exhaustive, r.assumptions, sorted(map(repr, r.outcomes)))
                for r in reports
            )
            assert with_bound == without, program.describe()


@pytest.mark.parametrize("fairness", [0, -1, 2.5, "8", True])
def test_fairness_must_be_a_positive_int_or_none(fairness):
    with pytest.raises(ValueError, match="fairness must be a positive int"):
        cp.explore(spin_wait, fairness=fairness)
    assert cp.explore(spin_wait, max_schedules=2, progress=False).schedules == 2


_IN_ANOTHER_PROCESS = """
import sys
sys.path.insert(0, {tests!r})
import counterpoint as cp
from test_explore_livelock import spin_count, mutual_wait
a = cp.explore(spin_count, max_steps=2_000, max_schedules=20, progress=False)
b = cp.explore(mutual_wait, max_steps=3_000, max_schedules=3, progress=False)
print([(f.schedule, f.message) for f in a.failures + b.failures])
"""


def test_fair_exploration_is_the_same_in_another_process():
    here = cp.explore(spin_count, max_steps=2_000, max_schedules=20, progress=False)
    again = cp.explore(mutual_wait, max_steps=3_000, max_schedules=3, progress=False)
    expected = repr([(f.schedule, f.message) for f in here.failures + again.failures])
    tests = os.path.dirname(__file__)
    env = {**os.environ, "PYTHONHASHSEED": "4321"}
    out = subprocess.run(
        [sys.executable, "-c", _IN_ANOTHER_PROCESS.format(tests=tests)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=True,
    )
    assert out.stdout.strip() == expected


# -- stop at the first finding --------------------------------------------------------------------


async def lost_update():
    box = {"n": 0}

    async def add():
        seen = box["n"]
        await cp.checkpoint()
        box["n"] = seen + 1

    await cp.par(add(), add(), add())
    assert box["n"] == 3, "an update was lost"


@pytest.mark.parametrize("strategy", ["dfs", "random", "pct"])
def test_stop_on_first_ends_the_search_at_the_first_finding(strategy):
    full = cp.explore(lost_update, strategy=strategy, max_schedules=200, progress=False)
    stopped = cp.explore(
        lost_update, strategy=strategy, max_schedules=200, progress=False, stop_on_first=True
    )
    assert stopped.first_finding == full.first_finding
    assert stopped.schedules == stopped.first_finding < full.schedules
    assert not stopped.exhaustive
    assert len(stopped.failures) == 1 and stopped.failures[0].count == 1
    words = f"stopped at the first finding (schedule {stopped.first_finding})"
    assert words in stopped.summary() and words in repr(stopped)
    with pytest.raises(AssertionError, match="an update was lost"):
        stopped.assert_ok()


def test_stop_on_first_changes_nothing_when_nothing_is_found():
    async def fine():
        return cp.choose([1, 2, 3])

    report = cp.explore(fine, stop_on_first=True, progress=False)
    assert report.exhaustive and report.schedules == 3 and report.first_finding is None
    assert report.summary().startswith("dfs: 3 schedules, exhaustive;")


def test_stop_on_first_is_true_or_false():
    with pytest.raises(TypeError, match="stop_on_first is True or False"):
        cp.explore(lost_update, stop_on_first="yes")


# -- short schedule strings for long runs ---------------------------------------------------------


def test_a_100000_step_ping_pong_livelock_has_a_schedule_string_of_20_characters():
    report = cp.explore(mutual_wait, max_steps=100_000, max_schedules=1, progress=False)
    (finding,) = report.failures
    assert finding.schedule == "cp1:[0818](6249)0817"  # 99,999 choice points
    assert len(decode_schedule(finding.schedule)) == 99_999
    with pytest.raises(cp.StepLimitExceeded):
        cp.VM(schedule=finding.schedule, max_steps=100_000).run(mutual_wait())


def test_a_step_limit_run_of_one_task_is_one_group():
    assert encode_schedule([0] * 100_000) == "cp1:[0Z](1639)0l"  # 1639 * 61 + 21


def test_short_schedules_are_written_without_groups():
    choices = [0, 1] * 15  # 30 runs: below the length where groups are looked for
    assert encode_schedule(choices) == "cp1:" + "0111" * 15
    assert "[" in encode_schedule([0, 1] * 40)


@pytest.mark.parametrize(
    ("choices", "encoded"),
    [
        ([0, 0, 1] * 40, "cp1:[0211]E"),
        ([5] * 3 + [0, 1] * 40 + [7], "cp1:53[0111]E71"),
        ([70, 1] * 40, "cp1:[(70)111]E"),
        ([0, 1] * 20 + [2, 3, 4] * 30, "cp1:[0111]k[213141]u"),
    ],
)
def test_a_repeating_stretch_is_written_once_with_its_repeat_count(choices, encoded):
    assert encode_schedule(choices) == encoded
    assert decode_schedule(encoded) == choices


def test_every_string_without_brackets_parses_to_the_same_choices_as_before():
    # the runs-only grammar is a part of the new one: a group is the only new syntax
    assert decode_schedule("cp1:0311") == [0, 0, 0, 1]
    assert decode_schedule("cp1:(70)2") == [70, 70]
    assert decode_schedule("cp1:0Z0Z05") == [0] * 127
    assert decode_schedule("cp1:[0Z]205") == [0] * 127


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.lists(st.integers(0, 3) | st.sampled_from([61, 62, 900]), min_size=1, max_size=6),
            st.integers(1, 70),
        ),
        max_size=6,
    )
)
def test_schedules_with_repeating_stretches_round_trip(pieces):
    choices = [c for body, repeat in pieces for c in body * repeat]
    encoded = encode_schedule(choices)
    assert decode_schedule(encoded) == choices
    assert len(encoded) <= len(_ungrouped(choices))


def _ungrouped(choices):
    from itertools import groupby

    out = "cp1:"
    for choice, run in groupby(choices):
        n = len(list(run))
        digit = str_choice(choice)
        out += (digit + "Z") * (n // 61) + (digit + _digit(n % 61) if n % 61 else "")
    return out


def str_choice(choice):
    return _digit(choice) if choice < 62 else f"({choice})"


def _digit(n):
    return "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"[n]


def test_a_tiny_string_for_billions_of_choices_is_replayed_lazily():
    huge = "cp1:[0111](999999999999)"
    with pytest.raises(cp.ScheduleError, match="stands for 1,999,999,999,998 choices"):
        decode_schedule(huge)
    vm = cp.VM(schedule=huge, max_steps=300)
    with pytest.raises(cp.StepLimitExceeded):
        vm.run(mutual_wait())  # the choices are taken as the run goes: no list is made
    assert vm.journal.meta["schedule"] == huge
    assert vm.run(spin_wait()) == "the flag was seen"  # the VM stays usable


def test_a_misfit_inside_a_group_names_the_run_and_the_choice_point():
    async def pick():
        return cp.choose("ab") + cp.choose("ab") + cp.choose("ab")

    with pytest.raises(cp.ScheduleError, match=r"at choice point 3 .* option 2 .* position 9"):
        cp.VM(schedule="cp1:11[0121]9").run(pick())


def _steps_of_a_writer(shared):
    async def main():
        box = cp.shared([]) if shared else []

        async def writer():
            for item in range(10):
                box.append(item)  # a plain list is invisible; a cp.shared write is progress
                await cp.checkpoint()

        async def reader():
            await cp.checkpoint()
            return len(box)

        _, seen = await cp.par(writer(), reader())
        return seen

    return main


def test_a_write_to_a_cp_shared_wrapper_is_progress_and_a_plain_write_is_not():
    plain = run_prefix(_steps_of_a_writer(False), [], RunOptions(fairness=2))
    assert plain.yields and plain.outcome < 10  # the writer gave way after 2 steps
    shared = run_prefix(_steps_of_a_writer(True), [], RunOptions(fairness=2))
    assert shared.yields == () and shared.outcome == 10  # it went on to the end


async def shared_spin_wait():
    """A spin-wait on a cp.shared flag: reading it is no effect."""
    flag = cp.shared({"set": False})

    async def waiter():
        while not flag["set"]:
            await cp.checkpoint()

    async def setter():
        await cp.checkpoint()
        flag["set"] = True

    await cp.par(waiter(), setter())
    return "seen"


def test_reading_a_cp_shared_wrapper_is_no_effect_so_its_spin_wait_ends():
    summary = run_prefix(shared_spin_wait, [], RunOptions(fairness=3))
    assert summary.outcome == "seen" and summary.yields
    report = cp.explore(shared_spin_wait, shared_only=True, max_steps=2_000, max_schedules=30)
    assert report.outcomes == {"seen": report.schedules}
