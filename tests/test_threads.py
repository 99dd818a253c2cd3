"""Threads: separate VMs on separate threads; one VM driven by one thread at a time; workers
are isolated from the VM whatever the backend (docs/design.md, "Threads")."""

from __future__ import annotations

import threading
import time

import pytest

import counterpoint as cp


def busy_program(rounds: int = 300):
    """Spawns, channels, locks and timers: enough steps for the GIL to switch threads."""

    async def main():
        ch, lock, log = cp.channel(2), cp.Lock(), []

        async def producer(name):
            for i in range(rounds):
                await ch.send((name, i))
                if i % 7 == 0:
                    await cp.sleep(1)

        async def consumer():
            total = 0
            for _ in range(2 * rounds):
                name, i = await ch.recv()
                async with lock:
                    total += i
                    await cp.checkpoint()
                log.append(name)
            return total

        results = await cp.par(producer("a"), producer("b"), consumer())
        return results[2], len(log), cp.now(), cp.current_task().id

    return main


def run_in_threads(count: int, target) -> list:
    """Run ``target(index)`` on ``count`` threads started together; return the results
    (an exception counts as the result of its thread)."""
    barrier = threading.Barrier(count)
    results: list = [None] * count

    def body(index: int) -> None:
        barrier.wait()
        try:
            results[index] = target(index)
        except BaseException as error:
            results[index] = error

    threads = [threading.Thread(target=body, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
        assert not thread.is_alive(), "a thread hung"
    return results


# -- separate VMs, separate threads -------------------------------------------------------------


def test_separate_vms_on_separate_threads_run_as_if_alone():
    program = busy_program()
    alone = cp.VM(seed=3, policy="random")
    expected = (alone.run(program()), alone.journal.digest())

    def one_vm(_index: int):
        vm = cp.VM(seed=3, policy="random")
        return vm.run(program()), vm.journal.digest()

    for _trial in range(6):
        assert run_in_threads(4, one_vm) == [expected] * 4


def test_separate_vms_on_separate_threads_step_as_if_alone():
    program = busy_program(300)

    def stepped(_index: int):
        vm = cp.VM()
        vm.spawn(program())
        while vm.step(5):
            pass
        return vm.journal.digest()

    alone = stepped(0)
    for _trial in range(3):
        assert run_in_threads(3, stepped) == [alone] * 3


def test_a_thread_that_runs_no_vm_is_not_in_a_task_while_another_thread_runs_one():
    inside, seen = threading.Event(), []

    async def main():
        inside.set()
        deadline = time.monotonic() + 5
        while not seen and time.monotonic() < deadline:
            time.sleep(0.001)  # the VM's thread stays inside this task's step
        return "done"

    def observer():
        inside.wait(5)
        try:
            cp.current_task()
            seen.append("passed for the running task")
        except cp.NotInTaskError as error:
            seen.append(type(error).__name__)

    thread = threading.Thread(target=observer)
    thread.start()
    assert cp.VM().run(main()) == "done"
    thread.join(5)
    assert seen == ["NotInTaskError"]


# -- one VM, one driver at a time ---------------------------------------------------------------


class Driver:
    """Drive ``vm`` on a thread of its own, inside a task that holds the VM's thread until
    ``release`` is set (so another thread can try to use the VM meanwhile)."""

    def __init__(self, vm: cp.VM, how: str) -> None:
        self.vm, self.how = vm, how
        self.inside, self.release = threading.Event(), threading.Event()
        self.outcome: list = []
        self.thread = threading.Thread(target=self._drive)

    async def _hold(self):
        self.inside.set()
        self.release.wait(10)
        return "held"

    def _drive(self) -> None:
        try:
            if self.how == "run":
                self.outcome.append(self.vm.run(self._hold()))
            else:
                self.vm.spawn(self._hold())
                self.outcome.append(self.vm.step(10))
        except BaseException as error:
            self.outcome.append(error)

    def __enter__(self) -> Driver:
        self.thread.start()
        assert self.inside.wait(10)
        return self

    def __exit__(self, *exc_info) -> None:
        self.release.set()
        self.thread.join(10)


def attempts(vm: cp.VM, ch: cp.Channel, task: cp.Task, event: cp.Event):
    async def other():
        return "other"

    return {
        "vm.run()": lambda: vm.run(other()),
        "vm.step()": lambda: vm.step(),
        "vm.spawn()": lambda: vm.spawn(other()),
        "vm.channel()": lambda: vm.channel(),
        "vm.close()": lambda: vm.close(),
        "channel 1.try_send()": lambda: ch.try_send(1),
        "channel 1.try_recv()": lambda: ch.try_recv(),
        "channel 1.close()": lambda: ch.close(),
        "event 1.set()": lambda: event.set(),
        f"task {task.id}.cancel()": lambda: task.cancel(),
    }


@pytest.mark.parametrize("how", ["run", "step"])
def test_a_vm_driven_by_one_thread_refuses_every_host_call_from_another(how):
    vm = cp.VM()
    ch = vm.channel(1)

    async def nap():
        await cp.sleep(100)

    napper = vm.spawn(nap(), name="napper")

    async def make_event():
        return cp.Event()

    event = vm.run(make_event())
    before = vm.journal.digest()
    with Driver(vm, how) as driver:
        length = len(vm.journal)
        for what, attempt in attempts(vm, ch, napper, event).items():
            with pytest.raises(cp.VMBusyError, match="while this VM is running on thread") as e:
                attempt()
            assert str(e.value).startswith(what)
            assert len(vm.journal) == length  # nothing was written
    assert driver.outcome in (["held"], [1], [2])
    assert vm.journal.digest() != before  # (the driver's own run was journaled)
    assert not napper.cancelled() and not ch.closed and not event.is_set()
    assert [r for r in vm.journal if r.kind in ("cancel", "close", "set")] == []


def test_two_threads_that_run_one_vm_at_the_same_moment_one_runs_one_is_refused():
    inside: list = []
    overlaps: list = []

    async def short():
        inside.append(1)
        overlaps.append(len(inside))
        for step in range(50):
            if step % 10 == 0:
                time.sleep(0.0002)  # (lets the other thread in while this run is inside)
            await cp.checkpoint()
        inside.pop()
        return "ran"

    refused = 0
    for _trial in range(100):
        vm = cp.VM()
        outcomes = run_in_threads(2, lambda _index, vm=vm: vm.run(short()))
        kinds = sorted(o if isinstance(o, str) else type(o).__name__ for o in outcomes)
        # one after the other, or one refused at once: never both at the same time
        assert kinds in (["ran", "ran"], ["VMBusyError", "ran"])
        refused += kinds == ["VMBusyError", "ran"]
        assert vm.tasks() == []
    assert max(overlaps) == 1
    assert refused  # (the threads did meet)


def test_either_thread_may_be_the_driver_the_other_is_refused():
    async def other():
        return "other"

    # the main thread drives; a second thread is refused
    vm = cp.VM()
    refused = []

    async def hold():
        thread = threading.Thread(target=lambda: refused.append(_refusal(vm, other)))
        thread.start()
        thread.join(10)
        return "main drove"

    assert vm.run(hold()) == "main drove"
    assert refused == ["VMBusyError"]
    # a second thread drives; the main thread is refused
    with Driver(vm, "run") as driver:
        assert _refusal(vm, other) == "VMBusyError"
    assert driver.outcome == ["held"]
    assert vm.run(other()) == "other"  # and the VM is free again afterwards


def _refusal(vm: cp.VM, other) -> str:
    coro = other()
    try:
        vm.run(coro)
    except cp.VMBusyError:
        return "VMBusyError"
    return "ran"


def test_vm_run_inside_a_task_is_a_vm_busy_error_naming_the_task():
    vm = cp.VM()

    async def inner():
        return 1

    async def main():
        with pytest.raises(cp.VMBusyError, match="from inside a running task \\(task 1 'main'\\)"):
            vm.run(inner())
        with pytest.raises(cp.VMBusyError, match="inside a running task"):
            cp.VM().run(inner())  # another VM: still not from inside a task
        return "usable"

    assert vm.run(main()) == "usable"


# -- workers are isolated -----------------------------------------------------------------------

SHARED: dict = {}


@cp.worker.task
def th_meddles(what: str):
    """Try one VM operation from inside a worker; the test expects it to be refused."""
    vm, ch, task, event = SHARED["vm"], SHARED["ch"], SHARED["task"], SHARED["event"]

    async def spare():
        return 0

    actions = {
        "channel.close()": ch.close,
        "channel.try_send()": lambda: ch.try_send(1),
        "channel.try_recv()": ch.try_recv,
        "channel.closed": lambda: ch.closed,
        "task.cancel()": task.cancel,
        "task.done()": task.done,
        "event.set()": event.set,
        "vm.spawn()": lambda: vm.spawn(spare()),
        "vm.run()": lambda: vm.run(spare()),
        "vm.step()": vm.step,
        "vm.now": lambda: vm.now,
        "vm.tasks()": vm.tasks,
        "vm.events.enqueue()": lambda: vm.events.enqueue("sneaky", 1),
        "cp.now()": cp.now,
        "cp.channel()": cp.channel,
        "cp.spawn()": lambda: cp.spawn(spare()),
        "cp.sleep()": lambda: cp.sleep(1),
        "cp.worker.start()": lambda: cp.worker.start("th_meddles", "cp.now()"),
    }
    actions[what]()
    return "not refused"


# what the worker tries -> how the refusal names it
MEDDLING = {
    "channel.close()": "channel 1.close()",
    "channel.try_send()": "channel 1.try_send()",
    "channel.try_recv()": "channel 1.try_recv()",
    "channel.closed": "reading channel 1",
    "task.cancel()": "task 2.cancel()",
    "task.done()": "reading task 2",
    "event.set()": "event 1.set()",
    "vm.spawn()": "vm.spawn()",
    "vm.run()": "vm.run()",
    "vm.step()": "vm.step()",
    "vm.now": "vm.now",
    "vm.tasks()": "vm.tasks()",
    "vm.events.enqueue()": "vm.events.enqueue()",
    "cp.now()": "cp.now()",
    "cp.channel()": "cp.channel()",
    "cp.spawn()": "cp.spawn()",
    "cp.sleep()": "cp.sleep()",
    "cp.worker.start()": "cp.worker.start()",
}


def meddling_run(backend: str, what: str | None):
    """Run a program whose worker tries ``what`` (None: a harmless worker)."""
    vm = cp.VM(workers=backend)

    async def main():
        SHARED.update(vm=vm, ch=cp.channel(1), task=cp.spawn(cp.sleep(50)), event=cp.Event())
        handle = cp.worker.start("th_meddles" if what else "th_harmless", what or "", cost=2)
        status = await cp.worker.wait(handle)
        await cp.sleep(1)
        return status, cp.worker.error(handle), SHARED["ch"].closed, SHARED["task"].done()

    try:
        return vm.run(main()), vm
    finally:
        vm.close()


@cp.worker.task
def th_harmless(_payload):
    return "harmless"


@pytest.mark.parametrize("backend", ["inline", "thread"])
@pytest.mark.parametrize("what", MEDDLING)
def test_a_worker_that_uses_the_vm_fails_and_writes_nothing(backend, what):
    (status, error, closed, done), vm = meddling_run(backend, what)
    assert status == -1
    assert error.startswith(f"WorkerIsolationError: {MEDDLING[what]} was called from worker ")
    assert "Worker functions are isolated from the VM" in error
    assert (closed, done) == (False, False)
    harmless = meddling_run(backend, None)[1]
    # the same records as a harmless worker's run, but for the receipt
    assert [r.kind for r in vm.journal] == [r.kind for r in harmless.journal]


@cp.worker.task
def th_now(_payload):
    return cp.now()


@pytest.mark.parametrize("backend", ["inline", "thread", "process"])
def test_every_backend_refuses_a_worker_that_uses_the_vm_alike(backend):
    async def main():
        handle = cp.worker.start("th_now", None)
        return await cp.worker.wait(handle), cp.worker.error(handle)

    with cp.VM(workers=backend) as vm:
        status, error = vm.run(main())
    assert status == -1
    assert error.startswith("WorkerIsolationError: cp.now() was called from worker function")


@cp.worker.task
def th_late_close(_payload):
    SHARED["started"].set()
    SHARED["go"].wait(10)  # the run is over by now: the worker was abandoned
    try:
        SHARED["ch"].close()
    except cp.WorkerIsolationError as error:
        SHARED["late"] = type(error).__name__
    finally:
        SHARED["finished"].set()


def test_an_abandoned_thread_worker_cannot_write_after_the_run():
    SHARED.update(started=threading.Event(), go=threading.Event(), finished=threading.Event())
    vm = cp.VM(workers="thread")

    async def main():
        SHARED["ch"] = cp.channel(1)
        handle = cp.worker.start("th_late_close", None, cost=5)
        SHARED["started"].wait(10)
        cp.worker.cancel(handle)  # abandoned on the host; its thread goes on
        return "over"

    try:
        assert vm.run(main()) == "over"
        digest = vm.journal.digest()
        SHARED["go"].set()
        assert SHARED["finished"].wait(10)
        assert SHARED.get("late") == "WorkerIsolationError"
        assert vm.journal.digest() == digest and not SHARED["ch"].closed
    finally:
        vm.close()


GC_AT_EVERY_ALLOCATION = """
import contextvars, gc
import counterpoint as cp
from counterpoint import _traps

others = [contextvars.ContextVar(f"v{i}") for i in range(20)]
for var in others:  # (a context with several variables: changing it allocates)
    var.set(object())

async def main():
    await cp.sleep(1)
    return 1

vm = cp.VM()
gc.set_threshold(1, 1, 1)  # a collection (and our gc hook) at almost every allocation
stale = sum(vm.run(main()) != 1 or _traps.current() is not _traps.IDLE for _ in range(2000))
gc.set_threshold(700, 10, 10)
print("stale", stale)
"""


def test_the_run_state_survives_a_garbage_collection_at_any_moment(tmp_path):
    """A collection while the run state is being changed must leave no dangling value
    behind (on CPython 3.11, deleting a context variable during a collection that reads
    it did: a segfault at the next read)."""
    import subprocess
    import sys

    script = tmp_path / "gc_everywhere.py"
    script.write_text(GC_AT_EVERY_ALLOCATION)
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "stale 0"
