"""Cancellation: delivered at await points, level-triggered, at once, in ascending task id."""

from __future__ import annotations

import threading

import pytest
from programs import long, sleeps

import counterpoint as cp


def cancel_records(vm):
    return [r for r in vm.journal if r.kind == "cancel"]


# -- where and how Cancelled arrives -------------------------------------------------------------


def test_cancelled_is_raised_at_the_await_point_and_finally_runs(vm):
    log = []

    async def worker():
        log.append("started")
        try:
            await cp.sleep(100)
            log.append("not reached")
        except cp.Cancelled:
            log.append(("cancelled at", cp.now()))
            raise
        finally:
            log.append("finally")

    async def main():
        task = cp.spawn(worker())
        await cp.sleep(3)
        task.cancel()
        with pytest.raises(cp.Cancelled):
            await task

    vm.run(main())
    assert log == ["started", ("cancelled at", 3), "finally"]


def test_cancelled_is_a_base_exception_so_except_exception_does_not_swallow_it(vm):
    log = []

    async def worker():
        try:
            await cp.sleep(100)
        except Exception:
            log.append("swallowed")

    async def main():
        task = cp.spawn(worker())
        await cp.checkpoint()
        task.cancel()
        with pytest.raises(cp.Cancelled):
            await task
        return task.cancelled()

    assert vm.run(main()) is True
    assert log == []
    assert issubclass(cp.Cancelled, BaseException)
    assert not issubclass(cp.Cancelled, Exception)


def test_a_cancelled_task_ends_in_the_cancelled_state_with_a_cancelled_record(vm):
    async def main():
        task = cp.spawn(sleeps(100))
        await cp.checkpoint()
        task.cancel()
        with pytest.raises(cp.Cancelled):
            await task
        return task.id

    task_id = vm.run(main())
    assert [r.task for r in vm.journal if r.kind == "cancelled"] == [task_id]


def test_cancel_is_journaled_with_who_cancelled_and_why(vm):
    async def main():
        task = cp.spawn(sleeps(100))
        await cp.checkpoint()
        task.cancel()
        with pytest.raises(cp.Cancelled):
            await task

    vm.run(main())
    (record,) = cancel_records(vm)
    assert (record.task, record.data) == (2, {"by": 1, "reason": "task.cancel() by task 1"})


def test_cancel_from_the_host_is_journaled_as_task_zero(vm):
    task = vm.spawn(sleeps(100))
    vm.step()
    assert task.cancel() is True
    (record,) = cancel_records(vm)
    assert (record.task, record.data["by"]) == (1, 0)
    assert vm.step() == 1
    assert task.cancelled()


def test_cancellation_is_level_triggered_every_later_await_raises_again(vm):
    log = []

    async def worker():
        try:
            await cp.sleep(100)
        except cp.Cancelled:
            log.append("first")
        try:
            await cp.checkpoint()
        except cp.Cancelled:
            log.append("second")
        try:
            await cp.sleep(0)
        except cp.Cancelled:
            log.append("third")
        return "swallowed them all"

    async def main():
        task = cp.spawn(worker())
        await cp.checkpoint()
        task.cancel()
        return await task

    assert vm.run(main()) == "swallowed them all"
    assert log == ["first", "second", "third"]


def test_awaiting_inside_finally_of_a_cancelled_task_raises_cancelled_again(vm):
    log = []

    async def worker():
        try:
            await cp.sleep(100)
        finally:
            try:
                await cp.sleep(1)
                log.append("cleanup slept")
            except cp.Cancelled:
                log.append("cleanup cancelled too")
                raise

    async def main():
        task = cp.spawn(worker())
        await cp.checkpoint()
        task.cancel()
        with pytest.raises(cp.Cancelled):
            await task
        return cp.now()

    assert vm.run(main()) == 0
    assert log == ["cleanup cancelled too"]


def test_shielded_cleanup_can_await(vm):
    log = []

    async def worker():
        try:
            await cp.sleep(100)
        finally:
            async with cp.scope(shield=True):
                await cp.sleep(2)
                log.append(("cleanup done", cp.now()))

    async def main():
        task = cp.spawn(worker())
        await cp.sleep(1)
        task.cancel()
        with pytest.raises(cp.Cancelled):
            await task
        return cp.now(), task.cancelled()

    assert vm.run(main()) == (3, True)
    assert log == [("cleanup done", 3)]


def test_a_task_cancelled_before_it_ever_ran_gets_cancelled_at_its_first_await(vm):
    log = []

    async def worker():
        log.append("runs until its first await")
        await cp.checkpoint()
        log.append("not reached")

    async def main():
        task = cp.spawn(worker())
        task.cancel()
        with pytest.raises(cp.Cancelled):
            await task
        return task.cancelled()

    assert vm.run(main()) is True
    assert log == ["runs until its first await"]


def test_a_task_can_cancel_itself_and_sees_cancelled_at_its_next_await(vm):
    log = []

    async def main():
        assert cp.current_task().cancel() is True
        log.append("cancel() is not a checkpoint")
        try:
            await cp.checkpoint()
        except cp.Cancelled:
            log.append("cancelled")
        return log

    assert vm.run(main()) == ["cancel() is not a checkpoint", "cancelled"]


# -- every checkpoint is a cancel point and does nothing when cancelled ----------------------------


async def _channel_with_room():
    return cp.channel(1)


async def _channel_with_a_value():
    ch = cp.channel(1)
    ch.try_send("kept")
    return ch


async def _finished_task():
    task = cp.spawn(sleeps(0))
    await task
    return task


async def _nothing():
    return None


async def _set_event():
    event = cp.Event()
    event.set()
    return event


CANCEL_POINTS = {
    "checkpoint": (_nothing, lambda _: cp.checkpoint(), None),
    "sleep(0)": (_nothing, lambda _: cp.sleep(0), None),
    "sleep(5)": (_nothing, lambda _: cp.sleep(5), None),
    "send with room": (_channel_with_room, lambda ch: ch.send("x"), lambda ch: len(ch) == 0),
    "recv with a value": (_channel_with_a_value, lambda ch: ch.recv(), lambda ch: len(ch) == 1),
    "await a finished task": (_finished_task, lambda task: task, None),
    "par": (_nothing, lambda _: cp.par(), None),
    "wait on a set event": (_set_event, lambda event: event.wait(), None),
}


@pytest.mark.parametrize("name", list(CANCEL_POINTS))
def test_every_checkpoint_operation_is_a_cancel_point_with_no_effect(vm, name):
    setup, operation, untouched = CANCEL_POINTS[name]

    async def main():
        target = await setup()
        cp.current_task().cancel()
        with pytest.raises(cp.Cancelled):
            await operation(target)
        return target, cp.now()

    target, now = vm.run(main())
    assert now == 0
    if untouched is not None:
        assert untouched(target)


def test_leaving_a_scope_is_not_a_cancel_point(vm):
    log = []

    async def main():
        async with cp.scope():
            cp.current_task().cancel()
        log.append("left the scope")
        try:
            await cp.checkpoint()
        except cp.Cancelled:
            log.append("cancelled at the next checkpoint")
        return log

    assert vm.run(main()) == ["left the scope", "cancelled at the next checkpoint"]


# -- at once: a cancelled waiter leaves what it waits on -------------------------------------------


def test_a_cancelled_receiver_leaves_the_channel_queue_at_once(vm):
    async def receiver(ch):
        return await ch.recv()

    async def main():
        ch = cp.channel()  # rendezvous: try_send succeeds only if a receiver waits
        task = cp.spawn(receiver(ch))
        await cp.checkpoint()
        assert [t.state for t in vm.tasks() if t.id == task.id] == ["blocked"]
        task.cancel()
        status = ch.try_send("lost?")  # no await: the receiver has not run since
        with pytest.raises(cp.Cancelled):
            await task
        return status

    assert vm.run(main()) == cp.SendStatus.FULL
    assert not [r for r in vm.journal if r.kind == "recv"]


def test_a_cancelled_sender_never_delivers(vm):
    async def sender(ch):
        await ch.send("never delivered")

    async def main():
        ch = cp.channel()
        task = cp.spawn(sender(ch))
        await cp.checkpoint()
        task.cancel()
        result = ch.try_recv()
        with pytest.raises(cp.Cancelled):
            await task
        return result, ch.try_recv()

    assert vm.run(main()) == ((cp.RecvStatus.EMPTY, None), (cp.RecvStatus.EMPTY, None))
    assert not [r for r in vm.journal if r.kind == "send"]


def test_a_cancelled_receiver_does_not_take_a_value_meant_for_the_next_receiver(vm):
    async def receiver(ch):
        return await ch.recv()

    async def main():
        ch = cp.channel()
        first = cp.spawn(receiver(ch))
        second = cp.spawn(receiver(ch))
        await cp.checkpoint()
        first.cancel()
        await ch.send("for the second")
        with pytest.raises(cp.Cancelled):
            await first
        return await second

    assert vm.run(main()) == "for the second"


def test_a_cancelled_joiner_stops_waiting_at_once(vm):
    async def joiner(target):
        return await target

    async def main():
        target = cp.spawn(sleeps(10))
        task = cp.spawn(joiner(target))
        await cp.checkpoint()
        task.cancel()
        with pytest.raises(cp.Cancelled):
            await task
        joined_at = cp.now()
        await target
        return joined_at, cp.now()

    assert vm.run(main()) == (0, 10)


# -- a completed operation keeps its result -----------------------------------------------------


def test_a_receiver_whose_value_arrived_keeps_it_and_is_cancelled_at_its_next_await(vm):
    log = []

    async def receiver(ch):
        value = await ch.recv()
        log.append(("got", value))
        await cp.checkpoint()
        log.append("not reached")

    async def main():
        ch = cp.channel()
        task = cp.spawn(receiver(ch))
        await cp.checkpoint()
        assert ch.try_send("delivered") == cp.SendStatus.SENT
        task.cancel()  # the value is already handed over
        with pytest.raises(cp.Cancelled):
            await task

    vm.run(main())
    assert log == [("got", "delivered")]


def test_a_sender_whose_value_was_taken_completes_and_is_cancelled_at_its_next_await(vm):
    log = []

    async def sender(ch):
        await ch.send("second")
        log.append("send returned")
        await cp.checkpoint()

    async def main():
        ch = cp.channel(1)
        ch.try_send("first")
        task = cp.spawn(sender(ch))
        await cp.checkpoint()  # the sender blocks: the buffer is full
        assert ch.try_recv() == (cp.RecvStatus.OK, "first")  # moves "second" into the buffer
        task.cancel()
        with pytest.raises(cp.Cancelled):
            await task
        return ch.try_recv()

    assert vm.run(main()) == (cp.RecvStatus.OK, "second")
    assert log == ["send returned"]


def test_a_sleeper_whose_timer_fired_finishes_its_sleep_and_is_cancelled_at_its_next_await(vm):
    log = []
    tasks = {}

    async def sleeper():
        await cp.sleep(5)
        log.append(("woke", cp.now()))
        await cp.checkpoint()
        log.append("not reached")

    async def canceller():
        await cp.sleep(5)  # due at the same tick, set first: resumes first
        tasks["sleeper"].cancel()

    async def main():
        first = cp.spawn(canceller())
        tasks["sleeper"] = cp.spawn(sleeper())
        await first
        with pytest.raises(cp.Cancelled):
            await tasks["sleeper"]

    vm.run(main())
    assert log == [("woke", 5)]


def test_a_joiner_whose_target_finished_gets_the_result_and_is_cancelled_at_its_next_await(vm):
    log = []
    tasks = {}

    async def target():
        await cp.sleep(2)
        return "result"

    async def watcher():
        await tasks["target"]  # joins first, so it is woken first
        tasks["victim"].cancel()

    async def victim():
        log.append(("joined", await tasks["target"]))
        await cp.checkpoint()
        log.append("not reached")

    async def main():
        tasks["target"] = cp.spawn(target())
        first = cp.spawn(watcher())
        tasks["victim"] = cp.spawn(victim())
        await first
        with pytest.raises(cp.Cancelled):
            await tasks["victim"]

    vm.run(main())
    assert log == [("joined", "result")]


# -- cancel() on finished tasks --------------------------------------------------------------------


def test_cancel_on_a_finished_task_returns_false_and_records_nothing(vm):
    async def fails():
        raise ValueError("done failing")

    async def main():
        ok = cp.spawn(sleeps(0))
        bad = cp.spawn(fails())
        gone = cp.spawn(sleeps(9))
        await ok
        with pytest.raises(ValueError):
            await bad
        gone.cancel()
        with pytest.raises(cp.Cancelled):
            await gone
        before = len(cancel_records(vm))
        return [t.cancel() for t in (ok, bad, gone)], before

    results, before = vm.run(main())
    assert results == [False, False, False]
    assert len(cancel_records(vm)) == before == 1


def test_cancel_on_a_live_task_twice_records_one_cancel(vm):
    async def main():
        task = cp.spawn(sleeps(9))
        await cp.checkpoint()
        first, second = task.cancel(), task.cancel()
        with pytest.raises(cp.Cancelled):
            await task
        return first, second

    assert vm.run(main()) == (True, True)
    assert len(cancel_records(vm)) == 1


# -- ascending task id ---------------------------------------------------------------------------


def test_cancellation_of_several_tasks_is_delivered_in_ascending_task_id(vm):
    cleaned = []

    async def middle(ch):
        async with cp.scope() as inner:
            await ch.recv()  # wait until task 3 exists, so our child gets id 4
            inner.start_soon(long("grandchild 4", cleaned))
            await cp.sleep(1000)

    async def main():
        ch = cp.channel(1)
        async with cp.scope() as outer:
            outer.start_soon(middle(ch))  # task 2, opens a scope holding task 4
            outer.start_soon(long("child 3", cleaned))  # task 3
            await ch.send("go")
            await cp.sleep(1)
            outer.cancel()
        return cp.now()

    assert vm.run(main()) == 1
    assert [r.task for r in cancel_records(vm)] == [1, 2, 3, 4]
    assert cleaned == [("child 3", 1), ("grandchild 4", 1)]


def test_cancelled_tasks_resume_in_the_order_they_were_cancelled(vm):
    order = []

    async def victim(name):
        try:
            await cp.sleep(100)
        finally:
            order.append(name)

    async def main():
        async with cp.scope() as s:
            for name in "abcd":
                s.start_soon(victim(name))
            await cp.sleep(1)
            s.cancel_all()

    vm.run(main())
    assert order == list("abcd")
    assert [r.task for r in cancel_records(vm)] == [2, 3, 4, 5]


def test_task_cancel_also_cancels_the_scopes_it_opened(vm):
    cleaned = []

    async def worker():
        async with cp.scope() as s:
            s.start_soon(long("child", cleaned))
            await cp.sleep(1000)

    async def main():
        task = cp.spawn(worker())
        await cp.sleep(2)
        task.cancel()
        with pytest.raises(cp.Cancelled):
            await task
        return cp.now()

    assert vm.run(main()) == 2
    assert cleaned == [("child", 2)]
    assert [r.task for r in cancel_records(vm)] == [2, 3]


def test_task_cancel_does_not_reach_detached_tasks_it_spawned(vm):
    async def worker():
        detached = cp.spawn(sleeps(5))
        await cp.sleep(1000)
        return detached

    async def main():
        task = cp.spawn(worker())
        await cp.sleep(1)
        task.cancel()
        with pytest.raises(cp.Cancelled):
            await task
        (detached,) = [t for t in vm.tasks() if t.name == "sleeps"]
        return detached.state

    assert vm.run(main()) == "sleeping"
    assert [r.task for r in cancel_records(vm)] == [2]


# -- abandoned runs --------------------------------------------------------------------------------


def test_after_a_deadlock_the_root_task_is_cancelled_and_a_new_run_works(vm):
    log = []

    async def stuck():
        ch = cp.channel()
        try:
            await ch.recv()
        finally:
            log.append("root cleanup")

    with pytest.raises(cp.Deadlock, match="to receive on channel 1"):
        vm.run(stuck())
    (record,) = cancel_records(vm)
    assert (record.task, record.data["by"]) == (1, 0)
    assert "deadlock" in record.data["reason"]
    assert log == []  # cleanup runs at the next run or step

    async def fine():
        await cp.checkpoint()
        return "fine"

    assert vm.run(fine()) == "fine"
    assert log == ["root cleanup"]
    assert [r.task for r in vm.journal if r.kind == "cancelled"] == [1]


def test_a_deadlock_lists_every_blocked_task_and_what_it_waits_on(vm):
    async def waiter(ch):
        await ch.recv()

    async def stuck():
        ch = cp.channel()
        helper = cp.spawn(waiter(ch), name="helper")
        await helper

    with pytest.raises(cp.Deadlock) as info:
        vm.run(stuck())
    assert info.value.blocked == [
        (1, "stuck", "for task 2 to finish"),
        (2, "helper", "to receive on channel 1"),
    ]


def _stuck_with_a_detached_and_a_scoped_waiter(cleaned):
    chans = {}

    async def waiter(name):
        try:
            await chans["ch"].recv()
        finally:
            cleaned.append(name)

    async def stuck():
        chans["ch"] = cp.channel()
        cp.spawn(waiter("detached"), name="detached")  # task 2
        async with cp.scope() as s:
            s.start_soon(waiter("scoped"), name="scoped")  # task 3

    return stuck()


def test_after_a_deadlock_the_roots_scoped_descendants_are_cancelled(vm):
    cleaned = []
    with pytest.raises(cp.Deadlock):
        vm.run(_stuck_with_a_detached_and_a_scoped_waiter(cleaned))
    cancelled_ids = [r.task for r in cancel_records(vm)]
    assert 1 in cancelled_ids and 3 in cancelled_ids
    assert vm.step(10) > 0
    assert "scoped" in cleaned
    assert 1 not in [t.id for t in vm.tasks()]


def test_after_a_deadlock_every_task_the_failed_run_started_is_cancelled(vm):
    cleaned = []
    with pytest.raises(cp.Deadlock):
        vm.run(_stuck_with_a_detached_and_a_scoped_waiter(cleaned))
    assert sorted(r.task for r in cancel_records(vm)) == [1, 2, 3]
    vm.step(10)
    assert sorted(cleaned) == ["detached", "scoped"]
    assert vm.tasks() == []


def test_after_a_deadlock_tasks_from_earlier_runs_keep_their_state(vm):
    async def earlier():
        ch = cp.channel()
        cp.spawn(ch.recv(), name="earlier waiter")
        await cp.checkpoint()

    async def stuck():
        await cp.channel().recv()

    vm.run(earlier())
    with pytest.raises(cp.Deadlock):
        vm.run(stuck())
    assert [r.task for r in cancel_records(vm)] == [3]
    vm.step(10)
    assert [(t.id, t.name, t.state) for t in vm.tasks()] == [(2, "earlier waiter", "blocked")]


def test_after_step_limit_exceeded_the_root_task_is_cancelled_and_a_new_run_works():
    vm = cp.VM(max_steps=20)
    log = []

    async def spin():
        try:
            while True:
                await cp.checkpoint()
        finally:
            log.append("spin cleanup")

    with pytest.raises(cp.StepLimitExceeded, match="livelock"):
        vm.run(spin())
    (record,) = cancel_records(vm)
    assert (record.task, record.data["by"]) == (1, 0)
    assert "max_steps" in record.data["reason"]

    async def short():
        await cp.checkpoint()
        return "short"

    assert vm.run(short()) == "short"
    assert log == ["spin cleanup"]
    vm.journal._check()


# -- exactly once, and always journaled ----------------------------------------------------------


def test_a_task_is_cancelled_exactly_once_when_several_nodes_above_it_are_cancelled(vm):
    async def main():
        async with cp.scope() as outer, cp.scope() as inner:
            child = inner.spawn(sleeps(100))
            await cp.checkpoint()
            child.cancel()
            inner.cancel()
            outer.cancel()
        return child.id

    child_id = vm.run(main())
    assert [r.task for r in cancel_records(vm)] == [child_id, 1]
    assert [r.task for r in vm.journal if r.kind == "cancelled"] == [child_id]


def _cancel_inside_a_shield():
    async def worker():
        async with cp.scope(shield=True):
            await cp.sleep(5)
        await cp.checkpoint()

    async def main():
        task = cp.spawn(worker())
        await cp.sleep(1)
        task.cancel()
        with pytest.raises(cp.Cancelled):
            await task

    return main()


def _spawn_into_a_cancelled_scope():
    async def main():
        async with cp.scope() as s:
            s.cancel()
            s.spawn(sleeps(5))

    return main()


@pytest.mark.parametrize(
    "program",
    [
        pytest.param(_cancel_inside_a_shield, id="task.cancel() while shielded"),
        pytest.param(_spawn_into_a_cancelled_scope, id="spawned into a cancelled scope"),
    ],
)
def test_every_task_that_ends_cancelled_has_a_cancel_record_before(vm, program):
    vm.run(program())
    cancelled_at = {r.task: r.event_id for r in vm.journal if r.kind == "cancelled"}
    cancel_at = {}
    for record in cancel_records(vm):
        cancel_at.setdefault(record.task, record.event_id)
    assert cancelled_at
    for task_id, event_id in cancelled_at.items():
        assert task_id in cancel_at, f"task {task_id} ended cancelled without a cancel record"
        assert cancel_at[task_id] < event_id


def test_every_task_that_ends_cancelled_has_a_cancel_record_in_ordinary_cases(vm):
    async def main():
        async with cp.scope() as s:
            s.start_soon(sleeps(100))
            s.start_soon(sleeps(100))
            lone = cp.spawn(sleeps(100))
            await cp.checkpoint()
            lone.cancel()
            s.cancel()
            await cp.checkpoint()

    vm.run(main())
    cancelled = {r.task for r in vm.journal if r.kind == "cancelled"}
    cancelled_by_record = {r.task for r in cancel_records(vm)}
    assert cancelled == {2, 3, 4}
    assert cancelled <= cancelled_by_record


# -- every await is a step, even one that fails at once ------------------------------------------


def stubborn_awaits():
    """Awaits a cancelled task may keep making (each raises Cancelled at once)."""
    ch, lock, event, barrier = cp.channel(1), cp.Lock(), cp.Event(), cp.Barrier(2)
    cond = cp.Condition()
    other = cp.spawn(cp.sleep(10**6))

    async def in_scope():
        async with cp.scope() as s:
            s.spawn(cp.sleep(1))
            await s.wait_all()

    async def cond_wait():
        async with cond:
            await cond.wait()

    return {
        "checkpoint": cp.checkpoint,
        "sleep": lambda: cp.sleep(1),
        "send": lambda: ch.send(1),
        "recv": ch.recv,
        "select": lambda: cp.select(ch, timeout=1),
        "acquire": lock.acquire,
        "event.wait": event.wait,
        "barrier.wait": barrier.wait,
        "condition.wait": cond_wait,
        "par": lambda: cp.par(cp.sleep(1)),
        "await task": lambda: other,
        "scope.wait_all": in_scope,
        "events.next": cp.events.next,
    }


STUBBORN = [
    "checkpoint",
    "sleep",
    "send",
    "recv",
    "select",
    "acquire",
    "event.wait",
    "barrier.wait",
    "condition.wait",
    "par",
    "await task",
    "scope.wait_all",
    "events.next",
]


@pytest.mark.parametrize("what", STUBBORN)
def test_a_task_that_keeps_swallowing_cancelled_is_stopped_by_max_steps(what):
    vm = cp.VM(max_steps=500)
    counts = {"awaits": 0}

    async def stubborn():
        awaits = stubborn_awaits()[what]
        for _ in range(2000):  # (gives up in the end, so the test can clean up)
            try:
                counts["awaits"] += 1
                await awaits()
            except cp.Cancelled:
                pass

    async def main():
        task = cp.spawn(stubborn(), name="stubborn")
        await cp.checkpoint()
        task.cancel()
        await task

    outcome: list = []
    thread = threading.Thread(target=lambda: outcome.append(_outcome(vm, main())), daemon=True)
    thread.start()
    thread.join(30)
    assert not thread.is_alive(), f"a cancelled task awaiting {what} in a loop hung the VM"
    assert outcome == ["StepLimitExceeded"]
    steps = [r for r in vm.journal if r.kind == "step" and r.task == 2]
    assert len(steps) >= counts["awaits"] - 1 > 50  # (at least) one journaled step per await
    while vm.step(10_000):  # let everything end (vm.step has no max_steps)
        pass
    assert vm.tasks() == []


def _outcome(vm, coro) -> str:
    try:
        vm.run(coro)
    except BaseException as error:
        return type(error).__name__
    return "returned"


def test_a_send_on_a_closed_channel_in_a_loop_is_one_step_per_await():
    vm = cp.VM(max_steps=300)

    async def main():
        ch = cp.channel()
        ch.close()
        tries = 0
        while True:
            try:
                await ch.send(tries)
            except cp.ChannelClosed:
                tries += 1

    with pytest.raises(cp.StepLimitExceeded):
        vm.run(main())
    assert sum(1 for r in vm.journal if r.kind == "step") == 300  # one per await


def test_a_cancelled_task_raises_at_its_next_step_after_the_others_ran(vm):
    order = []

    async def victim():
        try:
            await cp.sleep(0)  # (ready, not blocked, when cancelled)
            order.append("victim resumed")
            await cp.checkpoint()
        except cp.Cancelled:
            order.append(("victim cancelled", cp.now()))
            raise

    async def bystander():
        order.append("bystander")

    async def main():
        task = cp.spawn(victim())
        await cp.checkpoint()
        task.cancel()
        cp.spawn(bystander())
        with pytest.raises(cp.Cancelled):
            await task

    vm.run(main())
    # the victim's cancelled checkpoint yields first: the bystander runs in between
    assert order == ["victim resumed", "bystander", ("victim cancelled", 0)]
