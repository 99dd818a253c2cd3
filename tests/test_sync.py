"""Lock, Semaphore, Event, Condition, Barrier: FIFO wake-ups, direct hand-over, misuse."""

from __future__ import annotations

import pytest
from programs import assert_vm_usable, state_of

import counterpoint as cp


def records(vm: cp.VM, kind: str) -> list[tuple[int, dict]]:
    return [(r.task, r.data) for r in vm.journal.filter(kind=kind)]


# -- Lock -------------------------------------------------------------------------------------


def test_lock_gives_mutual_exclusion(vm):
    inside, peak, log = [0], [0], []

    async def worker(lock, name):
        async with lock:
            inside[0] += 1
            peak[0] = max(peak[0], inside[0])
            log.append((name, cp.now()))
            await cp.sleep(2)
            inside[0] -= 1

    async def main():
        lock = cp.Lock()
        await cp.par(*(worker(lock, n) for n in "abcd"))
        return cp.now()

    assert vm.run(main()) == 8
    assert peak == [1]
    assert log == [("a", 0), ("b", 2), ("c", 4), ("d", 6)]


def test_lock_is_handed_over_to_the_longest_waiter(vm):
    order = []

    async def waiter(lock, name, delay):
        await cp.sleep(delay)
        async with lock:
            order.append(name)

    async def main():
        lock = cp.Lock()
        await lock.acquire()
        # spawned in id order x, y, z; they queue in the order z, x, y
        tasks = [
            cp.spawn(waiter(lock, name, delay)) for name, delay in (("x", 2), ("y", 3), ("z", 1))
        ]
        await cp.sleep(5)
        lock.release()
        for t in tasks:
            await t

    vm.run(main())
    assert order == ["z", "x", "y"]
    acquirers = [task for task, _ in records(vm, "acquire")]
    assert acquirers == [1, 4, 2, 3]


def test_lock_release_hands_over_directly_without_barging(vm):
    order = []

    async def waiter(lock):
        async with lock:
            order.append("waiter")

    async def main():
        lock = cp.Lock()
        await lock.acquire()
        t = cp.spawn(waiter(lock))
        await cp.sleep(1)
        lock.release()
        assert lock.owner is t  # handed over at once, before the waiter even runs
        await lock.acquire()  # so the releaser queues behind it
        order.append("releaser again")
        lock.release()
        await t
        return order

    assert vm.run(main()) == ["waiter", "releaser again"]


def test_a_lock_waiter_says_what_it_waits_for_and_who_holds_the_lock(vm):
    async def waiter(lock):
        async with lock:
            pass

    async def main():
        lock = cp.Lock()
        async with lock:
            t = cp.spawn(waiter(lock))
            await cp.sleep(1)
            info = state_of(vm, t)
        await t
        return info.state, info.waiting_on

    assert vm.run(main()) == ("blocked", "to acquire lock 1 (held by task 1 'main')")


def test_lock_is_not_reentrant(vm):
    async def main():
        lock = cp.Lock()
        await lock.acquire()
        with pytest.raises(cp.LockError, match="not re-entrant"):
            await lock.acquire()
        return lock.locked(), lock.owner is cp.current_task()

    assert vm.run(main()) == (True, True)


def test_releasing_a_lock_held_by_another_task_is_a_lock_error(vm):
    async def holder(lock):
        await lock.acquire()
        await cp.sleep(10)

    async def main():
        lock = cp.Lock()
        free = cp.Lock()
        with pytest.raises(cp.LockError, match="held by nobody"):
            free.release()
        t = cp.spawn(holder(lock))
        await cp.sleep(1)
        with pytest.raises(cp.LockError, match=f"held by task {t.id}"):
            lock.release()
        return lock.owner is t

    assert vm.run(main()) is True


def test_async_with_lock_releases_even_when_the_body_raises(vm):
    async def main():
        lock = cp.Lock()
        with pytest.raises(KeyError):
            async with lock:
                assert lock.locked()
                raise KeyError("inside")
        return lock.locked()

    assert vm.run(main()) is False
    assert [r.kind for r in vm.journal if r.kind in ("acquire", "release")] == [
        "acquire",
        "release",
    ]
    assert records(vm, "acquire") == [(1, {"lock": 1})]


def test_acquiring_a_free_lock_is_still_a_schedule_point(vm):
    order = []

    async def other():
        order.append("other")

    async def main():
        lock = cp.Lock()
        cp.spawn(other())
        order.append("before acquire")
        await lock.acquire()
        order.append("after acquire")
        lock.release()
        return order

    assert vm.run(main()) == ["before acquire", "other", "after acquire"]


def test_acquiring_a_free_lock_is_a_cancel_point(vm):
    async def victim(lock):
        await lock.acquire()

    async def main():
        lock = cp.Lock()
        t = cp.spawn(victim(lock))
        t.cancel()
        with pytest.raises(cp.Cancelled):
            await t
        return lock.locked()

    assert vm.run(main()) is False
    assert records(vm, "acquire") == []


def test_cancelling_a_lock_waiter_removes_it_from_the_queue(vm):
    order = []

    async def waiter(lock, name):
        async with lock:
            order.append(name)

    async def main():
        lock = cp.Lock()
        await lock.acquire()
        first = cp.spawn(waiter(lock, "first"))
        second = cp.spawn(waiter(lock, "second"))
        await cp.sleep(1)
        first.cancel()
        assert state_of(vm, first).state == "ready"  # taken off the lock's queue at once
        lock.release()
        assert lock.owner is second
        await second
        with pytest.raises(cp.Cancelled):
            await first
        return order, lock.locked()

    assert vm.run(main()) == (["second"], False)


def test_two_tasks_taking_two_locks_in_opposite_order_deadlock(vm):
    async def worker(first, second):
        async with first:
            await cp.sleep(1)
            async with second:
                pass

    async def main():
        a, b = cp.Lock(), cp.Lock()
        left = cp.spawn(worker(a, b), name="left")
        right = cp.spawn(worker(b, a), name="right")
        await left
        await right

    with pytest.raises(cp.Deadlock) as info:
        vm.run(main())
    message = str(info.value)
    assert "deadlock at tick 1" in message
    assert "task 1 'main' waits for task 2 to finish" in message
    assert "task 2 'left' waits to acquire lock 2" in message
    assert "task 3 'right' waits to acquire lock 1" in message
    assert info.value.blocked == [
        (1, "main", "for task 2 to finish"),
        (2, "left", "to acquire lock 2 (held by task 3 'right')"),
        (3, "right", "to acquire lock 1 (held by task 2 'left')"),
    ]

    async def after():
        return "still usable"

    assert vm.run(after()) == "still usable"


# -- Semaphore --------------------------------------------------------------------------------


def test_lock_errors_are_named_runtime_errors():
    assert issubclass(cp.LockError, RuntimeError) and issubclass(cp.LockError, cp.CounterpointError)


def test_a_bounded_semaphore_refuses_a_release_past_its_initial_value(vm):
    async def main():
        sem = cp.BoundedSemaphore(2)
        async with sem:
            sem.release()  # (a unit it did not acquire: 2 free now)
            with pytest.raises(ValueError, match="semaphore 1 released too many times"):
                sem.release()
            value = sem.value
        return value

    with pytest.raises(ValueError, match="released too many times"):
        vm.run(main())  # the `async with` releases a third time on the way out
    assert [r.kind for r in vm.journal].count("release") == 1  # refused releases left no record


def test_a_bounded_semaphore_hands_over_to_a_waiter_and_counts_like_a_semaphore(vm, tmp_path):
    async def user(sem, log, name):
        async with sem:
            log.append((name, cp.now()))
            await cp.sleep(2)

    async def main():
        sem, log = cp.BoundedSemaphore(1), []
        await cp.par(user(sem, log, "a"), user(sem, log, "b"))
        return log, sem.value

    assert vm.run(main()) == ([("a", 0), ("b", 2)], 1)
    create = next(r for r in vm.journal if r.kind == "create")
    assert create.data == {"semaphore": 1, "value": 1, "bounded": True}
    for name in ("bounded.db", "bounded.jsonl"):  # the journal files keep the option
        loaded = cp.Journal.load(vm.journal.save(tmp_path / name))
        assert loaded.digest() == vm.journal.digest()
        assert loaded.state_at(len(loaded)).semaphores == {1: 1}


def test_an_unbounded_semaphore_may_be_released_more_than_acquired(vm):
    async def main():
        signal = cp.Semaphore(0)
        signal.release()
        signal.release()  # a semaphore used for signalling counts up: no bound
        return signal.value

    assert vm.run(main()) == 2


def test_semaphore_admits_at_most_n_holders(vm):
    inside, peak = [0], [0]

    async def worker(sem):
        async with sem:
            inside[0] += 1
            peak[0] = max(peak[0], inside[0])
            await cp.sleep(3)
            inside[0] -= 1

    async def main():
        sem = cp.Semaphore(2)
        await cp.par(*(worker(sem) for _ in range(5)))
        return cp.now(), sem.value

    assert vm.run(main()) == (9, 2)
    assert peak == [2]


def test_semaphore_waiters_are_served_first_come_first_served(vm):
    order = []

    async def waiter(sem, name, delay):
        await cp.sleep(delay)
        await sem.acquire()
        order.append(name)

    async def main():
        sem = cp.Semaphore(0)
        tasks = [cp.spawn(waiter(sem, n, d)) for n, d in (("p", 3), ("q", 1), ("r", 2))]
        await cp.sleep(5)
        for _ in tasks:
            sem.release()
        for t in tasks:
            await t
        return order, sem.value

    assert vm.run(main()) == (["q", "r", "p"], 0)


def test_semaphore_value_counts_free_units_and_release_hands_over_to_a_waiter(vm):
    async def waiter(sem):
        await sem.acquire()

    async def main():
        sem = cp.Semaphore(3)
        values = [sem.value]
        await sem.acquire()
        await sem.acquire()
        values.append(sem.value)
        await sem.acquire()
        t = cp.spawn(waiter(sem))
        await cp.sleep(1)
        values.append(sem.value)
        sem.release()  # goes straight to the waiter: the value stays 0
        values.append(sem.value)
        await t
        sem.release()
        values.append(sem.value)
        return values

    assert vm.run(main()) == [3, 1, 0, 0, 1]


def test_cancelling_a_semaphore_waiter_removes_it_from_the_queue(vm):
    async def waiter(sem, name):
        await sem.acquire()
        return name

    async def main():
        sem = cp.Semaphore(0)
        gone = cp.spawn(waiter(sem, "gone"))
        stays = cp.spawn(waiter(sem, "stays"))
        await cp.sleep(1)
        gone.cancel()
        sem.release()
        with pytest.raises(cp.Cancelled):
            await gone
        return await stays, sem.value

    assert vm.run(main()) == ("stays", 0)


def test_semaphore_zero_blocks_until_a_release(vm):
    async def releaser(sem):
        await cp.sleep(7)
        sem.release()

    async def main():
        sem = cp.Semaphore(0)
        cp.spawn(releaser(sem))
        await sem.acquire()
        return cp.now()

    assert vm.run(main()) == 7


@pytest.mark.parametrize(("value", "error"), [(-1, ValueError), (1.5, TypeError)])
def test_bad_semaphore_value_is_a_named_error(vm, value, error):
    async def main():
        with pytest.raises(error, match="Semaphore"):
            cp.Semaphore(value)
        return "ok"

    assert vm.run(main()) == "ok"


# -- Event ------------------------------------------------------------------------------------


def test_event_set_wakes_every_waiter_first_come_first_served(vm):
    order = []

    async def waiter(event, name, delay):
        await cp.sleep(delay)
        await event.wait()
        order.append((name, cp.now()))

    async def main():
        event = cp.Event()
        tasks = [cp.spawn(waiter(event, n, d)) for n, d in (("a", 3), ("b", 1), ("c", 2))]
        await cp.sleep(4)
        assert not order
        event.set()
        for t in tasks:
            await t
        return event.is_set()

    assert vm.run(main()) is True
    assert order == [("b", 4), ("c", 4), ("a", 4)]


def test_waiting_on_a_set_event_returns_at_once_but_is_a_schedule_point(vm):
    order = []

    async def other():
        order.append("other")

    async def main():
        event = cp.Event()
        event.set()
        cp.spawn(other())
        order.append("before wait")
        await event.wait()
        order.append("after wait")
        return cp.now()

    assert vm.run(main()) == 0
    assert order == ["before wait", "other", "after wait"]
    assert records(vm, "block") == []


def test_event_clear_makes_wait_block_again(vm):
    async def setter(event):
        await cp.sleep(6)
        event.set()

    async def main():
        event = cp.Event()
        event.set()
        event.set()  # idempotent
        event.clear()
        cleared = event.is_set()
        cp.spawn(setter(event))
        await event.wait()
        return cleared, cp.now()

    assert vm.run(main()) == (False, 6)
    assert [r.kind for r in vm.journal if r.kind in ("set", "clear")] == ["set", "clear", "set"]


def test_cancelling_an_event_waiter_removes_it(vm):
    async def waiter(event):
        await event.wait()
        return "woken"

    async def main():
        event = cp.Event()
        gone = cp.spawn(waiter(event))
        stays = cp.spawn(waiter(event))
        await cp.sleep(1)
        gone.cancel()
        event.set()
        with pytest.raises(cp.Cancelled):
            await gone
        return await stays

    assert vm.run(main()) == "woken"
    wakes = [r.task for r in vm.journal if r.kind == "wake"]
    assert wakes.count(3) == 1 and 2 not in wakes


# -- Condition --------------------------------------------------------------------------------


def test_condition_wait_releases_the_lock_and_reacquires_it_before_returning(vm):
    log = []

    async def waiter(cond):
        async with cond:
            log.append(("waiting", cond.lock.owner is cp.current_task()))
            await cond.wait()
            log.append(("woken", cond.lock.owner is cp.current_task(), cp.now()))

    async def notifier(cond):
        await cp.sleep(2)
        async with cond:  # possible only because the waiter released the lock
            log.append(("notifying", cp.now()))
            cond.notify()
            await cp.sleep(3)  # the waiter cannot return while we hold the lock
            log.append(("releasing", cp.now()))

    async def main():
        cond = cp.Condition()
        await cp.par(waiter(cond), notifier(cond))
        return cond.locked()

    assert vm.run(main()) is False
    assert log == [("waiting", True), ("notifying", 2), ("releasing", 5), ("woken", True, 5)]


def test_condition_notify_n_wakes_n_waiters_first_come_first_served(vm):
    woken = []

    async def waiter(cond, name, delay):
        await cp.sleep(delay)
        async with cond:
            await cond.wait()
            woken.append(name)

    async def main():
        cond = cp.Condition()
        tasks = [cp.spawn(waiter(cond, n, d)) for n, d in (("a", 3), ("b", 1), ("c", 2))]
        await cp.sleep(5)
        async with cond:
            cond.notify(2)
        await cp.sleep(1)
        after_two = list(woken)
        async with cond:
            cond.notify()
        for t in tasks:
            await t
        return after_two

    assert vm.run(main()) == ["b", "c"]
    assert woken == ["b", "c", "a"]
    assert [data["woken"] for _, data in records(vm, "notify")] == [2, 1]


def test_condition_notify_all_wakes_every_waiter_first_come_first_served(vm):
    woken = []

    async def waiter(cond, name, delay):
        await cp.sleep(delay)
        async with cond:
            await cond.wait()
            woken.append(name)

    async def main():
        cond = cp.Condition()
        tasks = [cp.spawn(waiter(cond, n, d)) for n, d in (("a", 2), ("b", 3), ("c", 1))]
        await cp.sleep(5)
        async with cond:
            cond.notify_all()
        for t in tasks:
            await t

    vm.run(main())
    assert woken == ["c", "a", "b"]
    assert records(vm, "notify") == [(1, {"condition": 1, "woken": 3})]


def test_condition_wait_and_notify_without_the_lock_are_lock_errors(vm):
    async def main():
        cond = cp.Condition()
        with pytest.raises(cp.LockError, match="needs the condition's lock"):
            await cond.wait()
        with pytest.raises(cp.LockError, match="needs the condition's lock"):
            cond.notify()
        with pytest.raises(cp.LockError, match="needs the condition's lock"):
            cond.notify_all()
        return cond.locked()

    assert vm.run(main()) is False


def test_condition_wait_for_returns_once_the_predicate_holds(vm):
    state = {"count": 0}

    async def incrementer(cond):
        for _ in range(5):
            await cp.sleep(1)
            async with cond:
                state["count"] += 1
                cond.notify_all()

    async def main():
        cond = cp.Condition()
        cp.spawn(incrementer(cond))
        async with cond:
            result = await cond.wait_for(lambda: state["count"] >= 3 and state["count"] * 10)
            return result, cp.now(), cond.lock.owner is cp.current_task()

    assert vm.run(main()) == (30, 3, True)


def test_condition_wait_for_a_true_predicate_does_not_wait(vm):
    async def main():
        cond = cp.Condition()
        async with cond:
            return await cond.wait_for(lambda: "already")

    assert vm.run(main()) == "already"
    assert records(vm, "block") == []


def test_a_cancelled_condition_waiter_holds_the_lock_when_cancelled_propagates(vm):
    log = []

    async def waiter(cond):
        async with cond:
            try:
                await cond.wait()
            except cp.Cancelled:
                log.append(("cancelled", cond.lock.owner is cp.current_task(), cp.now()))
                raise

    async def main():
        cond = cp.Condition()
        t = cp.spawn(waiter(cond))
        await cp.sleep(1)
        t.cancel()  # nobody holds the lock: the waiter takes it back at once
        with pytest.raises(cp.Cancelled):
            await t
        return cond.locked()

    assert vm.run(main()) is False
    assert log == [("cancelled", True, 1)]


def test_a_cancelled_condition_waiter_waits_for_the_lock_before_cancelled_propagates(vm):
    log = []

    async def waiter(cond):
        async with cond:
            try:
                await cond.wait()
            except cp.Cancelled:
                log.append(("cancelled", cond.lock.owner is cp.current_task(), cp.now()))
                raise

    async def main():
        cond = cp.Condition()
        t = cp.spawn(waiter(cond))
        await cp.sleep(1)
        async with cond:
            t.cancel()
            await cp.sleep(4)  # the waiter must not run its handler while we hold the lock
            log.append(("main releases", cp.now()))
        with pytest.raises(cp.Cancelled):
            await t
        return cond.locked()

    assert vm.run(main()) is False
    assert log == [("main releases", 5), ("cancelled", True, 5)]


def test_a_notified_then_cancelled_waiter_still_gets_the_lock_before_cancelled_propagates(vm):
    log = []

    async def waiter(cond):
        async with cond:
            try:
                await cond.wait()
            except cp.Cancelled:
                log.append(("cancelled", cond.lock.owner is cp.current_task(), cp.now()))
                raise

    async def main():
        cond = cp.Condition()
        t = cp.spawn(waiter(cond))
        await cp.sleep(1)
        async with cond:
            cond.notify()  # the waiter now queues for the lock ...
            t.cancel()  # ... and is cancelled there
            await cp.sleep(2)
            log.append(("main releases", cp.now()))
        with pytest.raises(cp.Cancelled):
            await t
        return cond.locked()

    assert vm.run(main()) is False
    assert log == [("main releases", 3), ("cancelled", True, 3)]
    lock_events = [(r.task, r.kind) for r in vm.journal if r.kind in ("acquire", "release")]
    assert lock_events[-3:] == [(1, "release"), (2, "acquire"), (2, "release")]


def test_condition_over_a_given_lock_uses_that_lock(vm):
    async def main():
        lock = cp.Lock()
        cond = cp.Condition(lock)
        async with cond:
            held = lock.owner is cp.current_task()
        with pytest.raises(TypeError, match=r"needs a cp\.Lock"):
            cp.Condition(cp.Semaphore(1))
        return cond.lock is lock, held, lock.locked()

    assert vm.run(main()) == (True, True, False)


# -- Barrier ----------------------------------------------------------------------------------


def test_barrier_releases_everyone_when_n_have_arrived_with_arrival_indexes(vm):
    async def party(barrier, delay):
        await cp.sleep(delay)
        index = await barrier.wait()
        return index, cp.now()

    async def main():
        barrier = cp.Barrier(3)
        return await cp.par(party(barrier, 4), party(barrier, 1), party(barrier, 2))

    assert vm.run(main()) == [(2, 4), (0, 4), (1, 4)]


def test_barrier_does_not_release_before_n_arrive(vm):
    async def party(barrier):
        await barrier.wait()

    async def main():
        barrier = cp.Barrier(3)
        tasks = [cp.spawn(party(barrier)) for _ in range(2)]
        await cp.sleep(10)
        waiting = (barrier.n_waiting, [state_of(vm, t).state for t in tasks])
        await barrier.wait()
        for t in tasks:
            await t
        return waiting

    assert vm.run(main()) == (2, ["blocked", "blocked"])


def test_barrier_is_reusable_for_another_round(vm):
    async def party(barrier, name, delays):
        out = []
        for delay in delays:
            await cp.sleep(delay)
            out.append((await barrier.wait(), cp.now()))
        return name, out

    async def main():
        barrier = cp.Barrier(2)
        return await cp.par(party(barrier, "a", [1, 5]), party(barrier, "b", [3, 1]))

    assert vm.run(main()) == [
        ("a", [(0, 3), (1, 8)]),
        ("b", [(1, 3), (0, 8)]),
    ]


def test_a_cancelled_barrier_party_does_not_count_as_arrived(vm):
    async def party(barrier, name):
        return name, await barrier.wait(), cp.now()

    async def main():
        barrier = cp.Barrier(2)
        gone = cp.spawn(party(barrier, "gone"))
        await cp.sleep(1)
        gone.cancel()
        b = cp.spawn(party(barrier, "b"))
        await cp.sleep(1)
        assert barrier.n_waiting == 1
        c = cp.spawn(party(barrier, "c"))
        return [await b, await c], gone.cancelled()

    assert vm.run(main()) == ([("b", 0, 2), ("c", 1, 2)], True)


def test_barrier_of_one_party_returns_at_once(vm):
    async def main():
        barrier = cp.Barrier(1)
        return [await barrier.wait() for _ in range(3)], cp.now()

    assert vm.run(main()) == ([0, 0, 0], 0)


@pytest.mark.parametrize(
    ("parties", "error"), [(0, ValueError), (-2, ValueError), (2.0, TypeError)]
)
def test_bad_barrier_parties_is_a_named_error(vm, parties, error):
    async def main():
        with pytest.raises(error, match="parties"):
            cp.Barrier(parties)
        return "ok"

    assert vm.run(main()) == "ok"


# -- misuse -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make", [cp.Lock, cp.Event, cp.Condition, lambda: cp.Semaphore(1), lambda: cp.Barrier(2)]
)
def test_primitives_outside_a_task_raise_not_in_task_error(make):
    with pytest.raises(cp.NotInTaskError, match="outside a Counterpoint task"):
        make()


# -- try_acquire: take it now or say no, without waiting ---------------------------------


def test_try_acquire_takes_a_free_lock_and_refuses_a_held_one_without_waiting():
    async def main():
        door = cp.Lock(name="door")

        async def knock():
            before = cp.now()
            got = door.try_acquire()
            return got, cp.now() - before

        assert door.try_acquire()
        refused = await cp.spawn(knock())
        door.release()
        granted = await cp.spawn(knock())
        return refused, granted, door.owner is not None

    vm = cp.VM()
    refused, granted, held = vm.run(main())
    assert refused == (False, 0) and granted == (True, 0) and held
    records = vm.journal.records()
    kinds = [r.kind for r in records if r.kind in ("acquire", "release")]
    assert kinds == ["acquire", "release", "acquire"]  # a refusal writes nothing
    assert {r.task for r in records if r.kind == "block"} == {1}  # (main joins; knock never waits)


def test_try_acquire_on_a_semaphore_takes_one_unit_while_any_is_left():
    async def main():
        pool = cp.Semaphore(2, name="pool")
        return [pool.try_acquire() for _ in range(3)]

    assert cp.VM().run(main()) == [True, True, False]


def test_try_acquire_of_a_lock_already_held_by_the_same_task_is_a_lock_error():
    async def main():
        lock = cp.Lock()
        lock.try_acquire()
        lock.try_acquire()

    with pytest.raises(cp.LockError, match="not re-entrant"):
        cp.VM().run(main())


def test_try_acquire_is_explored_as_a_read_of_the_lock():
    async def main():
        lock = cp.Lock()
        got = []

        async def grab(name):
            await cp.checkpoint()
            if lock.try_acquire():
                got.append(name)

        await cp.par(grab("a"), grab("b"))
        return tuple(got)

    report = cp.explore(main)
    assert report.exhaustive and set(report.outcomes) == {("a",), ("b",)}


# -- RLock: re-entrant, journaled like a Lock --------------------------------------------


def test_rlock_may_be_taken_again_by_its_holder_and_is_free_after_as_many_releases(vm):
    async def main():
        lock = cp.RLock(name="account")
        seen = []
        await lock.acquire()
        await lock.acquire()
        seen.append((lock.locked(), lock.owner.name))
        lock.release()
        seen.append(lock.locked())
        lock.release()
        seen.append((lock.locked(), lock.owner))
        return seen

    assert vm.run(main()) == [(True, "main"), True, (False, None)]
    kinds = [r.kind for r in vm.journal if r.kind in ("acquire", "release")]
    assert kinds == ["acquire", "acquire", "release", "release"]  # every one journaled
    assert records(vm, "create") == [(1, {"lock": 1, "reentrant": True, "name": "account"})]


def test_rlock_goes_to_the_longest_waiter_only_after_the_holders_last_release(vm):
    log = []

    async def holder(lock):
        async with lock:
            async with lock:
                await cp.sleep(2)
            log.append(("inner released", cp.now()))
            await cp.sleep(3)
        log.append(("outer released", cp.now()))

    async def waiter(lock, name):
        await cp.sleep(1)
        async with lock:
            log.append((name, cp.now()))

    async def main():
        lock = cp.RLock()
        await cp.par(holder(lock), waiter(lock, "b"), waiter(lock, "c"))

    vm.run(main())
    assert log == [("inner released", 2), ("outer released", 5), ("b", 5), ("c", 5)]


def test_releasing_an_rlock_one_does_not_hold_is_a_lock_error_and_the_lock_stays_held(vm):
    async def thief(lock):
        with pytest.raises(cp.LockError, match="held by task 1"):
            lock.release()

    async def main():
        lock = cp.RLock(name="vault")
        with pytest.raises(cp.LockError, match="held by nobody"):
            lock.release()
        await lock.acquire()
        await cp.spawn(thief(lock))
        return lock.owner.name, lock.locked()

    assert vm.run(main()) == ("main", True)
    assert_vm_usable(vm)


def test_try_acquire_of_an_rlock_takes_it_again_for_its_holder_and_refuses_others(vm):
    async def other(lock):
        return lock.try_acquire()

    async def main():
        lock = cp.RLock()
        got = [lock.try_acquire(), lock.try_acquire(), await cp.spawn(other(lock))]
        lock.release()
        got.append(await cp.spawn(other(lock)))  # still held once
        lock.release()
        got.append(await cp.spawn(other(lock)))
        return got

    assert vm.run(main()) == [True, True, False, False, True]


def test_a_deadlock_on_an_rlock_says_who_holds_it_and_how_many_times(vm):
    async def deposit(lock, gate):
        async with lock, lock:
            await gate.wait()

    async def audit(lock):
        await cp.checkpoint()
        await lock.acquire()

    async def main():
        lock, gate = cp.RLock(name="account"), cp.Event(name="gate")
        await cp.par(deposit(lock, gate), audit(lock))

    with pytest.raises(cp.Deadlock) as info:
        vm.run(main())
    words = "to acquire lock 'account' (held by task 2 'deposit', 2 times)"
    assert (3, "audit", words) in info.value.blocked
    assert f"task 3 'audit' waits {words}" in str(info.value)
    first_cancel = next(r.event_id for r in vm.journal if r.kind == "cancel")
    state = vm.journal.state_at(first_cancel - 1)  # time travel words it the same way
    assert state.tasks[3].waiting_on == words
    assert state.locks == {1: 2} and state.lock_states[1].waiters == [3]
    assert state.waits[3].count == 2


def test_state_at_follows_an_rlocks_holder_through_nested_acquires():
    async def main():
        lock = cp.RLock()
        async with lock:
            async with lock:
                await cp.checkpoint()
            await cp.checkpoint()
        await cp.checkpoint()

    vm = cp.VM()
    vm.run(main())
    journal = vm.journal
    holders = [
        journal.state_at(r.event_id).locks[1] for r in journal if r.kind in ("acquire", "release")
    ]
    assert holders == [1, 1, 1, None]  # free only after the second release


def test_an_rlock_cannot_be_the_lock_of_a_condition():
    async def main():
        cp.Condition(cp.RLock())

    with pytest.raises(TypeError, match="not re-entrant"):
        cp.VM().run(main())


def test_rlock_holders_are_explored_in_both_orders():
    async def main():
        lock, order = cp.RLock(), []

        async def grab(name):
            async with lock, lock:
                order.append(name)

        await cp.par(grab("a"), grab("b"))
        return tuple(order)

    report = cp.explore(main)
    assert report.exhaustive and set(report.outcomes) == {("a", "b"), ("b", "a")}


# -- CountdownEvent ----------------------------------------------------------------------


def test_a_countdown_wakes_every_waiter_fifo_when_the_count_reaches_zero(vm):
    woken = []

    async def boss(done, name):
        await done.wait()
        woken.append((name, cp.now()))

    async def worker(done, ticks):
        await cp.sleep(ticks)
        return done.signal()

    async def main():
        done = cp.CountdownEvent(2, name="done")
        results = await cp.par(boss(done, "x"), boss(done, "y"), worker(done, 1), worker(done, 4))
        return results[2:], done.count, done.is_set()

    assert vm.run(main()) == ([False, True], 0, True)
    assert woken == [("x", 4), ("y", 4)]
    assert [data for _, data in records(vm, "signal")] == [
        {"countdown": 1, "n": 1},
        {"countdown": 1, "n": 1},
    ]


def test_add_count_raises_the_count_while_the_countdown_is_not_set(vm):
    async def main():
        done = cp.CountdownEvent(1)
        done.add_count(2)
        counts = [done.count]
        done.signal(2)
        counts.append(done.count)
        done.signal()
        return counts, done.is_set()

    assert vm.run(main()) == ([3, 1], True)
    assert [data for _, data in records(vm, "add_count")] == [{"countdown": 1, "n": 2}]


def test_signalling_a_countdown_below_zero_is_a_value_error_that_changes_nothing(vm):
    async def main():
        done = cp.CountdownEvent(1, name="done")
        with pytest.raises(ValueError, match=r"signal\(2\) would take the count below 0: only 1"):
            done.signal(2)
        return done.count

    assert vm.run(main()) == 1
    assert records(vm, "signal") == []
    assert_vm_usable(vm)


def test_add_count_on_a_set_countdown_is_a_value_error(vm):
    async def main():
        done = cp.CountdownEvent(1)
        done.signal()
        with pytest.raises(ValueError, match="already set"):
            done.add_count()
        return done.count, done.is_set()

    assert vm.run(main()) == (0, True)


@pytest.mark.parametrize("n, error", [(0, ValueError), (-1, ValueError), (1.0, TypeError)])
def test_bad_countdown_units_are_named_errors(vm, n, error):
    async def main():
        done = cp.CountdownEvent(3)
        with pytest.raises(error):
            done.signal(n)
        with pytest.raises(error):
            done.add_count(n)
        return done.count

    assert vm.run(main()) == 3


def test_waiting_on_a_countdown_at_zero_returns_at_once_but_is_a_checkpoint(vm):
    async def other(log):
        log.append("other")

    async def main():
        log = []
        done = cp.CountdownEvent(0)
        cp.spawn(other(log))
        await done.wait()
        log.append("main")
        return log, cp.now()

    assert vm.run(main()) == (["other", "main"], 0)


def test_a_deadlock_on_a_countdown_says_how_many_signals_are_left(vm):
    async def boss(done):
        await done.wait()

    async def worker(done):
        done.signal()

    async def main():
        done = cp.CountdownEvent(3, name="done")
        await cp.par(boss(done), worker(done))

    with pytest.raises(cp.Deadlock) as info:
        vm.run(main())
    assert (2, "boss", "for countdown 'done' (2 left)") in info.value.blocked
    first_cancel = next(r.event_id for r in vm.journal if r.kind == "cancel")
    state = vm.journal.state_at(first_cancel - 1)
    assert state.tasks[2].waiting_on == "for countdown 'done' (2 left)"
    assert state.countdowns[1] == (1, "done", 2, [2])


def test_exploration_sees_a_countdown_signal_race_with_a_read():
    async def main():
        done = cp.CountdownEvent(1)

        async def signaller():
            done.signal()

        async def reader():
            return done.is_set()

        _, seen = await cp.par(signaller(), reader())
        return seen

    report = cp.explore(main)
    assert report.exhaustive and set(report.outcomes) == {True, False}


def test_partial_order_reduction_sees_countdowns_and_rlocks_as_the_objects_they_are():
    from counterpoint._explore import run_prefix

    async def program():
        done, lock = cp.CountdownEvent(2), cp.RLock()

        async def counts():
            done.add_count()
            await cp.checkpoint()
            done.signal(3)
            await cp.checkpoint()
            async with lock, lock:
                await cp.checkpoint()

        async def waits():
            await done.wait()

        await cp.par(counts(), waits())

    touched = [(step[0], step[2]) for step in run_prefix(program, []).footprints]
    assert touched[1:7] == [
        (2, {("countdown", 1)}),  # add_count
        (2, {("countdown", 1)}),  # signal: 0 reached
        (2, {("lock", 1)}),  # acquire
        (2, {("lock", 1)}),  # acquire again
        (2, set()),  # the checkpoint inside
        (2, {("lock", 1), ("task", 2)}),  # release twice, then done
    ]
    assert (3, {("countdown", 1)}) in touched  # the wait


def test_countdown_repr_shows_its_count_and_waiters():
    async def main():
        return repr(cp.CountdownEvent(2, name="done"))

    assert cp.VM().run(main()) == "<CountdownEvent 1 'done' count=2 waiters=0>"


# -- RLock and CountdownEvent journal the same run in any process ------------------------

TEACHING_PROGRAM = """
import counterpoint as cp

async def main():
    account, done = cp.RLock(name="account"), cp.CountdownEvent(3, name="done")
    balance = [0]

    async def deposit(amount):
        async with account:
            async with account:
                seen = balance[0]
                await cp.checkpoint()
                balance[0] = seen + amount
        done.signal()

    async def boss():
        await done.wait()
        return balance[0]

    total, *_ = await cp.par(boss(), deposit(1), deposit(2), deposit(3))
    return total

def digest(seed):
    vm = cp.VM(policy="random", seed=seed)
    vm.run(main())
    return vm.journal.digest()
"""


def _teaching_digests() -> list[str]:
    namespace: dict = {}
    exec(TEACHING_PROGRAM, namespace)
    return [namespace["digest"](seed) for seed in (1, 2, 3)]


def test_rlock_and_countdown_runs_give_the_same_journal_twice_and_in_another_process():
    import subprocess
    import sys

    here = _teaching_digests()
    assert here == _teaching_digests() and len(set(here)) > 1  # (the seeds differ)
    code = TEACHING_PROGRAM + "\nprint(' '.join(digest(seed) for seed in (1, 2, 3)))\n"
    env = {"PYTHONHASHSEED": "17", "PATH": ""}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == here


def test_a_cancelled_countdown_waiter_leaves_the_queue_and_time_travel_agrees(vm):
    async def waiter(done):
        try:
            async with cp.scope(timeout=2):
                await done.wait()
        except TimeoutError:
            return "gave up"

    async def main():
        done = cp.CountdownEvent(1, name="done")
        task = cp.spawn(waiter(done))
        await cp.sleep(3)
        queued = repr(done)
        done.signal()
        return await task, queued

    assert vm.run(main()) == ("gave up", "<CountdownEvent 1 'done' count=1 waiters=0>")
    timeout = next(r.event_id for r in vm.journal if r.kind == "timeout")
    signal = next(r.event_id for r in vm.journal if r.kind == "signal")
    before, after = vm.journal.state_at(timeout - 1), vm.journal.state_at(signal - 1)
    assert before.countdowns[1].waiters == [2] and after.countdowns[1] == (1, "done", 1, [])
    assert vm.journal.state_at(signal).countdowns[1].count == 0
