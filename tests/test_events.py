"""Host events: vm.events.enqueue from any thread; cp.events.next() / drain() inside tasks
(issue 3, "Host events"; vm/events.py)."""

from __future__ import annotations

import threading

import pytest
from programs import assert_vm_usable, sleeps, state_of

import counterpoint as cp

E = cp.HostEvent


def event_records(vm):
    return [r for r in vm.journal if r.kind == "event"]


async def take_all(chunk=1000):
    """Drain everything queued, in chunks."""
    out = []
    while batch := cp.events.drain(chunk):
        out.extend(batch)
    return out


# -- next() ----------------------------------------------------------------------------------


def test_next_returns_the_queued_event_as_a_host_event(vm):
    vm.events.enqueue("sensor", {"celsius": 21.5})

    async def main():
        return await cp.events.next()

    event = vm.run(main())
    assert event == E("sensor", {"celsius": 21.5})
    assert type(event) is cp.HostEvent
    assert (event.source, event.payload) == ("sensor", {"celsius": 21.5})


def test_next_with_nothing_queued_blocks_the_task_while_others_keep_running(vm):
    log = []

    async def waiter():
        log.append("waiting")
        event = await cp.events.next()
        log.append(event)

    async def main():
        task = cp.spawn(waiter(), name="waiter")
        for _ in range(3):
            await cp.sleep(1)
            log.append(("main", cp.now()))
        return task

    task = vm.run(main())
    assert log == ["waiting", ("main", 1), ("main", 2), ("main", 3)]
    info = state_of(vm, task)
    assert info.state == "blocked"
    assert "host events" in info.waiting_on
    assert not task.done()


def test_an_event_enqueued_between_runs_wakes_the_task_waiting_in_next(vm):
    async def waiter():
        return await cp.events.next()

    async def start():
        task = cp.spawn(waiter(), name="waiter")
        await cp.checkpoint()  # it runs and parks in next()
        return task

    task = vm.run(start())
    assert state_of(vm, task).state == "blocked"

    vm.events.enqueue("door", "open")

    async def collect():
        return await task

    assert vm.run(collect()) == E("door", "open")
    # The waiter blocked, then took the event (its record) and was woken.
    assert [r.kind for r in vm.journal.filter(task=task.id)] == [
        "step",
        "block",
        "event",
        "wake",
        "step",
        "done",
    ]


# -- drain() ---------------------------------------------------------------------------------


def test_drain_returns_at_most_max_events_and_an_empty_list_when_none_are_queued(vm):
    for i in range(5):
        vm.events.enqueue("s", i)

    async def main():
        return [cp.events.drain(2), cp.events.drain(0), cp.events.drain(10), cp.events.drain(10)]

    first, zero, rest, empty = vm.run(main())
    assert first == [E("s", 0), E("s", 1)]
    assert zero == []
    assert rest == [E("s", 2), E("s", 3), E("s", 4)]
    assert empty == []
    assert vm.events.pending() == 0


def test_drain_is_not_a_checkpoint(vm):
    for i in range(3):
        vm.events.enqueue("s", i)
    log = []

    async def other():
        log.append("other ran")

    async def main():
        task = cp.spawn(other())
        got = [cp.events.drain(1), cp.events.drain(1), cp.events.drain(1), cp.events.drain(1)]
        log.append("drained")
        await task
        return got

    assert vm.run(main()) == [[E("s", 0)], [E("s", 1)], [E("s", 2)], []]
    assert log == ["drained", "other ran"]  # the spawned task did not run in between
    kinds = [(r.task, r.kind) for r in vm.journal]
    assert kinds[:6] == [(0, "spawn"), (1, "step"), (1, "spawn")] + [(1, "event")] * 3
    assert kinds[6] != (1, "step")  # no step of the drainer between or right after them


# -- order -----------------------------------------------------------------------------------


def test_events_of_one_source_come_out_in_fifo_order(vm):
    for i in range(50):
        vm.events.enqueue("only", i)

    async def main():
        first = [(await cp.events.next()).payload for _ in range(10)]
        return first + [e.payload for e in await take_all(7)]

    assert vm.run(main()) == list(range(50))


def test_sources_are_served_round_robin_in_sorted_name_order(vm):
    # Enqueued in a scrambled order across sources; FIFO within each.
    for source, payload in [("c", 1), ("b", 1), ("a", 1), ("c", 2), ("a", 2), ("a", 3)]:
        vm.events.enqueue(source, payload)

    async def main():
        return await take_all()

    got = [(e.source, e.payload) for e in vm.run(main())]
    assert got == [("a", 1), ("b", 1), ("c", 1), ("a", 2), ("c", 2), ("a", 3)]


def test_round_robin_continues_after_the_source_served_last_across_calls_and_runs(vm):
    for source, count in [("a", 3), ("b", 1), ("c", 2)]:
        for i in range(1, count + 1):
            vm.events.enqueue(source, i)

    async def two():
        return cp.events.drain(2)

    assert vm.run(two()) == [E("a", 1), E("b", 1)]  # "b" was served last

    vm.events.enqueue("b", 2)
    vm.events.enqueue("a", 4)

    async def rest():
        first = await cp.events.next()
        return [first, *await take_all()]

    got = [(e.source, e.payload) for e in vm.run(rest())]
    # Round 1 starts after "b": c, a, b.  Round 2: c, a (b is empty).  Round 3: a.
    assert got == [("c", 1), ("a", 2), ("b", 2), ("c", 2), ("a", 3), ("a", 4)]


def test_round_robin_starts_with_the_first_source_in_sorted_order_even_if_it_is_empty_named(vm):
    vm.events.enqueue("a", 1)
    vm.events.enqueue("", 0)

    async def main():
        return cp.events.drain(5)

    assert vm.run(main()) == [E("", 0), E("a", 1)]


def test_drain_order_does_not_depend_on_how_sources_were_interleaved_at_enqueue():
    per_source = {"mouse": list(range(4)), "keys": ["a", "b", "c"], "timer": [10, 20]}

    def interleaved(order):
        cursors = {source: iter(values) for source, values in per_source.items()}
        return [(source, next(cursors[source])) for source in order]

    one = interleaved(["mouse"] * 4 + ["keys"] * 3 + ["timer"] * 2)
    two = interleaved(
        ["timer", "keys", "mouse", "mouse", "keys", "timer", "mouse", "keys", "mouse"]
    )
    assert one != two and sorted(one, key=str) == sorted(two, key=str)

    results = []
    for sequence in (one, two):
        vm = cp.VM()
        for source, payload in sequence:
            vm.events.enqueue(source, payload)

        async def main():
            first = await cp.events.next()
            return [first, *cp.events.drain(3), *await take_all()]

        got = [(e.source, e.payload) for e in vm.run(main())]
        results.append((got, vm.journal.digest()))

    (got_one, digest_one), (got_two, digest_two) = results
    assert (
        got_one
        == got_two
        == [
            ("keys", "a"),
            ("mouse", 0),
            ("timer", 10),
            ("keys", "b"),
            ("mouse", 1),
            ("timer", 20),
            ("keys", "c"),
            ("mouse", 2),
            ("mouse", 3),
        ]
    )
    assert digest_one == digest_two


# -- visibility and the journal --------------------------------------------------------------


def test_events_are_visible_only_when_taken_and_untaken_events_leave_no_record(vm):
    assert vm.events.pending() == 0
    vm.events.enqueue("s", 1)
    vm.events.enqueue("s", 2)
    vm.events.enqueue("t", 3)
    assert vm.events.pending() == 3
    assert len(vm.journal) == 0  # enqueueing writes nothing

    async def main():
        return cp.events.drain(1)

    assert vm.run(main()) == [E("s", 1)]
    assert vm.events.pending() == 2
    assert [r.data for r in event_records(vm)] == [{"source": "s", "payload": 1}]


def test_each_taken_event_is_one_event_record_of_the_taking_task_with_wire_form_payload(vm):
    vm.events.enqueue("bin", b"hi")
    vm.events.enqueue("bin", {"k": [1, None, b"\x00"]})
    vm.events.enqueue("num", 2.5)

    async def waiter():
        return await cp.events.next()

    async def main():
        task = cp.spawn(waiter(), name="waiter")  # task 2: takes via next()
        await cp.checkpoint()
        drained = cp.events.drain(5)  # task 1 drains the rest
        return await task, drained

    taken, drained = vm.run(main())
    assert taken == E("bin", b"hi")
    assert drained == [E("num", 2.5), E("bin", {"k": [1, None, b"\x00"]})]
    records = event_records(vm)
    assert [(r.task, r.data) for r in records] == [
        (2, {"source": "bin", "payload": {"$bytes": "aGk="}}),
        (1, {"source": "num", "payload": 2.5}),
        (1, {"source": "bin", "payload": {"k": [1, None, {"$bytes": "AA=="}]}}),
    ]


def test_a_waiter_woken_by_a_delivered_event_is_the_task_of_its_record(vm):
    async def waiter():
        return await cp.events.next()

    async def start():
        tasks = cp.spawn(waiter()), cp.spawn(waiter())
        await cp.checkpoint()  # both park in next(), in id order
        return tasks

    first, second = vm.run(start())
    assert [state_of(vm, t).state for t in (first, second)] == ["blocked", "blocked"]
    vm.events.enqueue("s", "x")
    vm.events.enqueue("s", "y")

    async def collect():
        return await first, await second

    assert vm.run(collect()) == (E("s", "x"), E("s", "y"))
    assert [(r.task, r.data["payload"]) for r in event_records(vm)] == [
        (first.id, "x"),
        (second.id, "y"),
    ]


def test_payloads_are_copied_at_enqueue(vm):
    payload = [1, [2, 3], {"k": "v"}]
    vm.events.enqueue("s", payload)
    payload.append(4)
    payload[1].append(99)
    payload[2]["k"] = "changed"

    async def main():
        event = await cp.events.next()
        received = event.payload
        received.append("mutated by the task")  # after it was taken: the record is fixed
        return received

    assert vm.run(main()) == [1, [2, 3], {"k": "v"}, "mutated by the task"]
    assert event_records(vm)[0].data == {"source": "s", "payload": [1, [2, 3], {"k": "v"}]}


def test_payload_defaults_to_none(vm):
    vm.events.enqueue("tick")

    async def main():
        return await cp.events.next()

    assert vm.run(main()) == E("tick", None)


# -- misuse ----------------------------------------------------------------------------------


class Point:
    def __init__(self, x, y):
        self.x, self.y = x, y


@pytest.mark.parametrize(
    "payload",
    [(1, 2), Point(1, 2), {1, 2}, [1, (2,)], {"k": Point(0, 0)}, {(1, 2): "tuple key"}],
    ids=["tuple", "object", "set", "nested-tuple", "nested-object", "tuple-key"],
)
def test_a_non_plain_payload_is_rejected_at_enqueue_with_not_plain_data(vm, payload):
    with pytest.raises(cp.NotPlainData, match=r"plain data|key of type") as info:
        vm.events.enqueue("s", payload)
    assert isinstance(info.value, TypeError)
    assert vm.events.pending() == 0


@pytest.mark.parametrize("source", [1, None, b"s", ["s"]], ids=["int", "none", "bytes", "list"])
def test_a_non_str_source_is_a_type_error(vm, source):
    with pytest.raises(TypeError, match="source must be a str"):
        vm.events.enqueue(source, 1)
    assert vm.events.pending() == 0


@pytest.mark.parametrize(
    ("bad", "error"),
    [(-1, ValueError), (1.5, TypeError), ("3", TypeError), (None, TypeError), (True, TypeError)],
)
def test_drain_with_a_negative_or_non_int_max_is_an_error(vm, bad, error):
    vm.events.enqueue("s", 1)

    async def main():
        with pytest.raises(error, match="max_events"):
            cp.events.drain(bad)
        return vm.events.pending()

    assert vm.run(main()) == 1  # nothing was taken
    assert event_records(vm) == []


def test_next_and_drain_outside_a_task_raise_not_in_task_error(vm):
    vm.events.enqueue("s", 1)
    with pytest.raises(cp.NotInTaskError):
        cp.events.next()
    with pytest.raises(cp.NotInTaskError):
        cp.events.drain(1)
    assert vm.events.pending() == 1


# -- threads and callbacks -------------------------------------------------------------------


def test_concurrent_enqueue_from_threads_loses_and_duplicates_nothing_and_keeps_fifo(vm):
    threads_n, per_thread = 4, 2000
    barrier = threading.Barrier(threads_n)
    errors = []

    def produce(i):
        try:
            barrier.wait()
            for j in range(per_thread):
                vm.events.enqueue(f"t{i}", j)
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=produce, args=(i,)) for i in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert vm.events.pending() == threads_n * per_thread

    async def main():
        return await take_all(chunk=333)

    got = vm.run(main())
    assert len(got) == threads_n * per_thread
    assert vm.events.pending() == 0
    for i in range(threads_n):
        assert [e.payload for e in got if e.source == f"t{i}"] == list(range(per_thread))
    # All sources had equal counts, so the round-robin interleaves them perfectly.
    assert [e.source for e in got[:8]] == ["t0", "t1", "t2", "t3"] * 2
    assert len(event_records(vm)) == threads_n * per_thread


def test_threads_may_enqueue_while_the_vm_runs(vm):
    threads_n, per_thread = 4, 500
    total = threads_n * per_thread
    barrier = threading.Barrier(threads_n)

    def produce(i):
        barrier.wait()
        for j in range(per_thread):
            vm.events.enqueue(f"t{i}", j)

    threads = [threading.Thread(target=produce, args=(i,)) for i in range(threads_n)]
    for thread in threads:
        thread.start()

    async def main():
        got = []
        while len(got) < total:
            got.extend(cp.events.drain(100))
            await cp.checkpoint()
        return got

    try:
        got = vm.run(main())
    finally:
        for thread in threads:
            thread.join()
    assert len(got) == total
    for i in range(threads_n):
        assert [e.payload for e in got if e.source == f"t{i}"] == list(range(per_thread))


def test_a_widget_callback_between_steps_feeds_a_consumer_looping_on_next(vm):
    received = []

    async def consumer():
        while True:
            event = await cp.events.next()
            if event.payload == "quit":
                return len(received)
            received.append(event)

    def on_click(widget, value):  # what a widget's observer would do
        vm.events.enqueue(widget, value)

    task = vm.spawn(consumer(), name="consumer")
    assert vm.step(10) == 1  # it runs and parks in next()
    assert vm.step(10) == 0  # nothing to do: no events
    on_click("button", {"clicks": 1})
    on_click("slider", 0.5)
    assert vm.step(10) > 0
    assert received == [E("button", {"clicks": 1}), E("slider", 0.5)]
    assert state_of(vm, task).state == "blocked"
    on_click("button", "quit")
    vm.step(10)
    assert task.done() and task.result() == 2


def test_a_callback_on_a_timer_thread_feeds_a_consumer(vm):
    received = []

    async def consumer(n):
        for _ in range(n):
            received.append((await cp.events.next()).payload)
        return "done"

    task = vm.spawn(consumer(3))
    for i in range(3):
        vm.step(100)
        timer = threading.Timer(0, vm.events.enqueue, args=("timer", i))
        timer.start()
        timer.join()  # the callback has run on its own thread
    vm.step(100)
    assert task.result() == "done"
    assert received == [0, 1, 2]


# -- deadlock report -------------------------------------------------------------------------


def test_a_root_waiting_for_events_with_nothing_runnable_is_a_deadlock_not_a_hang(vm):
    async def main():
        return await cp.events.next()

    with pytest.raises(cp.Deadlock, match="waits for host events") as info:
        vm.run(main())
    assert "task 1 'main' waits for host events" in str(info.value)
    assert [(tid, name) for tid, name, _ in info.value.blocked] == [(1, "main")]
    assert "host events" in info.value.blocked[0][2]

    # The VM is usable afterwards.
    vm.events.enqueue("late", 42)
    assert vm.run(main()) == E("late", 42)
    assert [r.data for r in event_records(vm)] == [{"source": "late", "payload": 42}]
    assert_vm_usable(vm)


def test_a_deadlock_names_every_task_waiting_for_events(vm):
    async def waiter():
        await cp.events.next()

    async def main():
        cp.spawn(waiter(), name="helper")
        await cp.events.next()

    with pytest.raises(cp.Deadlock) as info:
        vm.run(main())
    message = str(info.value)
    assert "task 1 'main' waits for host events" in message
    assert "task 2 'helper' waits for host events" in message


def test_waiting_for_events_while_another_task_sleeps_is_not_a_deadlock(vm):
    async def waiter():
        return await cp.events.next()

    async def main():
        pending = cp.spawn(waiter(), name="waiter")
        sleeper = cp.spawn(sleeps(5), name="sleeper")
        return pending, await sleeper

    pending, slept = vm.run(main())
    assert slept == 5 and vm.now == 5  # time advanced past the waiter
    assert state_of(vm, pending).state == "blocked"


def test_a_sleeping_root_returns_normally_while_a_detached_task_waits_for_events(vm):
    async def listen():
        return await cp.events.next()

    async def main():
        waiter = cp.spawn(listen(), name="listener")
        await cp.sleep(3)
        return waiter

    waiter = vm.run(main())
    assert vm.now == 3
    assert state_of(vm, waiter).state == "blocked"
    vm.events.enqueue("s", "later")

    async def collect():
        return await waiter

    assert vm.run(collect()) == E("s", "later")


# -- cancellation ----------------------------------------------------------------------------


def test_cancelling_a_task_blocked_in_next_removes_it_from_the_waiters(vm):
    log = []

    async def waiter(name):
        try:
            event = await cp.events.next()
        except cp.Cancelled:
            log.append((name, "cancelled"))
            raise
        log.append((name, event.payload))
        return event

    async def start():
        tasks = cp.spawn(waiter("A"), name="A"), cp.spawn(waiter("B"), name="B")
        await cp.checkpoint()  # both park in next()
        return tasks

    a, b = vm.run(start())
    assert [state_of(vm, t).state for t in (a, b)] == ["blocked", "blocked"]
    assert a.cancel() is True
    vm.events.enqueue("s", "only one")

    async def collect():
        with pytest.raises(cp.Cancelled):
            await a
        return await b

    assert vm.run(collect()) == E("s", "only one")  # went to the next waiter
    assert log == [("A", "cancelled"), ("B", "only one")]
    assert [r.task for r in event_records(vm)] == [b.id]


def test_an_event_after_the_only_waiter_was_cancelled_stays_queued(vm):
    async def waiter():
        return await cp.events.next()

    async def main():
        task = cp.spawn(waiter())
        await cp.checkpoint()
        task.cancel()
        with pytest.raises(cp.Cancelled):
            await task

    vm.run(main())
    vm.events.enqueue("s", 1)
    assert vm.step(10) == 0  # nobody to hand it to
    assert vm.events.pending() == 1
    assert event_records(vm) == []


def test_cancellation_is_level_triggered_at_next_even_with_events_queued(vm):
    log = []

    async def stubborn():
        for _ in range(2):
            try:
                await cp.events.next()
            except cp.Cancelled:
                log.append(("cancelled", vm.events.pending()))
        return "gave up"

    async def main():
        task = cp.spawn(stubborn())
        await cp.checkpoint()  # it parks in next()
        task.cancel()
        vm.events.enqueue("s", 1)  # queued after the cancel: must not be taken
        return await task

    assert vm.run(main()) == "gave up"
    assert log == [("cancelled", 1), ("cancelled", 1)]
    assert vm.events.pending() == 1
    assert event_records(vm) == []


# -- determinism -----------------------------------------------------------------------------


def _events_program_digest(policy_kwargs):
    vm = cp.VM(**policy_kwargs)
    for i in range(6):
        vm.events.enqueue(["b", "a", "c"][i % 3], {"i": i, "raw": bytes([i])})

    async def listener(n):
        return [(await cp.events.next()).payload["i"] for _ in range(n)]

    async def main():
        one = cp.spawn(listener(2), name="one")
        two = cp.spawn(listener(1), name="two")
        await cp.sleep(1)
        drained = [e.payload["i"] for e in cp.events.drain(2)]
        return await one, await two, drained, [e.payload["i"] for e in await take_all()]

    result = vm.run(main())
    return result, vm.journal.digest()


@pytest.mark.parametrize("policy_kwargs", [{}, {"policy": "random", "seed": 7}])
def test_same_events_enqueued_in_the_same_order_give_the_same_journal_digest(policy_kwargs):
    first = _events_program_digest(policy_kwargs)
    second = _events_program_digest(policy_kwargs)
    assert first == second


def test_tasks_waiting_in_next_are_served_before_a_later_caller(vm):
    got = []

    async def waiter(name):
        got.append((name, (await cp.events.next()).payload))

    async def main():
        first = cp.spawn(waiter("first"))
        await cp.sleep(1)  # "first" now waits in next()
        vm.events.enqueue("src", "one")  # (the host could do this from another thread)
        vm.events.enqueue("src", "two")
        late = cp.spawn(waiter("late"))  # calls next() while "first" is still waiting
        await first
        await late

    vm.run(main())
    assert got == [("first", "one"), ("late", "two")]
