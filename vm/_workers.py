"""Workers, VM side: handles, deterministic observation, receipts.

The timing rule: a worker started at tick ``t`` with cost ``c`` is *due* at tick
``t + c``.  Until then ``poll`` says pending, whatever the host did.  The due
tick is an ordinary VM timer; when virtual time reaches it the VM takes the
outcome from the backend (waiting physically if the host is not done yet),
journals a receipt and wakes the tasks that wait.  So the host decides nothing
the program can observe: the journal is the same whichever backend ran the
workers and however long they took.

Memory: a VM keeps every pending worker, and the outcomes of its
``KEPT_OUTCOMES`` most recently *settled* workers (completed, failed or
cancelled); older outcomes are released in settle order, which is virtual-time
order, so what is kept never depends on the host.  (Handles are ints: the VM
cannot know when nobody will ask about one again.)  A released handle polls as
-3; ``result``/``error`` of it raise ``InvalidStateError`` saying so.

With ``VM(max_workers=n)`` at most ``n`` workers are in flight (started and not
yet observed); further starts wait in a FIFO queue and start, in order, at the
tick a slot frees (their due tick counts from then).  ``max_workers=0``
disables workers.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import CancelledError, Future
from typing import Any

from . import _shipping
from ._errors import NondeterminismError, PolicyError, UnknownWorkerTask
from ._interrupts import noted_here, safe_to_interrupt, take_interrupt
from ._journal import MAX_TICK, QUEUE, RECEIPT, START, tick_error
from ._plaindata import copy_plain, digest, encode
from ._task import Task
from ._traps import observed
from ._workerjob import describe

PENDING, COMPLETED, FAILED, CANCELLED, UNKNOWN = 0, 1, -1, -2, -3

# name -> function, shared by every VM of the process (see cp.worker.task)
REGISTRY: dict[str, Any] = {}

# how many settled outcomes a VM keeps (the most recent ones, in settle order)
KEPT_OUTCOMES = 10_000


def _unknown(name: str) -> str:
    """Why ``cp.worker.start(name)`` found no task: the same in any process that got the
    program with its registry (``_shipping.program_bytes``)."""
    left_behind = _shipping.left_behind_message(name)
    if left_behind is not None:
        _shipping.MISSED.append(name)
        return left_behind
    known = ", ".join(sorted(set(REGISTRY) | set(_shipping.LEFT_BEHIND))) or "none yet"
    return (
        f"no worker task named {name!r} is registered (registered: {known}); "
        f"decorate a plain function with @cp.worker.task"
    )


def _recorded(receipt: tuple | None, job: WorkerJob) -> Future:
    """A finished future holding a journaled outcome (replay runs no worker)."""
    future: Future = Future()
    if receipt is None:
        future.set_exception(
            NondeterminismError(
                f"the replay reached the due tick of worker {job.handle} ({job.name}), but the "
                f"journal has no receipt for it: the original run never observed it"
            )
        )
    else:
        future.set_result(receipt)
    return future


class WorkerJob:
    """One worker handle: what was started, and (once observed) its outcome."""

    __slots__ = (
        "cost",
        "due",
        "error",
        "function",
        "future",
        "handle",
        "name",
        "owner",
        "payload",
        "payload_digest",
        "result",
        "status",
        "table",
        "timer",
        "waiters",
    )

    def __init__(self, table: Workers, handle: int, name: str, payload: Any, cost: int) -> None:
        self.table = table
        self.handle = handle
        self.name = name
        self.function = REGISTRY[name]
        self.payload = payload
        self.payload_digest = digest(payload)
        self.cost = cost
        self.due: int | None = None
        self.status = PENDING
        self.result: Any = None
        self.error = ""
        self.future: Any = None
        self.timer: list | None = None
        self.waiters: list = []
        self.owner = 0  # the id of the task that started it (0: the host)

    def _timer_fired(self) -> None:  # the due tick has come
        self.timer = None
        self.table._observe(self)


class Workers:
    """The worker table of one VM."""

    def __init__(self, vm: Any, backend_spec: Any, max_workers: int | None) -> None:
        self.vm = vm
        self.backend_spec = backend_spec
        self.max_workers = max_workers
        self._backend: Any = None
        self._jobs: dict[int, WorkerJob] = {}
        self._settled: deque[int] = deque()  # handles, in settle order (for release)
        self._in_flight = 0
        self._queued: deque[WorkerJob] = deque()
        # replay: handle -> (status, value, error) from a journal's receipts
        self.receipts: dict[int, tuple] | None = None
        self.run_missing = False  # recovering: run the workers the receipts lack

    @property
    def backend(self) -> Any:
        if self._backend is None:
            from ._backends import backend_for

            self._backend = backend_for(self.backend_spec)
        return self._backend

    # -- operations ------------------------------------------------------------------

    def start(self, task: Task | None, name: str, payload: Any, cost: int) -> int:
        if self.max_workers == 0:
            raise PolicyError(
                "workers are disabled by policy (this VM was made with max_workers=0); "
                "create the VM with max_workers=None or a positive bound to use workers"
            )
        if name not in REGISTRY:
            raise UnknownWorkerTask(_unknown(name))
        payload = copy_plain(payload, "the worker payload")
        job = WorkerJob(self, self.vm._next_id("worker"), name, payload, cost)
        if task is not None:
            job.owner = task.id
        self._jobs[job.handle] = job
        if self.max_workers is None or self._in_flight < self.max_workers:
            self._launch(job, task)
        else:
            self._queued.append(job)
            self._record(task, QUEUE, job.handle, (job.name, job.payload_digest))
        return job.handle

    def _launch(self, job: WorkerJob, task: Task | None) -> None:
        vm = self.vm
        if vm._now + job.cost > MAX_TICK:  # a queued start, late: its due tick is past the end
            error = tick_error("cp.worker.start(cost={})", vm._now, job.cost, "use a smaller cost")
            self._settle(job, FAILED, None, describe(error), task)
            return
        self._in_flight += 1
        job.due = vm._now + job.cost
        job.timer = vm._add_timer(job.due, job)
        self._record(task, START, job.handle, (job.name, job.payload_digest, job.cost, job.due))
        receipts = self.receipts
        if receipts is not None and (job.handle in receipts or not self.run_missing):
            job.future = _recorded(receipts.get(job.handle), job)  # replaying: from the journal
        else:  # (live; or recovering a file that has no receipt for it: cp.VM.recover)
            job.future = self._submit(job)
        job.payload = None  # the backend has its own copy

    def _submit(self, job: WorkerJob) -> Future:
        """Hand the job to the backend.  A backend that cannot take it (closed, full, a
        function that cannot be shipped) fails the worker like any failure: observed
        at its due tick, never an exception in the middle of the VM's bookkeeping."""
        try:
            return self.backend.submit(job.function, job.payload)
        except Exception as error:
            future: Future = Future()
            where = type(self._backend).__name__ if self._backend else "workers backend"
            future.set_result(
                (FAILED, None, f"{describe(error)} (the {where} could not start the worker)")
            )
            return future

    def poll(self, handle: int) -> int:
        observed(self.vm, "workers", None)
        job = self._jobs.get(handle)
        return UNKNOWN if job is None else job.status

    def job(self, handle: int) -> WorkerJob | None:
        observed(self.vm, "workers", None)
        return self._jobs.get(handle)

    def released(self, handle: int) -> bool:
        """True if this VM gave out ``handle`` and has released its outcome."""
        return 0 < handle <= self.vm._counters.get("worker", 0) and handle not in self._jobs

    def released_message(self, handle: int) -> str:
        return (
            f"the outcome of worker {handle} was released: a VM keeps the outcomes of its "
            f"{KEPT_OUTCOMES:,} most recently settled workers (handles are plain ints, so it "
            f"cannot know when nobody needs one any more); read it soon after "
            f"`await cp.worker.wait({handle})`, or keep the value yourself"
        )

    def cancel(self, task: Task | None, handle: int) -> bool:
        job = self._jobs.get(handle)
        if job is None or job.status != PENDING:
            return False
        if job.due is None:  # still queued
            self._queued.remove(job)
        else:
            self._in_flight -= 1
            job.timer.remove(job)
            job.timer = None
            job.future.cancel()  # best effort; a job already running is abandoned
            job.future = None
        self._settle(job, CANCELLED, None, "", task)
        self._start_queued()
        return True

    def cancel_started_by(self, first_task: int) -> None:
        """Cancel the pending workers started by tasks ``first_task`` and later (a
        notebook cell's), in handle order."""
        for handle in sorted(self._jobs):
            job = self._jobs[handle]
            if job.status == PENDING and job.owner >= first_task:
                self.cancel(None, handle)

    # -- observation -------------------------------------------------------------------

    def _observe(self, job: WorkerJob) -> None:
        """The job's due tick: take its outcome (waiting for the host if need be)."""
        try:
            if noted_here():  # Ctrl-C noted just before: do not start waiting
                take_interrupt()
            status, value, error = job.future.result()
        except CancelledError:  # the backend dropped the job (a pool shut down meanwhile)
            status, value, error = FAILED, None, "the backend dropped the job (was it closed?)"
        except NondeterminismError:  # replay: the journal has no receipt for it
            job.timer = self.vm._add_timer(job.due, job)
            raise
        except Exception as failure:  # the backend's future failed: so did the worker
            status, value, error = FAILED, None, f"{describe(failure)} (the backend failed the job)"
        except BaseException:  # interrupted while waiting: observe it again next time
            job.timer = self.vm._add_timer(job.due, job)
            raise
        job.future = None
        self._in_flight -= 1
        self._settle(job, status, value, error, None)
        self._start_queued()

    def _settle(self, job: WorkerJob, status: int, value: Any, error: str, task: Task | None):
        job.status, job.result, job.error = status, value, error
        job.function = None  # (its closure may be large)
        settled = self._settled
        settled.append(job.handle)
        while len(settled) > KEPT_OUTCOMES:  # release the oldest outcomes
            del self._jobs[settled.popleft()]
        if status == COMPLETED:
            receipt = (status, encode(value), digest(value), "")
        else:
            receipt = (status, None, None, error)
        self._record(task, RECEIPT, job.handle, receipt)
        waiters, job.waiters = job.waiters, []
        by = 0 if task is None else task.id
        for waiter in waiters:
            if type(waiter) is Task:
                self.vm._wake(waiter, status, by)
            else:
                waiter._worker_done(status, by)

    def _start_queued(self) -> None:
        while self._queued and (self.max_workers is None or self._in_flight < self.max_workers):
            self._launch(self._queued.popleft(), None)

    def _record(self, task: Task | None, kind: int, handle: int, value: Any) -> None:
        self.vm._record(task, kind, handle, value)

    def close(self) -> None:
        """Release the backend if this VM made it (shared pools stay for other VMs)."""
        from ._backends import _SHARED

        backend, self._backend = self._backend, None
        owned = backend is not None and backend is not self.backend_spec
        if owned and backend not in _SHARED.values():
            backend.close()


safe_to_interrupt(Workers._observe)  # it re-arms the job's timer when interrupted
