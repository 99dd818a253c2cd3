"""Memory stays flat over repeated runs (issue 9, defect 9).

The rules:

* a VM keeps every *pending* worker, and the outcomes of its ``KEPT_OUTCOMES``
  (10,000) most recently settled workers; older outcomes are released in settle
  order (deterministic: settle order is virtual-time order).  A released handle
  polls as -3 (unknown) and ``result``/``error`` of it raise ``cp.InvalidStateError``
  saying the outcome was released and why;
* a timer that is cancelled before its deadline (a scope that exits before its
  timeout, a select that completes, a worker that is cancelled) does not keep
  memory until its deadline;
* so repeated ``vm.run`` of the same program retains nothing per run (measured with
  tracemalloc: bytes retained per run, not time).
"""

from __future__ import annotations

import pytest

import counterpoint as cp
from counterpoint import _workers


@cp.worker.task
def tm_echo(payload):
    return payload


async def start_and_wait():
    handle = cp.worker.start("tm_echo", 1)
    return await cp.worker.wait(handle)


async def scope_exited_early():
    async with cp.scope(timeout=10**6):
        await cp.sleep(1)  # time moves on: every run's timeout has its own deadline


async def child():
    return 1


async def spawn_join():
    return await cp.spawn(child())


# -- workers: the retention rule ---------------------------------------------------------------


@pytest.fixture
def keep_three(monkeypatch):
    monkeypatch.setattr(_workers, "KEPT_OUTCOMES", 3, raising=False)


def test_a_vm_keeps_the_outcomes_of_its_most_recently_settled_workers_only(keep_three):
    async def main():
        costs = [5, 1, 4, 2, 3]  # settle order: handles 2, 4, 5, 3, 1
        handles = [cp.worker.start("tm_echo", f"job {h}", cost=c) for h, c in enumerate(costs, 1)]
        await cp.sleep(5)  # all settled
        polls = [cp.worker.poll(h) for h in handles]
        waits = [await cp.worker.wait(h) for h in handles]
        return polls, waits, [cp.worker.result(h) for h in (5, 3, 1)]

    polls, waits, kept = cp.VM().run(main())
    assert polls == waits == [1, -3, 1, -3, 1]  # 2 and 4 settled first: released
    assert kept == ["job 5", "job 3", "job 1"]


def test_result_and_error_of_a_released_outcome_say_it_was_released_and_why(keep_three):
    async def main():
        handles = [cp.worker.start("tm_echo", n) for n in range(4)]
        for handle in handles:
            await cp.worker.wait(handle)
        messages = []
        for read in (cp.worker.result, cp.worker.error):
            with pytest.raises(cp.InvalidStateError) as caught:
                read(handles[0])
            messages.append(str(caught.value))
        return messages, cp.worker.cancel(handles[0]), cp.worker.error(99)

    messages, cancelled, unknown_error = cp.VM().run(main())
    for message in messages:
        assert message.startswith("the outcome of worker 1 was released")
        assert "3 most recently settled workers" in message
        assert "read it soon after" in message
    assert cancelled is False
    assert unknown_error == ""  # a handle this VM never gave out is still just unknown


def test_pending_workers_are_never_released_and_cancelled_ones_count_as_settled(keep_three):
    async def main():
        slow = cp.worker.start("tm_echo", "slow", cost=100)
        dropped = cp.worker.start("tm_echo", "dropped", cost=50)
        assert cp.worker.cancel(dropped)
        for n in range(10):  # many settle while `slow` is pending
            await cp.worker.wait(cp.worker.start("tm_echo", n))
        pending = cp.worker.poll(slow)
        return pending, cp.worker.poll(dropped), await cp.worker.wait(slow), cp.worker.result(slow)

    assert cp.VM().run(main()) == (0, -3, 1, "slow")


def test_the_default_keeps_the_10000_most_recent_outcomes():
    assert _workers.KEPT_OUTCOMES == 10_000
    vm = cp.VM(journal=False)
    for _ in range(10_003):
        vm.run(start_and_wait())

    async def polls():
        return [cp.worker.poll(h) for h in (1, 2, 3, 4, 10_003)]

    assert vm.run(polls()) == [-3, -3, -3, 1, 1]


def test_the_journal_keeps_every_worker_even_when_the_vm_released_its_outcome(keep_three):
    vm = cp.VM()
    for _ in range(5):
        vm.run(start_and_wait())
    state = vm.journal.state_at(len(vm.journal))
    assert sorted(state.workers) == [1, 2, 3, 4, 5]
    assert all(worker.status == 1 for worker in state.workers.values())


# -- timers ------------------------------------------------------------------------------------


def test_live_timers_fire_at_their_tick_among_many_cancelled_ones():
    async def sleeper(ticks, woke):
        await cp.sleep(ticks)
        woke.append((ticks, cp.now()))

    async def main():
        woke = []
        async with cp.scope() as s:
            for ticks in (3000, 1500, 4500):
                s.spawn(sleeper(ticks, woke))
            for _ in range(4000):  # each opens a timer far away, then exits before it
                async with cp.scope(timeout=10**6):
                    await cp.sleep(1)
        return woke, cp.now()

    assert cp.VM().run(main()) == ([(1500, 1500), (3000, 3000), (4500, 4500)], 4500)


def test_every_timeout_and_sleep_fires_at_its_tick_while_emptied_timers_are_swept():
    # a scope's timeout and a sleep inside it, 300 times: the first to fire ends the
    # scope (at the same tick: the timeout, set first); the other timer is cancelled
    async def main():
        ticks = []
        for i in range(300):
            try:
                async with cp.scope(timeout=5 + i % 7):
                    await cp.sleep(3 + i % 5)
            except TimeoutError:
                pass
            ticks.append(cp.now())
        return ticks

    expected, now = [], 0
    for i in range(300):
        now += min(3 + i % 5, 5 + i % 7)
        expected.append(now)
    assert cp.VM().run(main()) == expected


# -- flat memory -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("program", "warm_up"),
    [
        pytest.param(start_and_wait, 11_000, id="worker start+wait"),  # past the 10,000 kept
        pytest.param(scope_exited_early, 1000, id="scope exited before its timeout"),
        pytest.param(spawn_join, 1000, id="spawn+join"),
    ],
)
def test_repeated_runs_retain_no_memory(program, warm_up):
    from benchmarks.memory import traced_per_run  # (what the benchmark measures, shorter)

    per_run = traced_per_run(program, runs=5000, warm_up=warm_up)
    assert per_run < 8, f"{per_run:.1f} bytes retained per run"


def test_the_memory_benchmark_prints_the_slope_of_each_program(capsys):
    from benchmarks import memory

    assert memory.main(["--quick"]) == 0
    printed = capsys.readouterr().out
    for name in memory.PROGRAMS:
        assert f"| {name} |" in printed
    assert "bytes/run" in printed
