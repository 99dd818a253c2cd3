"""The fuzz harness in CI: random well-formed programs keep every determinism property.

Each test checks one property on a few hundred generated programs (``tests/fuzz``;
``python -m tests.fuzz --n 10000`` runs many more).  A failure shows the property,
what differed, and a minimal runnable reproducer (the program shrunk while it still
fails).  The second half checks the harness itself: the generator covers the
features, a program is runnable source, the shrinker shrinks, and each property
catches the kind of bug it is there for.
"""

from __future__ import annotations

import gc
import random
import subprocess
import sys
import warnings
from collections import Counter
from pathlib import Path

import pytest
from fuzz.generator import BASE_WEIGHT, cancels_workers, generate, render, uses, walk
from fuzz.properties import (
    CI_PROPERTIES,
    HELPER,
    PropertyFailure,
    Subject,
    check,
    digest_of,
    dispose,
    execute,
    hashseed_digests,
)
from fuzz.runner import fuzz, reproducer, summary
from fuzz.shrink import shrink, size
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

import counterpoint as cp

ROOT = Path(__file__).parent.parent
CI_SEEDS = range(0, 300)  # every property, in the quick suite
MORE_SEEDS = range(300, 700)  # marked slow


@pytest.fixture(autouse=True)
def _collected_after_each_test():
    """Anything a test leaves for the garbage collector is collected (and reported) here,
    in that test, not in a later one."""
    yield
    gc.collect()


def assert_holds(prop: str, seeds: range) -> None:
    report = fuzz(seeds, [prop], shrink_seconds=60)
    if report.failed:
        pytest.fail(summary(report), pytrace=False)


# -- the properties, on generated programs ----------------------------------------------------


def test_every_generated_program_writes_the_same_journal_twice():
    assert_holds("twice", CI_SEEDS)


def test_the_random_policy_with_the_same_seed_writes_the_same_journal():
    assert_holds("random", CI_SEEDS)


def test_saved_exported_and_streamed_journals_load_back_identical():
    assert_holds("files", CI_SEEDS)


def test_replaying_a_journal_reproduces_every_generated_program():
    assert_holds("replay", CI_SEEDS)


def test_stepping_in_slices_of_1_7_and_random_sizes_writes_what_run_writes():
    assert_holds("slices", CI_SEEDS)


def test_state_at_every_step_equals_the_live_vm():
    assert_holds("state_at", CI_SEEDS)


def test_workers_inline_on_threads_and_on_processes_write_the_same_journal():
    report = fuzz(CI_SEEDS, ["backends"], shrink_seconds=60)
    if report.failed:
        pytest.fail(summary(report), pytrace=False)


def test_digests_are_the_same_in_fresh_processes_with_other_hash_seeds():
    seeds = list(CI_SEEDS)
    here = {seed: digest_of(seed) for seed in seeds}
    hash_seeds = random.Random().sample(range(1, 2**31), 2)
    for hash_seed in hash_seeds:
        there = hashseed_digests(seeds, hash_seed)
        differ = [s for s in seeds if there.get(s) != here[s]]
        assert differ == [], f"PYTHONHASHSEED={hash_seed}: seeds {differ[:10]} differ"


@pytest.mark.slow
@pytest.mark.parametrize("prop", [p for p in CI_PROPERTIES if p != "backends"])
def test_more_generated_programs_keep_every_property(prop):
    assert_holds(prop, MORE_SEEDS)


@pytest.mark.slow
def test_more_generated_programs_write_the_same_journal_on_every_worker_backend():
    HELPER.stop()
    seeds = [s for s in MORE_SEEDS if not cancels_workers(generate(s))]
    report = fuzz(seeds, ["backends"], shrink_seconds=60)
    if report.failed:
        pytest.fail(summary(report), pytrace=False)


@pytest.mark.slow
def test_partial_order_reduction_reaches_every_outcome_of_the_full_search():
    """(Small generated programs, with task-local logs: all shared state is VM objects.)"""
    assert_holds("explore", range(0, 200))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.randoms(use_true_random=False))
def test_programs_drawn_by_hypothesis_keep_the_properties(rng):
    """The same generator on Hypothesis's random: a failure is shrunk by Hypothesis too."""
    subject = Subject(generate(rng))
    note(subject.source)
    for prop in ("twice", "replay", "slices", "state_at"):
        check(subject, prop)


# -- the defects of issue 9 the fuzz finds, as regression tests ------------------------------------


@pytest.mark.slow
def test_programs_that_cancel_workers_write_the_same_journal_on_processes():
    """Issue 9's defect 1: a cancel racing a finished job failed the next job (one process
    pool for all the programs, as for a long-lived VM)."""
    try:
        for seed in range(0, 700):
            program = generate(seed)
            if cancels_workers(program):
                check(Subject(program, seed), "backends")  # (stops at the first failure)
    finally:
        HELPER.stop()


def test_a_worker_raising_a_base_exception_fails_alike_on_every_backend():
    seeds = [s for s in range(0, 400) if uses_bail(generate(s))][:15]
    assert len(seeds) >= 5
    assert_holds_for("backends", seeds)


# The two kinds of explore failure the fuzz finds, shrunk by hand from its reproducers.


def test_partial_order_reduction_sees_a_task_ending_race_a_select_on_it():
    async def main():
        ch = cp.channel()

        async def child():
            await ch.send(0)

        kid = cp.spawn(child())
        await ch.recv()
        first = await cp.select(kid, timeout=0)  # has the child ended yet?
        second = await cp.select(kid, timeout=0)
        return first.index, second.index

    full = cp.explore(main, por=False)
    assert full.exhaustive and set(full.outcomes) == {(-1, -1), (-1, 0), (0, 0)}
    reduced = cp.explore(main)
    assert set(reduced.outcomes) == set(full.outcomes) or not reduced.exhaustive


def test_partial_order_reduction_tries_a_ready_task_before_its_cancel():
    async def main():
        async def child():
            pass

        kid = cp.spawn(child())
        await cp.checkpoint()  # the child may run (and end) here, or after the cancel
        cancelled = kid.cancel()  # True if it had not ended yet
        await cp.sleep(1)  # (every task runs to its end: no execution ends early)
        return cancelled

    full = cp.explore(main, por=False)
    assert full.exhaustive and set(full.outcomes) == {True, False}
    reduced = cp.explore(main)
    assert set(reduced.outcomes) == {True, False} or not reduced.exhaustive


def test_explore_counts_a_root_that_ends_cancelled_as_an_outcome():
    async def child():
        await cp.sleep(0)

    async def main():
        async with cp.scope() as s:
            kid = s.spawn(child())
            s.cancel()
        return await kid  # the child ended cancelled, so main ends cancelled

    assert "Cancelled" in cp.explore(main).outcomes


# -- found by the fuzz (fixed; they stay as regression tests) --------------------------------


def test_a_schedule_decides_the_choices_of_a_random_policy_vm_too():
    async def main():
        await cp.sleep(1)
        return cp.now()

    vm = cp.VM(policy="random", schedule="cp1:01")
    try:
        assert vm.run(main()) == 1
    finally:
        dispose(vm)


def test_a_deadlocked_run_is_abandoned_also_when_warnings_are_errors():
    async def boom():
        raise RuntimeError("nobody awaits me")

    async def main():
        cp.spawn(boom())
        await cp.channel().recv()  # a deadlock

    vm = cp.VM()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", cp.UnobservedTaskFailure)
            with pytest.raises(cp.Deadlock):
                vm.run(main())
    finally:
        cancelled = [r.data["reason"] for r in vm.journal if r.kind == "cancel"]
        dispose(vm)
    assert cancelled == ["vm.run() found a deadlock"]


UNOBSERVED = """
import counterpoint as cp

async def boom():
    raise RuntimeError("nobody awaits me")

async def main():
    cp.spawn(boom())
    await cp.sleep(1)
    return "ok"

print(cp.VM().run(main()))
"""


def test_an_unobserved_failure_in_python_c_code_is_a_warning_not_an_error():
    done = subprocess.run(
        [sys.executable, "-c", UNOBSERVED], capture_output=True, text=True, timeout=120
    )
    assert done.stdout.strip() == "ok", done.stderr[-500:]
    assert "UnobservedTaskFailure" in done.stderr


def uses_bail(program: dict) -> bool:
    return any(stmt[0] == "work" and stmt[1] == "fz_bail" for stmt in walk(program))


def assert_holds_for(prop: str, seeds: list[int]) -> None:
    report = fuzz(seeds, [prop], do_shrink=False)
    if report.failed:
        pytest.fail(summary(report), pytrace=False)


# -- the harness itself -----------------------------------------------------------------------


def test_a_seed_always_gives_the_same_program():
    assert generate(12345) == generate(12345)
    assert render(generate(12345)) == render(generate(12345))
    assert generate(12345) != generate(12346)


def test_generated_programs_use_every_feature():
    programs = [generate(seed) for seed in range(300)]
    used = Counter(stmt[0] for program in programs for stmt in walk(program))
    assert set(BASE_WEIGHT) <= set(used), set(BASE_WEIGHT) - set(used)
    capacities = {c for program in programs for c in program["channels"]}
    assert capacities == {0, 1, 2, 3}
    scopes = [s for p in programs for s in walk(p) if s[0] == "scope"]
    assert any(s[1] is not None for s in scopes)  # timeouts
    assert any(s[2] for s in scopes)  # shields
    assert {s[5] for s in scopes} >= {"cancel", "cancel_all", "wait_all"}
    assert any(s[6] is not None for s in scopes)  # max_children
    assert {how for s in scopes for how, _ in s[3]} == {"start_soon", "spawn", "async_let"}
    selects = [s for p in programs for s in walk(p) if s[0] == "select"]
    assert {s[4] for s in selects} == {"priority", "round_robin"}
    assert any(s[3] is not None for s in selects) and any(s[2] for s in selects)
    assert {s[1] for p in programs for s in walk(p) if s[0] == "work"} >= {"fz_double", "fz_fail"}
    assert any(len(p["runs"]) > 1 for p in programs)
    assert any(run["events"] for p in programs for run in p["runs"])
    assert {p["vm"]["policy"] for p in programs} == {"fifo", "random"}
    assert {p["vm"]["max_workers"] for p in programs} == {None, 1, 2}
    assert any(p["vm"]["max_steps"] < 100 for p in programs)


def test_generated_programs_end_in_every_kind_of_outcome():
    outcomes: Counter = Counter()
    records = 0
    for seed in range(200):
        run = execute(Subject.from_seed(seed))
        outcomes.update(kind for kind, _ in run.outcomes)
        records += len(run.vm.journal)
        dispose(run.vm)
    assert {
        "ok",
        "Deadlock",
        "StepLimitExceeded",
        "TimeoutError",
        "ExceptionGroup",
        "ChannelClosed",
        "LimitExceeded",
        "WorkerFailed",
    } <= set(outcomes)
    assert outcomes["ok"] > sum(outcomes.values()) / 3  # most runs do finish
    assert records / 200 > 40  # and do something on the way


def test_a_generated_program_is_a_runnable_module(tmp_path):
    subject = Subject.from_seed(7)
    path = tmp_path / "program.py"
    path.write_text(subject.source)
    done = subprocess.run(
        [sys.executable, str(path)], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.splitlines()[-1] == digest_of(7)


def test_the_command_line_fuzzes_and_checks_a_reproducer_file(tmp_path):
    command = [sys.executable, "-m", "tests.fuzz", "--quiet", "--n", "12", "--seed", "40"]
    done = subprocess.run(
        [*command, "--hashseed-every", "6"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "12 seeds, 120 property checks" in done.stdout  # (10 properties each)
    path = tmp_path / "repro.py"
    path.write_text(Subject.from_seed(40).source)
    done = subprocess.run(
        [sys.executable, "-m", "tests.fuzz", "--file", str(path), "--properties", "twice,replay"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.split() == ["twice:", "ok", "replay:", "ok"]


# A planted bug: in every other VM, closing a channel journals one record more, as a VM
# that kept some state from one run to the next would.
@pytest.fixture
def flaky_close(monkeypatch):
    from counterpoint import _journal
    from counterpoint._traps import this_task

    made = [0]
    original_init, original_close = cp.VM.__init__, cp.Channel.close

    def init(self, **options):
        original_init(self, **options)
        made[0] += 1
        self._fuzz_odd = made[0] % 2

    def close(self):
        task = this_task()
        if self._vm._fuzz_odd and task is not None:
            self._vm._rows.append(task._k | _journal.STEP)
        return original_close(self)

    monkeypatch.setattr(cp.VM, "__slots__", (), raising=False)
    monkeypatch.setattr(cp.VM, "__init__", init)
    monkeypatch.setattr(cp.Channel, "close", close)


def test_a_failure_is_shrunk_to_a_small_runnable_reproducer(flaky_close):
    seed = next(
        s for s in range(200) if uses(generate(s), "close") and _fails("twice", range(s, s + 1))
    )
    report = fuzz([seed], ["twice"], shrink_seconds=60)
    assert report.failed
    (found,) = report.classes.values()
    assert found.signature.startswith("twice: journals differ")
    reproduced = found.reproducer
    assert "o.ch[" in reproduced and ".close()" in reproduced
    assert "python -m tests.fuzz --file repro.py --properties twice" in reproduced
    small = Subject.from_source(reproduced)
    assert small.source.count("\n") < Subject.from_seed(seed).source.count("\n")
    with pytest.raises(PropertyFailure):
        check(small, "twice")


def test_the_shrinker_keeps_only_what_the_failure_needs():
    program = next(p for p in map(generate, range(200)) if uses(p, "barrier") and uses(p, "close"))

    def fails(candidate: dict) -> bool:
        return uses(candidate, "barrier") and uses(candidate, "close")

    small, _ = shrink(program, fails)
    assert fails(small)
    # the two statements, the main that holds them (and a task, if one holds one of them)
    assert size(small) <= 4, render(small)
    assert size(small) < size(program)


# Each property catches the bug it is there for (planted with monkeypatch).


def _fails(prop: str, seeds: range, predicate=lambda p: True) -> bool:
    for seed in seeds:
        program = generate(seed)
        if not predicate(program):
            continue
        try:
            check(Subject(program), prop)
        except PropertyFailure:
            return True
    return False


def test_twice_catches_randomness_that_is_not_the_vms(monkeypatch):
    monkeypatch.setattr(cp.VM, "_task_rng", lambda self, task: random.Random())
    assert _fails("twice", range(60), lambda p: uses(p, "rng"))


def test_random_catches_a_random_policy_that_ignores_the_seed(monkeypatch):
    shared = random.Random()

    def pick(self):
        task = self._ready[shared.randrange(len(self._ready))]
        self._ready.remove(task)
        return task

    monkeypatch.setattr(cp.VM, "_pick_random", pick)
    assert _fails("random", range(60))


def test_files_catches_a_loader_that_loses_the_last_record(monkeypatch):
    from counterpoint import _store

    original = _store._load_jsonl

    def load(path, journal):
        original(path, journal)
        if len(journal):
            cut = journal._prefix(len(journal) - 1)
            journal._rows, journal._vals = cut._rows, cut._vals
            journal._mark_index, journal._mark_tick = cut._mark_index, cut._mark_tick
            journal._voffsets = [0]

    monkeypatch.setattr(_store, "_load_jsonl", load)
    assert _fails("files", range(20))


def test_replay_catches_host_events_offered_at_the_wrong_moment(monkeypatch):
    from counterpoint import _replay

    monkeypatch.setattr(_replay.ReplayEvents, "_take", lambda self, limit: [])
    assert _fails("replay", range(100), lambda p: any(r["events"] for r in p["runs"]))


def test_slices_catch_a_step_that_reorders_the_ready_queue(monkeypatch):
    original = cp.VM.step

    def step(self, n=1):
        self._ready.reverse()
        return original(self, n)

    monkeypatch.setattr(cp.VM, "step", step)
    assert _fails("slices", range(60))


def test_state_at_catches_a_model_that_misses_closes(monkeypatch):
    from counterpoint import _journal, _timetravel

    original = _timetravel._Model.apply

    def apply(self, tick, task, kind, a, b, ended):
        if kind == _journal.CLOSE:
            self.index += 1
            return None
        return original(self, tick, task, kind, a, b, ended)

    monkeypatch.setattr(_timetravel._Model, "apply", apply)
    assert _fails("state_at", range(100), lambda p: uses(p, "close"))


def test_state_at_catches_snapshots_that_share_state_with_the_model(monkeypatch):
    from counterpoint import _timetravel

    monkeypatch.setattr(_timetravel._Channel, "copy", lambda self: self)
    assert _fails("state_at", range(30), lambda p: uses(p, "send"))


def test_backends_catch_a_backend_that_computes_something_else(monkeypatch):
    from counterpoint import _backends
    from counterpoint._workerjob import run_job

    monkeypatch.setattr(
        _backends.ThreadBackend,
        "submit",
        lambda self, function, payload: self._pool.submit(run_job, function, payload + 1),
    )
    assert _fails("backends", range(60), lambda p: uses(p, "work"))


def test_reproducers_say_how_to_check_them():
    subject = Subject.from_seed(3)
    failure = PropertyFailure("replay", "NondeterminismError", "expected X at event 4, got Y")
    text = reproducer(subject, failure, 3)
    assert text.startswith("# fuzz failure (seed 3, shrunk): replay: NondeterminismError")
    assert text.endswith(subject.source)
    assert Subject.from_source(text).program == subject.program  # (it carries its data)
