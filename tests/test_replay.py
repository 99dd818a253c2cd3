"""Replay (issue 4, "Replay"): re-execute a program and check it against its journal.

``cp.replay(program, journal)`` runs the program on a VM made like the original
(seed, policy, ``max_workers``, schedule from ``journal.meta``); worker outcomes
and host events come from the journal, not from the host.  The first record
that differs raises ``cp.NondeterminismError`` ("expected <record> at event N,
got <record>", with the task and the step).  ``cp.check_determinism`` runs a
program several times (in fresh processes when asked) and compares digests.
"""

from __future__ import annotations

import inspect
import random
import re
import time

import pytest

import counterpoint as cp

# ---------------------------------------------------------------------------
# Programs (module level: check_determinism(processes=True) ships them to a fresh
# process by value with cloudpickle).


async def pipeline():
    """A producer, a consumer, timers and the VM's rng: a little of everything."""
    ch = cp.channel(1)

    async def producer():
        for i in range(4):
            await ch.send(i * cp.rng().randrange(1, 100))
            await cp.sleep(1 + i % 2)
        ch.close()

    cp.spawn(producer(), name="producer")
    received = [value async for value in ch]
    return received, cp.now()


async def interleaving():
    """Three tasks that log their turns: the log shows the schedule."""
    log: list[str] = []

    async def turn(name):
        for _ in range(3):
            log.append(name)
            await cp.checkpoint()
        return name

    names = await cp.par(turn("a"), turn("b"), turn("c"))
    return "".join(log), names


async def fails_late():
    await cp.sleep(2)
    raise KeyError("no such key")


async def lost_update():
    box = {"n": 0}

    async def add():
        seen = box["n"]
        await cp.checkpoint()
        box["n"] = seen + 1

    await cp.par(add(), add())
    if box["n"] != 2:
        raise AssertionError(f"lost update: n == {box['n']}")
    return box["n"]


def run_on_vm(program, **options):
    """Run ``program()`` on a fresh ``cp.VM(**options)``: (vm, result, exception)."""
    vm = cp.VM(**options)
    try:
        return vm, vm.run(program()), None
    except Exception as error:
        return vm, None, error


# ---------------------------------------------------------------------------
# Replay reproduces runs


def test_replay_of_the_in_memory_journal_returns_the_programs_result():
    vm, result, _ = run_on_vm(pipeline)
    assert cp.replay(pipeline, vm.journal) == result


def test_replay_accepts_a_coroutine_as_well_as_a_callable():
    vm, result, _ = run_on_vm(pipeline)
    assert cp.replay(pipeline(), vm.journal) == result


def test_replay_of_a_saved_journal_file_returns_the_programs_result(tmp_path):
    vm, result, _ = run_on_vm(pipeline, seed=7)
    path = vm.journal.save(tmp_path / "x.db")
    assert cp.replay(pipeline, path) == result
    assert cp.replay(pipeline, str(path)) == result
    assert cp.replay(pipeline, cp.Journal.load(path)) == result


def test_replay_of_a_saved_file_uses_the_seed_and_policy_stored_in_it(tmp_path):
    vm, result, _ = run_on_vm(interleaving, policy="random", seed=3)
    path = vm.journal.save(tmp_path / "x.db")
    assert cp.replay(interleaving, path) == result


def test_replay_of_a_jsonl_export_returns_the_programs_result(tmp_path):
    vm, result, _ = run_on_vm(pipeline)
    path = vm.journal.export_jsonl(tmp_path / "x.jsonl")
    assert cp.replay(pipeline, path) == result


def test_a_jsonl_export_carries_no_vm_options_so_replay_takes_them_as_overrides(tmp_path):
    vm, result, _ = run_on_vm(interleaving, policy="random", seed=5)
    path = vm.journal.export_jsonl(tmp_path / "x.jsonl")
    assert cp.replay(interleaving, path, policy="random", seed=5) == result


def test_a_program_that_raises_is_replayed_and_raises_the_same_exception():
    vm, _, original = run_on_vm(fails_late)
    assert isinstance(original, KeyError)
    with pytest.raises(KeyError) as replayed:
        cp.replay(fails_late, vm.journal)
    assert replayed.type is not cp.NondeterminismError
    assert replayed.value.args == original.args


@pytest.mark.parametrize("seed", [0, 1, 2, 7, 12345])
def test_replay_reproduces_random_policy_runs_with_the_journals_seed(seed):
    vm, result, _ = run_on_vm(interleaving, policy="random", seed=seed)
    assert vm.journal.meta["policy"] == "random" and vm.journal.meta["seed"] == seed
    assert cp.replay(interleaving, vm.journal) == result


def test_random_policy_runs_with_different_seeds_are_different_runs():
    """(So the replays above really do depend on the seed from journal.meta.)"""
    logs = {run_on_vm(interleaving, policy="random", seed=seed)[1][0] for seed in range(8)}
    assert len(logs) > 1


def test_replay_of_a_schedule_from_explore_uses_the_schedule_in_journal_meta():
    finding = cp.explore(lost_update).failures[0]
    vm, _, original = run_on_vm(lost_update, schedule=finding.schedule)
    assert isinstance(original, AssertionError)
    assert vm.journal.meta["schedule"] == finding.schedule
    with pytest.raises(AssertionError, match="lost update: n == 1"):
        cp.replay(lost_update, vm.journal)


def test_replay_of_a_schedule_from_a_saved_file_uses_the_schedule_stored_in_it(tmp_path):
    finding = cp.explore(lost_update).failures[0]
    vm, _, _ = run_on_vm(lost_update, schedule=finding.schedule)
    path = vm.journal.save(tmp_path / "x.db")
    assert cp.Journal.load(path).meta["schedule"] == finding.schedule
    with pytest.raises(AssertionError, match="lost update: n == 1"):
        cp.replay(lost_update, path)


def test_replay_without_the_journals_schedule_diverges():
    """Overriding schedule=None gives the default schedule, which is not the recorded one."""
    finding = cp.explore(lost_update).failures[0]
    vm, _, _ = run_on_vm(lost_update, schedule=finding.schedule)
    with pytest.raises(cp.NondeterminismError, match=r"expected .* at event"):
        cp.replay(lost_update, vm.journal, schedule=None)


def test_replay_of_a_hand_written_schedule():
    # cp1:0112 -> choices [0, 1, 1]: the preemption that loses an update
    vm, _, original = run_on_vm(lost_update, schedule="cp1:0112")
    assert isinstance(original, AssertionError)
    with pytest.raises(AssertionError, match="lost update"):
        cp.replay(lost_update, vm.journal)
    # and the same program under another schedule is replayed with that one
    vm, result, _ = run_on_vm(lost_update, schedule="cp1:03")
    assert result == 2
    assert cp.replay(lost_update, vm.journal) == 2


# ---------------------------------------------------------------------------
# Workers are not run again: their outcomes come from the receipts

CALLS: list = []


@cp.worker.task
def rp_times_ten(n):
    CALLS.append(n)
    return n * 10


@cp.worker.task
def rp_fail(n):
    CALLS.append(n)
    raise ValueError(f"bad input {n}")


async def uses_workers():
    handles = [cp.worker.start("rp_times_ten", n, cost=n) for n in (3, 1, 2)]
    bad = cp.worker.start("rp_fail", 7, cost=2)
    first = await cp.worker.wait_any(handles)
    statuses = [await cp.worker.wait(handle) for handle in [*handles, bad]]
    results = [cp.worker.result(handle) for handle in handles]
    with pytest.raises(cp.WorkerFailed) as failed:
        cp.worker.result(bad)
    return first, statuses, results, cp.worker.error(bad), str(failed.value), cp.now()


@pytest.mark.parametrize("max_workers", [None, 1, 2])
def test_replay_does_not_run_workers_again_and_returns_their_recorded_outcomes(max_workers):
    CALLS.clear()
    vm, result, error = run_on_vm(uses_workers, max_workers=max_workers)
    assert error is None
    assert sorted(CALLS) == [1, 2, 3, 7]
    _, statuses, results, worker_error, _, _ = result
    assert statuses == [1, 1, 1, -1]
    assert results == [30, 10, 20]
    assert "bad input 7" in worker_error
    assert vm.journal.meta["max_workers"] == max_workers
    if max_workers is not None:
        assert any(record.kind == "queue" for record in vm.journal)
    calls_before = list(CALLS)
    assert cp.replay(uses_workers, vm.journal) == result
    assert calls_before == CALLS


def test_replayed_worker_outcomes_come_from_the_journal_not_from_the_function(monkeypatch):
    """Even if the function now behaves differently, the replay sees what the original saw."""
    vm, result, error = run_on_vm(uses_workers)
    assert error is None
    monkeypatch.setitem(cp.worker.REGISTRY, "rp_times_ten", lambda n: -1)
    monkeypatch.setitem(cp.worker.REGISTRY, "rp_fail", lambda n: "fine now")
    assert cp.replay(uses_workers, vm.journal) == result


def test_queued_workers_start_when_recorded_in_a_replay():
    vm, result, _ = run_on_vm(uses_workers, max_workers=1)
    _, _, _, _, _, finished_at = result
    assert finished_at == 3 + 1 + 2 + 2  # one at a time, in start order
    assert cp.replay(uses_workers, vm.journal)[-1] == finished_at


# ---------------------------------------------------------------------------
# Host events come from the journal


async def takes_host_events():
    first = await cp.events.next()
    await cp.sleep(1)
    two = cp.events.drain(2)
    one = cp.events.drain(1)

    async def waiter():
        return await cp.events.next()

    late = cp.spawn(waiter(), name="waiter")
    await cp.sleep(1)
    return first, two, one, await late, cp.events.drain(10)


def enqueue_host_events(vm):
    for source, payload in [("k", "a"), ("m", [1, 2]), ("k", "b"), ("k", "c"), ("z", {"x": 1})]:
        vm.events.enqueue(source, payload)


def test_host_events_are_replayed_from_the_journal_without_enqueueing_anything():
    vm = cp.VM()
    enqueue_host_events(vm)
    result = vm.run(takes_host_events())
    first, two, one, late, rest = result
    assert first == cp.HostEvent("k", "a")
    assert len(two) == 2 and len(one) == 1 and isinstance(late, cp.HostEvent) and rest == []
    assert sum(record.kind == "event" for record in vm.journal) == 5
    assert cp.replay(takes_host_events, vm.journal) == result


def test_host_events_are_replayed_from_a_saved_file(tmp_path):
    vm = cp.VM()
    enqueue_host_events(vm)
    result = vm.run(takes_host_events())
    assert cp.replay(takes_host_events, vm.journal.save(tmp_path / "x.db")) == result


EXTRA_EVENTS = {"on": False}


async def enqueues_its_own_events():
    events = cp.current_task()._vm.events  # the VM running this program (a replay's own VM)

    async def waiter():
        return await cp.events.next()

    parked = cp.spawn(waiter(), name="waiter")
    await cp.sleep(1)  # the waiter parks in next(); an event enqueued now wakes it
    events.enqueue("own", 1)
    if EXTRA_EVENTS["on"]:
        events.enqueue("extra", 2)
        events.enqueue("own", 3)
    woken = await parked
    events.enqueue("own", 4)
    if EXTRA_EVENTS["on"]:
        events.enqueue("extra", 5)
    return woken, cp.events.drain(10)


def test_vm_events_enqueue_during_a_replay_is_ignored(monkeypatch):
    vm, result, error = run_on_vm(enqueues_its_own_events)
    assert error is None
    assert result == (cp.HostEvent("own", 1), [cp.HostEvent("own", 4)])
    monkeypatch.setitem(EXTRA_EVENTS, "on", True)
    assert cp.replay(enqueues_its_own_events, vm.journal) == result


# ---------------------------------------------------------------------------
# Divergence is detected at the first differing record

SENT = {"value": 1}


async def sends_a_global():
    ch = cp.channel(1)

    async def picker():
        await cp.sleep(1)
        await ch.send(SENT["value"])

    cp.spawn(picker(), name="picker")
    return await ch.recv()


def first_differing_event(a: cp.Journal, b: cp.Journal) -> int:
    return next(i for i, (x, y) in enumerate(zip(a, b, strict=False), 1) if x != y)


def test_a_changed_global_makes_the_replay_raise_at_the_first_differing_record(monkeypatch):
    original, _, _ = run_on_vm(sends_a_global)
    monkeypatch.setitem(SENT, "value", 2)
    changed, _, _ = run_on_vm(sends_a_global)
    n = first_differing_event(original.journal, changed.journal)
    with pytest.raises(cp.NondeterminismError) as caught:
        cp.replay(sends_a_global, original.journal)
    error = caught.value
    assert error.event_id == n
    assert isinstance(error.expected, cp.Record) and isinstance(error.got, cp.Record)
    assert error.expected == original.journal[n - 1]
    assert error.got == changed.journal[n - 1]
    assert error.expected.kind == error.got.kind == "send"
    assert (error.expected.data["value"], error.got.data["value"]) == (1, 2)
    message = str(error)
    assert re.search(
        rf"expected \{{.*\}} at event {n}, got \{{.*\}} "
        rf"\(task 2 'picker', in its step 2 \(step \d+ of the run\)\)",
        message,
    ), message
    assert '"value":1' in message and '"value":2' in message


def test_a_divergence_in_control_flow_names_the_record_each_side_wrote(monkeypatch):
    """The replay takes another branch: the expected and the got record are of other kinds."""
    branch = {"sleep": False}

    async def branches():
        await cp.checkpoint()
        if branch["sleep"]:
            await cp.sleep(5)
        return cp.now()

    vm, _, _ = run_on_vm(branches)
    monkeypatch.setitem(branch, "sleep", True)
    with pytest.raises(cp.NondeterminismError) as caught:
        cp.replay(branches, vm.journal)
    error = caught.value
    assert error.expected.kind == "done" and error.got.kind == "sleep"
    assert error.expected.event_id == error.got.event_id == error.event_id
    assert f"at event {error.event_id}," in str(error)
    assert "task 1 'branches', in its step 2" in str(error)


def test_a_replay_that_ends_before_the_journal_does_raises_ended_early():
    vm = cp.VM()
    vm.run(sends_a_global())
    first_run = len(vm.journal)
    vm.run(sends_a_global())  # the journal goes on with a second run the replay lacks
    with pytest.raises(cp.NondeterminismError, match="ended early") as caught:
        cp.replay(sends_a_global, vm.journal)
    error = caught.value
    assert error.event_id == first_run + 1
    assert error.expected == vm.journal[first_run]
    assert error.got is None
    assert "nothing (the journal ends here)" in str(error)


def test_a_replay_that_goes_on_past_the_journal_raises(tmp_path):
    vm, result, _ = run_on_vm(pipeline)
    full = vm.journal.export_jsonl(tmp_path / "full.jsonl").read_text().splitlines()
    keep = len(full) - 3
    cut = tmp_path / "cut.jsonl"
    cut.write_text("\n".join(full[:keep]) + "\n")
    with pytest.raises(cp.NondeterminismError, match="went on past the journal") as caught:
        cp.replay(pipeline, cut)
    error = caught.value
    assert error.event_id == keep + 1
    assert error.expected is None
    assert error.got == vm.journal[keep]
    assert f"expected nothing (the journal ends here) at event {keep + 1}, got" in str(error)
    assert result is not None


def test_a_replay_with_another_seed_of_a_random_policy_program_diverges():
    vm, _, _ = run_on_vm(interleaving, policy="random", seed=0)
    with pytest.raises(cp.NondeterminismError) as caught:
        cp.replay(interleaving, vm.journal, seed=1)
    error = caught.value
    assert error.expected.kind == error.got.kind == "step"
    assert error.expected.task != error.got.task


def test_a_replay_with_another_seed_of_a_program_using_cp_rng_diverges():
    vm, _, _ = run_on_vm(pipeline, seed=0)
    with pytest.raises(cp.NondeterminismError) as caught:
        cp.replay(pipeline, vm.journal, seed=1)
    assert caught.value.expected.kind == "send"


def test_a_divergence_stops_the_replay_early(monkeypatch):
    """After the divergence the program would take ten million steps: the replay
    compares as it goes (every 256 steps) and stops it."""
    mode = {"loop": False}

    async def loops_after_divergence():
        await cp.checkpoint()
        if mode["loop"]:
            for _ in range(10_000_000):
                await cp.checkpoint()
        return "done"

    vm, _, _ = run_on_vm(loops_after_divergence)
    monkeypatch.setitem(mode, "loop", True)
    with pytest.raises(cp.NondeterminismError, match="diverged") as caught:
        cp.replay(loops_after_divergence, vm.journal)
    assert caught.value.expected.kind == "done"


def test_a_replay_that_goes_past_a_short_journal_stops_early(tmp_path):
    """A journal cut short, and a program that would run for ten million steps."""

    async def long_loop():
        for _ in range(10_000_000):
            await cp.checkpoint()

    vm = cp.VM(max_steps=50)
    with pytest.raises(cp.StepLimitExceeded):
        vm.run(long_loop())
    lines = vm.journal.export_jsonl(tmp_path / "x.jsonl").read_text().splitlines()
    (tmp_path / "cut.jsonl").write_text("\n".join(lines[:40]) + "\n")
    with pytest.raises(cp.NondeterminismError, match="went on past the journal") as caught:
        cp.replay(long_loop, tmp_path / "cut.jsonl")
    assert caught.value.event_id == 41


# ---------------------------------------------------------------------------
# check_determinism


def digest_on_vm(program, **options):
    vm, _, _ = run_on_vm(program, **options)
    return vm.journal.digest()


@pytest.mark.parametrize("runs", [2, 3])
def test_check_determinism_returns_the_digest_of_a_run_on_a_vm(runs):
    assert cp.check_determinism(pipeline, runs=runs) == digest_on_vm(pipeline)


def test_check_determinism_passes_seed_and_policy_to_the_vm():
    digest = cp.check_determinism(interleaving, seed=9, policy="random")
    assert digest == digest_on_vm(interleaving, seed=9, policy="random")
    assert digest != digest_on_vm(interleaving)


def test_check_determinism_of_a_failing_program_is_the_digest_of_its_failing_run():
    assert cp.check_determinism(fails_late) == digest_on_vm(fails_late)


def test_check_determinism_in_fresh_processes_returns_the_same_digest():
    assert cp.check_determinism(pipeline, runs=2, processes=True) == digest_on_vm(pipeline)


def test_check_determinism_in_fresh_processes_ships_a_closure():
    words = ["alpha", "beta", "gamma"]

    async def closure():
        ch = cp.channel(len(words))
        for word in words:
            await ch.send(word.upper())
            await cp.sleep(1)
        return [await ch.recv() for _ in words]

    assert cp.check_determinism(closure, processes=True) == digest_on_vm(closure)


async def uses_host_randomness():
    await cp.sleep(1)
    return random.random()


async def uses_the_host_clock():
    await cp.sleep(1)
    return time.perf_counter()


@pytest.mark.parametrize("program", [uses_host_randomness, uses_the_host_clock])
def test_check_determinism_rejects_a_program_that_depends_on_the_host(program):
    with pytest.raises(cp.NondeterminismError, match="run 2 differs from run 1") as caught:
        cp.check_determinism(program, runs=3)
    error = caught.value
    assert error.expected.kind == error.got.kind == "done"
    assert error.expected.data != error.got.data
    assert f"at event {error.event_id}," in str(error)


async def sends_a_set_in_iteration_order():
    words = {f"word-{i}-{chr(97 + i)}" for i in range(20)}
    ch = cp.channel(len(words))
    for word in words:  # the order depends on the hash seed of the process
        await ch.send(word)
    ch.close()
    return [word async for word in ch]


def test_hash_order_dependence_passes_in_process():
    """One process, one hash seed: the set's order is the same in every run."""
    assert cp.check_determinism(sends_a_set_in_iteration_order, runs=3) == digest_on_vm(
        sends_a_set_in_iteration_order
    )


def test_hash_order_dependence_is_caught_in_fresh_processes():
    """Each process gets its own PYTHONHASHSEED, so 20 strings come out in other orders."""
    with pytest.raises(cp.NondeterminismError, match=r"run [23] differs from run 1") as caught:
        cp.check_determinism(sends_a_set_in_iteration_order, runs=3, processes=True)
    error = caught.value
    assert error.expected.kind == error.got.kind == "send"
    assert error.expected.data["value"] != error.got.data["value"]


# ---------------------------------------------------------------------------
# Bad arguments


def test_check_determinism_refuses_a_coroutine_and_says_to_pass_the_function():
    coro = pipeline()
    try:
        with pytest.raises(TypeError, match=r"such as `main`, not `main\(\)`"):
            cp.check_determinism(coro)
    finally:
        coro.close()


def test_check_determinism_closes_a_coroutine_it_refuses():
    coro = pipeline()
    try:
        with pytest.raises(TypeError):
            cp.check_determinism(coro)
        assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED
    finally:
        coro.close()


@pytest.mark.parametrize("runs", [1, 0, -1])
def test_check_determinism_needs_at_least_two_runs(runs):
    with pytest.raises(ValueError, match=r"runs must be an int >= 2 .*compares runs"):
        cp.check_determinism(pipeline, runs=runs)


@pytest.mark.parametrize("runs", [2.0, "2", None])
def test_check_determinism_needs_runs_to_be_an_int(runs):
    with pytest.raises(ValueError, match="runs must be an int"):
        cp.check_determinism(pipeline, runs=runs)


def test_replay_of_a_missing_file_raises_journal_error_naming_it(tmp_path):
    missing = tmp_path / "missing.db"
    with pytest.raises(cp.JournalError, match=r"missing\.db: no such journal file"):
        cp.replay(pipeline, missing)


def test_replay_of_a_file_that_is_not_a_journal_raises_journal_error(tmp_path):
    bogus = tmp_path / "bogus.db"
    bogus.write_text("not a journal")
    with pytest.raises(cp.JournalError, match="not a Counterpoint journal"):
        cp.replay(pipeline, bogus)


def test_replay_closes_a_coroutine_when_the_journal_cannot_be_loaded(tmp_path):
    coro = pipeline()
    try:
        with pytest.raises(cp.JournalError):
            cp.replay(coro, tmp_path / "missing.db")
        assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED
    finally:
        coro.close()


def test_replay_refuses_something_that_is_not_a_program():
    vm, _, _ = run_on_vm(pipeline)
    with pytest.raises(TypeError, match=r"zero-argument callable .*not `main\(\)`"):
        cp.replay(42, vm.journal)


def test_replay_with_bad_vm_options_raises_and_closes_the_coroutine():
    vm, _, _ = run_on_vm(pipeline)
    coro = pipeline()
    with pytest.raises(ValueError, match="unknown policy"):
        cp.replay(coro, vm.journal, policy="lifo")
    assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED
