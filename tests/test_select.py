"""cp.select: the first of several channels (receive) or tasks/slots (join)."""

from __future__ import annotations

import warnings

import pytest

import counterpoint as cp

Tag = cp.SelectTag


def select_records(vm: cp.VM) -> list[tuple[int, dict]]:
    return [(r.task, r.data) for r in vm.journal.filter(kind="select")]


def test_select_tags_have_the_contract_numbers():
    assert {tag.name: int(tag) for tag in cp.SelectTag} == {
        "SLOT_READY": 1,
        "SLOT_CANCELLED": 2,
        "RECV": 3,
        "CLOSED": 4,
        "TIMEOUT": 5,
    }


# -- channel cases --------------------------------------------------------------------------------


def test_select_receives_from_a_ready_channel_with_its_value(vm):
    async def main():
        a, b = cp.channel(1), cp.channel(1)
        b.try_send("b-value")
        sel = await cp.select(a, b)
        return sel, len(b)

    sel, left = vm.run(main())
    assert isinstance(sel, cp.SelectResult)
    assert (sel.index, sel.tag, sel.value) == (1, Tag.RECV, "b-value")
    assert left == 0
    recvs = [(r.task, r.data) for r in vm.journal.filter(kind="recv")]
    assert recvs == [(1, {"channel": 2, "value": "b-value"})]
    assert select_records(vm) == [(1, {"index": 1, "tag": "RECV"})]


def test_select_takes_the_value_of_a_blocked_sender_on_a_rendezvous_channel(vm):
    async def sender(ch):
        await ch.send("from sender")
        return cp.now()

    async def main():
        ch = cp.channel(0)
        t = cp.spawn(sender(ch))
        await cp.sleep(2)
        sel = await cp.select(ch)
        return sel, await t

    assert vm.run(main()) == ((0, Tag.RECV, "from sender"), 2)


def test_select_reports_closed_for_a_closed_drained_channel(vm):
    async def main():
        a = cp.channel(1)
        a.close()
        return await cp.select(a)

    assert vm.run(main()) == (0, Tag.CLOSED, None)


def test_select_receives_buffered_values_of_a_closed_channel_before_reporting_closed(vm):
    async def main():
        a = cp.channel(2)
        a.try_send("left")
        a.close()
        return [await cp.select(a), await cp.select(a)]

    assert vm.run(main()) == [(0, Tag.RECV, "left"), (0, Tag.CLOSED, None)]


def test_a_blocked_select_is_woken_by_close_with_closed(vm):
    async def closer(ch):
        await cp.sleep(3)
        ch.close()

    async def main():
        a, b = cp.channel(), cp.channel()
        cp.spawn(closer(b))
        sel = await cp.select(a, b)
        return sel, cp.now()

    assert vm.run(main()) == ((1, Tag.CLOSED, None), 3)


# -- task and slot cases --------------------------------------------------------------------------


def test_select_on_a_finished_task_returns_slot_ready_with_its_value(vm):
    async def child():
        await cp.sleep(4)
        return {"answer": 42}

    async def main():
        ch = cp.channel()
        t = cp.spawn(child())
        sel = await cp.select(ch, t)
        return sel, cp.now()

    assert vm.run(main()) == ((1, Tag.SLOT_READY, {"answer": 42}), 4)


def test_select_on_a_slot_returns_slot_ready_with_its_value(vm):
    async def child(n):
        await cp.sleep(n)
        return n * 10

    async def main():
        async with cp.scope() as s:
            slow = s.async_let(child(5))
            fast = s.async_let(child(2))
            first = await cp.select(slow, fast)
            assert cp.now() == 2
            second = await cp.select(slow)
        return first, second, cp.now()

    assert vm.run(main()) == ((1, Tag.SLOT_READY, 20), (0, Tag.SLOT_READY, 50), 5)


def test_select_on_a_cancelled_task_returns_slot_cancelled(vm):
    async def child():
        await cp.sleep(100)

    async def canceller(t):
        await cp.sleep(3)
        t.cancel()

    async def main():
        t = cp.spawn(child())
        cp.spawn(canceller(t))
        blocked = await cp.select(t)
        already = await cp.select(t)
        return blocked, already, cp.now()

    sel_blocked, sel_already, now = vm.run(main())
    assert sel_blocked == (0, Tag.SLOT_CANCELLED, None)
    assert sel_already == (0, Tag.SLOT_CANCELLED, None)
    assert now == 3


def test_select_on_a_failed_task_reraises_its_exception(vm):
    class Boom(Exception):
        pass

    async def child(delay):
        await cp.sleep(delay)
        raise Boom(f"after {delay}")

    async def main():
        blocked = cp.spawn(child(2))
        with pytest.raises(Boom, match="after 2"):
            await cp.select(blocked)
        done = cp.spawn(child(0))
        await cp.sleep(1)
        with pytest.raises(Boom, match="after 0"):
            await cp.select(done)
        return "ok"

    with warnings.catch_warnings():
        warnings.simplefilter("error", cp.UnobservedTaskFailure)  # select observed both
        assert vm.run(main()) == "ok"


# -- policies -------------------------------------------------------------------------------------


def test_priority_policy_takes_the_lowest_ready_index(vm):
    async def main():
        a, b, c = cp.channel(5), cp.channel(5), cp.channel(5)
        c.try_send("c")  # filled first, but listed last
        b.try_send("b")
        first = await cp.select(a, b, c)
        second = await cp.select(a, b, c, policy="priority")
        return first, second

    assert vm.run(main()) == ((1, Tag.RECV, "b"), (2, Tag.RECV, "c"))


def test_round_robin_starts_one_past_the_last_winner(vm):
    async def main():
        chans = [cp.channel(10) for _ in range(3)]
        for i, ch in enumerate(chans):
            for j in range(4):
                ch.try_send((i, j))
        out = []
        for _ in range(5):
            sel = await cp.select(*chans, policy="round_robin")
            out.append(sel.index)
        return out

    assert vm.run(main()) == [0, 1, 2, 0, 1]


def test_round_robin_skips_cases_that_are_not_ready(vm):
    async def main():
        a, b, c = cp.channel(10), cp.channel(10), cp.channel(10)
        for v in range(3):
            a.try_send(("a", v))
            c.try_send(("c", v))
        return [(await cp.select(a, b, c, policy="round_robin")).value for _ in range(4)]

    assert vm.run(main()) == [("a", 0), ("c", 0), ("a", 1), ("c", 1)]


def test_round_robin_memory_is_per_task_and_per_set_of_cases(vm):
    async def picker(chans):
        return (await cp.select(*chans, policy="round_robin")).index

    async def main():
        a, b = cp.channel(10), cp.channel(10)
        for v in range(5):
            a.try_send(v)
            b.try_send(v)
        first = (await cp.select(a, b, policy="round_robin")).index
        other_cases = (await cp.select(b, a, policy="round_robin")).index
        other_task = await cp.spawn(picker([a, b]))
        again = (await cp.select(a, b, policy="round_robin")).index
        return first, other_cases, other_task, again

    # (b, a) and another task start from index 0; (a, b) by main continues one past 0
    assert vm.run(main()) == (0, 0, 0, 1)


# -- timeouts -------------------------------------------------------------------------------------


def test_timeout_returns_index_minus_one_tag_timeout_and_advances_time_by_the_timeout(vm):
    async def main():
        await cp.sleep(3)
        ch = cp.channel()
        sel = await cp.select(ch, timeout=7)
        return sel, cp.now()

    sel, now = vm.run(main())
    assert (sel.index, sel.tag, sel.value) == (-1, Tag.TIMEOUT, None)
    assert now == 10
    assert select_records(vm) == [(1, {"index": -1, "tag": "TIMEOUT"})]


def test_select_with_only_a_timeout_waits_for_it(vm):
    async def main():
        return await cp.select(timeout=4), cp.now()

    assert vm.run(main()) == ((-1, Tag.TIMEOUT, None), 4)


def test_timeout_zero_returns_at_once_if_nothing_is_ready(vm):
    async def main():
        ch = cp.channel(1)
        empty = await cp.select(ch, timeout=0)
        ch.try_send("now")
        ready = await cp.select(ch, timeout=0)
        return empty, ready, cp.now()

    assert vm.run(main()) == ((-1, Tag.TIMEOUT, None), (0, Tag.RECV, "now"), 0)
    assert "block" not in [r.kind for r in vm.journal]


def test_an_event_before_the_timeout_wins_and_the_timer_is_forgotten(vm):
    async def feeder(ch):
        await cp.sleep(2)
        await ch.send("in time")

    async def main():
        ch = cp.channel()
        f = cp.spawn(feeder(ch))
        sel = await cp.select(ch, timeout=50)
        await f
        return sel, cp.now()

    assert vm.run(main()) == ((0, Tag.RECV, "in time"), 2)
    assert vm.step(10) == 0  # no stale timer left to fire
    assert vm.now == 2


def test_a_timeout_due_at_the_same_tick_as_a_sender_wins_because_timers_fire_together(vm):
    # design.md, Time 3: all timers due at a tick fire together, before any woken task
    # runs; so the select times out even though the sender's sleep was set first.
    async def sender(ch):
        await cp.sleep(5)
        return ch.try_send("x")

    async def main():
        ch = cp.channel()
        t = cp.spawn(sender(ch))
        await cp.checkpoint()  # the sender sets its timer first
        sel = await cp.select(ch, timeout=5)
        return sel, await t, cp.now()

    assert vm.run(main()) == ((-1, Tag.TIMEOUT, None), cp.SendStatus.FULL, 5)


@pytest.mark.parametrize(("timeout", "error"), [(-1, ValueError), (1.5, TypeError)])
def test_bad_timeout_is_a_named_error(vm, timeout, error):
    async def main():
        with pytest.raises(error, match="timeout"):
            cp.select(cp.channel(), timeout=timeout)
        return "ok"

    assert vm.run(main()) == "ok"


# -- blocking on several cases --------------------------------------------------------------------


def test_when_blocked_the_first_event_wins_and_other_channels_keep_their_values(vm):
    async def feeder(a, b, log):
        await cp.sleep(2)
        log.append(("b", b.try_send("b1")))  # hands b1 to the waiting select
        log.append(("a", a.try_send("a1")))  # the select is no longer waiting on a
        log.append(("b", b.try_send("b2")))

    async def main():
        a, b = cp.channel(0), cp.channel(1)
        log = []
        cp.spawn(feeder(a, b, log))
        sel = await cp.select(a, b)
        return sel, log, a.try_recv(), b.try_recv()

    sel, log, a_left, b_left = vm.run(main())
    assert sel == (1, Tag.RECV, "b1")
    assert log == [("b", cp.SendStatus.SENT), ("a", cp.SendStatus.FULL), ("b", cp.SendStatus.SENT)]
    assert a_left == (cp.RecvStatus.EMPTY, None)
    assert b_left == (cp.RecvStatus.OK, "b2")


def test_a_value_sent_later_on_another_channel_stays_for_the_next_receiver(vm):
    async def feeder(a, b):
        await cp.sleep(1)
        await a.send("a1")
        await b.send("b1")  # capacity 1: buffered, not consumed by the finished select

    async def main():
        a, b = cp.channel(0), cp.channel(1)
        f = cp.spawn(feeder(a, b))
        sel = await cp.select(a, b)
        await f
        return sel, len(b), await b.recv()

    assert vm.run(main()) == ((0, Tag.RECV, "a1"), 1, "b1")


def test_selectors_and_receivers_on_one_channel_are_served_first_come_first_served(vm):
    async def receiver(ch, delay):
        await cp.sleep(delay)
        return await ch.recv()

    async def selector(ch, other, delay):
        await cp.sleep(delay)
        return (await cp.select(other, ch)).value

    async def main():
        ch, other = cp.channel(), cp.channel()
        tasks = [cp.spawn(receiver(ch, 3)), cp.spawn(selector(ch, other, 1))]
        tasks.append(cp.spawn(receiver(ch, 2)))
        await cp.sleep(5)
        for v in ("first", "second", "third"):
            await ch.send(v)
        return [await t for t in tasks]

    assert vm.run(main()) == ["third", "first", "second"]


def test_a_blocked_select_is_journaled_with_its_cases(vm):
    async def feeder(ch):
        await cp.sleep(1)
        ch.try_send(5)

    async def main():
        a, b = cp.channel(), cp.channel()
        t = cp.spawn(feeder(b))
        await cp.select(a, b, t)

    vm.run(main())
    blocks = [(r.task, r.data) for r in vm.journal.filter(kind="block")]
    assert blocks == [(1, {"op": "select", "cases": ["channel 1", "channel 2", "task 2"]})]
    assert select_records(vm) == [(1, {"index": 1, "tag": "RECV"})]
    assert [(r.task, r.data) for r in vm.journal.filter(kind="recv")] == [
        (1, {"channel": 2, "value": 5})
    ]


def test_a_blocked_select_is_named_in_the_deadlock_report(vm):
    async def main():
        a, b = cp.channel(), cp.channel()
        await cp.select(a, b)

    with pytest.raises(cp.Deadlock) as info:
        vm.run(main())
    assert info.value.blocked == [(1, "main", "in select on channel 1, channel 2")]
    assert "task 1 'main' waits in select on channel 1, channel 2" in str(info.value)


# -- cancellation ---------------------------------------------------------------------------------


def test_a_cancelled_select_leaves_no_trace_in_the_channels_receiver_queues(vm):
    async def waiter(a, b):
        await cp.select(a, b, timeout=100)

    async def main():
        a, b = cp.channel(0), cp.channel(0)
        t = cp.spawn(waiter(a, b))
        await cp.sleep(1)
        t.cancel()
        statuses = [a.try_send("x"), b.try_send("y")]
        with pytest.raises(cp.Cancelled):
            await t
        return statuses, t.cancelled()

    assert vm.run(main()) == ([cp.SendStatus.FULL, cp.SendStatus.FULL], True)
    assert vm.step(10) == 0  # its timer went with it
    assert vm.now == 1


def test_a_cancelled_select_does_not_consume_a_ready_value(vm):
    async def waiter(ch, log):
        log.append("started")
        await cp.select(ch)
        log.append("not reached")

    async def main():
        ch, log = cp.channel(1), []
        ch.try_send("stays")
        t = cp.spawn(waiter(ch, log))
        t.cancel()  # before it ever ran: select is a cancel point even when a case is ready
        with pytest.raises(cp.Cancelled):
            await t
        return log, ch.try_recv()

    assert vm.run(main()) == (["started"], (cp.RecvStatus.OK, "stays"))


def test_select_is_a_schedule_point_even_when_a_case_is_ready(vm):
    order = []

    async def other():
        order.append("other")

    async def main():
        ch = cp.channel(1)
        ch.try_send(1)
        cp.spawn(other())
        order.append("before select")
        await cp.select(ch)
        order.append("after select")
        return order

    assert vm.run(main()) == ["before select", "other", "after select"]


# -- misuse ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [42, "channel", None, object()])
def test_an_invalid_case_type_is_a_type_error(vm, bad):
    async def main():
        with pytest.raises(TypeError, match="cases must be channels"):
            cp.select(cp.channel(), bad)
        return "ok"

    assert vm.run(main()) == "ok"


def test_select_with_no_cases_and_no_timeout_is_a_value_error(vm):
    async def main():
        with pytest.raises(ValueError, match="at least one case or a timeout"):
            cp.select()
        return "ok"

    assert vm.run(main()) == "ok"


@pytest.mark.parametrize("policy", ["fifo", "random", "PRIORITY", ""])
def test_an_unknown_policy_is_a_value_error(vm, policy):
    async def main():
        with pytest.raises(ValueError, match="unknown select policy"):
            cp.select(cp.channel(), policy=policy)
        return "ok"

    assert vm.run(main()) == "ok"


def test_select_outside_a_task_raises_not_in_task_error(vm):
    ch = vm.channel(1)
    with pytest.raises(cp.NotInTaskError, match=r"cp\.select\(\)"):
        cp.select(ch)
