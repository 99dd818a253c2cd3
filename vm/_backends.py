"""Worker backends: where a worker's function physically runs.

A backend takes jobs (a registered function and a payload) and gives back
``concurrent.futures``-style futures whose result is ``(status, value, error)``
(see ``_workerjob.run_job``).  Backends decide *where* and *when* a job runs on
the host; they never decide what the program observes: the VM applies each
outcome at the job's due tick, whatever the host timing (``_workers.py``).

* :class:`InlineBackend` runs the job at once, in the calling thread.
* :class:`ThreadBackend` runs jobs on a thread pool.
* :class:`ProcessBackend` runs jobs on a pool of worker processes.  Each process
  runs one job at a time, so when a process dies (``os._exit``, a segfault, the
  OOM killer) exactly its job fails with "worker process died"; the other jobs
  are untouched and a fresh process takes the next job.  (``ProcessPoolExecutor``
  instead fails every job in flight when one process dies, which would make
  outcomes depend on timing.)
* :class:`DaskBackend` submits jobs to a Dask ``distributed`` cluster.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import subprocess
import sys
import sysconfig
import threading
import weakref
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from ._workerjob import FAILED, run_job


def _finished(outcome: tuple) -> Future:
    future: Future = Future()
    future.set_result(outcome)
    return future


class Backend:
    """Base of worker backends: ``submit(function, payload) -> Future``, ``close()``."""

    name = "backend"

    def submit(self, function: Any, payload: Any) -> Future:
        raise NotImplementedError

    def close(self) -> None:
        """Release host resources (idempotent)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"


class InlineBackend(Backend):
    """Runs each job at once, in the VM's thread, when the worker is started.

    Deterministic and simple: the default, and the backend for tests.
    """

    name = "inline"

    def submit(self, function: Any, payload: Any) -> Future:
        return _finished(run_job(function, payload))  # (isolated from the VM by run_job)


class ThreadBackend(Backend):
    """Runs jobs on a pool of host threads (default size: ``min(32, cpus + 4)``)."""

    name = "thread"

    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="counterpoint-worker")

    def submit(self, function: Any, payload: Any) -> Future:
        return self._pool.submit(run_job, function, payload)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def function_bytes(function: Any) -> bytes:
    """Serialize a worker function *by value* when it is the user's own code.

    Functions from ``__main__``, a notebook cell, a script run by
    ``counterpoint run`` or a test module cannot be imported by name in a worker
    process, so cloudpickle ships their code; library functions go by reference.
    """
    import cloudpickle

    module = sys.modules.get(getattr(function, "__module__", None) or "")
    by_value = module is not None and _is_user_module(module)
    if by_value:
        cloudpickle.register_pickle_by_value(module)
    try:
        return cloudpickle.dumps(function)
    finally:
        if by_value:
            cloudpickle.unregister_pickle_by_value(module)


_LIBRARY_PATHS = tuple(
    {sysconfig.get_paths()[key] for key in ("stdlib", "platstdlib", "purelib", "platlib")}
)


def _is_user_module(module: Any) -> bool:
    name = module.__name__
    if name == "__main__" or name.split(".")[0] == "counterpoint":
        return False  # __main__ goes by value anyway; counterpoint is importable
    path = getattr(module, "__file__", None)
    return path is not None and not path.startswith(_LIBRARY_PATHS)


class _Process:
    """One worker process: its pipes, and the job it runs (at most one)."""

    __slots__ = ("job", "process", "reader", "writer")

    def __init__(self, process: subprocess.Popen, reader: Any, writer: Any) -> None:
        self.process = process
        self.reader = reader
        self.writer = writer
        self.job: tuple | None = None

    def stop(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.writer.send(None)
        try:
            self.process.wait(timeout=1)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for end in (self.reader, self.writer):
            with contextlib.suppress(OSError):
                end.close()


_SERVE = (
    "import sys; from counterpoint._workerjob import serve; "
    "serve(int(sys.argv[1]), int(sys.argv[2]))"
)


class _ProcessFuture(Future):
    """A process job's future: cancelling it while it runs stops its process (which
    is replaced when needed), so an abandoned job does not go on burning a CPU."""

    def __init__(self, backend: ProcessBackend) -> None:
        super().__init__()
        self._backend = backend

    def cancel(self) -> bool:
        if super().cancel():
            return True  # it had not started
        self._backend._stop(self)
        return False


class ProcessBackend(Backend):
    """Runs jobs on ``processes`` worker processes (default: the number of CPUs).

    Processes are fresh interpreters (``python -c``, importing only this package,
    never the user's ``__main__``), started when jobs come and reused; a process
    that dies is replaced.  Worker functions defined in ``__main__`` or a notebook
    cell are shipped by value (cloudpickle).
    """

    name = "process"

    def __init__(self, processes: int | None = None) -> None:
        from multiprocessing.connection import Pipe

        self.processes = processes or os.cpu_count() or 1
        self._lock = threading.Lock()
        self._queue: deque[tuple] = deque()
        self._pool: list[_Process] = []
        self._functions: dict[int, tuple[Any, bytes]] = {}
        self._closed = False
        self._manager: threading.Thread | None = None
        self._wake_reader, self._wake_writer = Pipe(duplex=False)
        weakref.finalize(self, ProcessBackend._shutdown, self._pool, self._wake_writer)

    def submit(self, function: Any, payload: Any) -> Future:
        if self._closed:
            raise RuntimeError("this process backend is closed")
        future: Future = _ProcessFuture(self)
        key = id(function)
        cached = self._functions.get(key)
        if cached is None or cached[0] is not function:
            cached = self._functions[key] = (function, function_bytes(function))
        with self._lock:
            self._queue.append((cached[1], payload, future))
            if self._manager is None:
                self._manager = threading.Thread(
                    target=self._manage, name="counterpoint-process-workers", daemon=True
                )
                self._manager.start()
        self._wake_writer.send(None)
        return future

    def _start_process(self) -> _Process:
        from multiprocessing.connection import Connection

        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        try:
            process = subprocess.Popen(
                [sys.executable, "-c", _SERVE, str(to_child_r), str(from_child_w)],
                pass_fds=(to_child_r, from_child_w),
                stdin=subprocess.DEVNULL,
            )
        finally:
            os.close(to_child_r)
            os.close(from_child_w)
        worker = _Process(
            process,
            Connection(from_child_r, writable=False),
            Connection(to_child_w, readable=False),
        )
        worker.writer.send(list(sys.path))
        self._pool.append(worker)
        return worker

    def _dispatch(self) -> None:
        with self._lock:
            while self._queue:
                idle = next((p for p in self._pool if p.job is None), None)
                if idle is None:
                    if len(self._pool) >= self.processes:
                        return
                    idle = self._start_process()
                job = self._queue.popleft()
                if not job[2].set_running_or_notify_cancel():
                    continue  # cancelled before it started
                idle.job = job
                idle.writer.send((job[0], job[1]))

    def _manage(self) -> None:
        from multiprocessing.connection import wait

        while not self._closed:
            self._dispatch()
            watched: dict[Any, Any] = {self._wake_reader: None}
            for worker in self._pool:
                watched[worker.reader] = worker
            for ready in wait(list(watched)):
                worker = watched[ready]
                if worker is None:
                    with contextlib.suppress(EOFError, OSError):
                        while self._wake_reader.poll():
                            self._wake_reader.recv()
                else:
                    self._receive(worker)

    def _receive(self, worker: _Process) -> None:
        try:
            outcome = worker.reader.recv()
        except (EOFError, OSError):  # the process is gone
            self._died(worker)
            return
        job, worker.job = worker.job, None
        if job is not None:
            job[2].set_result(outcome)

    def _stop(self, future: Future) -> None:
        """Kill the process running ``future``'s job (the manager sees it die)."""
        with self._lock:
            for worker in self._pool:
                if worker.job is not None and worker.job[2] is future:
                    with contextlib.suppress(OSError):
                        worker.process.kill()

    def _died(self, worker: _Process) -> None:
        try:
            code = worker.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            worker.process.kill()
            code = worker.process.wait()
        with self._lock:
            if worker in self._pool:
                self._pool.remove(worker)
        worker.stop()
        if worker.job is not None:
            how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit {code}"
            worker.job[2].set_result((FAILED, None, f"worker process died ({how})"))
            worker.job = None

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        ProcessBackend._shutdown(self._pool, self._wake_writer)
        if self._manager is not None:
            self._manager.join(timeout=5)
        with self._lock:
            while self._queue:
                self._queue.popleft()[2].cancel()

    @staticmethod
    def _shutdown(pool: list[_Process], wake_writer: Any) -> None:
        for worker in list(pool):
            worker.stop()
        with contextlib.suppress(OSError, ValueError):
            wake_writer.send(None)


class DaskBackend(Backend):
    """Submits jobs to a Dask ``distributed`` cluster.

    Give it a ``distributed.Client`` (yours: it is not closed with the backend) or
    a scheduler address such as ``"tcp://10.0.0.5:8786"`` (the backend opens and
    closes its own client).  A job whose worker process dies is retried by Dask
    (``distributed.scheduler.allowed-failures``); if it keeps dying it fails with
    "worker process died".
    """

    name = "dask"

    def __init__(self, client_or_address: Any = None) -> None:
        from distributed import Client

        if isinstance(client_or_address, Client):
            self.client, self._owned = client_or_address, False
        else:
            self.client, self._owned = Client(client_or_address), True

    def submit(self, function: Any, payload: Any) -> Future:
        dask_future = self.client.submit(
            _run_shipped, function_bytes(function), payload, pure=False
        )
        future: Future = Future()
        future.set_running_or_notify_cancel()
        dask_future.add_done_callback(lambda done: _settle(done, future))
        return future

    def close(self) -> None:
        if self._owned:
            self.client.close()


def _run_shipped(function_bytes_: bytes, payload: Any) -> tuple[int, Any, str]:
    import cloudpickle

    return run_job(cloudpickle.loads(function_bytes_), payload)


def _settle(done: Any, future: Future) -> None:
    try:
        outcome = done.result()
    except BaseException as error:  # the cluster lost the job (KilledWorker ...)
        kind = type(error).__name__
        if kind == "KilledWorker":
            outcome = (FAILED, None, f"worker process died ({kind})")
        else:
            outcome = (FAILED, None, f"{kind}: {error}")
    future.set_result(outcome)


_SHARED: dict[str, Backend] = {}


def backend_for(workers: Any) -> Backend:
    """The backend for ``VM(workers=...)``: a name, a Backend, a Client or an address."""
    if isinstance(workers, Backend):
        return workers
    if workers == "inline":
        return InlineBackend()
    if workers in ("thread", "process"):
        shared = _SHARED.get(workers)
        if shared is None:  # one pool per process, shared by the VMs that ask for it
            shared = _SHARED[workers] = ThreadBackend() if workers == "thread" else ProcessBackend()
        return shared
    if workers == "dask":
        return DaskBackend()
    if isinstance(workers, str) and "://" in workers:
        return DaskBackend(workers)
    if type(workers).__name__ == "Client" and type(workers).__module__.startswith("distributed"):
        return DaskBackend(workers)
    raise ValueError(
        f"unknown workers backend {workers!r}: use 'inline', 'thread', 'process', 'dask', a "
        f"distributed.Client, a Dask scheduler address, or a cp.worker backend object"
    )


@atexit.register
def _close_shared() -> None:
    for backend in _SHARED.values():
        backend.close()
