"""cp.par: declaration order, earliest-declared failure, cancellation of the other branches."""

from __future__ import annotations

import pytest
from programs import fail_after

import counterpoint as cp


async def work(ticks, value, log=None):
    await cp.sleep(ticks)
    if log is not None:
        log.append(value)
    return value


def test_par_returns_results_in_declaration_order_not_completion_order(vm):
    finished = []

    async def main():
        results = await cp.par(
            work(3, "slow", finished), work(1, "fast", finished), work(2, "mid", finished)
        )
        return results, cp.now()

    assert vm.run(main()) == (["slow", "fast", "mid"], 3)
    assert finished == ["fast", "mid", "slow"]


def test_par_with_no_arguments_returns_an_empty_list(vm):
    async def main():
        return await cp.par(), cp.now()

    assert vm.run(main()) == ([], 0)


def test_par_runs_branches_concurrently_in_virtual_time(vm):
    async def main():
        await cp.par(*(work(5, i) for i in range(10)))
        return cp.now()

    assert vm.run(main()) == 5


def test_par_branches_are_tasks_named_after_their_coroutine(vm):
    async def branch():
        return cp.current_task().id, cp.current_task().name

    async def main():
        return await cp.par(branch(), branch())

    assert vm.run(main()) == [(2, "branch"), (3, "branch")]


def test_a_failing_branch_cancels_the_others(vm):
    cleaned = []

    async def long(name):
        try:
            await cp.sleep(100)
        finally:
            cleaned.append((name, cp.now()))

    async def main():
        with pytest.raises(ValueError, match="boom"):
            await cp.par(long("a"), fail_after(1, ValueError("boom")), long("c"))
        return cp.now()

    assert vm.run(main()) == 1
    assert cleaned == [("a", 1), ("c", 1)]
    cancels = [r.task for r in vm.journal if r.kind == "cancel"]
    assert cancels == [2, 4]


def test_par_raises_the_branch_failure_itself_not_an_exception_group(vm):
    error = KeyError("k")

    async def main():
        try:
            await cp.par(work(5, 1), fail_after(1, error))
        except BaseException as caught:
            return caught

    assert vm.run(main()) is error


def test_par_raises_the_earliest_declared_failure_even_if_it_failed_last(vm):
    async def fails_while_cancelled(error):
        try:
            await cp.sleep(100)
        except cp.Cancelled:
            raise error from None

    async def main():
        with pytest.raises(ValueError, match="first declared"):
            await cp.par(
                fails_while_cancelled(ValueError("first declared")),
                fail_after(1, KeyError("failed first")),
            )
        return cp.now()

    assert vm.run(main()) == 1
    fails = [(r.task, r.data["error"]) for r in vm.journal if r.kind == "fail"]
    assert fails == [(3, "KeyError"), (2, "ValueError")]


def test_a_branch_that_raises_in_its_finally_while_cancelled_counts_as_failed(vm):
    async def cleanup_fails():
        try:
            await cp.sleep(100)
        finally:
            raise RuntimeError("cleanup failed")

    async def main():
        with pytest.raises(RuntimeError, match="cleanup failed"):
            await cp.par(cleanup_fails(), fail_after(2, KeyError("trigger")))

    vm.run(main())


def test_a_branch_that_merely_ends_cancelled_does_not_count(vm):
    async def main():
        with pytest.raises(KeyError, match="the only failure"):
            await cp.par(work(100, "cancelled"), fail_after(1, KeyError("the only failure")))

    vm.run(main())
    assert [r.task for r in vm.journal if r.kind == "cancelled"] == [2]


def test_of_two_branches_failing_at_the_same_tick_the_earlier_declared_wins(vm):
    async def fails_after_a_checkpoint():
        await cp.sleep(0)  # completes before the other branch's failure cancels us
        raise KeyError("declared first")

    async def fails_at_once():
        raise ValueError("declared second")

    async def main():
        with pytest.raises(KeyError, match="declared first"):
            await cp.par(fails_after_a_checkpoint(), fails_at_once())
        return cp.now()

    assert vm.run(main()) == 0
    assert [r.task for r in vm.journal if r.kind == "fail"] == [3, 2]


def test_par_is_a_cancel_point_cancelling_its_awaiter_cancels_the_branches(vm):
    cleaned = []

    async def long(name):
        try:
            await cp.sleep(100)
        finally:
            cleaned.append((name, cp.now()))

    async def runner():
        await cp.par(long("a"), long("b"))
        return "not reached"

    async def main():
        task = cp.spawn(runner())
        await cp.sleep(3)
        task.cancel()
        with pytest.raises(cp.Cancelled):
            await task
        return cp.now(), task.cancelled()

    assert vm.run(main()) == (3, True)
    assert cleaned == [("a", 3), ("b", 3)]
    cancels = [r.task for r in vm.journal if r.kind == "cancel"]
    assert cancels == [2, 3, 4]


def test_par_in_a_cancelled_task_raises_cancelled_without_starting_branches(vm):
    started = []

    async def branch():
        started.append("branch")

    async def main():
        cp.current_task().cancel()
        with pytest.raises(cp.Cancelled):
            await cp.par(branch(), branch())
        return len(vm.tasks())

    assert vm.run(main()) == 1
    assert started == []
    assert not [r for r in vm.journal if r.kind == "spawn" and r.task == 1]


def test_par_accepts_vm_operations_as_branches(vm):
    async def producer(a, b):
        await b.send("to b")
        await a.send("to a")

    async def main():
        a, b = cp.channel(), cp.channel()
        cp.spawn(producer(a, b))
        results = await cp.par(a.recv(), b.recv(), cp.sleep(4))
        return results, cp.now()

    assert vm.run(main()) == (["to a", "to b", None], 4)


def test_par_mixes_operations_and_coroutines(vm):
    async def main():
        ch = cp.channel(1)
        ch.try_send(7)
        return await cp.par(work(2, "w"), ch.recv())

    assert vm.run(main()) == ["w", 7]


def test_par_refuses_a_non_coroutine_with_a_type_error(vm):
    async def branch():
        return 1

    async def main():
        with pytest.raises(TypeError, match="did you forget to call it"):
            await cp.par(branch(), branch)
        return "ok"

    assert vm.run(main()) == "ok"


def test_par_results_do_not_depend_on_the_random_policy():
    async def main():
        return await cp.par(*(work(i % 3, i) for i in range(6)))

    for seed in range(5):
        assert cp.VM(seed=seed, policy="random").run(main()) == list(range(6))


# -- the branches' names ------------------------------------------------------------------


async def transfer(gate):
    await gate.wait()


def test_par_branches_are_named_after_their_coroutines_functions(vm):
    async def main():
        gate = cp.Event(name="gate")
        await cp.par(transfer(gate), work(1, "x"))

    with pytest.raises(cp.Deadlock) as info:
        vm.run(main())
    assert [(task, name) for task, name, _ in info.value.blocked] == [(1, "main"), (2, "transfer")]
    assert info.value.finished == [(3, "work", "done")]
    assert "task 2 'transfer' waits for event 'gate'" in str(info.value)
    assert [r.data["name"] for r in vm.journal.filter(kind="spawn")] == ["main", "transfer", "work"]


def test_par_names_name_each_branch_and_none_keeps_the_functions_name(vm):
    async def main():
        gate = cp.Event()
        await cp.par(transfer(gate), transfer(gate), work(0, 1), names=["alice", "bob", None])

    with pytest.raises(cp.Deadlock) as info:
        vm.run(main())
    assert [name for _, name, _ in info.value.blocked] == ["main", "alice", "bob"]
    assert info.value.finished == [(4, "work", "done")]
    spawned = [r.data["name"] for r in vm.journal.filter(kind="spawn")]
    assert spawned == ["main", "alice", "bob", "work"]


@pytest.mark.parametrize(
    "names, error, says",
    [
        (["a"], ValueError, "1 names for 2 coroutines"),
        (["a", "b", "c"], ValueError, "3 names for 2 coroutines"),
        ("ab", TypeError, "got str"),
        (["a", 2], TypeError, "holds a int"),
    ],
)
def test_bad_par_names_are_named_errors_and_start_no_branch(vm, names, error, says):
    async def main():
        with pytest.raises(error, match=says):
            await cp.par(work(1, "a"), work(1, "b"), names=names)
        return await cp.par(work(1, "a"), work(1, "b"), names=("x", "y"))

    assert vm.run(main()) == ["a", "b"]
    assert [r.data["name"] for r in vm.journal.filter(kind="spawn")] == ["main", "x", "y"]
