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
import pickle
import subprocess
import sys
import threading
import warnings
import weakref
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from ._shipping import FunctionBytes, function_bytes
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


class _Process:
    """One worker process: its pipes, and the job it runs (at most one).

    ``doomed`` marks a process that was killed (a cancel) or found broken: it is
    never given another job, whatever arrives from it later.
    """

    __slots__ = ("doomed", "job", "process", "reader", "writer")

    def __init__(self, process: subprocess.Popen, reader: Any, writer: Any) -> None:
        self.process = process
        self.reader = reader
        self.writer = writer
        self.job: _Job | None = None
        self.doomed = False

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            self.process.kill()

    def stop(self) -> None:
        """Ask the process to exit (kill it if it does not), reap it, close its pipes.

        A doomed process is killed at once; either way its job pipe is closed, so a
        process that is alive and idle sees the end of its input and exits."""
        if self.doomed:
            self.kill()
        else:
            with contextlib.suppress(OSError, ValueError):
                self.writer.send(None)
        with contextlib.suppress(OSError):
            self.writer.close()
        try:
            self.process.wait(timeout=1)
        except subprocess.TimeoutExpired:
            self.kill()
            self.process.wait()
        with contextlib.suppress(OSError):
            self.reader.close()


_SERVE = (
    "import sys; from counterpoint._workerjob import serve; "
    "serve(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))"
)

# The life of a job in a ProcessBackend (changed only under the backend's lock).
_QUEUED, _RUNNING, _DONE, _DROPPED = range(4)
_SEND_ATTEMPTS = 3  # fresh processes a job is offered to before it fails


class _Job:
    """A job of a ProcessBackend: what to run, its future, and where it is."""

    __slots__ = ("attempts", "future", "message", "state", "worker")

    def __init__(self, message: bytes, future: _ProcessFuture) -> None:
        self.message = message  # (function bytes, payload), pickled
        self.future = future
        self.state = _QUEUED
        self.worker: _Process | None = None
        self.attempts = 0


class _ProcessFuture(Future):
    """A process job's future.

    It stays *pending* until the outcome arrives (``running()`` is always False), so
    that ``cancel()`` decides, under the backend's lock, between the two cases the
    host timing allows:

    * the outcome has not arrived (the job is queued or still running): the job is
      dropped, its process (if any) is killed and never reused, and any outcome that
      still arrives from it is discarded: ``cancel()`` is True;
    * the outcome has arrived (or is already waiting in the pipe): the job completed
      and the cancel lost the race: ``cancel()`` is False, nothing is killed, and the
      future holds the outcome.
    """

    def __init__(self, backend: ProcessBackend) -> None:
        super().__init__()
        self._backend = backend
        self._job: _Job | None = None

    def cancel(self) -> bool:
        job = self._job
        if job is None or not self._backend._drop(job):
            return super().cancel() if job is None else False
        super().cancel()  # still pending: nothing else will ever finish it
        return True


class ProcessBackend(Backend):
    """Runs jobs on ``processes`` worker processes (default: the number of CPUs).

    Processes are fresh interpreters (``python -c``, importing only this package,
    never the user's ``__main__``), started when jobs come and reused; a process
    that dies is replaced.  Worker functions defined in ``__main__`` or a notebook
    cell are shipped by value (cloudpickle), again whenever a global they use has
    been rebound since (``_shipping.FunctionBytes``).

    One manager thread moves jobs to idle processes and outcomes back; it survives
    any pipe error: a process found dead (or not reading) when a job is sent to it
    is killed and replaced, and the job goes to a live one.  A process whose parent
    dies exits, even in the middle of a job (``_workerjob.serve``).
    """

    name = "process"

    def __init__(self, processes: int | None = None) -> None:
        from multiprocessing.connection import Pipe

        self.processes = processes or os.cpu_count() or 1
        self._lock = threading.Lock()
        self._queue: deque[_Job] = deque()
        self._pool: list[_Process] = []
        self._functions = FunctionBytes()  # pickled again when a global it uses is rebound
        self._closed = False
        self._manager: threading.Thread | None = None
        self._wake_reader, self._wake_writer = Pipe(duplex=False)
        weakref.finalize(self, ProcessBackend._shutdown, self._pool, self._wake_writer)

    def submit(self, function: Any, payload: Any) -> Future:
        if self._closed:
            raise RuntimeError("this process backend is closed; make a new one")
        future = _ProcessFuture(self)
        message = pickle.dumps((self._functions(function), payload), pickle.HIGHEST_PROTOCOL)
        job = future._job = _Job(message, future)
        with self._lock:
            if self._closed:  # closed meanwhile, by another thread
                raise RuntimeError("this process backend is closed; make a new one")
            self._queue.append(job)
            if self._manager is None:
                self._manager = threading.Thread(
                    target=self._manage, name="counterpoint-process-workers", daemon=True
                )
                self._manager.start()
        self._wake()
        return future

    def _wake(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._wake_writer.send(None)

    # -- the VM's side: cancel --------------------------------------------------------------

    def _drop(self, job: _Job) -> bool:
        """Cancel ``job`` unless its outcome is in; True if it will never have one."""
        with self._lock:
            if job.state == _QUEUED:
                job.state = _DROPPED
                return True
            if job.state != _RUNNING:
                return job.state == _DROPPED
            worker = job.worker
            try:
                arrived = worker.reader.poll()  # the outcome (or the end) is in the pipe
            except (OSError, ValueError):
                arrived = True  # the manager is handling this process
            if arrived:
                return False  # the job finished: the cancel lost the race
            job.state = _DROPPED
            worker.doomed = True  # never given another job
            worker.kill()
        self._wake()  # the manager replaces the process if jobs wait
        return True

    # -- the manager thread -------------------------------------------------------------------

    def _manage(self) -> None:
        from multiprocessing.connection import wait

        while not self._closed:
            try:
                self._dispatch()
                watched: dict[Any, Any] = {self._wake_reader: None}
                for worker in list(self._pool):
                    watched[worker.reader] = worker
                for ready in wait(list(watched)):
                    worker = watched[ready]
                    if worker is None:
                        with contextlib.suppress(EOFError, OSError):
                            while self._wake_reader.poll():
                                self._wake_reader.recv()
                    else:
                        self._receive(worker)
            except Exception as error:  # a bug here must fail jobs, never hang their waiters
                self._fail_everything(f"the process pool failed: {type(error).__name__}: {error}")

    def _start_process(self) -> _Process:
        from multiprocessing.connection import Connection

        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        try:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    _SERVE,
                    str(to_child_r),
                    str(from_child_w),
                    str(os.getpid()),
                ],
                pass_fds=(to_child_r, from_child_w),
                stdin=subprocess.DEVNULL,
            )
        except BaseException:
            for fd in (to_child_w, from_child_r):
                os.close(fd)
            raise
        finally:
            os.close(to_child_r)
            os.close(from_child_w)
        worker = _Process(
            process,
            Connection(from_child_r, writable=False),
            Connection(to_child_w, readable=False),
        )
        self._pool.append(worker)
        try:
            worker.writer.send(list(sys.path))
        except (OSError, ValueError):
            worker.doomed = True  # dead already: the manager reaps it
        return worker

    def _dispatch(self) -> None:
        """Send queued jobs to idle processes (starting processes up to the bound)."""
        broken: list[_Process] = []
        failed: list[tuple[_Job, str]] = []
        with self._lock:
            while self._queue:
                if self._queue[0].state == _DROPPED:
                    self._queue.popleft()  # cancelled before it started
                    continue
                worker = next((p for p in self._pool if p.job is None and not p.doomed), None)
                if worker is None:
                    if len(self._pool) >= self.processes:
                        break
                    try:
                        worker = self._start_process()
                    except Exception as error:  # no process can be started (EAGAIN ...)
                        job = self._queue.popleft()
                        failed.append((job, f"could not start a worker process: {error}"))
                        continue
                    if worker.doomed:
                        broken.append(worker)
                        self._pool.remove(worker)
                        continue
                job = self._queue.popleft()
                try:
                    if worker.process.poll() is not None:
                        raise BrokenPipeError(f"the process exited ({worker.process.returncode})")
                    worker.writer.send_bytes(job.message)
                except (OSError, ValueError) as error:  # dead, or not reading: replace it
                    worker.doomed = True
                    broken.append(worker)
                    self._pool.remove(worker)
                    job.attempts += 1
                    if job.attempts >= _SEND_ATTEMPTS:
                        failed.append((job, f"could not send the job to a worker process: {error}"))
                    else:
                        self._queue.appendleft(job)  # to a live process, first in line
                    continue
                job.state, job.worker, worker.job = _RUNNING, worker, job
                job.message = None  # the process has it
            for job, _ in failed:
                job.state = _DONE
        for worker in broken:
            worker.stop()  # (doomed: killed and reaped)
        for job, error in failed:
            job.future.set_result((FAILED, None, error))

    def _receive(self, worker: _Process) -> None:
        """``worker``'s pipe is readable: an outcome, or the end (the process died)."""
        try:
            outcome = worker.reader.recv()
        except Exception as error:  # EOF, a broken pipe, garbage: the process is done for
            self._died(worker, None if isinstance(error, EOFError | OSError) else error)
            return
        with self._lock:
            job, worker.job = worker.job, None
            deliver = job is not None and job.state == _RUNNING
            if deliver:
                job.state, job.worker = _DONE, None
            retire = worker.doomed
            if retire and worker in self._pool:
                self._pool.remove(worker)
        if retire:
            worker.stop()  # killed by a cancel: its outcome (if any) is discarded
        if deliver:
            job.future.set_result(outcome)

    def _died(self, worker: _Process, error: BaseException | None) -> None:
        if error is not None:
            worker.kill()
        try:
            code = worker.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            worker.kill()
            code = worker.process.wait()
        with self._lock:
            if worker in self._pool:
                self._pool.remove(worker)
            job, worker.job = worker.job, None
            deliver = job is not None and job.state == _RUNNING
            if deliver:
                job.state, job.worker = _DONE, None
        worker.doomed = True
        worker.stop()
        if deliver:
            if error is not None:
                how = f"its pipe broke: {type(error).__name__}"
            elif code is not None and code < 0:
                how = f"killed by signal {-code}"
            else:
                how = f"exit {code}"
            job.future.set_result((FAILED, None, f"worker process died ({how})"))

    def _fail_everything(self, error: str) -> None:
        """Fail every job not finished yet and stop every process (``close``, and the
        manager's last resort)."""
        with self._lock:
            jobs = [j for j in self._queue if j.state == _QUEUED]
            jobs += [w.job for w in self._pool if w.job is not None and w.job.state == _RUNNING]
            self._queue.clear()
            workers = list(self._pool)
            self._pool.clear()
            for job in jobs:
                job.state, job.worker = _DONE, None
            for worker in workers:
                worker.doomed = worker.doomed or worker.job is not None  # busy: killed
        for worker in workers:
            worker.stop()
        for job in jobs:
            job.future.set_result((FAILED, None, error))

    def close(self) -> None:
        """Stop the processes; jobs not finished yet fail ("the process backend was
        closed").  Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._wake()
        if self._manager is not None and self._manager is not threading.current_thread():
            self._manager.join(timeout=10)
        self._fail_everything("the process backend was closed")
        for end in (self._wake_reader, self._wake_writer):
            with contextlib.suppress(OSError):
                end.close()

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


def in_the_browser(message: str) -> None:
    """A ``RuntimeWarning`` that something runs otherwise in the browser (JupyterLite,
    docs/jupyterlite.md), at the user's line, not Counterpoint's."""
    if sys.version_info >= (3, 12):  # (Pyodide's Python is)
        skip = (os.path.dirname(__file__),)
        warnings.warn(message, RuntimeWarning, skip_file_prefixes=skip)
    else:
        warnings.warn(message, RuntimeWarning, stacklevel=2)


def backend_for(workers: Any) -> Backend:
    """The backend for ``VM(workers=...)``: a name, a Backend, a Client or an address."""
    if isinstance(workers, Backend):
        return workers
    if workers == "inline":
        return InlineBackend()
    if workers in ("thread", "process", "dask") and sys.platform == "emscripten":
        in_the_browser(
            f"workers={workers!r} cannot run in the browser (Pyodide has neither threads "
            f"nor processes, nor Dask); this VM runs its workers inline, one at a time, "
            f"with the same results"
        )
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
