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

Operations find the running task in ``current().task`` (set by the
scheduler of this thread before each resumption).  The accessors say what a call
accepts: :func:`require_task` (a task, else ``NotInTaskError``),
:func:`task_or_host` (a task, or None for host code), :func:`task_or_session`
(also a notebook session's VM); all refuse worker functions
(``WorkerIsolationError``).
"""

from __future__ import annotations

import gc
import sys
import threading
import types
from collections.abc import Callable
from contextvars import ContextVar
from threading import get_ident
from typing import TYPE_CHECKING, Any

from ._errors import ForgottenAwaitError, NotInTaskError, WorkerIsolationError

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


class RunState:
    """What this thread is doing for a VM right now: the task being resumed (None
    between steps), or the worker function running here (None outside workers).

    The scheduler sets a fresh one for as long as it drives a VM (``VM._drive``) and
    writes ``task`` on every step (a ``__slots__`` store, the cheapest there is);
    operations read it with :func:`current`.  It lives in a context variable, which
    every thread has its own value of, so separate VMs run on separate threads
    without seeing each other's tasks, and a thread that drives no VM -- a worker,
    a host thread -- sees :data:`IDLE` and never passes for a task.
    (``ContextVar.get`` is several times cheaper than a ``threading.local`` lookup,
    and operations read it on every await.)
    """

    __slots__ = ("hidden", "ident", "task", "worker")

    def __init__(self, worker: str | None = None) -> None:
        self.task: Task | None = None
        self.worker = worker  # "worker function 'name'" while one runs here
        self.hidden: Task | None = None  # the task hidden while the garbage collector runs
        self.ident = get_ident()


IDLE = RunState()  # what code outside any VM sees; never written
IDLE.ident = 0
_run_state: ContextVar[RunState] = ContextVar("counterpoint_run_state", default=IDLE)


def enter_run_state(state: RunState) -> RunState:
    """Make ``state`` this thread's run state; return the one it replaces (give it to
    :func:`leave_run_state`).

    Always ``set``, never ``reset``: on CPython 3.11 resetting a variable to "no
    value" deletes it from the context, and if the garbage collector runs during
    that deletion (our ``gc.callbacks`` hook reads the variable) the variable's cache
    keeps a pointer to the deleted value, which may then be freed (a crash found by
    the test suite).  ``set`` refreshes the cache after its change.
    """
    previous = _run_state.get()
    _run_state.set(state)
    return previous


leave_run_state = _run_state.set

if getattr(sys.flags, "thread_inherit_context", 0):  # (Python 3.14+ may give threads ours)

    def current() -> RunState:
        """This thread's run state (:data:`IDLE` when it drives no VM)."""
        state = _run_state.get()
        return state if state.ident == get_ident() else IDLE

else:
    current = _run_state.get


class Session:
    """A notebook session's VM: on the main thread, outside tasks, ``cp.channel()``,
    ``cp.Lock()`` ..., ``cp.spawn()`` and ``cp.now()`` use it (see docs/kernel.md)."""

    __slots__ = ("vm",)

    def __init__(self) -> None:
        self.vm: Any = None


session = Session()


def _outside_the_vm_during_gc(phase: str, info: dict) -> None:
    """Hide the running task while the cyclic garbage collector runs on its thread.

    When an abandoned VM is collected, Python closes its suspended coroutines,
    running their ``finally`` blocks and ``__aexit__`` methods.  That can happen in
    the middle of another task's step; those finalizers must not act as if they
    were the running task, so during the collection this thread runs none (and the
    entry points treat them as host code, refused while the VM runs).
    """
    state = current()
    if state is IDLE:
        return
    if phase == "start":
        state.hidden, state.task = state.task, None
    else:
        state.task, state.hidden = state.hidden, None


gc.callbacks.append(_outside_the_vm_during_gc)


class in_worker:
    """``with in_worker(name):`` around a worker function: here there is no task, and
    every VM entry point raises ``WorkerIsolationError`` (docs/workers.md)."""

    __slots__ = ("previous", "what")

    def __init__(self, name: str) -> None:
        self.what = f"worker function {name!r}"

    def __enter__(self) -> None:
        self.previous = enter_run_state(RunState(self.what))

    def __exit__(self, *exc_info: Any) -> None:
        leave_run_state(self.previous)


def refuse_worker(state: RunState, what: str) -> None:
    """Raise ``WorkerIsolationError`` if a worker function runs here."""
    if state.worker is not None:
        raise WorkerIsolationError(
            f"{what} was called from {state.worker}. Worker functions are isolated from "
            f"the VM: they take a payload and return a value, and only tasks act on the "
            f"VM. Return what the tasks need (they get it from cp.worker.result)."
        )


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


def this_task() -> Task | None:
    """The task running on this thread, or None (host code, another thread, a worker)."""
    return current().task


def require_task(what: str) -> Task:
    """The task running on this thread; else ``NotInTaskError`` (``WorkerIsolationError``
    in a worker function) naming ``what``."""
    state = current()
    task = state.task
    if task is not None:
        return task
    refuse_worker(state, what)
    if session.vm is not None:
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


def task_or_host(what: str) -> Task | None:
    """Who makes a call that the host may make too: the running task, or None for host
    code (which then goes through ``vm._as_host``).  A worker function is refused."""
    state = current()
    task = state.task
    if task is None:
        refuse_worker(state, what)
    return task


def task_or_session(what: str) -> tuple[Task | None, Any]:
    """(the running task, its VM); in host code on the main thread of a notebook
    session, (None, the session's VM); else raise as :func:`require_task`."""
    task = current().task
    if task is not None:
        return task, task._vm
    vm = session.vm
    if vm is not None and threading.current_thread() is threading.main_thread():
        refuse_worker(current(), what)
        return None, vm
    require_task(what)  # raises, explaining
    raise AssertionError  # pragma: no cover


def discard(coro: Any) -> None:
    """Close a coroutine the VM refused, so Python does not warn it was never awaited."""
    close = getattr(coro, "close", None)
    if close is not None:
        close()


def enter() -> Task:
    """The first line of an operation's generator: the running task, with its
    newest-operation mark cleared.  (The channel operations and ``sleep`` inline
    this: they are the hot paths.)  An operation that cannot go ahead -- the task is
    cancelled, the channel is closed -- raises with :func:`fail_after_step`."""
    task = current().task
    task._fresh = None
    return task


def fail_after_step(task: Task, error: BaseException):
    """``raise error`` at the await, after a schedule point: the task goes to the back
    of the ready queue and ``error`` is raised when it is next resumed.

    Every await is a step, even one that fails at once (a cancelled task's
    checkpoint, a send on a closed channel): a task that keeps catching the error
    and awaiting again is still counted by ``max_steps`` and journaled, and lets the
    other tasks run, instead of spinning inside one step forever.
    """
    task._exc = error
    del error  # (this frame is in the error's traceback: holding it would be a cycle)
    yield RESCHEDULE
    raise AssertionError("unreachable: the scheduler throws the error in")  # pragma: no cover


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
    state = current()
    if state.task is not None:
        if chooser is not None:
            chooser.observe((kind, number))
    elif state.worker is not None:
        refuse_worker(state, f"reading {kind} {number}")
