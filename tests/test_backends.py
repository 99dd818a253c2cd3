"""Worker backends and faults: where worker functions run, and what a dying worker looks like.

The rules (issue "Workers"): ``cp.VM(workers=...)`` picks inline, thread, process or Dask;
the journal is the same whichever backend ran the workers; the process backend runs user
functions (module-level, closures, notebook cells) in real parallel processes; an exception
is status -1 with ``"Type: message"``; a worker process that dies (``os._exit``, segfault,
SIGKILL) is status -1 with "worker process died", fails only its own job, and the next
workers still run; cancel before start is -2 and the function never runs.

The backend objects are expensive, so one ``ProcessBackend(processes=2)`` and one Dask
``LocalCluster`` serve the whole module.
"""

from __future__ import annotations

import gc
import os
import pathlib
import random
import signal
import threading
import time

import pytest

import counterpoint as cp

# -- worker functions (module level: shipped by value to worker processes) ---------------------


def _wait_for(condition, what: str, timeout: float = 30.0) -> None:
    """Poll ``condition()`` until true; a worker that waits too long fails with TimeoutError."""
    give_up = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > give_up:
            raise TimeoutError(f"gave up waiting for {what}")
        time.sleep(0.002)


@cp.worker.task(name="bk_square")
def bk_square(n):
    time.sleep(random.random() * 0.01)  # host timing must not matter
    return n * n


class BudgetExceeded(Exception):
    pass


@cp.worker.task(name="bk_over_budget")
def bk_over_budget(n):
    raise BudgetExceeded(f"over by {n}")


@cp.worker.task(name="bk_where")
def bk_where(_payload):
    return [os.getpid(), threading.get_ident()]


@cp.worker.task(name="bk_exit")
def bk_exit(_payload):
    os._exit(3)


@cp.worker.task(name="bk_segfault")
def bk_segfault(_payload):
    import ctypes

    ctypes.string_at(0)


@cp.worker.task(name="bk_sigkill")
def bk_sigkill(_payload):
    os.kill(os.getpid(), signal.SIGKILL)  # what the OOM killer does


@cp.worker.task(name="bk_rendezvous")
def bk_rendezvous(payload):
    """CPU-bound until the other job has started too: proves both ran at the same time."""
    directory, me, other = payload
    (pathlib.Path(directory) / me).touch()
    spins = 0

    def other_started():
        nonlocal spins
        spins += sum(i * i for i in range(2000))  # burn CPU while waiting
        return (pathlib.Path(directory) / other).exists()

    _wait_for(other_started, f"job {other!r} to run alongside {me!r}")
    return os.getpid()


@cp.worker.task(name="bk_patient")
def bk_patient(directory):
    """In flight while its neighbour dies: waits until the dead process has been reaped."""
    path = pathlib.Path(directory)
    (path / "patient-started").touch()
    _wait_for((path / "crasher-pid").exists, "the crasher to start")
    pid = int((path / "crasher-pid").read_text())

    def reaped():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    _wait_for(reaped, "the crashed worker process to be gone")
    return "survived"


@cp.worker.task(name="bk_crasher")
def bk_crasher(directory):
    path = pathlib.Path(directory)
    _wait_for((path / "patient-started").exists, "the patient job to start")
    (path / "crasher-pid.tmp").write_text(str(os.getpid()))
    (path / "crasher-pid.tmp").rename(path / "crasher-pid")
    os._exit(7)


@cp.worker.task(name="bk_touch")
def bk_touch(path):
    pathlib.Path(path).touch()
    return path


@cp.worker.task(name="bk_hold")
def bk_hold(path):
    """Keep the (single) worker process busy until ``path`` exists."""
    _wait_for(pathlib.Path(path).exists, path)
    return "held"


@cp.worker.task(name="bk_current_task")
def bk_current_task(_payload):
    return cp.current_task().name


INLINE_CALLS: list[int] = []


@cp.worker.task(name="bk_inline_probe")
def bk_inline_probe(n):
    INLINE_CALLS.append(threading.get_ident())
    return n


GC_COLLECTING = threading.Event()
GC_CHECKED = threading.Event()
GC_DONE = threading.Event()


class _SlowFinalizer:
    """Garbage in a reference cycle whose finalizer blocks (like closing a socket)."""

    def __init__(self) -> None:
        self.me = self

    def __del__(self) -> None:
        GC_COLLECTING.set()
        GC_CHECKED.wait(10)


@cp.worker.task(name="bk_collect_garbage")
def bk_collect_garbage(_payload):
    _SlowFinalizer()
    gc.collect()
    GC_DONE.set()
    return "collected"


@pytest.fixture
def only_explicit_collections():
    """Automatic collections off (explicit gc.collect() still works) for the GC tests.

    CPython skips a gc.collect() asked for while another thread is collecting, so
    the worker thread's collection must not race with automatic ones.
    """
    enabled = gc.isenabled()
    gc.disable()
    yield
    if enabled:
        gc.enable()


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def processes():
    """One ``ProcessBackend(processes=2)`` for the module (a user object: VMs never close it)."""
    backend = cp.worker.ProcessBackend(processes=2)
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def dask_client():
    """A 2-process Dask ``LocalCluster`` and its ``Client``.

    ``allowed-failures: 0`` makes a job whose worker dies fail on the first death
    instead of after Dask's retries (the scheduler reads it when it starts).
    """
    dask = pytest.importorskip("dask")
    distributed = pytest.importorskip("distributed")
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        )
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


def backend_of(vm: cp.VM):
    """The backend a VM resolved (there is no public accessor; this peeks, read-only)."""
    return vm._workers.backend


def run_one(workers, name, payload=None, **vm_options):
    """Start one worker on a fresh VM; return ``(status, result or error)``."""

    async def main():
        handle = cp.worker.start(name, payload)
        status = await cp.worker.wait(handle)
        value = cp.worker.result(handle) if status == 1 else cp.worker.error(handle)
        return status, value

    with cp.VM(workers=workers, **vm_options) as vm:
        return vm.run(main())


async def squares(numbers):
    """Start ``bk_square`` on each number (cost 1 each); return the results in order."""
    handles = [cp.worker.start("bk_square", n) for n in numbers]
    assert [await cp.worker.wait(h) for h in handles] == [1] * len(handles)
    return [cp.worker.result(h) for h in handles]


async def mixed_program():
    """Several workers with different costs, one failing, awaited from two tasks."""

    async def left():
        handles = [cp.worker.start("bk_square", n, cost=c) for n, c in ((3, 3), (4, 1), (5, 2))]
        first = await cp.worker.wait_any(handles)
        statuses = [await cp.worker.wait(h) for h in handles]
        return first, statuses, [cp.worker.result(h) for h in handles]

    async def right():
        await cp.sleep(1)
        bad = cp.worker.start("bk_over_budget", 7, cost=2)
        good = cp.worker.start("bk_square", 6, cost=2)
        ready = await cp.worker.wait_any([bad, good])
        return ready, await cp.worker.wait(bad), cp.worker.error(bad), cp.worker.result(good)

    return await cp.par(left(), right()), cp.now()


def run_mixed(workers):
    with cp.VM(workers=workers) as vm:
        value = vm.run(mixed_program())
        return value, vm.journal.digest()


# -- backend selection ------------------------------------------------------------------------


def test_workers_inline_runs_the_function_in_the_vm_thread():
    assert isinstance(backend_of(cp.VM(workers="inline")), cp.worker.InlineBackend)
    status, (pid, thread) = run_one("inline", "bk_where")
    assert (status, pid, thread) == (1, os.getpid(), threading.get_ident())


def test_workers_thread_runs_the_function_on_another_thread_of_this_process():
    assert isinstance(backend_of(cp.VM(workers="thread")), cp.worker.ThreadBackend)
    status, (pid, thread) = run_one("thread", "bk_where")
    assert (status, pid) == (1, os.getpid())
    assert thread != threading.get_ident()


def test_workers_process_runs_the_function_in_another_process():
    assert isinstance(backend_of(cp.VM(workers="process")), cp.worker.ProcessBackend)
    status, (pid, _thread) = run_one("process", "bk_where")
    assert status == 1
    assert pid != os.getpid()


def test_a_backend_object_is_used_as_given(processes):
    threads = cp.worker.ThreadBackend(threads=2)
    try:
        assert backend_of(cp.VM(workers=threads)) is threads
        assert backend_of(cp.VM(workers=processes)) is processes
        status, (_pid, thread) = run_one(threads, "bk_where")
        assert status == 1 and thread != threading.get_ident()
        status, (pid, _thread) = run_one(processes, "bk_where")
        assert status == 1 and pid != os.getpid()
    finally:
        threads.close()


def test_a_distributed_client_runs_the_function_on_its_cluster(dask_client):
    vm = cp.VM(workers=dask_client)
    assert isinstance(backend_of(vm), cp.worker.DaskBackend)
    assert backend_of(vm).client is dask_client
    worker_pids = set(dask_client.run(os.getpid).values())
    status, (pid, _thread) = run_one(dask_client, "bk_where")
    assert status == 1
    assert pid in worker_pids and pid != os.getpid()


def test_a_scheduler_address_connects_to_that_cluster(dask_client):
    address = dask_client.cluster.scheduler_address
    assert address.startswith("tcp://")
    worker_pids = set(dask_client.run(os.getpid).values())
    status, (pid, _thread) = run_one(address, "bk_where")
    assert status == 1
    assert pid in worker_pids


def test_an_unknown_backend_name_is_a_value_error_listing_the_choices():
    with pytest.raises(ValueError, match="unknown workers backend 'gpu'") as caught:
        cp.VM(workers="gpu")
    for choice in ("'inline'", "'thread'", "'process'", "'dask'", "Client", "address"):
        assert choice in str(caught.value)


def test_close_releases_a_client_the_vm_opened_for_an_address(dask_client):
    vm = cp.VM(workers=dask_client.cluster.scheduler_address)
    assert vm.run(squares([2])) == [4]
    own_client = backend_of(vm).client
    assert own_client is not dask_client
    vm.close()
    assert own_client.status == "closed"
    vm.close()  # idempotent

    with cp.VM(workers=dask_client.cluster.scheduler_address) as vm:
        assert vm.run(squares([3])) == [9]
        own_client = backend_of(vm).client
    assert own_client.status == "closed"
    assert dask_client.status == "running"


def test_close_leaves_a_client_the_user_passed_working(dask_client):
    vm = cp.VM(workers=dask_client)
    assert vm.run(squares([2])) == [4]
    vm.close()
    with cp.VM(workers=dask_client) as vm:
        assert vm.run(squares([3])) == [9]
    assert dask_client.status == "running"
    with cp.VM(workers=dask_client) as vm:
        assert vm.run(squares([4])) == [16]


def test_close_leaves_a_backend_object_the_user_passed_working(processes):
    threads = cp.worker.ThreadBackend(threads=2)
    try:
        for backend in (processes, threads):
            vm = cp.VM(workers=backend)
            assert vm.run(squares([2])) == [4]
            vm.close()
            with cp.VM(workers=backend) as vm:
                assert vm.run(squares([3])) == [9]
            with cp.VM(workers=backend) as vm:  # still works after both kinds of close
                assert vm.run(squares([4, 5])) == [16, 25]
    finally:
        threads.close()


def test_close_keeps_the_shared_default_pools_for_other_vms():
    # "thread" and "process" name one pool per host process, shared by the VMs that ask
    for name in ("thread", "process"):
        with cp.VM(workers=name) as vm:
            assert vm.run(squares([2])) == [4]
        with cp.VM(workers=name) as vm:
            assert vm.run(squares([3])) == [9]


# -- the journal does not depend on the backend -----------------------------------------------


def test_the_same_worker_program_has_the_same_journal_on_every_backend(processes, dask_client):
    threads = cp.worker.ThreadBackend(threads=2)
    try:
        runs = {
            "inline": run_mixed("inline"),
            "thread": run_mixed(threads),
            "process": run_mixed(processes),
            "dask": run_mixed(dask_client),
        }
    finally:
        threads.close()
    expected = (
        [([2], [1, 1, 1], [9, 16, 25]), ([4, 5], -1, "BudgetExceeded: over by 7", 36)],
        3,
    )
    assert runs["inline"][0] == expected
    assert runs == dict.fromkeys(runs, runs["inline"])


# -- process backend: what runs, and that it runs in parallel ---------------------------------


def make_scaler(factor):
    def scale(x):
        return [x * factor, os.getpid()]

    return scale


NOTEBOOK_CELL = """
import os
OFFSET = 100
def cell_add(x):
    return [x + OFFSET, os.getpid()]
"""


def test_process_backend_runs_module_level_functions(processes):
    status, (pid, _thread) = run_one(processes, "bk_where")
    assert status == 1 and pid != os.getpid()
    assert run_one(processes, "bk_square", 12) == (1, 144)


def test_process_backend_runs_closures(processes):
    cp.worker.task(make_scaler(7), name="bk_scale_by_7")
    status, (value, pid) = run_one(processes, "bk_scale_by_7", 6)
    assert (status, value) == (1, 42)
    assert pid != os.getpid()


@pytest.mark.parametrize("module_name", ["__main__", "notebook_cell_7"])
def test_process_backend_runs_functions_defined_in_a_notebook_cell(processes, module_name):
    namespace = {"__name__": module_name}
    exec(NOTEBOOK_CELL, namespace)
    assert namespace["cell_add"].__module__ == module_name
    cp.worker.task(namespace["cell_add"], name="bk_cell_add")
    status, (value, pid) = run_one(processes, "bk_cell_add", 1)
    assert (status, value) == (1, 101)
    assert pid != os.getpid()


def test_process_backend_runs_two_cpu_bound_jobs_in_parallel(processes, tmp_path):
    async def main():
        a = cp.worker.start("bk_rendezvous", [str(tmp_path), "a", "b"])
        b = cp.worker.start("bk_rendezvous", [str(tmp_path), "b", "a"])
        statuses = [await cp.worker.wait(a), await cp.worker.wait(b)]
        return statuses, [cp.worker.result(h) for h in (a, b)], [cp.worker.error(a)]

    with cp.VM(workers=processes) as vm:
        statuses, pids, errors = vm.run(main())
    assert statuses == [1, 1], errors  # each saw the other running at the same time
    assert len(set(pids)) == 2
    assert os.getpid() not in pids


# -- faults on the process backend ------------------------------------------------------------


def test_an_exception_in_a_worker_process_is_failed_with_type_and_message(processes):
    async def main():
        handle = cp.worker.start("bk_over_budget", 3)
        status = await cp.worker.wait(handle)
        with pytest.raises(cp.WorkerFailed, match="BudgetExceeded: over by 3"):
            cp.worker.result(handle)
        return status, cp.worker.poll(handle), cp.worker.error(handle)

    with cp.VM(workers=processes) as vm:
        assert vm.run(main()) == (-1, -1, "BudgetExceeded: over by 3")


DEATHS = [
    pytest.param("bk_exit", "(exit 3)", id="os._exit"),
    pytest.param("bk_segfault", "signal 11", id="segfault"),
    pytest.param("bk_sigkill", "signal 9", id="sigkill"),
]


@pytest.mark.parametrize(("name", "how"), DEATHS)
def test_a_dying_worker_process_fails_its_job_and_the_next_workers_still_run(processes, name, how):
    async def main():
        dead = cp.worker.start(name)
        status = await cp.worker.wait(dead)
        after = await squares([1, 2, 3, 4, 5])  # more jobs than processes: fresh ones serve
        return status, cp.worker.error(dead), after

    with cp.VM(workers=processes) as vm:
        status, error, after = vm.run(main())
    assert status == -1
    assert error.startswith("worker process died")
    assert how in error
    assert after == [1, 4, 9, 16, 25]


def test_a_dying_worker_process_does_not_fail_the_jobs_in_flight_beside_it(processes, tmp_path):
    async def main():
        patient = cp.worker.start("bk_patient", str(tmp_path), cost=2)
        crasher = cp.worker.start("bk_crasher", str(tmp_path), cost=1)
        statuses = [await cp.worker.wait(crasher), await cp.worker.wait(patient)]
        errors = [cp.worker.error(crasher), cp.worker.error(patient)]
        return statuses, errors, cp.worker.result(patient) if statuses[1] == 1 else None

    with cp.VM(workers=processes) as vm:
        statuses, errors, survived = vm.run(main())
    assert statuses == [-1, 1], errors
    assert errors == ["worker process died (exit 7)", ""]
    assert survived == "survived"


def test_a_worker_crash_gives_the_same_journal_every_run(processes):
    async def main():
        handles = [
            cp.worker.start("bk_square", 2, cost=2),
            cp.worker.start("bk_exit", None, cost=1),
            cp.worker.start("bk_segfault", None, cost=3),
            cp.worker.start("bk_square", 3, cost=1),
        ]
        statuses = [await cp.worker.wait(h) for h in handles]
        return statuses, [cp.worker.error(h) for h in handles]

    runs = []
    for _ in range(2):
        with cp.VM(workers=processes) as vm:
            runs.append((vm.run(main()), vm.journal.digest()))
    assert runs[0] == runs[1]
    (statuses, errors), _digest = runs[0]
    assert statuses == [1, -1, -1, 1]
    assert errors[1] == "worker process died (exit 3)"
    assert errors[2] == "worker process died (killed by signal 11)"


# -- cancel -----------------------------------------------------------------------------------


@pytest.mark.parametrize("workers", ["inline", "processes"])
def test_cancel_before_start_is_cancelled_and_the_function_never_runs(request, tmp_path, workers):
    backend = request.getfixturevalue(workers) if workers == "processes" else workers
    never = tmp_path / "never"

    async def main():
        first = cp.worker.start("bk_square", 4, cost=2)
        queued = cp.worker.start("bk_touch", str(never))  # max_workers=1: waits for a slot
        assert cp.worker.poll(queued) == 0
        assert cp.worker.cancel(queued) is True
        cancelled = cp.worker.poll(queued)
        statuses = [await cp.worker.wait(first), await cp.worker.wait(queued)]
        later = cp.worker.start("bk_square", 5)  # the slot is free; nothing queued runs first
        statuses.append(await cp.worker.wait(later))
        return cancelled, statuses, cp.worker.cancel(queued)

    with cp.VM(workers=backend, max_workers=1) as vm:
        assert vm.run(main()) == (-2, [1, -2, 1], False)
    assert not never.exists()


def test_cancel_before_a_busy_process_pool_runs_the_job_means_it_never_runs(tmp_path):
    # the VM started it, but the one process is busy: it waits in the backend's queue
    never, release = tmp_path / "never", tmp_path / "release"

    async def main():
        busy = cp.worker.start("bk_hold", str(release))
        waiting = cp.worker.start("bk_touch", str(never))
        assert cp.worker.cancel(waiting) is True
        release.touch()
        statuses = [await cp.worker.wait(busy), await cp.worker.wait(waiting)]
        statuses.append(await cp.worker.wait(cp.worker.start("bk_square", 5)))
        return statuses

    backend = cp.worker.ProcessBackend(processes=1)
    try:
        with cp.VM(workers=backend) as vm:
            assert vm.run(main()) == [1, -2, 1]
    finally:
        backend.close()
    assert not never.exists()


@cp.worker.task(name="bk_pid_then_sleep")
def bk_pid_then_sleep(path):
    pathlib.Path(path).write_text(str(os.getpid()))
    time.sleep(60)
    return "slept"


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_cancelling_a_running_process_job_stops_its_process_and_the_pool_goes_on(tmp_path):
    pid_file = tmp_path / "pid"
    backend = cp.worker.ProcessBackend(processes=1)
    handles = []

    async def start():
        handles.append(cp.worker.start("bk_pid_then_sleep", str(pid_file), cost=10))

    async def cancel_then_more():
        cancelled = cp.worker.cancel(handles[0])
        after = cp.worker.start("bk_square", 7)
        return cancelled, await cp.worker.wait(handles[0]), await cp.worker.wait(after)

    try:
        with cp.VM(workers=backend) as vm:
            vm.run(start())
            _wait_for(pid_file.exists, "the job to start in its process")
            _wait_for(lambda: pid_file.read_text() != "", "the job to write its pid")
            pid = int(pid_file.read_text())
            # the one process is busy for a minute, unless cancel stops it
            assert vm.run(cancel_then_more()) == (True, -2, 1)
            _wait_for(lambda: _gone(pid), "the cancelled job's process to be gone", timeout=10)
    finally:
        backend.close()


@pytest.mark.parametrize("workers", ["inline", "processes"])
def test_cancel_after_completion_returns_false_and_keeps_the_result(request, workers):
    backend = request.getfixturevalue(workers) if workers == "processes" else workers

    async def main():
        handle = cp.worker.start("bk_square", 6)
        await cp.worker.wait(handle)
        return cp.worker.cancel(handle), cp.worker.poll(handle), cp.worker.result(handle)

    with cp.VM(workers=backend) as vm:
        assert vm.run(main()) == (False, 1, 36)


# -- thread backend ---------------------------------------------------------------------------


def test_thread_backend_runs_jobs_off_the_main_thread():
    threads = cp.worker.ThreadBackend(threads=2)

    async def main():
        handles = [cp.worker.start("bk_where", n) for n in range(4)]
        assert [await cp.worker.wait(h) for h in handles] == [1] * 4
        return [cp.worker.result(h) for h in handles]

    try:
        with cp.VM(workers=threads) as vm:
            where = vm.run(main())
    finally:
        threads.close()
    main_thread = threading.main_thread().ident
    assert all(pid == os.getpid() for pid, _ in where)
    assert all(thread not in (main_thread, threading.get_ident()) for _, thread in where)


def test_a_collection_on_a_worker_thread_does_not_hide_the_running_task(
    only_explicit_collections,
):
    from counterpoint import _traps

    for event in (GC_COLLECTING, GC_CHECKED, GC_DONE):
        event.clear()
    threads = cp.worker.ThreadBackend(threads=1)

    async def main():
        me = cp.current_task().name
        handle = cp.worker.start("bk_collect_garbage")
        assert GC_COLLECTING.wait(10)  # the worker thread is inside a collection now
        try:
            seen = cp.current_task().name
        except cp.NotInTaskError as error:
            seen = f"NotInTaskError: {error}"
        finally:
            GC_CHECKED.set()
        assert GC_DONE.wait(10)  # the collection is over
        assert await cp.worker.wait(handle) == 1
        return me, seen

    try:
        with cp.VM(workers=threads) as vm:
            me, seen = vm.run(main())
    finally:
        GC_CHECKED.set()
        GC_DONE.wait(10)
        threads.close()
    assert _traps.current() is _traps.IDLE  # no VM runs here now; nothing leaked
    assert seen == me


def test_a_collection_on_a_worker_thread_leaves_no_stale_running_task(
    only_explicit_collections,
):
    from counterpoint import _traps

    for event in (GC_COLLECTING, GC_CHECKED, GC_DONE):
        event.clear()
    threads = cp.worker.ThreadBackend(threads=1)

    async def main():
        cp.worker.start("bk_collect_garbage")
        assert GC_COLLECTING.wait(10)  # the collection began while this task ran
        return "done"

    async def later():
        return "later"

    try:
        with cp.VM(workers=threads) as vm:
            assert vm.run(main()) == "done"
        GC_CHECKED.set()
        assert GC_DONE.wait(10)  # the collection ended after the run
        assert cp.VM().run(later()) == "later"
    finally:
        GC_CHECKED.set()
        GC_DONE.wait(10)
        threads.close()
    assert _traps.current() is _traps.IDLE  # no VM runs here now; nothing leaked


# -- Dask -------------------------------------------------------------------------------------


def test_dask_gives_the_same_results_and_journal_as_inline(dask_client):
    assert run_mixed(dask_client) == run_mixed("inline")


def test_an_exception_in_a_dask_worker_is_failed_with_type_and_message(dask_client):
    assert run_one(dask_client, "bk_over_budget", 5) == (-1, "BudgetExceeded: over by 5")


class BkAbort(BaseException):
    """A BaseException that is not an Exception."""


BK_BASE_EXCEPTIONS = {"KeyboardInterrupt": KeyboardInterrupt, "GeneratorExit": GeneratorExit}
BK_BASE_EXCEPTIONS["BkAbort"] = BkAbort


@cp.worker.task(name="bk_raise_base")
def bk_raise_base(kind):
    raise BK_BASE_EXCEPTIONS[kind](f"from {kind}")


def run_base_exceptions(workers):
    async def main():
        handles = [cp.worker.start("bk_raise_base", kind) for kind in BK_BASE_EXCEPTIONS]
        statuses = [await cp.worker.wait(h) for h in handles]
        return statuses, [cp.worker.error(h) for h in handles], await squares([4])

    with cp.VM(workers=workers) as vm:
        return vm.run(main()), vm.journal.digest()


def test_a_dask_worker_raising_a_base_exception_fails_like_inline(dask_client):
    outcome, digest = run_base_exceptions(dask_client)
    assert outcome == ([-1, -1, -1], [f"{k}: from {k}" for k in BK_BASE_EXCEPTIONS], [16])
    assert (outcome, digest) == run_base_exceptions("inline")


def test_a_dying_dask_worker_fails_its_job_and_the_next_workers_still_run(dask_client):
    async def main():
        dead = cp.worker.start("bk_exit")
        status = await cp.worker.wait(dead)
        return status, cp.worker.error(dead), await squares([1, 2, 3])

    with cp.VM(workers=dask_client) as vm:
        status, error, after = vm.run(main())
    assert status == -1
    assert error.startswith("worker process died")
    assert after == [1, 4, 9]


# -- inline -----------------------------------------------------------------------------------


def test_inline_runs_the_function_at_start_in_the_calling_thread():
    INLINE_CALLS.clear()

    async def main():
        handle = cp.worker.start("bk_inline_probe", 8, cost=5)
        ran_at_start = list(INLINE_CALLS)
        pending = cp.worker.poll(handle)  # it ran, but is observed only at tick 5
        me = cp.current_task().name  # the task is ours again after the call
        await cp.worker.wait(handle)
        return ran_at_start, pending, me, cp.now(), cp.worker.result(handle)

    with cp.VM(workers="inline") as vm:
        ran_at_start, pending, me, now, value = vm.run(main())
    assert ran_at_start == [threading.get_ident()]
    assert (pending, now, value) == (0, 5, 8)
    assert me


def test_inline_worker_sees_no_vm_task():
    status, error = run_one("inline", "bk_current_task")
    assert status == -1
    assert error.startswith("WorkerIsolationError: ")
