"""The trap layer: the one narrow protocol between tasks and the scheduler.

A task talks to the scheduler only by yielding one of two traps from an
operation:

``RESCHEDULE``
    "I completed my operation; put me at the back of the ready queue."  This is
    what makes every await a schedule point even when it could finish at once.
``PARK``
    "I registered myself with something I wait on (a channel queue, a timer
    bucket, a join list ...); leave me until someone wakes me."  Whoever wakes
    the task sets the value to send (``task._val``) or the exception to throw
    (``task._exc``) and makes it ready again.

Anything else a task yields came from a foreign event loop and is refused.

Operations are generator functions decorated with :func:`operation`.  A
contract call such as ``cp.sleep(3)`` creates the generator and registers it
with :func:`new_op` as the running task's newest operation; the generator
clears the registration when it starts.  If an operation is dropped without
being awaited, the next operation (or the end of the task) notices and raises
``ForgottenAwaitError``.

Operations find the running task in ``running.task`` (set by the scheduler
before each resumption).  ``running_task`` is the checked accessor used by every
contract call, so that calls outside a VM task fail with a clear error.
"""

from __future__ import annotations

import gc
import sys
import threading
import types
from collections.abc import Callable
from threading import get_ident
from typing import TYPE_CHECKING, Any

from ._errors import ForgottenAwaitError, NotInTaskError

if TYPE_CHECKING:
    from ._task import Task


class Trap:
    """A scheduler trap: a unique, named sentinel yielded by operations."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<trap {self.name}>"


RESCHEDULE = Trap("reschedule")
PARK = Trap("park")


class Running:
    """Holds the task the scheduler is resuming right now (None between steps).

    A ``__slots__`` object rather than a module global: the scheduler writes it
    on every step, and a slot store is far cheaper than a module-dict store.
    ``thread`` is the thread the VM runs on: other threads (thread-backend
    workers, host threads) may run while a task runs, and must not pass for it.
    Awaitable operations read ``task`` directly (only a task can await them);
    synchronous entry points use :func:`task_here` or :func:`running_task`.
    """

    __slots__ = ("host_vm", "interrupts", "task", "thread")

    def __init__(self) -> None:
        self.task: Task | None = None
        self.thread = 0
        # Ctrl-C that arrived while the VM's own code ran: the scheduler raises
        # KeyboardInterrupt at its next safe point (see _interrupts.py)
        self.interrupts: list[int] = []
        # a notebook session's VM: on the main thread, outside tasks, cp.channel(),
        # cp.Lock() ..., cp.spawn() and cp.now() use it (see the kernel's docs)
        self.host_vm: Any = None


running = Running()


def _outside_the_vm_during_gc(phase: str, info: dict) -> None:
    """Hide the running task while the cyclic garbage collector runs on the VM's thread.

    When an abandoned VM is collected, Python closes its suspended coroutines,
    running their ``finally`` blocks and ``__aexit__`` methods.  On the VM's thread
    that can happen in the middle of another task's step; those finalizers must not
    act as if they were the running task, so during the collection there is none.
    A collection on another thread leaves ``running`` alone (the VM's thread may be
    running meanwhile); there the entry points' thread checks refuse finalizers.
    """
    if get_ident() != running.thread:
        return
    if phase == "start":
        _hidden.append(running.task)
        running.task = None
    elif _hidden:
        running.task = _hidden.pop()


_hidden: list = []
gc.callbacks.append(_outside_the_vm_during_gc)

# code object of each operation -> how to describe a call of it in messages
_DESCRIPTIONS: dict[types.CodeType, Callable[..., str]] = {}


def operation(describe: Callable[..., str]):
    """Make a generator function an awaitable VM operation.

    ``describe`` receives the operation's arguments and returns how the user
    wrote the call (``"cp.sleep(3)"``), for error messages.
    """

    def decorate(function):
        coroutine = types.coroutine(function)
        _DESCRIPTIONS[coroutine.__code__] = describe
        return coroutine

    return decorate


def is_operation(value: Any) -> bool:
    return type(value) is types.GeneratorType and value.gi_code in _DESCRIPTIONS


def describe(op: types.GeneratorType) -> str:
    frame = op.gi_frame
    if frame is None:
        return op.gi_code.co_name
    args = frame.f_locals
    return _DESCRIPTIONS[op.gi_code](**args)


def task_here() -> Task | None:
    """The running task if this code runs on the VM's thread; None elsewhere."""
    task = running.task
    if task is not None and get_ident() != running.thread:
        return None
    return task


def actor(what: str) -> Task | None:
    """Who performs a call that the host may make too: the running task, or None for
    the host.  Another thread, while a task runs, is refused (see ``Running``)."""
    task = running.task
    if task is not None and get_ident() != running.thread:
        running_task(what)  # raises, explaining
    return task


def task_or_session(what: str) -> tuple[Task | None, Any]:
    """(the running task, its VM); on the host, (None, the notebook session's VM) if
    there is one and this is the main thread; else raise as :func:`running_task`."""
    task = running.task
    if task is not None and get_ident() == running.thread:
        return task, task._vm
    session = running.host_vm
    if task is None and session is not None and get_ident() == threading.main_thread().ident:
        return None, session
    running_task(what)  # raises, explaining
    raise AssertionError  # pragma: no cover


def running_task(what: str) -> Task:
    """The running task; raise ``NotInTaskError`` naming ``what`` if there is none."""
    task = running.task
    if task is not None and get_ident() != running.thread:
        raise NotInTaskError(
            f"{what} was called from another thread (a worker function or host code) while "
            f"a task runs. Only tasks can use the VM: worker functions take a payload and "
            f"return a value; host threads talk to tasks with vm.events.enqueue()."
        )
    if task is None:
        if running.host_vm is not None:
            raise NotInTaskError(
                f"{what} was called outside a Counterpoint task. In a notebook cell, `await` "
                f"it (a cell with a top-level await runs as a task on the session VM), or "
                f"put the code in an `async def` and await that."
            )
        raise NotInTaskError(
            f"{what} was called outside a Counterpoint task. Contract calls work only inside "
            f"a coroutine that the VM runs: put the code in an `async def main()` and run it "
            f"with `vm.run(main())`."
        )
    return task


def discard(coro: Any) -> None:
    """Close a coroutine the VM refused, so Python does not warn it was never awaited."""
    close = getattr(coro, "close", None)
    if close is not None:
        close()


def here(task: Task | None, what: str) -> Task:
    """``task`` (the running task) if this is the VM's thread; else NotInTaskError.

    For operations that name no VM object (sleep, checkpoint, par ...), whose
    generators would otherwise act for whatever task runs on the VM's thread.
    """
    if task is None or get_ident() != running.thread:
        return running_task(what)
    return task


def enter() -> Task:
    """The first lines of a checkpointing operation: the running task, with its
    newest-operation mark cleared; ``Cancelled`` if it is cancelled (a cancel point).

    (The channel operations and ``sleep`` inline this: they are the hot paths.)
    """
    task = running.task
    task._fresh = None
    if task._cancelled:
        raise task._vm._cancelled_error(task)
    return task


def new_op(task: Task, op: types.GeneratorType) -> types.GeneratorType:
    """Register ``op`` as ``task``'s newest operation (checking the previous one) and return it."""
    if task._fresh is not None:
        check_fresh(task)
    task._fresh = op
    return op


def check_fresh(task: Task) -> None:
    """Raise ``ForgottenAwaitError`` if the task's last created operation was dropped.

    If nothing but the registration refers to the operation any more, it can
    never be awaited: the user wrote the call without ``await``.
    """
    op = task._fresh
    task._fresh = None
    # references: the local `op` and getrefcount's argument
    if op is not None and sys.getrefcount(op) <= 2:
        call = describe(op)
        raise ForgottenAwaitError(
            f"{call} was called but never awaited, so it did nothing. "
            f"Write `await {call}` (VM operations only act when awaited)."
        )


def observed(vm: Any, kind: str, number: Any) -> None:
    """A task read the state of VM object ``(kind, number)`` without writing a journal
    record (``event.is_set()``, ``channel.closed``, ``task.done()`` ...).  Exploration
    counts the read in the step's footprint, so partial-order reduction orders it
    against the writes of other tasks; otherwise this does nothing."""
    chooser = vm._chooser
    if chooser is not None and running.task is not None:
        chooser.observe((kind, number))
