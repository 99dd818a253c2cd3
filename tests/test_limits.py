"""Limits: max_steps stops livelocks, Deadlock explains who waits on what, and
the VM stays usable after either (docs/design.md, "Errors and misuse" and
"Cancellation" rule 7)."""

from __future__ import annotations

import pytest
from programs import assert_vm_usable, spin

import counterpoint as cp


async def pipeline():
    """A small program with a fixed number of steps."""
    ch = cp.channel()

    async def producer():
        for i in range(3):
            await ch.send(i)
            await cp.sleep(1)
        ch.close()

    cp.spawn(producer(), name="producer")
    return [value async for value in ch]


def steps_needed(program) -> int:
    """How many resumptions ``program`` needs, measured from a first run's journal."""
    vm = cp.VM()
    vm.run(program())
    return len(vm.journal.filter(kind="step"))


# ---------------------------------------------------------------------------
# max_steps


def test_a_livelock_raises_step_limit_exceeded_with_advice():
    vm = cp.VM(max_steps=50)

    async def main():
        await spin()

    with pytest.raises(cp.StepLimitExceeded) as info:
        vm.run(main())
    message = str(info.value)
    assert "more than 50 steps" in message
    assert "an unfair schedule or a livelock?" in message
    assert "max_steps" in message  # how to allow more
    assert isinstance(info.value, cp.CounterpointError)


def test_step_limit_message_names_the_ready_tasks():
    vm = cp.VM(max_steps=20)

    async def main():
        async with cp.scope() as s:
            s.spawn(spin(), name="spinner")

    with pytest.raises(cp.StepLimitExceeded, match="'spinner'"):
        vm.run(main())


def test_step_limit_stops_after_exactly_max_steps_resumptions():
    vm = cp.VM(max_steps=25)

    async def main():
        await spin()

    with pytest.raises(cp.StepLimitExceeded):
        vm.run(main())
    assert len(vm.journal.filter(kind="step")) == 25


def test_max_steps_allows_a_program_exactly_the_steps_it_needs():
    k = steps_needed(pipeline)
    assert k > 5
    assert cp.VM(max_steps=k).run(pipeline()) == [0, 1, 2]


def test_max_steps_one_less_than_needed_raises():
    k = steps_needed(pipeline)
    with pytest.raises(cp.StepLimitExceeded, match=f"more than {k - 1} steps"):
        cp.VM(max_steps=k - 1).run(pipeline())


def test_max_steps_counts_within_one_run_not_across_runs():
    k = steps_needed(pipeline)
    vm = cp.VM(max_steps=k)
    for _ in range(3):
        assert vm.run(pipeline()) == [0, 1, 2]
    assert len(vm.journal.filter(kind="step")) == 3 * k


def test_vm_is_usable_after_a_livelocked_root_and_the_root_gets_cancelled():
    vm = cp.VM(max_steps=30)
    cleaned_up = []

    async def main():
        try:
            await spin()
        finally:
            cleaned_up.append("main")

    with pytest.raises(cp.StepLimitExceeded):
        vm.run(main())
    cancel = vm.journal.filter(task=1, kind="cancel")
    assert [record.data["reason"] for record in cancel] == ["vm.run() exceeded max_steps=30"]
    assert_vm_usable(vm)
    assert cleaned_up == ["main"]
    assert vm.journal.filter(task=1, kind="cancelled") != []
    assert vm.tasks() == []


def test_vm_is_usable_after_a_livelocked_scope_child_and_the_child_gets_cancelled():
    vm = cp.VM(max_steps=30)

    async def main():
        async with cp.scope() as s:
            s.spawn(spin(), name="spinner")

    with pytest.raises(cp.StepLimitExceeded):
        vm.run(main())
    cancels = vm.journal.filter(kind="cancel")
    assert [(r.task, r.data["reason"]) for r in cancels] == [
        (1, "vm.run() exceeded max_steps=30"),
        (2, "vm.run() exceeded max_steps=30"),
    ]
    assert_vm_usable(vm)
    assert vm.tasks() == []
    # leaving a scope is not a cancel point, so only the spinner ends cancelled
    assert [r.task for r in vm.journal.filter(kind="cancelled")] == [2]


def test_an_abandoned_run_cancels_the_detached_tasks_it_started():
    """Design (Cancellation 7): a failed run abandons every task it started."""
    vm = cp.VM(max_steps=30)
    handles = []

    async def main():
        handles.append(cp.spawn(spin(), name="spinner"))
        await cp.sleep(1)

    with pytest.raises(cp.StepLimitExceeded):
        vm.run(main())
    # both are cancelled now; they run their cleanup in the next run
    assert [(t.name, t.state) for t in vm.tasks()] == [("main", "ready"), ("spinner", "ready")]
    assert [r.task for r in vm.journal.filter(kind="cancel")] == [1, 2]
    assert_vm_usable(vm)
    assert handles[0].cancelled()


def test_detached_tasks_of_an_earlier_successful_run_survive_an_abandoned_run():
    vm = cp.VM(max_steps=60)
    inbox: list = []

    async def listener(ch):
        inbox.append(await ch.recv())

    async def start_listener():
        ch = cp.channel(1)
        cp.spawn(listener(ch), name="listener")
        return ch

    ch = vm.run(start_listener())

    async def livelock():
        await spin()

    with pytest.raises(cp.StepLimitExceeded):
        vm.run(livelock())

    async def feed():
        await ch.send("still listening")
        await cp.sleep(1)

    vm.run(feed())
    assert inbox == ["still listening"]


# ---------------------------------------------------------------------------
# Deadlock


def _named_waiters_program():
    async def receiver(ch):
        await ch.recv()

    async def main():
        first = cp.channel()
        second = cp.channel()
        cp.spawn(receiver(first), name="philosopher-0")
        cp.spawn(receiver(second), name="philosopher-1")
        await second.recv()

    return main()


def test_root_waiting_on_a_silent_channel_is_a_deadlock(vm):
    async def main():
        ch = cp.channel()
        await ch.recv()

    with pytest.raises(cp.Deadlock) as info:
        vm.run(main())
    message = str(info.value)
    assert "deadlock at tick 0" in message
    assert "task 1 'main' waits to receive on channel 1" in message
    assert isinstance(info.value, cp.CounterpointError)
    assert_vm_usable(vm)


def test_deadlock_message_lists_every_blocked_task_id_name_and_wait(vm):
    with pytest.raises(cp.Deadlock) as info:
        vm.run(_named_waiters_program())
    lines = str(info.value).splitlines()
    assert "  task 1 'main' waits to receive on channel 2" in lines
    assert "  task 2 'philosopher-0' waits to receive on channel 1" in lines
    assert "  task 3 'philosopher-1' waits to receive on channel 2" in lines
    assert len(lines) == 4  # the headline and one line per blocked task


def test_deadlock_blocked_lists_id_name_and_wait_in_ascending_id(vm):
    with pytest.raises(cp.Deadlock) as info:
        vm.run(_named_waiters_program())
    assert info.value.blocked == [
        (1, "main", "to receive on channel 2"),
        (2, "philosopher-0", "to receive on channel 1"),
        (3, "philosopher-1", "to receive on channel 2"),
    ]


def test_deadlock_message_says_what_a_waiting_root_waits_on(vm):
    async def stuck():
        await cp.channel().recv()

    async def main():
        await cp.spawn(stuck(), name="stuck")

    with pytest.raises(cp.Deadlock) as info:
        vm.run(main())
    assert "task 1 'main' waits for task 2 to finish" in str(info.value)
    assert "task 2 'stuck' waits to receive on channel 1" in str(info.value)


def _dining(vm: cp.VM):
    async def philosopher(left, right):
        async with left:
            await cp.sleep(1)
            async with right:
                return "ate"

    async def main():
        forks = [cp.Lock() for _ in range(3)]
        tasks = [
            cp.spawn(philosopher(forks[i], forks[(i + 1) % 3]), name=f"philosopher-{i}")
            for i in range(3)
        ]
        return [await task for task in tasks]

    with pytest.raises(cp.Deadlock) as info:
        vm.run(main())
    return info.value


def test_dining_philosophers_deadlock_and_the_message_names_all_three(vm):
    error = _dining(vm)
    message = str(error)
    assert "deadlock at tick 1" in message
    assert "task 2 'philosopher-0' waits to acquire lock 2 (held by task 3 'philosopher-1')" in (
        message
    )
    assert "task 3 'philosopher-1' waits to acquire lock 3 (held by task 4 'philosopher-2')" in (
        message
    )
    assert "task 4 'philosopher-2' waits to acquire lock 1 (held by task 2 'philosopher-0')" in (
        message
    )
    assert [name for _, name, _ in error.blocked] == [
        "main",
        "philosopher-0",
        "philosopher-1",
        "philosopher-2",
    ]


def test_dining_philosophers_in_par_deadlock_too(vm):
    async def philosopher(left, right):
        async with left:
            await cp.sleep(1)
            async with right:
                return "ate"

    async def main():
        forks = [cp.Lock() for _ in range(3)]
        return await cp.par(*(philosopher(forks[i], forks[(i + 1) % 3]) for i in range(3)))

    with pytest.raises(cp.Deadlock) as info:
        vm.run(main())
    assert "task 1 'main' waits for its cp.par() branches (tasks 2, 3, 4) to finish" in str(
        info.value
    )
    assert sum("waits to acquire lock" in line for line in str(info.value).splitlines()) == 3
    assert_vm_usable(vm)


def test_vm_is_usable_after_a_deadlock(vm):
    _dining(vm)
    assert_vm_usable(vm)


def test_a_deadlocked_root_is_cancelled_and_cleans_up_at_the_next_run(vm):
    cleaned_up = []

    async def main():
        try:
            await cp.channel().recv()
        finally:
            cleaned_up.append("main")

    with pytest.raises(cp.Deadlock):
        vm.run(main())
    reasons = [r.data["reason"] for r in vm.journal.filter(task=1, kind="cancel")]
    assert reasons == ["vm.run() found a deadlock"]
    assert cleaned_up == []
    assert_vm_usable(vm)
    assert cleaned_up == ["main"]


def test_only_sleeping_tasks_is_not_a_deadlock_time_advances(vm):
    async def sleeper(ticks):
        await cp.sleep(ticks)
        return cp.now()

    async def main():
        tasks = [cp.spawn(sleeper(t)) for t in (5, 2, 9)]
        return [await task for task in tasks]

    assert vm.run(main()) == [5, 2, 9]
    assert vm.now == 9


def test_a_root_that_sleeps_is_not_deadlocked_by_a_forever_blocked_task(vm):
    async def main():
        ch = cp.channel()
        cp.spawn(ch.recv(), name="forever")
        await cp.sleep(4)
        return cp.now()

    assert vm.run(main()) == 4
    assert [(t.name, t.state) for t in vm.tasks()] == [("forever", "blocked")]


def test_deadlock_is_declared_only_after_time_runs_out_of_timers(vm):
    async def sleeper():
        await cp.sleep(7)

    async def main():
        cp.spawn(sleeper())
        await cp.channel().recv()

    with pytest.raises(cp.Deadlock, match="deadlock at tick 7"):
        vm.run(main())
    assert vm.now == 7
