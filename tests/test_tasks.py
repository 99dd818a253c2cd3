"""Tasks: spawning, awaiting, results, ids, names, snapshots, and the VM across runs."""

from __future__ import annotations

import linecache
import warnings

import pytest
from programs import sleeps

import counterpoint as cp


async def returns(value):
    await cp.checkpoint()
    return value


async def fails(error):
    await cp.checkpoint()
    raise error


# -- spawn / await / result ---------------------------------------------------------------


def test_awaiting_a_task_returns_its_value(vm):
    async def main():
        task = cp.spawn(returns(42))
        return await task

    assert vm.run(main()) == 42


def test_spawn_returns_at_once_and_the_child_runs_only_when_the_spawner_awaits(vm):
    log = []

    async def child():
        log.append("child")

    async def main():
        task = cp.spawn(child())
        log.append("spawned")
        assert not task.done()
        await task
        log.append("joined")

    vm.run(main())
    assert log == ["spawned", "child", "joined"]


def test_awaiting_a_failed_task_reraises_its_exception(vm):
    error = ValueError("boom")

    async def main():
        task = cp.spawn(fails(error))
        with pytest.raises(ValueError, match="boom") as info:
            await task
        return info.value

    assert vm.run(main()) is error


def test_awaiting_a_cancelled_task_raises_cancelled(vm):
    async def main():
        task = cp.spawn(sleeps(10))
        await cp.checkpoint()
        task.cancel()
        with pytest.raises(cp.Cancelled):
            await task
        return task.cancelled(), task.done()

    assert vm.run(main()) == (True, True)


def test_a_task_can_be_awaited_by_several_tasks_and_each_gets_the_value(vm):
    async def joiner(task):
        return await task

    async def main():
        target = cp.spawn(sleeps(3))
        joiners = [cp.spawn(joiner(target)) for _ in range(3)]
        return [await j for j in joiners]

    assert vm.run(main()) == [3, 3, 3]


def test_result_before_the_task_is_done_raises_invalid_state_error(vm):
    async def main():
        task = cp.spawn(returns(1))
        with pytest.raises(cp.InvalidStateError, match="has not finished"):
            task.result()
        await task
        return task.result()

    assert vm.run(main()) == 1


def test_invalid_state_error_is_a_runtime_error():
    assert issubclass(cp.InvalidStateError, RuntimeError)


def test_result_of_a_finished_task_returns_or_raises_like_await(vm):
    ok = vm.spawn(returns("v"))
    bad = vm.spawn(fails(KeyError("k")))
    gone = vm.spawn(sleeps(5))
    vm.step(3)
    assert gone.cancel()
    while vm.step():
        pass
    assert ok.result() == "v"
    with pytest.raises(KeyError):
        bad.result()
    with pytest.raises(cp.Cancelled):
        gone.result()


def test_done_and_cancelled_report_how_a_task_finished(vm):
    async def main():
        ok = cp.spawn(returns(1))
        bad = cp.spawn(fails(ValueError()))
        gone = cp.spawn(sleeps(5))
        before = [(t.done(), t.cancelled()) for t in (ok, bad, gone)]
        await cp.checkpoint()
        gone.cancel()
        await cp.sleep(1)
        after = [(t.done(), t.cancelled()) for t in (ok, bad, gone)]
        with pytest.raises(ValueError):
            await bad
        return before, after

    before, after = vm.run(main())
    assert before == [(False, False)] * 3
    assert after == [(True, False), (True, False), (True, True)]


def test_cancel_returns_true_for_a_live_task_and_false_for_a_finished_one(vm):
    async def main():
        live = cp.spawn(sleeps(5))
        finished = cp.spawn(returns(1))
        await finished
        return live.cancel(), live.cancel(), finished.cancel()

    assert vm.run(main()) == (True, True, False)


def test_cancelling_a_task_that_already_returned_keeps_its_result(vm):
    async def main():
        task = cp.spawn(returns(7))
        await task
        task.cancel()
        return task.result(), task.cancelled()

    assert vm.run(main()) == (7, False)


# -- ids and names ----------------------------------------------------------------------------


def test_task_ids_count_up_from_one_per_vm(vm):
    async def noop():
        pass

    async def main():
        children = [cp.spawn(noop()) for _ in range(3)]
        for child in children:
            await child
        return cp.current_task().id, [c.id for c in children]

    assert vm.run(main()) == (1, [2, 3, 4])
    assert vm.run(main()) == (5, [6, 7, 8])
    assert cp.VM().run(main()) == (1, [2, 3, 4])


def test_spawn_records_carry_the_new_task_id_and_name(vm):
    async def worker():
        pass

    async def main():
        await cp.spawn(worker())
        await cp.spawn(worker(), name="second")

    vm.run(main())
    spawns = [(r.task, r.data) for r in vm.journal if r.kind == "spawn"]
    assert spawns == [
        (0, {"child": 1, "name": "main"}),
        (1, {"child": 2, "name": "worker"}),
        (1, {"child": 3, "name": "second"}),
    ]


def test_default_task_name_is_the_coroutine_functions_name_not_its_qualname(vm):
    async def fetch_page():
        return cp.current_task().name

    async def main():
        task = cp.spawn(fetch_page())
        return task.name, await task, cp.current_task().name

    assert vm.run(main()) == ("fetch_page", "fetch_page", "main")


def test_an_explicit_name_replaces_the_default(vm):
    async def worker():
        return cp.current_task().name

    async def main():
        task = cp.spawn(worker(), name="w-1")
        return task.name, await task

    assert vm.run(main()) == ("w-1", "w-1")


def test_a_task_name_must_be_a_string(vm):
    async def worker():
        pass

    async def main():
        with pytest.raises(TypeError, match="name must be a str"):
            cp.spawn(worker(), name=3)
        return "ok"

    assert vm.run(main()) == "ok"


def test_spawning_something_that_is_not_a_coroutine_is_a_type_error_with_advice(vm):
    async def worker():
        pass

    async def main():
        with pytest.raises(TypeError, match="did you forget to call it"):
            cp.spawn(worker)
        return "ok"

    assert vm.run(main()) == "ok"


def test_current_task_is_the_task_running_the_code(vm):
    async def child():
        return cp.current_task()

    async def main():
        task = cp.spawn(child())
        return task, await task

    spawned, seen = vm.run(main())
    assert seen is spawned


# -- snapshots ---------------------------------------------------------------------------------


def test_tasks_lists_live_tasks_in_ascending_id_with_their_state(vm):
    async def receiver(ch):
        return await ch.recv()

    async def main():
        ch = cp.channel()
        sleeper = cp.spawn(sleeps(5), name="sleeper")
        blocked = cp.spawn(receiver(ch), name="receiver")
        await cp.checkpoint()  # sleeper and receiver run up to their waits
        ready = cp.spawn(returns(2), name="ready")
        snapshot = vm.tasks()
        for task in (sleeper, blocked, ready):
            task.cancel()
        for task in (sleeper, blocked, ready):
            with pytest.raises(cp.Cancelled):
                await task
        return snapshot

    snapshot = vm.run(main())
    assert [(t.id, t.name, t.state) for t in snapshot] == [
        (1, "main", "running"),
        (2, "sleeper", "sleeping"),
        (3, "receiver", "blocked"),
        (4, "ready", "ready"),
    ]


def test_tasks_says_what_a_waiting_task_waits_on(vm):
    async def receiver(ch):
        return await ch.recv()

    async def joiner(task):
        return await task

    async def main():
        ch = cp.channel()
        sleeper = cp.spawn(sleeps(5))
        recv = cp.spawn(receiver(ch))
        join = cp.spawn(joiner(sleeper))
        await cp.checkpoint()
        snapshot = {t.id: t.waiting_on for t in vm.tasks()}
        recv.cancel()
        join.cancel()
        sleeper.cancel()
        return snapshot

    assert vm.run(main()) == {
        1: None,
        2: "until tick 5",
        3: "to receive on channel 1",
        4: "for task 2 to finish",
    }


def test_tasks_from_the_host_shows_tasks_left_between_runs(vm):
    async def main():
        cp.spawn(sleeps(4), name="sleeper")
        cp.spawn(returns(1), name="pending")
        await cp.checkpoint()
        return "done"

    assert vm.run(main()) == "done"
    snapshot = vm.tasks()
    assert [(t.id, t.name, t.state, t.waiting_on) for t in snapshot] == [
        (2, "sleeper", "sleeping", "until tick 4"),
        (3, "pending", "ready", None),
    ]
    assert all(isinstance(t, cp.TaskInfo) for t in snapshot)


def test_a_snapshot_does_not_change_when_the_task_moves_on(vm):
    task = vm.spawn(sleeps(2))
    before = vm.tasks()
    vm.step()
    after = vm.tasks()
    assert before[0].state == "ready"
    assert after[0].state == "sleeping"
    assert task.info() == after[0]


def test_finished_tasks_leave_the_task_list(vm):
    async def main():
        await cp.spawn(returns(1))
        return [t.id for t in vm.tasks()]

    assert vm.run(main()) == [1]
    assert vm.tasks() == []


# -- host-side spawn and step ------------------------------------------------------------------


def test_vm_spawn_creates_a_task_without_running_it(vm):
    log = []

    async def worker():
        log.append("ran")
        return 5

    task = vm.spawn(worker(), name="w")
    assert (task.id, task.name, task.done(), log) == (1, "w", False, [])
    assert vm.step() == 1
    assert log == ["ran"]
    assert task.result() == 5


def test_vm_spawn_records_the_host_as_spawner(vm):
    async def worker():
        pass

    vm.spawn(worker())
    (record,) = list(vm.journal)
    assert (record.task, record.kind, record.data) == (0, "spawn", {"child": 1, "name": "worker"})
    assert vm.step() == 1


def test_vm_step_runs_host_spawned_tasks_one_resumption_at_a_time(vm):
    log = []

    async def worker(name):
        log.append(f"{name}1")
        await cp.checkpoint()
        log.append(f"{name}2")

    a = vm.spawn(worker("a"))
    b = vm.spawn(worker("b"))
    assert vm.step() == 1
    assert log == ["a1"]
    assert vm.step(2) == 2
    assert log == ["a1", "b1", "a2"]
    assert vm.step(10) == 1
    assert log == ["a1", "b1", "a2", "b2"]
    assert a.done() and b.done()


def test_vm_spawn_inside_a_task_is_refused(vm):
    async def worker():
        pass

    async def main():
        coro = worker()
        try:
            with pytest.raises(RuntimeError, match="inside a running task"):
                vm.spawn(coro)
        finally:
            coro.close()
        return "ok"

    assert vm.run(main()) == "ok"


def test_vm_run_inside_a_task_is_refused(vm):
    async def inner():
        pass

    async def main():
        coro = inner()
        try:
            with pytest.raises(RuntimeError, match="inside a running task"):
                vm.run(coro)
        finally:
            coro.close()
        return "ok"

    assert vm.run(main()) == "ok"


def test_spawn_outside_a_task_raises_not_in_task_error():
    async def worker():
        pass

    with pytest.raises(cp.NotInTaskError, match="outside a Counterpoint task"):
        cp.spawn(worker())


# -- the VM persists between runs ---------------------------------------------------------------


def test_a_task_left_blocked_in_one_run_continues_in_the_next(vm):
    log = []

    async def consumer(ch):
        log.append(("got", await ch.recv()))

    async def first():
        ch = cp.channel()
        task = cp.spawn(consumer(ch), name="consumer")
        await cp.checkpoint()
        return ch, task

    ch, task = vm.run(first())
    assert [(t.name, t.state) for t in vm.tasks()] == [("consumer", "blocked")]

    async def second():
        await ch.send("hello")
        await task
        return "joined"

    assert vm.run(second()) == "joined"
    assert log == [("got", "hello")]


def test_virtual_time_carries_on_from_one_run_to_the_next(vm):
    async def nap(ticks):
        start = cp.now()
        await cp.sleep(ticks)
        return start, cp.now()

    assert vm.run(nap(5)) == (0, 5)
    assert vm.run(nap(3)) == (5, 8)
    assert vm.now == 8


def test_a_detached_task_keeps_sleeping_across_runs(vm):
    async def main():
        cp.spawn(sleeps(10), name="long")
        return cp.now()

    assert vm.run(main()) == 0

    async def later():
        await cp.sleep(4)
        return [(t.name, t.state) for t in vm.tasks()], cp.now()

    assert vm.run(later()) == ([("long", "sleeping"), ("later", "running")], 4)


def test_a_failing_run_leaves_the_vm_usable(vm):
    async def bad():
        await cp.checkpoint()
        raise ValueError("bad run")

    async def good():
        await cp.checkpoint()
        return "good"

    with pytest.raises(ValueError, match="bad run"):
        vm.run(bad())
    assert vm.run(good()) == "good"


# -- unobserved failures ------------------------------------------------------------------------


def test_a_detached_task_that_fails_unawaited_is_reported_with_a_warning(vm):
    async def boom():
        raise ValueError("nobody listens")

    async def main():
        cp.spawn(boom(), name="boom")
        await cp.sleep(1)
        return "finished"

    with pytest.warns(cp.UnobservedTaskFailure, match="task 2 'boom' failed.*nobody listens"):
        assert vm.run(main()) == "finished"


def test_the_unobserved_failure_warning_points_at_the_line_that_raised(vm):
    async def boom():
        raise ValueError("nobody listens")  # <- here

    async def main():
        cp.spawn(boom(), name="boom")
        await cp.sleep(1)

    with pytest.warns(cp.UnobservedTaskFailure) as caught:
        vm.run(main())
    (warning,) = caught
    assert warning.filename == __file__
    assert linecache.getline(warning.filename, warning.lineno).endswith("# <- here\n")


def test_a_failed_task_that_was_awaited_is_not_reported(vm):
    async def boom():
        raise ValueError("observed")

    async def main():
        task = cp.spawn(boom())
        await cp.sleep(1)
        with pytest.raises(ValueError):
            await task
        return "finished"

    with warnings.catch_warnings():
        warnings.simplefilter("error", cp.UnobservedTaskFailure)
        assert vm.run(main()) == "finished"


def test_a_failed_root_task_is_not_reported_as_unobserved(vm):
    async def main():
        await cp.checkpoint()
        raise KeyError("root")

    with warnings.catch_warnings():
        warnings.simplefilter("error", cp.UnobservedTaskFailure)
        with pytest.raises(KeyError):
            vm.run(main())


def test_unobserved_task_failure_is_a_runtime_warning():
    assert issubclass(cp.UnobservedTaskFailure, RuntimeWarning)


def test_cancel_reads_the_tasks_state_and_tells_exploration_so():
    """``task.cancel()`` of a task that has ended, or that is already cancelled, writes
    no record but its answer depends on the task: like ``task.done()``, it reports the
    read, so that partial-order reduction orders it against the task's own steps
    (docs/design.md, "Determinism" 6).  Found by the fuzz harness."""
    from counterpoint._explore import Chooser

    class Reads(Chooser):
        def __init__(self):
            super().__init__()
            self.reads = []

        def observe(self, obj):
            self.reads.append(obj)

    async def child():
        return 1

    async def main():
        ended, waiting = cp.spawn(child()), cp.spawn(cp.sleep(5))
        await ended
        waiting.cancel()
        chooser.reads.clear()
        return ended.cancel(), waiting.cancel()  # (ended; already cancelled)

    vm, chooser = cp.VM(), Reads()
    vm._chooser = chooser
    assert vm.run(main()) == (False, True)
    assert chooser.reads == [("task", 2), ("task", 3)]
