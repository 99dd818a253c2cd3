"""``cp.worker``: real host parallelism with deterministic observation.

Register a plain function, start it from a task with a payload, and collect its
outcome.  The function runs on the VM's backend (``VM(workers=...)``: inline,
threads, processes or a Dask cluster), but *when* the outcome becomes visible is
decided by the VM alone: at virtual tick ``start + cost``.

>>> import counterpoint as cp
>>> @cp.worker.task
... def square(n):
...     return n * n
>>> async def main():
...     handles = [cp.worker.start("square", n, cost=n) for n in (3, 1, 2)]
...     first = await cp.worker.wait_any(handles)
...     statuses = [await cp.worker.wait(h) for h in handles]
...     return first, statuses, [cp.worker.result(h) for h in handles], cp.now()
>>> cp.VM().run(main())
([2], [1, 1, 1], [9, 1, 4], 3)

Status codes (``poll``, ``wait``): 0 pending, 1 completed, -1 failed,
-2 cancelled, -3 unknown handle.  See ``docs/workers.md``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any

from ._backends import Backend, DaskBackend, InlineBackend, ProcessBackend, ThreadBackend
from ._errors import InvalidStateError, WorkerFailed
from ._journal import A_SHIFT, BLOCK, MAX_TICK, tick_error
from ._plaindata import copy_plain
from ._task import BLOCKED, Task, park
from ._traps import PARK, RESCHEDULE, enter, fail_after_step, new_op, operation, require_task
from ._workers import CANCELLED, COMPLETED, FAILED, PENDING, REGISTRY, UNKNOWN

__all__ = [
    "CANCELLED",
    "COMPLETED",
    "FAILED",
    "PENDING",
    "UNKNOWN",
    "Backend",
    "DaskBackend",
    "InlineBackend",
    "ProcessBackend",
    "ThreadBackend",
    "cancel",
    "error",
    "poll",
    "result",
    "start",
    "task",
    "wait",
    "wait_any",
]


def task(function: Callable | None = None, *, name: str | None = None):
    """Register a plain function as a worker task, by name (its ``__name__`` by default).

    Usable as ``@cp.worker.task`` or ``@cp.worker.task(name="resize")``.  Registering
    a name again replaces the function (so re-running a notebook cell works).  The
    function takes one plain-data payload and returns plain data; it runs on the
    host and cannot use the VM.
    """

    def register(fn: Callable) -> Callable:
        if not callable(fn):
            raise TypeError(f"@cp.worker.task needs a function, got {type(fn).__name__}")
        if inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn):
            raise TypeError(
                f"{fn.__name__} is an `async def` function; worker tasks are plain functions "
                f"that run on the host (use cp.spawn for coroutines)"
            )
        key = name if name is not None else fn.__name__
        if not isinstance(key, str) or not key:
            raise TypeError(f"a worker task name must be a non-empty str, got {key!r}")
        REGISTRY[key] = fn
        fn.__counterpoint_worker__ = key
        return fn

    return register(function) if function is not None else register


def _table(what: str):
    return require_task(what)._vm._workers


def _check_handle(handle: Any, what: str) -> int:
    if not isinstance(handle, int) or isinstance(handle, bool):
        raise TypeError(f"{what} takes a worker handle (an int), got {type(handle).__name__}")
    return handle


def start(name: str | Callable, payload: Any = None, *, cost: int = 1) -> int:
    """Start worker task ``name`` on ``payload``; return its handle (ascending) at once.

    The outcome becomes visible at virtual tick ``now + cost`` (later if the VM's
    ``max_workers`` bound queues the start).  The payload must be plain data; the
    worker gets a copy.  Raises ``cp.PolicyError`` if the VM disables workers.
    """
    current = require_task("cp.worker.start()")
    if callable(name):
        registered = getattr(name, "__counterpoint_worker__", None)
        if registered is None:
            raise TypeError(
                f"{getattr(name, '__name__', name)!r} is not a registered worker task; "
                f"decorate it with @cp.worker.task"
            )
        name = registered
    if not isinstance(name, str):
        raise TypeError(f"cp.worker.start() takes a task name (str), got {type(name).__name__}")
    if not isinstance(cost, int) or isinstance(cost, bool):
        raise TypeError(f"cost must be a whole number of ticks (an int), got {cost!r}")
    if cost < 1:
        raise ValueError(f"cost must be at least 1 tick, got {cost}")
    if cost > MAX_TICK - current._vm._now:
        raise tick_error("cp.worker.start(cost={})", current._vm._now, cost, "use a lower cost")
    return current._vm._workers.start(current, name, payload, cost)


def poll(handle: int) -> int:
    """0 pending, 1 completed, -1 failed, -2 cancelled, -3 unknown handle (not a checkpoint).

    A handle whose outcome was released (see ``result``) is unknown again: -3."""
    return _table("cp.worker.poll()").poll(_check_handle(handle, "cp.worker.poll()"))


def result(handle: int) -> Any:
    """A copy of a completed worker's result.

    Raises ``cp.WorkerFailed`` (with the worker's error) if it failed and
    ``cp.InvalidStateError`` if it is pending, cancelled, unknown, or its outcome
    was released (a VM keeps the outcomes of its 10,000 most recently settled
    workers; see ``docs/workers.md``).
    """
    table = _table("cp.worker.result()")
    job = table.job(_check_handle(handle, "cp.worker.result()"))
    if job is None:
        if table.released(handle):
            raise InvalidStateError(table.released_message(handle))
        raise InvalidStateError(f"there is no worker {handle} in this VM")
    if job.status == COMPLETED:
        return copy_plain(job.result)
    if job.status == FAILED:
        raise WorkerFailed(f"worker {handle} ({job.name}) failed: {job.error}")
    if job.status == CANCELLED:
        raise InvalidStateError(f"worker {handle} ({job.name}) was cancelled; it has no result")
    raise InvalidStateError(
        f"worker {handle} ({job.name}) is still pending (due at tick {job.due}); "
        f"`await cp.worker.wait({handle})` first"
    )


def error(handle: int) -> str:
    """A failed worker's error, ``"ExceptionType: message"``; ``""`` for any other status.

    Raises ``cp.InvalidStateError`` if the worker's outcome was released (see
    ``result``)."""
    table = _table("cp.worker.error()")
    job = table.job(_check_handle(handle, "cp.worker.error()"))
    if job is None and table.released(handle):
        raise InvalidStateError(table.released_message(handle))
    return job.error if job is not None and job.status == FAILED else ""


def cancel(handle: int) -> bool:
    """Cancel a pending worker (status -2 at once); False if it was not pending.

    A queued worker never starts; a running one is abandoned on the host and its
    outcome is never observed.
    """
    current = require_task("cp.worker.cancel()")
    return current._vm._workers.cancel(current, _check_handle(handle, "cp.worker.cancel()"))


@operation(lambda handle: f"cp.worker.wait({handle})")
def _wait(handle: int):
    current = enter()
    if current._cancelled:
        return (yield from fail_after_step(current, current._vm._cancelled_error(current)))
    job = current._vm._workers.job(handle)
    if job is None or job.status != PENDING:
        yield RESCHEDULE
        return UNKNOWN if job is None else job.status
    park(current, job.waiters, ("worker", (handle,)), BLOCK | handle << A_SHIFT, _WAIT)
    return (yield PARK)


_WAIT = ("wait", "worker")


def wait(handle: int):
    """``await cp.worker.wait(h)``: the worker's final status (1, -1, -2; -3 if unknown)."""
    current = require_task("cp.worker.wait()")
    return new_op(current, _wait(_check_handle(handle, "cp.worker.wait()")))


class _AnyWaiter:
    """A task blocked in ``wait_any``, registered with each pending job."""

    __slots__ = ("jobs", "task")

    def __init__(self, current: Task, jobs: list) -> None:
        self.task = current
        self.jobs = jobs

    def unregister(self, _task: Task | None = None) -> None:
        for job in self.jobs:
            while self in job.waiters:
                job.waiters.remove(self)

    def _worker_done(self, status: int, by: int) -> None:  # (the waiter protocol)
        self.unregister()
        self.task._vm._wake(self.task, None, by)


@operation(lambda handles: f"cp.worker.wait_any({list(handles)})")
def _wait_any(handles: tuple):
    current = enter()
    vm = current._vm
    if current._cancelled:
        return (yield from fail_after_step(current, vm._cancelled_error(current)))
    table = vm._workers
    ready = sorted({h for h in handles if table.poll(h) != PENDING})
    if ready:
        yield RESCHEDULE
        return ready
    waiter = _AnyWaiter(current, [table.job(h) for h in sorted(set(handles))])
    for job in waiter.jobs:
        job.waiters.append(waiter)
    current._state = BLOCKED
    current._waitq = None
    current._cleanup = waiter.unregister
    current._waiting = ("worker", tuple(sorted(set(handles))))
    vm._record(current, BLOCK, 0, ("wait_any", "workers", sorted(set(handles))))
    yield PARK
    # every worker observed at this tick counts, in ascending handle order
    return sorted({h for h in handles if table.poll(h) != PENDING})


def wait_any(handles: Iterable[int]):
    """``await cp.worker.wait_any(handles)``: the handles that are done, ascending.

    Returns at once (after a schedule point) if some are already done (or unknown);
    otherwise waits for the first due tick at which one is observed, and returns
    every handle observed by then.
    """
    current = require_task("cp.worker.wait_any()")
    handles = tuple(_check_handle(h, "cp.worker.wait_any()") for h in handles)
    if not handles:
        raise ValueError("cp.worker.wait_any() needs at least one handle")
    return new_op(current, _wait_any(handles))
