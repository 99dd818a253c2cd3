"""Virtual time: integer ticks owned by the VM, advancing only when nothing is ready."""

from __future__ import annotations

import pytest
from programs import sleeps

import counterpoint as cp


def test_virtual_time_starts_at_zero(vm):
    async def main():
        return cp.now()

    assert vm.now == 0
    assert vm.run(main()) == 0


def test_sleep_advances_virtual_time_by_exactly_the_ticks_asked(vm):
    async def main():
        seen = []
        for ticks in (3, 1, 10):
            await cp.sleep(ticks)
            seen.append(cp.now())
        return seen

    assert vm.run(main()) == [3, 4, 14]
    assert vm.now == 14


def test_cp_now_and_vm_now_agree(vm):
    async def main():
        await cp.sleep(7)
        return cp.now(), vm.now

    assert vm.run(main()) == (7, 7)


def test_virtual_time_advances_only_when_no_task_is_ready(vm):
    log = []

    async def sleeper():
        await cp.sleep(1)
        log.append(("sleeper woke", cp.now()))

    async def busy():
        for i in range(20):
            log.append(("busy", i, cp.now()))
            await cp.checkpoint()

    async def main():
        a = cp.spawn(sleeper())
        b = cp.spawn(busy())
        await a
        await b

    vm.run(main())
    assert log[:20] == [("busy", i, 0) for i in range(20)]
    assert log[20] == ("sleeper woke", 1)


def test_time_jumps_straight_to_the_earliest_timer(vm):
    async def main():
        a = cp.spawn(sleeps(1000))
        b = cp.spawn(sleeps(250))
        await b
        at_b = cp.now()
        await a
        return at_b, cp.now()

    assert vm.run(main()) == (250, 1000)
    ticks = sorted({r.tick for r in vm.journal})
    assert ticks == [0, 250, 1000]


def test_timers_due_at_the_same_tick_fire_in_the_order_they_were_set(vm):
    woke = []

    async def sleeper(name, first, second):
        await cp.sleep(first)  # staggers the moment the second timer is set
        await cp.sleep(second)
        woke.append((name, cp.now()))

    async def main():
        tasks = [
            cp.spawn(sleeper("a", 3, 7)),  # sets its tick-10 timer at tick 3
            cp.spawn(sleeper("b", 1, 9)),  # ... at tick 1
            cp.spawn(sleeper("c", 2, 8)),  # ... at tick 2
        ]
        for task in tasks:
            await task

    vm.run(main())
    assert woke == [("b", 10), ("c", 10), ("a", 10)]
    timer_records = [r.task for r in vm.journal if r.kind == "timer" and r.tick == 10]
    assert timer_records == [3, 4, 2]


def test_timers_set_at_one_tick_for_the_same_deadline_fire_in_set_order_not_id_order(vm):
    woke = []

    async def sleeper(name, delay_steps):
        for _ in range(delay_steps):
            await cp.checkpoint()
        await cp.sleep(5)
        woke.append(name)

    async def main():
        tasks = [
            cp.spawn(sleeper("x", 2)),
            cp.spawn(sleeper("y", 0)),
            cp.spawn(sleeper("z", 1)),
        ]
        for task in tasks:
            await task

    vm.run(main())
    assert woke == ["y", "z", "x"]


def test_a_cancelled_timer_does_not_fire_or_move_time(vm):
    async def main():
        long = cp.spawn(sleeps(100))
        await cp.checkpoint()
        long.cancel()
        with pytest.raises(cp.Cancelled):
            await long
        await cp.sleep(1)
        return cp.now()

    assert vm.run(main()) == 1
    assert not [r for r in vm.journal if r.kind == "timer" and r.tick == 100]
    assert vm.step() == 0
    assert vm.now == 1


def test_sleep_zero_is_a_checkpoint_that_does_not_advance_time(vm):
    log = []

    async def other():
        log.append(("other", cp.now()))

    async def main():
        sleeper = cp.spawn(sleeps(5))  # a pending timer must not be reached
        cp.spawn(other())
        await cp.sleep(0)
        log.append(("main", cp.now()))
        await sleeper

    vm.run(main())
    assert log == [("other", 0), ("main", 0)]


def test_sleep_zero_is_journaled_as_a_zero_tick_sleep(vm):
    async def main():
        await cp.sleep(0)

    vm.run(main())
    sleeps_ = [r.data for r in vm.journal if r.kind == "sleep"]
    assert sleeps_ == [{"ticks": 0, "until": 0}]
    assert not [r for r in vm.journal if r.kind == "timer"]


def test_records_carry_the_virtual_tick_they_happened_at(vm):
    async def main():
        await cp.sleep(2)
        await cp.sleep(3)

    vm.run(main())
    assert [(r.tick, r.kind) for r in vm.journal if r.kind in ("sleep", "timer", "done")] == [
        (0, "sleep"),
        (2, "timer"),
        (2, "sleep"),
        (5, "timer"),
        (5, "done"),
    ]


def test_sleep_with_negative_ticks_is_a_value_error(vm):
    async def main():
        with pytest.raises(ValueError, match="non-negative"):
            await cp.sleep(-1)
        return cp.now()

    assert vm.run(main()) == 0


@pytest.mark.parametrize("ticks", [1.5, "3", True, None])
def test_sleep_with_a_non_int_is_a_type_error(vm, ticks):
    async def main():
        with pytest.raises(TypeError, match="int"):
            await cp.sleep(ticks)
        return "ok"

    assert vm.run(main()) == "ok"


def test_now_outside_a_task_raises_not_in_task_error():
    with pytest.raises(cp.NotInTaskError):
        cp.now()


# -- vm.step(n) ---------------------------------------------------------------------------------


def test_step_returns_how_many_resumptions_ran(vm):
    async def spinner(n):
        for _ in range(n):
            await cp.checkpoint()

    vm.spawn(spinner(10))  # 11 resumptions in all
    assert vm.step(4) == 4
    assert vm.step(4) == 4
    assert vm.step(4) == 3
    assert vm.step(4) == 0


def test_step_with_nothing_to_run_returns_zero(vm):
    assert vm.step() == 0
    assert vm.step(5) == 0
    assert vm.now == 0


def test_step_zero_runs_nothing(vm):
    log = []

    async def worker():
        log.append("ran")

    vm.spawn(worker())
    assert vm.step(0) == 0
    assert log == []
    assert vm.step() == 1
    assert log == ["ran"]


def test_step_advances_time_first_when_nothing_is_ready(vm):
    log = []

    async def worker():
        await cp.sleep(5)
        log.append(cp.now())
        await cp.sleep(2)
        log.append(cp.now())

    task = vm.spawn(worker())
    assert vm.step() == 1  # runs up to the first sleep
    assert (vm.now, log) == (0, [])
    assert vm.step() == 1  # advances to tick 5, then resumes
    assert (vm.now, log) == (5, [5])
    assert vm.step() == 1
    assert (vm.now, log) == (7, [5, 7])
    assert task.done()
    assert vm.step() == 0
    assert vm.now == 7


def test_step_does_not_advance_time_while_a_task_is_ready(vm):
    async def sleeper():
        await cp.sleep(3)

    async def spinner():
        for _ in range(5):
            await cp.checkpoint()

    vm.spawn(sleeper())
    vm.spawn(spinner())
    assert vm.step(6) == 6
    assert vm.now == 0
    assert [t.state for t in vm.tasks()] == ["sleeping", "ready"]


def test_step_may_advance_time_several_times_within_one_call(vm):
    async def worker():
        for _ in range(3):
            await cp.sleep(2)

    task = vm.spawn(worker())
    assert vm.step(10) == 4
    assert vm.now == 6
    assert task.done()


def test_step_needs_a_non_negative_int(vm):
    with pytest.raises(ValueError):
        vm.step(-1)
