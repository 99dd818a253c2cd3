"""``task.suspend()`` / ``task.resume()`` (issue 13, "Execution lifecycle"): each rule of
"Suspending and resuming tasks" in docs/design.md, as a test."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

import counterpoint as cp


def lifecycle(vm: cp.VM) -> list[tuple[str, int, dict]]:
    """The suspend, resume and cancel records of a run: (kind, task, data)."""
    kinds = ("suspend", "resume", "cancel")
    return [(r.kind, r.task, r.data) for r in vm.journal if r.kind in kinds]


async def nap(ticks: int):
    await cp.sleep(ticks)


async def receive(ch):
    return await ch.recv()


async def sleeps_then_cleans_up(log: list):
    try:
        await cp.sleep(100)
    finally:
        log.append(("cleanup", cp.now()))


async def ticker(log: list, name: str, n: int = 3):
    for i in range(n):
        log.append((cp.now(), name, i))
        await cp.sleep(1)


# -- scheduling --------------------------------------------------------------------------------


# (a task suspending and resuming another: test_steering.py)


def test_the_host_suspends_and_resumes_between_steps_journaled_by_the_host(new_vm):
    vm = new_vm()
    log: list = []
    task = vm.spawn(ticker(log, "t"), name="t")
    vm.step(1)
    assert task.suspend() is True
    assert vm.ready() == [] and [info.state for info in vm.tasks()] == ["suspended"]
    assert vm.step(10) == 0  # the timer fires, but the task is held
    assert vm.now == 1 and log == [(0, "t", 0)]
    assert task.resume() is True
    vm.step(10)
    assert task.done() and log == [(0, "t", 0), (1, "t", 1), (2, "t", 2)]
    assert lifecycle(vm) == [("suspend", 1, {"by": 0}), ("resume", 1, {"by": 0})]


def test_timers_that_fire_while_tasks_are_suspended_make_them_ready_on_resume_in_resume_order():
    log: list = []

    async def sleeper(name, ticks):
        await cp.sleep(ticks)
        log.append((cp.now(), name))

    async def main():
        tasks = [cp.spawn(sleeper(f"s{i}", 1 + i % 2), name=f"s{i}") for i in range(4)]
        await cp.checkpoint()
        for task in tasks:
            task.suspend()
        await cp.sleep(5)  # every timer fires meanwhile
        assert log == []
        for task in (tasks[2], tasks[0], tasks[3], tasks[1]):
            task.resume()
        log.append((cp.now(), "resumed"))
        for task in tasks:
            await task

    cp.VM().run(main())
    assert log == [(5, "resumed"), (5, "s2"), (5, "s0"), (5, "s3"), (5, "s1")]


def test_a_task_that_suspends_itself_stops_at_its_next_yield():
    log: list = []

    async def self_stopper():
        log.append("before")
        assert cp.current_task().suspend() is True
        log.append("same step")  # the suspension takes effect when the task yields
        await cp.checkpoint()
        log.append("after resume")

    async def main():
        task = cp.spawn(self_stopper(), name="self")
        await cp.sleep(3)
        log.append(("main", cp.now(), task.info().state))
        task.resume()
        await task

    vm = cp.VM()
    vm.run(main())
    assert log == ["before", "same step", ("main", 3, "suspended"), "after resume"]
    assert lifecycle(vm) == [("suspend", 2, {"by": 2}), ("resume", 2, {"by": 1})]


def test_suspend_and_resume_are_idempotent_and_journaled_once():
    async def main():
        child = cp.spawn(cp.sleep(2), name="child")
        assert child.suspend() is True
        assert child.suspend() is False
        assert child.resume() is True
        assert child.resume() is False
        await child

    vm = cp.VM()
    vm.run(main())
    assert lifecycle(vm) == [("suspend", 2, {"by": 1}), ("resume", 2, {"by": 1})]


def test_resuming_a_task_that_was_never_suspended_returns_false_and_records_nothing():
    async def main():
        child = cp.spawn(cp.sleep(1), name="child")
        assert child.resume() is False
        await child

    vm = cp.VM()
    vm.run(main())
    assert lifecycle(vm) == []


def test_suspending_or_resuming_a_finished_task_returns_false_and_records_nothing(new_vm):
    async def main():
        child = cp.spawn(cp.sleep(1), name="child")
        await child
        assert child.suspend() is False and child.resume() is False
        return child

    vm = new_vm()
    child = vm.run(main())
    assert child.suspend() is False and child.resume() is False  # (from the host too)
    assert lifecycle(vm) == []


# -- waits: a suspended waiter keeps its place -------------------------------------------------


def test_a_suspended_receiver_keeps_its_place_and_takes_the_value_in_turn():
    got: list = []

    async def receiver(ch, name):
        value = await ch.recv()
        got.append((cp.now(), name, value))

    async def main():
        ch = cp.channel(name="jobs")
        first = cp.spawn(receiver(ch, "first"), name="first")
        second = cp.spawn(receiver(ch, "second"), name="second")
        await cp.checkpoint()  # both wait, first in front
        first.suspend()
        assert first.info().state == "suspended"
        await ch.send("a")  # handed to the first waiter: it is held, with the value
        await ch.send("b")
        await cp.sleep(2)
        assert got == [(0, "second", "b")]
        first.resume()
        await first
        await second

    vm = cp.VM()
    vm.run(main())
    assert got == [(0, "second", "b"), (2, "first", "a")]
    recvs = [(r.task, r.data["value"]) for r in vm.journal if r.kind == "recv"]
    assert recvs == [(2, "a"), (3, "b")]


def test_a_suspended_lock_waiter_gets_the_lock_in_turn_and_holds_it_until_resumed():
    log: list = []

    async def locker(lock, name):
        async with lock:
            log.append((cp.now(), name))
            await cp.sleep(1)

    async def main():
        lock = cp.Lock(name="L")
        await lock.acquire()
        first = cp.spawn(locker(lock, "first"), name="first")
        second = cp.spawn(locker(lock, "second"), name="second")
        await cp.checkpoint()
        first.suspend()
        lock.release()  # the first waiter gets it, suspended
        await cp.sleep(3)
        assert log == [] and lock.locked()
        first.resume()
        await second

    cp.VM().run(main())
    assert log == [(3, "first"), (4, "second")]


def test_closing_a_channel_throws_into_a_suspended_receiver_when_it_is_resumed():
    log: list = []

    async def receiver(ch):
        try:
            await ch.recv()
        except cp.ChannelClosed:
            log.append(("closed", cp.now()))

    async def main():
        ch = cp.channel()
        task = cp.spawn(receiver(ch), name="r")
        await cp.checkpoint()
        task.suspend()
        ch.close()
        await cp.sleep(2)
        assert log == []
        task.resume()
        await task

    cp.VM().run(main())
    assert log == [("closed", 2)]


# -- cancellation --------------------------------------------------------------------------------


def test_cancelling_a_suspended_task_resumes_it_at_once_to_run_its_cleanup():
    log: list = []

    async def main():
        task = cp.spawn(sleeps_then_cleans_up(log), name="w")
        await cp.sleep(1)
        task.suspend()
        await cp.sleep(1)
        task.cancel()
        with pytest.raises(cp.Cancelled):
            await task
        return task.info().state

    vm = cp.VM()
    assert vm.run(main()) == "cancelled"
    assert log == [("cleanup", 2)]
    assert lifecycle(vm) == [
        ("suspend", 2, {"by": 1}),
        ("resume", 2, {"by": 1}),  # the cancel resumes it: one record, then the cancel
        ("cancel", 2, {"by": 1, "reason": "task.cancel() by task 1"}),
    ]


def test_a_cancelled_task_cannot_be_suspended_while_it_unwinds():
    log: list = []

    async def main():
        task = cp.spawn(sleeps_then_cleans_up(log), name="w")
        await cp.checkpoint()
        task.cancel()
        assert task.suspend() is False  # cancellation wins, in either order
        with pytest.raises(cp.Cancelled):
            await task

    vm = cp.VM()
    vm.run(main())
    assert log == [("cleanup", 0)]
    assert [kind for kind, _, _ in lifecycle(vm)] == ["cancel"]


def test_a_deadlocked_run_cancels_its_suspended_tasks_and_they_run_their_cleanup(new_vm):
    log: list = []

    async def main():
        task = cp.spawn(sleeps_then_cleans_up(log), name="w")
        await cp.checkpoint()
        task.suspend()
        await task

    vm = new_vm()
    with pytest.raises(cp.Deadlock, match="nothing can run: task 2 'w' is suspended"):
        vm.run(main())
    vm.step(10)  # abandoned tasks run their cleanup at the next run or step
    assert log == [("cleanup", 100)] and vm.tasks() == []  # (its timer fired, held)
    assert [kind for kind, task, _ in lifecycle(vm) if task == 2] == ["suspend", "resume", "cancel"]


# -- Deadlock ---------------------------------------------------------------------------------


def test_a_run_whose_only_unfinished_tasks_are_suspended_is_a_deadlock_naming_them(new_vm):
    async def poll():
        while True:
            await cp.sleep(1)

    async def main():
        poller = cp.spawn(poll(), name="poller")
        ch = cp.channel(name="jobs")
        reader = cp.spawn(ch.recv(), name="reader")
        await cp.sleep(1)
        poller.suspend()
        reader.suspend()
        await poller

    with pytest.raises(cp.Deadlock) as caught:
        new_vm().run(main())
    assert str(caught.value) == (
        "deadlock at tick 1: nothing can run: task 2 'poller' is suspended, and no task can "
        "make progress while task 1 'main' (the root of vm.run) waits.\n"
        "  task 1 'main' waits for task 2 to finish\n"
        "  task 2 'poller' is suspended\n"
        "  task 3 'reader' is suspended and waits to receive on channel 'jobs'\n"
        "  (task.resume(), from the host or a task, schedules it again)"
    )
    assert [(tid, name) for tid, name, _ in caught.value.blocked] == [
        (1, "main"),
        (2, "poller"),
        (3, "reader"),
    ]


def test_a_deadlock_without_suspended_tasks_keeps_its_wording(new_vm):
    async def main():
        await cp.channel().recv()

    with pytest.raises(cp.Deadlock) as caught:
        new_vm().run(main())
    assert str(caught.value) == (
        "deadlock at tick 0: no task can make progress while task 1 'main' (the root of "
        "vm.run) waits.\n  task 1 'main' waits to receive on channel 1"
    )


def test_the_host_can_resume_what_vm_step_left_suspended(new_vm):
    vm = new_vm()
    task = vm.spawn(nap(1), name="sleeper")
    vm.step(1)
    task.suspend()
    assert vm.step(5) == 0  # stepping is the host's loop: nothing to run is no error
    task.resume()
    assert vm.step(5) == 1 and task.done()


# -- bad calls ----------------------------------------------------------------------------------


def test_suspending_a_task_of_another_vm_from_a_task_is_a_wrong_vm_error(new_vm):
    other = new_vm()
    foreign = other.spawn(nap(1), name="foreign")

    async def main():
        with pytest.raises(cp.WrongVMError, match="of its own VM"):
            foreign.suspend()
        with pytest.raises(cp.WrongVMError, match="of its own VM"):
            foreign.resume()
        await cp.checkpoint()
        return "still usable"

    vm = new_vm()
    assert vm.run(main()) == "still usable"
    assert lifecycle(vm) == lifecycle(other) == []


def test_suspending_from_the_host_while_the_vm_runs_is_refused_as_busy(new_vm):
    vm = new_vm()
    task = vm.spawn(ticker([], "t"), name="t")
    refused: list = []

    def watcher(vm, first, last):
        try:
            task.suspend()
        except cp.VMBusyError as error:
            refused.append(str(error))

    vm.watch(watcher)
    vm.step(1)
    assert refused and "task 1.suspend()" in refused[0]
    assert task.info().state != "suspended" and lifecycle(vm) == []


_TARGET: dict = {}  # the task a worker function tries to suspend


@cp.worker.task(name="test_suspend_from_a_worker")
def suspend_from_a_worker(_payload):
    try:
        _TARGET["task"].suspend()
    except cp.WorkerIsolationError as error:
        return str(error)
    return "suspended"


def test_a_worker_function_cannot_suspend_a_task():
    async def main():
        _TARGET["task"] = cp.spawn(nap(5), name="target")
        handle = cp.worker.start("test_suspend_from_a_worker", None, cost=1)
        await cp.worker.wait(handle)
        return cp.worker.result(handle), _TARGET["task"].info().state

    refusal, state = cp.VM(workers="inline").run(main())
    _TARGET.clear()
    assert "task 2.suspend() was called from" in refusal and "isolated" in refusal
    assert state == "sleeping"


# -- journal, replay, determinism ---------------------------------------------------------------


async def lifecycle_program():
    """Suspends and resumes from a task and by itself, with timers, a channel and a cancel."""
    ch = cp.channel(name="c")
    log: list = []

    async def producer():
        for i in range(4):
            await ch.send(i)
            await cp.sleep(cp.rng().randrange(1, 3))

    async def consumer():
        for _ in range(4):
            log.append((cp.now(), await ch.recv()))
            if len(log) == 2:
                cp.current_task().suspend()
            await cp.checkpoint()

    async def stubborn():
        try:
            await cp.sleep(50)
        finally:
            log.append(("cleanup", cp.now()))

    p = cp.spawn(producer(), name="producer")
    c = cp.spawn(consumer(), name="consumer")
    s = cp.spawn(stubborn(), name="stubborn")
    await cp.sleep(1)
    p.suspend()
    s.suspend()
    await cp.sleep(2)
    p.resume()
    await cp.sleep(3)
    c.resume()
    s.cancel()
    await p
    await c
    return log


@pytest.mark.parametrize("policy", ["fifo", "random"])
def test_a_run_that_suspends_and_resumes_replays_and_is_the_same_twice(policy):
    first = cp.VM(policy=policy, seed=7)
    result = first.run(lifecycle_program())
    second = cp.VM(policy=policy, seed=7)
    assert second.run(lifecycle_program()) == result
    assert first.journal.digest() == second.journal.digest()
    assert cp.replay(lifecycle_program, first.journal) == result
    assert {"suspend", "resume"} <= {r.kind for r in first.journal}


def test_a_program_that_suspends_at_another_moment_fails_replay_at_that_record():
    def program(suspending):
        async def main():
            child = cp.spawn(nap(3), name="child")
            await cp.sleep(1)
            if suspending:
                child.suspend()
            await child

        return main

    vm = cp.VM()
    vm.run(program(False)())
    with pytest.raises(cp.NondeterminismError, match='"kind":"suspend"'):
        cp.replay(program(True), vm.journal)


def test_suspend_and_resume_records_survive_a_journal_file(tmp_path):
    path = tmp_path / "run.cpj"
    with cp.VM(journal=path) as vm:
        result = vm.run(lifecycle_program())
        digest = vm.journal.digest()
    loaded = cp.Journal.load(path)
    assert loaded.digest() == digest
    assert cp.replay(lifecycle_program, path) == result


_IN_A_PROCESS = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    import counterpoint as cp
    from test_suspend import lifecycle_program
    vm = cp.VM(policy="random", seed=11)
    vm.run(lifecycle_program())
    print(vm.journal.digest())
    """
)


def test_a_run_that_suspends_has_the_same_digest_in_processes_with_different_hash_seeds():
    code = _IN_A_PROCESS.format(tests=os.path.dirname(__file__))
    digests = []
    for hash_seed in ("1", "4242"):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed)
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
        )
        assert done.returncode == 0, done.stderr
        digests.append(done.stdout.strip())
    vm = cp.VM(policy="random", seed=11)
    vm.run(lifecycle_program())
    assert digests == [vm.journal.digest()] * 2


# -- views: state_at, %tasks, widgets -----------------------------------------------------------


def test_state_at_shows_suspended_tasks_as_the_live_vm_does(new_vm):
    vm = new_vm()
    ch = vm.channel(name="c")
    waiter = vm.spawn(receive(ch), name="waiter")
    sleeper = vm.spawn(nap(1), name="sleeper")
    vm.step(2)
    waiter.suspend()
    sleeper.suspend()
    vm.step(5)
    view = vm.journal.state_at(len(vm.journal))
    for info in vm.tasks():
        assert info.state == "suspended"
        assert view.tasks[info.id].state == info.state
        assert view.tasks[info.id].waiting_on == info.waiting_on
    assert vm.tasks()[0].waiting_on.startswith("to receive on channel 'c', and is suspended")


@pytest.mark.parametrize("policy", ["fifo", "random"])
def test_state_at_agrees_with_the_live_vm_at_every_step_of_a_run_that_suspends(policy):
    vm = cp.VM(policy=policy, seed=5)
    root = vm.spawn(lifecycle_program(), name="main")
    steps = 0
    while vm.step(1):
        steps += 1
        view = vm.journal.state_at(len(vm.journal))
        live = {info.id: (info.state, info.waiting_on) for info in vm.tasks()}
        seen = {
            task: (state.state, state.waiting_on)
            for task, state in view.tasks.items()
            if state.state not in ("done", "failed", "cancelled")
        }
        for task, (state, _) in list(seen.items()):  # the view says "running" for the task
            if state == "running":  # of the last step; the live VM, between steps, does not
                seen[task] = live[task]
        assert seen == live, steps
        assert sorted(view.ready) == sorted(info.id for info in vm.ready()), steps
    assert root.done() and steps > 20
    assert {"suspend", "resume", "cancel"} <= {r.kind for r in vm.journal}


def test_the_tasks_magic_shows_the_suspended_state(new_vm):
    from counterpoint.ipython.magics import CounterpointMagics

    vm = new_vm()
    task = vm.spawn(nap(1), name="napper")
    vm.step(1)
    task.suspend()
    shown = CounterpointMagics(None, SimpleNamespace(vm=vm)).tasks("")
    assert "'napper'" in repr(shown) and " suspended " in repr(shown)
    assert ">suspended</td>" in shown._repr_html_()


async def pauses_a_helper():
    """The root suspends the helper it spawned, then checkpoints (for the Scheduler)."""
    helper = cp.spawn(nap(1), name="helper")
    helper.suspend()
    await cp.checkpoint()
    helper.resume()
    await helper


def test_the_scheduler_widget_gives_a_suspended_task_its_own_look():
    from counterpoint.widgets import Scheduler
    from counterpoint.widgets.scheduler import SUSPENDED_LOOK

    game = Scheduler(pauses_a_helper)
    game.choose(1)  # spawns and suspends the helper
    columns = {task["id"]: task for task in game.game["tasks"]}
    assert columns[2]["state"] == "suspended" and columns[2]["ready"] is False
    assert game.ready == [1]
    picture = game._picture()
    assert f'data-task="2"{SUSPENDED_LOOK}>' in picture
    assert f'data-task="1"{SUSPENDED_LOOK}>' not in picture
    widgets = Path(__file__).parent.parent / "extensions" / "widgets" / "js"
    assert 'suspended: " cp-sched-suspended"' in (widgets / "scheduler.js").read_text()
    assert ".cp-widget .cp-sched-suspended {" in (widgets / "widgets.css").read_text()
    game.choose(1)
    assert game.ready == [2]  # resumed; the root waits for it


# -- exploration --------------------------------------------------------------------------------


async def pause_briefly(task):
    """Suspend ``task``, let the others run one step, resume it."""
    task.suspend()
    await cp.checkpoint()
    task.resume()


def suspend_race():
    """Task 2 suspends task 3 (and resumes it) while both race on a shared counter."""

    async def main():
        box = {"n": 0, "seen": []}
        lock = cp.Lock()

        async def bump(name):
            async with lock:
                box["seen"].append(name)
            await cp.checkpoint()
            box["seen"].append(name + "!")

        b = cp.spawn(bump("b"), name="b")

        c = cp.spawn(pause_briefly(b), name="controller")
        a = cp.spawn(bump("a"), name="a")
        await a
        await b
        await c
        return tuple(box["seen"])

    return main()


def suspended_receiver_race():
    """Two receivers on one channel, one of them suspended and resumed by a third task,
    while the root sends two values: who gets which depends on the interleaving."""

    async def main():
        ch = cp.channel()
        got: list = []

        async def receiver(name):
            got.append((name, await ch.recv()))

        first = cp.spawn(receiver("first"), name="first")
        second = cp.spawn(receiver("second"), name="second")

        pause = cp.spawn(pause_briefly(first), name="pauser")
        await ch.send(1)
        await ch.send(2)
        await pause
        await first
        await second
        return tuple(got)

    return main()


def self_suspender_cancelled():
    """A task suspends itself; another resumes or cancels it, whichever comes first."""

    async def main():
        log: list = []

        async def sleeper():
            try:
                log.append("start")
                cp.current_task().suspend()
                await cp.checkpoint()
                log.append("resumed")
            finally:
                log.append("cleanup")

        task = cp.spawn(sleeper(), name="sleeper")

        async def resumer():
            task.resume()

        async def canceller():
            task.cancel()

        cp.spawn(resumer(), name="resumer")
        cp.spawn(canceller(), name="canceller")
        try:
            await task
        except cp.Cancelled:
            log.append("cancelled")
        return tuple(log)

    return main()


@pytest.mark.parametrize(
    "program",
    [suspend_race, suspended_receiver_race, self_suspender_cancelled],
    ids=lambda program: program.__name__,
)
def test_exploring_a_program_that_suspends_finds_the_same_outcomes_with_and_without_por(program):
    full = cp.explore(program, por=False, max_schedules=5000)
    reduced = cp.explore(program, max_schedules=5000)
    assert full.exhaustive and reduced.exhaustive
    assert set(reduced.outcomes) == set(full.outcomes)
    assert len(full.outcomes) > 1  # (the suspension really changes what can happen)
    assert {f.outcome for f in reduced.deadlocks + reduced.failures} == {
        f.outcome for f in full.deadlocks + full.failures
    }
