"""Abandoned VMs and their coroutines are finalized without touching live VMs."""

from __future__ import annotations

import gc
import warnings

import counterpoint as cp

FINALIZED_OUTSIDE: list[str] = []


def abandon_a_vm_with_blocked_tasks() -> None:
    """Leave a VM whose tasks hold locks, sit in scopes and clean up in `finally`."""

    async def hold(first: cp.Lock, second: cp.Lock):
        try:
            async with first:
                await cp.sleep(1)
                async with cp.scope() as s:
                    s.spawn(cp.sleep(100))
                    async with second:
                        pass
        finally:
            try:  # when the garbage collector closes this coroutine ...
                cp.spawn(cp.sleep(1), name="stray")
            except cp.NotInTaskError:  # ... it is not running inside any VM task
                FINALIZED_OUTSIDE.append("hold")

    async def main():
        a, b = cp.Lock(), cp.Lock()
        await cp.par(hold(a, b), hold(b, a))

    vm = cp.VM()
    try:
        vm.run(main())
    except cp.Deadlock:
        pass


def test_collecting_an_abandoned_vm_during_another_vms_step_leaves_that_vm_alone():
    gc.disable()
    try:
        for _ in range(3):
            abandon_a_vm_with_blocked_tasks()

        async def main():
            lock = cp.Lock()
            async with lock:
                gc.collect()  # finalizes the abandoned VMs' coroutines right here
                await cp.sleep(1)
            return cp.now()

        reference = cp.VM()
        reference.run(main())
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            live = cp.VM()
            assert live.run(main()) == 1
        assert live.journal.digest() == reference.journal.digest()
        assert "stray" not in [r.data.get("name") for r in live.journal if r.kind == "spawn"]
        assert len(FINALIZED_OUTSIDE) == 6  # 3 abandoned VMs x 2 tasks
    finally:
        gc.enable()


def test_the_running_task_is_restored_after_a_collection_inside_a_step():
    async def main():
        before = cp.current_task()
        gc.collect()
        return cp.current_task() is before

    assert cp.VM().run(main()) is True
