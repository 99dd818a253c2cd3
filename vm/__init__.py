"""Counterpoint: a deterministic concurrency VM for ordinary ``async def`` Python.

Same program + same seed + same policy gives the same journal, byte for byte,
in any process and on any machine.

>>> import counterpoint as cp
>>> async def main():
...     ch = cp.channel()
...     async def producer():
...         for i in range(3):
...             await ch.send(i)
...             await cp.sleep(1)
...         ch.close()
...     cp.spawn(producer(), name="producer")
...     return [v async for v in ch]
>>> vm = cp.VM()
>>> vm.run(main()), vm.now
([0, 1, 2], 3)
"""

from . import events, worker
from ._channel import Channel, RecvStatus, SendStatus, channel
from ._errors import (
    Cancelled,
    ChannelClosed,
    CounterpointError,
    Deadlock,
    ForeignAwaitableError,
    ForgottenAwaitError,
    InvalidStateError,
    JournalError,
    LimitExceeded,
    LockError,
    NondeterminismError,
    NotInTaskError,
    PolicyError,
    ScheduleError,
    ScopeClosed,
    StepLimitExceeded,
    TickRangeError,
    UnknownWorkerTask,
    UnobservedTaskFailure,
    VMBusyError,
    WorkerFailed,
    WorkerIsolationError,
    WorkerLost,
    WrongVMError,
)
from ._explore import ExploreReport, Finding, Pruned, choose, explore, require
from ._journal import Journal, Record
from ._ops import checkpoint, current_task, now, rng, sleep, spawn
from ._plaindata import NotPlainData
from ._replay import check_determinism, replay
from ._scope import Scope, Slot, par, scope
from ._select import SelectResult, SelectTag, select
from ._shared import shared
from ._sync import (
    Barrier,
    BoundedSemaphore,
    Condition,
    CountdownEvent,
    Event,
    Lock,
    RLock,
    Semaphore,
)
from ._task import Task, TaskInfo
from ._vm import VM
from .events import HostEvent

__version__ = "0.1.0"


def load_ipython_extension(shell) -> None:
    """``%load_ext counterpoint``: this IPython shell gets a session VM (see
    ``docs/kernel.md``).  Imports IPython only when called."""
    from .ipython import load

    load(shell)


def __getattr__(name: str):
    """``cp.widgets`` (pictures of a run) is imported on first use, not with
    ``counterpoint``; it is not in ``__all__`` (the notebook namespace preloads that)."""
    if name == "widgets":
        import importlib

        return importlib.import_module("counterpoint.widgets")
    raise AttributeError(f"module 'counterpoint' has no attribute {name!r}")


def unload_ipython_extension(shell) -> None:
    from .ipython import unload

    unload(shell)


__all__ = [
    "VM",
    "Barrier",
    "BoundedSemaphore",
    "Cancelled",
    "Channel",
    "ChannelClosed",
    "Condition",
    "CounterpointError",
    "CountdownEvent",
    "Deadlock",
    "Event",
    "ExploreReport",
    "Finding",
    "ForeignAwaitableError",
    "ForgottenAwaitError",
    "HostEvent",
    "InvalidStateError",
    "Journal",
    "JournalError",
    "LimitExceeded",
    "Lock",
    "LockError",
    "NondeterminismError",
    "NotInTaskError",
    "NotPlainData",
    "PolicyError",
    "Pruned",
    "RLock",
    "Record",
    "RecvStatus",
    "ScheduleError",
    "Scope",
    "ScopeClosed",
    "SelectResult",
    "SelectTag",
    "Semaphore",
    "SendStatus",
    "Slot",
    "StepLimitExceeded",
    "Task",
    "TaskInfo",
    "TickRangeError",
    "UnknownWorkerTask",
    "UnobservedTaskFailure",
    "VMBusyError",
    "WorkerFailed",
    "WorkerIsolationError",
    "WorkerLost",
    "WrongVMError",
    "channel",
    "check_determinism",
    "checkpoint",
    "choose",
    "current_task",
    "events",
    "explore",
    "now",
    "par",
    "replay",
    "require",
    "rng",
    "scope",
    "select",
    "shared",
    "sleep",
    "spawn",
    "worker",
]
