"""Structured concurrency: ``async with cp.scope() as s`` and its outcomes."""

from __future__ import annotations

import warnings

import pytest
from programs import fail_after, long

import counterpoint as cp


async def work(ticks, value=None, log=None):
    await cp.sleep(ticks)
    if log is not None:
        log.append((value, cp.now()))
    return value


# -- starting children -------------------------------------------------------------------------


def test_scope_spawn_returns_a_task_of_the_scope(vm):
    async def main():
        async with cp.scope() as s:
            task = s.spawn(work(2, "v"), name="child")
            assert isinstance(task, cp.Task)
        return task.name, task.result()

    assert vm.run(main()) == ("child", "v")


def test_start_soon_starts_a_child_and_returns_nothing(vm):
    log = []

    async def main():
        async with cp.scope() as s:
            handle = s.start_soon(work(2, "soon", log))
        return handle, cp.now()

    assert vm.run(main()) == (None, 2)
    assert log == [("soon", 2)]


def test_async_let_returns_a_slot_to_await_for_the_result(vm):
    async def main():
        async with cp.scope() as s:
            slot = s.async_let(work(3, "value"))
            before = slot.done()
            value = await slot
            after = slot.done()
        return isinstance(slot, cp.Slot), before, value, after, cp.now()

    assert vm.run(main()) == (True, False, "value", True, 3)


def test_awaiting_a_slot_after_the_scope_exits_returns_the_result(vm):
    async def main():
        async with cp.scope() as s:
            a = s.async_let(work(3, "a"))
            b = s.async_let(work(1, "b"))
        return a.done(), b.done(), await a, await b

    assert vm.run(main()) == (True, True, "a", "b")


def test_entering_a_scope_is_not_a_schedule_point(vm):
    log = []

    async def other():
        log.append("other")

    async def main():
        cp.spawn(other())
        async with cp.scope():
            log.append("inside")
        log.append("after")

    vm.run(main())
    assert log[0] == "inside"


def test_leaving_a_scope_is_a_schedule_point(vm):
    log = []

    async def other():
        log.append("other")

    async def main():
        async with cp.scope():
            cp.spawn(other())
        log.append("after the scope")

    vm.run(main())
    assert log == ["other", "after the scope"]


def test_the_block_exits_only_when_all_children_are_done(vm):
    log = []

    async def main():
        async with cp.scope() as s:
            s.start_soon(work(5, "slow", log))
            s.start_soon(work(2, "fast", log))
            log.append(("body done", cp.now()))
        log.append(("after scope", cp.now()))

    vm.run(main())
    assert log == [("body done", 0), ("fast", 2), ("slow", 5), ("after scope", 5)]


def test_children_can_spawn_more_children_into_the_scope_after_the_body_ends(vm):
    log = []

    async def parent(s):
        await cp.sleep(1)
        s.start_soon(work(4, "grandchild", log))

    async def main():
        async with cp.scope() as s:
            s.start_soon(parent(s))
        return cp.now()

    assert vm.run(main()) == 5
    assert log == [("grandchild", 5)]


def test_scope_records_open_and_close_with_the_outcome(vm):
    async def main():
        async with cp.scope(timeout=10, max_children=3) as s:
            s.start_soon(work(1))

    vm.run(main())
    records = [r.data for r in vm.journal if r.kind == "scope"]
    assert records == [
        {"scope": 1, "event": "open", "timeout": 10, "max_children": 3},
        {"scope": 1, "event": "close", "outcome": "ok"},
    ]


# -- failures ----------------------------------------------------------------------------------


def test_a_child_failure_cancels_the_other_children_in_ascending_id(vm):
    cleaned = []

    async def main():
        async with cp.scope() as s:
            s.start_soon(long("a", cleaned))
            s.start_soon(fail_after(1, ValueError("boom")))
            s.start_soon(long("c", cleaned))
            s.start_soon(long("d", cleaned))

    with pytest.raises(ExceptionGroup):
        vm.run(main())
    assert [r.task for r in vm.journal if r.kind == "cancel"] == [2, 4, 5]
    assert {r.data["by"] for r in vm.journal if r.kind == "cancel"} == {3}
    assert cleaned == [("a", 1), ("c", 1), ("d", 1)]


def test_a_child_failure_also_cancels_the_body(vm):
    log = []

    async def main():
        try:
            async with cp.scope() as s:
                s.start_soon(fail_after(1, ValueError("boom")))
                try:
                    await cp.sleep(100)
                except cp.Cancelled:
                    log.append(("body cancelled", cp.now()))
                    raise
        except* ValueError:
            log.append(("group caught", cp.now()))

    vm.run(main())
    assert log == [("body cancelled", 1), ("group caught", 1)]


def test_a_child_failure_raises_an_exception_group_of_the_failures(vm):
    error = ValueError("boom")

    async def main():
        async with cp.scope() as s:
            s.start_soon(work(10))
            s.start_soon(fail_after(1, error))

    with pytest.raises(ExceptionGroup) as info:
        vm.run(main())
    assert info.value.exceptions == (error,)


def test_scope_failures_are_listed_in_ascending_task_id_not_failure_order(vm):
    async def fails_while_cancelled(error):
        try:
            await cp.sleep(100)
        except cp.Cancelled:
            raise error from None

    first_id = ValueError("lowest id, failed last")
    second_id = KeyError("middle id")
    third_id = RuntimeError("highest id, failed first")

    async def main():
        async with cp.scope() as s:
            s.start_soon(fails_while_cancelled(first_id))
            s.start_soon(fails_while_cancelled(second_id))
            s.start_soon(fail_after(1, third_id))

    with pytest.raises(ExceptionGroup) as info:
        vm.run(main())
    assert info.value.exceptions == (first_id, second_id, third_id)
    child_fails = [r.task for r in vm.journal if r.kind == "fail" and r.task != 1]
    assert child_fails == [4, 2, 3]


def test_except_star_matches_the_failures_by_type(vm):
    caught = {}

    async def main():
        try:
            async with cp.scope() as s:
                s.start_soon(fail_after(1, ValueError("v")))
                s.start_soon(fail_after(1, KeyError("k")))
        except* ValueError as group:
            caught["value"] = [str(e) for e in group.exceptions]
        except* KeyError as group:
            caught["key"] = [str(e) for e in group.exceptions]

    vm.run(main())
    assert caught == {"value": ["v"], "key": ["'k'"]}


def test_a_child_that_merely_ends_cancelled_is_not_a_failure(vm):
    async def main():
        async with cp.scope() as s:
            s.start_soon(work(100))
            s.start_soon(fail_after(1, ValueError("only one")))

    with pytest.raises(ExceptionGroup) as info:
        vm.run(main())
    assert [str(e) for e in info.value.exceptions] == ["only one"]


def test_a_body_exception_alone_propagates_unchanged(vm):
    error = ValueError("from the body")
    cleaned = []

    async def main():
        async with cp.scope() as s:
            s.start_soon(long("child", cleaned))
            await cp.sleep(2)
            raise error

    with pytest.raises(ValueError) as info:
        vm.run(main())
    assert info.value is error
    assert cleaned == [("child", 2)]


def test_a_body_exception_plus_a_child_failure_is_a_group_with_the_body_exception_first(vm):
    body_error = ValueError("body")
    child_error = KeyError("child")

    async def fails_at_once():
        raise child_error

    async def main():
        async with cp.scope() as s:
            s.start_soon(fails_at_once())
            raise body_error

    with pytest.raises(ExceptionGroup) as info:
        vm.run(main())
    assert info.value.exceptions == (body_error, child_error)


def test_a_body_that_raises_while_cancelled_by_a_child_failure_is_listed_first(vm):
    body_error = RuntimeError("body reacted")
    child_error = ValueError("child")

    async def main():
        async with cp.scope() as s:
            s.start_soon(fail_after(1, child_error))
            try:
                await cp.sleep(100)
            except cp.Cancelled:
                raise body_error from None

    with pytest.raises(ExceptionGroup) as info:
        vm.run(main())
    assert info.value.exceptions == (body_error, child_error)


def test_a_failed_scope_child_is_not_reported_as_unobserved(vm):
    async def main():
        async with cp.scope() as s:
            s.start_soon(fail_after(0, ValueError()))

    with warnings.catch_warnings():
        warnings.simplefilter("error", cp.UnobservedTaskFailure)
        with pytest.raises(ExceptionGroup):
            vm.run(main())


# -- timeout -----------------------------------------------------------------------------------


def test_a_scope_timeout_cancels_children_and_body_and_raises_timeout_error(vm):
    cleaned = []

    async def main():
        try:
            async with cp.scope(timeout=5) as s:
                s.start_soon(long("child", cleaned))
                try:
                    await cp.sleep(100)
                finally:
                    cleaned.append(("body", cp.now()))
        except TimeoutError:
            return "timed out", cp.now(), s.timed_out

    assert vm.run(main()) == ("timed out", 5, True)
    assert sorted(cleaned) == [("body", 5), ("child", 5)]
    assert [r.data for r in vm.journal if r.kind == "timeout"] == [{"scope": 1}]
    assert [r.task for r in vm.journal if r.kind == "cancel"] == [1, 2]


def test_a_timeout_due_at_the_same_tick_as_a_sleep_in_the_body_fires_first(vm):
    async def main():
        with pytest.raises(TimeoutError):
            async with cp.scope(timeout=5):
                await cp.sleep(5)  # this timer is set after the scope's
        return cp.now()

    assert vm.run(main()) == 5


def test_a_scope_that_finishes_before_its_timeout_does_not_time_out(vm):
    async def main():
        async with cp.scope(timeout=5) as s:
            s.start_soon(work(3))
        return cp.now(), s.timed_out

    assert vm.run(main()) == (3, False)
    assert vm.step() == 0
    assert vm.now == 3  # the dead timer does not move time


def test_timeout_zero_cancels_at_the_first_checkpoint(vm):
    async def main():
        log = []
        with pytest.raises(TimeoutError):
            async with cp.scope(timeout=0):
                log.append("entered")
                await cp.checkpoint()
                log.append("not reached")
        return log

    assert vm.run(main()) == ["entered"]


def test_a_negative_timeout_is_a_value_error(vm):
    async def main():
        with pytest.raises(ValueError):
            cp.scope(timeout=-1)
        return "ok"

    assert vm.run(main()) == "ok"


def test_a_timeout_fires_while_the_body_waits_at_the_end_of_the_block(vm):
    cleaned = []

    async def main():
        with pytest.raises(TimeoutError):
            async with cp.scope(timeout=4) as s:
                s.start_soon(long("child", cleaned))
        return cp.now()

    assert vm.run(main()) == 4
    assert cleaned == [("child", 4)]


def test_a_child_failure_during_a_timeout_wins_over_the_timeout(vm):
    async def fails_when_cancelled():
        try:
            await cp.sleep(100)
        except cp.Cancelled:
            raise ValueError("cleanup failed") from None

    async def main():
        async with cp.scope(timeout=3) as s:
            s.start_soon(fails_when_cancelled())

    with pytest.raises(ExceptionGroup) as info:
        vm.run(main())
    assert [str(e) for e in info.value.exceptions] == ["cleanup failed"]


def test_a_body_exception_wins_over_the_timeout(vm):
    error = KeyError("body")

    async def main():
        async with cp.scope(timeout=3):
            try:
                await cp.sleep(100)
            except cp.Cancelled:
                raise error from None

    with pytest.raises(KeyError) as info:
        vm.run(main())
    assert info.value is error


# -- max_children ------------------------------------------------------------------------------


def test_spawning_past_max_children_raises_limit_exceeded(vm):
    async def main():
        async with cp.scope(max_children=2) as s:
            s.start_soon(work(5))
            s.start_soon(work(5))
            with pytest.raises(cp.LimitExceeded, match="at most 2"):
                s.start_soon(work(5))
            return len(s.children)

    assert vm.run(main()) == 2


def test_max_children_counts_children_alive_at_once(vm):
    async def main():
        async with cp.scope(max_children=2) as s:
            first = s.spawn(work(1, "a"))
            s.spawn(work(5, "b"))
            await first
            third = s.spawn(work(1, "c"))
            with pytest.raises(cp.LimitExceeded):
                s.spawn(work(1, "d"))
            return third.id, await third

    assert vm.run(main()) == (4, "c")


def test_a_refused_child_coroutine_is_closed_not_leaked(vm):
    started = []

    async def child():
        started.append("child")

    async def main():
        coro = child()
        async with cp.scope(max_children=0) as s:
            with pytest.raises(cp.LimitExceeded):
                s.start_soon(coro)
        return coro.cr_frame is None

    assert vm.run(main()) is True
    assert started == []


# -- cancel_all, cancel, wait_all --------------------------------------------------------------


def test_cancel_all_cancels_the_children_alive_now_and_the_body_carries_on(vm):
    cleaned = []

    async def main():
        async with cp.scope() as s:
            a = s.spawn(long("a", cleaned))
            b = s.spawn(long("b", cleaned))
            await cp.sleep(1)
            s.cancel_all()
            await cp.sleep(1)  # the body is not cancelled
            late = s.spawn(work(2, "late"))  # nor are children started afterwards
        return a.cancelled(), b.cancelled(), late.result(), cp.now()

    assert vm.run(main()) == (True, True, "late", 4)
    assert cleaned == [("a", 1), ("b", 1)]
    assert [r.task for r in vm.journal if r.kind == "cancel"] == [2, 3]


def test_scope_cancel_cancels_body_and_children_and_the_scope_swallows_it(vm):
    cleaned = []

    async def main():
        async with cp.scope() as s:
            s.start_soon(long("child", cleaned))
            await cp.sleep(2)
            s.cancel()
            try:
                await cp.sleep(100)
            finally:
                cleaned.append(("body", cp.now()))
        return "after the scope", cp.now(), s.cancel_called

    assert vm.run(main()) == ("after the scope", 2, True)
    assert sorted(cleaned) == [("body", 2), ("child", 2)]
    scope_events = [r.data for r in vm.journal if r.kind == "scope"]
    assert scope_events[-1] == {"scope": 1, "event": "close", "outcome": "cancelled"}


def test_after_a_scope_swallows_its_own_cancellation_the_task_can_await_again(vm):
    async def main():
        async with cp.scope() as s:
            s.cancel()
            await cp.checkpoint()
        await cp.sleep(3)
        return cp.now()

    assert vm.run(main()) == 3


def test_cancellation_from_outside_propagates_through_the_scope(vm):
    cleaned = []

    async def worker():
        async with cp.scope() as s:
            s.start_soon(long("child", cleaned))
            await cp.sleep(1000)
        cleaned.append("after the scope: not reached")

    async def main():
        task = cp.spawn(worker())
        await cp.sleep(2)
        task.cancel()
        with pytest.raises(cp.Cancelled):
            await task
        return task.cancelled()

    assert vm.run(main()) is True
    assert cleaned == [("child", 2)]


def test_scope_cancel_from_a_child_cancels_the_whole_scope(vm):
    cleaned = []

    async def canceller(s):
        await cp.sleep(3)
        s.cancel()

    async def main():
        async with cp.scope() as s:
            s.start_soon(canceller(s))
            s.start_soon(long("sibling", cleaned))
            await cp.sleep(100)
        return cp.now()

    assert vm.run(main()) == 3
    assert cleaned == [("sibling", 3)]


def test_wait_all_waits_for_the_children_and_the_body_continues_in_the_scope(vm):
    async def main():
        async with cp.scope() as s:
            a = s.async_let(work(2, "a"))
            b = s.async_let(work(4, "b"))
            await s.wait_all()
            waited = (cp.now(), a.done(), b.done(), len(s.children))
            c = s.async_let(work(1, "c"))
        return waited, await c, cp.now()

    assert vm.run(main()) == ((4, True, True, 0), "c", 5)


# -- closed scopes ----------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["spawn", "start_soon", "async_let"])
def test_spawning_into_a_closed_scope_raises_scope_closed(vm, method):
    async def main():
        async with cp.scope() as s:
            pass
        coro = work(1)
        with pytest.raises(cp.ScopeClosed, match="already exited"):
            getattr(s, method)(coro)
        return coro.cr_frame is None  # the refused coroutine was closed

    assert vm.run(main()) is True


# -- shield ------------------------------------------------------------------------------------


def test_a_shielded_scope_blocks_outer_cancellation(vm):
    log = []

    async def worker():
        async with cp.scope(shield=True):
            await cp.sleep(5)
            log.append(("shielded sleep done", cp.now()))
        try:
            await cp.checkpoint()
        except cp.Cancelled:
            log.append(("cancelled after the shield", cp.now()))
            raise

    async def main():
        task = cp.spawn(worker())
        await cp.sleep(1)
        task.cancel()
        with pytest.raises(cp.Cancelled):
            await task

    vm.run(main())
    assert log == [("shielded sleep done", 5), ("cancelled after the shield", 5)]


def test_a_shielded_scope_protects_its_children_from_outer_cancellation(vm):
    log = []

    async def worker():
        async with cp.scope(shield=True) as s:
            s.start_soon(work(4, "shielded child", log))

    async def main():
        async with cp.scope() as outer:
            outer.start_soon(worker())
            await cp.sleep(1)
            outer.cancel()
        return cp.now()

    assert vm.run(main()) == 4
    assert log == [("shielded child", 4)]


def test_a_shielded_scope_can_still_be_cancelled_from_inside(vm):
    async def main():
        async with cp.scope(shield=True) as s:
            s.cancel()
            await cp.sleep(10)
        return cp.now()

    assert vm.run(main()) == 0


# -- nesting -----------------------------------------------------------------------------------


def test_cancelling_an_outer_scope_cancels_children_of_nested_scopes(vm):
    cleaned = []

    async def middle():
        async with cp.scope() as inner:
            inner.start_soon(long("grandchild", cleaned))

    async def main():
        async with cp.scope() as outer:
            outer.start_soon(middle())
            await cp.sleep(2)
            outer.cancel()
        return cp.now()

    assert vm.run(main()) == 2
    assert cleaned == [("grandchild", 2)]


def test_a_nested_scope_failure_reaches_the_outer_scope_as_a_group(vm):
    error = ValueError("deep")
    cleaned = []

    async def middle():
        async with cp.scope() as inner:
            inner.start_soon(fail_after(1, error))

    async def main():
        async with cp.scope() as outer:
            outer.start_soon(middle())
            outer.start_soon(long("sibling", cleaned))

    with pytest.raises(ExceptionGroup) as info:
        vm.run(main())
    (middle_failure,) = info.value.exceptions
    assert isinstance(middle_failure, ExceptionGroup)
    assert middle_failure.exceptions == (error,)
    assert cleaned == [("sibling", 1)]


def test_a_nested_scope_body_exception_passes_through_the_outer_scope_unchanged(vm):
    error = KeyError("inner body")

    async def main():
        async with cp.scope() as outer:
            outer.start_soon(work(3))
            async with cp.scope() as inner:
                inner.start_soon(work(3))
                raise error

    with pytest.raises(KeyError) as info:
        vm.run(main())
    assert info.value is error


def test_an_inner_scope_timeout_does_not_cancel_the_outer_scope(vm):
    log = []

    async def main():
        async with cp.scope() as outer:
            outer.start_soon(work(6, "outer child", log))
            with pytest.raises(TimeoutError):
                async with cp.scope(timeout=2) as inner:
                    inner.start_soon(work(100, "inner child", log))
            log.append(("body after inner", cp.now()))
        return cp.now()

    assert vm.run(main()) == 6
    assert log == [("body after inner", 2), ("outer child", 6)]
