"""What keeps exploration fast without changing what it finds: a run's objects are freed
as they are dropped (no work left for the cycle collector), and the VM skips set-up the
run does not use.  (Speed itself is measured in benchmarks/explore_throughput.py.)"""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import pytest
from test_explore_run import program as every_footprint

import counterpoint as cp
from benchmarks import explore_throughput
from benchmarks.explore_throughput import PROGRAMS, pipeline
from counterpoint._explore import run_prefix

lost_update = PROGRAMS["lost3"]
lost_update_checked = PROGRAMS["lost3_checked"]  # (raises in 84 of its 90 schedules)


async def stuck():
    """Deadlocks under every schedule, with tasks left blocked on a channel and a lock
    in a scope: what a deadlocked run leaves behind for ``_dispose``."""
    ch = cp.channel()
    lock = cp.Lock()

    async def hold():
        async with lock:
            await ch.recv()

    await cp.par(hold(), hold(), ch.recv())


async def pruned():
    """``cp.require`` prunes 10 of its 16 choices, with tasks left in a scope."""
    a, b = cp.choose(range(4)), cp.choose(range(4))
    async with cp.scope() as scope:
        scope.spawn(cp.checkpoint())
        cp.require(a < b)
    return a, b


class _NoCollector:
    """``with _NoCollector() as left:``: the cycle collector off; ``left()`` collects and
    says how many objects only it could free *that a run made*: Counterpoint's objects,
    and coroutines, frames, tracebacks and exceptions of code in this repository (other
    threads of the process, such as a Dask client's, make garbage of their own)."""

    def __enter__(self):
        gc.collect()
        self.was = gc.isenabled()
        gc.disable()
        return self.left

    def left(self) -> int:
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            gc.collect()
            ours = sum(1 for obj in gc.garbage if _made_by_a_run(obj))
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
        return ours

    def __exit__(self, *exc):
        if self.was:
            gc.enable()


_REPOSITORY = str(Path(__file__).resolve().parent.parent)


def _made_by_a_run(obj) -> bool:
    module = getattr(type(obj), "__module__", "") or ""
    if module.startswith("counterpoint") or isinstance(obj, BaseException):
        return True
    code = getattr(obj, "cr_code", None) or getattr(obj, "f_code", None)
    if code is None and hasattr(obj, "tb_frame"):
        code = obj.tb_frame.f_code
    return code is not None and code.co_filename.startswith(_REPOSITORY)


@pytest.mark.parametrize(
    "main", [lost_update, pipeline, every_footprint, lost_update_checked, stuck]
)
@pytest.mark.parametrize("prefix", [[], [1, 1], [2, 0, 1]])
def test_an_explored_run_leaves_nothing_for_the_cycle_collector(main, prefix):
    run_prefix(main, prefix)  # (first-use caches: not the run's)
    with _NoCollector() as left:
        summary = run_prefix(main, prefix)
        del summary
        assert left() == 0


def test_a_search_leaves_nothing_for_the_cycle_collector():
    with _NoCollector() as left:
        report = cp.explore(pipeline, max_schedules=100_000, progress=False)
        assert report.exhaustive and report.outcomes == {"[0, 2, 4]": report.schedules}
        del report
        assert left() == 0


@pytest.mark.parametrize("main", [lost_update_checked, stuck, pruned])
def test_a_search_that_fails_or_prunes_leaves_nothing_for_the_cycle_collector(main):
    with _NoCollector() as left:
        report = cp.explore(main, max_schedules=100_000, progress=False)
        assert report.exhaustive and (report.failures + report.deadlocks or report.pruned)
        del report
        assert left() == 0


def test_a_finished_run_s_tasks_are_freed_without_the_cycle_collector():
    tasks = []

    async def main():
        async def child(ch):
            async for _ in ch:  # ends blocked on a channel that closes
                pass

        ch = cp.channel()
        async with cp.scope() as scope:  # an inner cancel node of the root
            tasks.append(weakref.ref(cp.current_task()))
            tasks.append(weakref.ref(scope.spawn(child(ch))))
            await cp.sleep(1)
            ch.close()
        return "done"

    with _NoCollector():
        vm = cp.VM()
        assert vm.run(main()) == "done"
        del vm
        assert [ref() for ref in tasks] == [None, None]


def test_a_finished_task_still_reports_its_state_and_cancellation():
    async def main():
        async def child():
            await cp.sleep(5)

        async with cp.scope() as scope:
            task = scope.spawn(child())
            await cp.sleep(1)
            scope.cancel()
        return task

    vm = cp.VM()
    task = vm.run(main())
    assert (task.done(), task.cancelled(), task.info().state) == (True, True, "cancelled")


def test_the_random_policy_and_its_choices_are_still_seeded():
    async def main():
        order = []

        async def one(i):
            await cp.checkpoint()
            order.append(i)

        await cp.par(*[one(i) for i in range(6)])
        return order, cp.choose(range(100))

    runs = [cp.VM(policy="random", seed=seed).run(main()) for seed in (1, 1, 2)]
    assert runs[0] == runs[1] != runs[2]
    assert cp.VM().run(main()) == (list(range(6)), 0)  # fifo: no randomness at all


def test_the_throughput_benchmark_explores_each_program_exhaustively(capsys):
    explore_throughput.main(["--rounds", "1", "--budget", "0", *PROGRAMS])
    lines = capsys.readouterr().out.splitlines()
    sizes = {line.split()[0]: int(line.split()[1]) for line in lines}
    assert sizes == {"lost3": 90, "lost4": 2520, "pipeline": 1304, "lost3_checked": 90}
