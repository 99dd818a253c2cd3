"""The named exceptions of Counterpoint.

Every error a user can provoke has its own class and a message that says what
happened, where, and what to do instead.  ``Cancelled`` is a ``BaseException``
(like ``asyncio.CancelledError`` and ``trio.Cancelled``) so that a bare
``except Exception`` in user code does not swallow cancellation.
"""

from __future__ import annotations

from typing import Any


class CounterpointError(Exception):
    """Base class of the errors raised by the VM itself."""


class Cancelled(BaseException):
    """Raised at a task's await point when the task (or a scope around it) is cancelled.

    Let it propagate: ``finally`` blocks run, and the enclosing scope or the
    task's joiner sees the task as cancelled.  Inside a cancelled scope every
    further checkpoint raises it again (level-triggered, as in trio); use
    ``cp.scope(shield=True)`` for cleanup that must await.
    """


class Deadlock(CounterpointError):
    """No task can make progress while the root task of ``vm.run`` is still waiting.

    ``.blocked`` lists ``(task_id, name, waiting_on)`` for every blocked task, in
    ascending task id; the message says the same in words.  ``.finished`` lists
    ``(task_id, name, how)`` for every task that had ended by then (``how``: ``"done"``,
    ``"failed"`` or ``"cancelled"``), in ascending task id.
    """

    def __init__(
        self,
        message: str,
        blocked: list[tuple[int, str, str]] | None = None,
        finished: list[tuple[int, str, str]] | None = None,
    ):
        super().__init__(message)
        self.blocked = blocked or []
        self.finished = finished or []


class StepLimitExceeded(CounterpointError):
    """``vm.run`` performed more task resumptions than ``VM(max_steps=...)`` allows."""


class LimitExceeded(CounterpointError):
    """A resource bound (such as ``cp.scope(max_children=...)``) would be exceeded."""


class TickRangeError(LimitExceeded, ValueError):
    """A number of ticks (``cp.sleep``, a scope or select ``timeout``, a worker ``cost``)
    would put a deadline past the last tick a journal can hold (2**62 - 1): the message
    says the call, the tick it would reach and the bound."""


class ChannelClosed(CounterpointError):
    """Send on a closed channel, or receive on a closed channel that has been drained."""


class ScopeClosed(CounterpointError, RuntimeError):
    """A task was spawned into a scope whose ``async with`` block has already exited."""


class NotInTaskError(CounterpointError, RuntimeError):
    """A contract call that needs a running VM task was made outside one."""


class ForeignAwaitableError(CounterpointError, RuntimeError):
    """A VM task awaited an object from another event loop (asyncio, trio, ...)."""


class ForgottenAwaitError(CounterpointError, RuntimeError):
    """A VM operation such as ``cp.sleep(1)`` was created but never awaited."""


class InvalidStateError(CounterpointError, RuntimeError):
    """An object was used in a state that does not allow it: a task's result asked for
    before the task finished, a task awaiting itself, a scope used before it was
    entered or entered twice, a released worker outcome."""


class WrongVMError(CounterpointError, RuntimeError):
    """An object that belongs to one VM was used from a task of another VM."""


class VMBusyError(CounterpointError, RuntimeError):
    """A VM was driven (``vm.run``, ``vm.step`` ...) while it is already running: from
    inside one of its tasks, or from a second thread at the same time."""


class WorkerIsolationError(NotInTaskError):
    """A worker function (any backend) tried to use a VM: workers take a payload and
    return a value; only tasks act on the VM."""


class LockError(CounterpointError, RuntimeError):
    """A lock or condition was misused: released by a task that does not hold it,
    acquired again by its holder, or waited on / notified without holding it."""


class ScheduleError(CounterpointError, ValueError):
    """A schedule string (``VM(schedule=...)``) is malformed or does not fit the run."""


class PolicyError(CounterpointError):
    """An operation the VM's policy forbids (e.g. workers with ``max_workers=0``)."""


class UnknownWorkerTask(CounterpointError, LookupError):
    """``cp.worker.start`` named a function that is not registered with ``@cp.worker.task``."""


class WorkerFailed(CounterpointError):
    """``cp.worker.result(h)`` of a worker that failed; the message is its error."""


class WorkerLost(CounterpointError, RuntimeError):
    """A distributed ``cp.explore`` lost a Dask worker process again and again on the
    same part of the search (Dask retries a job whose worker died)."""


class JournalError(CounterpointError):
    """A journal file is missing, truncated, corrupted, of another version, or unwritable."""


class NondeterminismError(CounterpointError):
    """A replay (or a repeated run) did not produce the same journal as the original.

    ``.event_id`` is the first event that differs; ``.expected`` and ``.got`` the
    two records (None where one side has ended).
    """

    def __init__(self, message: str, event_id: int = 0, expected: Any = None, got: Any = None):
        super().__init__(message)
        self.event_id = event_id
        self.expected = expected
        self.got = got


class UnobservedTaskFailure(RuntimeWarning):
    """Warned at the end of ``vm.run`` for each detached task that failed unobserved."""


# Show the public module in tracebacks: `counterpoint.Deadlock`, not `counterpoint._errors...`.
for _error in (
    CounterpointError,
    Cancelled,
    Deadlock,
    StepLimitExceeded,
    LimitExceeded,
    TickRangeError,
    ChannelClosed,
    ScopeClosed,
    NotInTaskError,
    ForeignAwaitableError,
    ForgottenAwaitError,
    InvalidStateError,
    WrongVMError,
    VMBusyError,
    WorkerIsolationError,
    LockError,
    ScheduleError,
    PolicyError,
    UnknownWorkerTask,
    WorkerFailed,
    JournalError,
    NondeterminismError,
    UnobservedTaskFailure,
):
    _error.__module__ = "counterpoint"
del _error
