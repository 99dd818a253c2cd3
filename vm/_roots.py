"""Running a root task that is never abandoned (a notebook cell is one).

``vm.run`` gives up on a root that deadlocks, exceeds ``max_steps`` or is
interrupted: it cancels what the run started and raises on the host, and the
cancelled tasks clean up at the next run.  Some roots cannot be left like that: a
notebook cell's root task is IPython's own ``run_cell_async`` coroutine, with the
cell's code inside it; resumed during a later cell, it would print into that cell.
So :func:`run_root` *tells the root* instead: it cancels every other task the root
started (journaled), and raises the problem -- ``cp.Deadlock``,
``cp.StepLimitExceeded`` or ``KeyboardInterrupt`` -- inside the root task, at its
``await``, where the user's traceback points.  It then drives the VM on until the
root has finished (its ``finally`` blocks and scopes unwinding as usual), so the
VM is consistent for whatever runs next.

The delivery uses cancellation: the root task is cancelled, and every checkpoint
it reaches raises the problem instead of ``cp.Cancelled`` (``VM._cancel_errors``).
The words (``label``, ``role``, ``hint``) come from the caller: the IPython
extension says "the cell" (``counterpoint.ipython.cells``).
"""

from __future__ import annotations

import sys
from typing import Any, NamedTuple

from ._errors import StepLimitExceeded
from ._interrupts import DeferredInterrupts
from ._journal import CANCELLED
from ._task import BLOCKED, READY, UNINTERRUPTIBLE, Task
from ._task import CANCELLED as S_CANCELLED
from ._task import DONE as S_DONE
from ._task import FAILED as S_FAILED

MAX_DELIVERIES = 3  # then the root task is dropped (its cleanup keeps failing)


class RootRun(NamedTuple):
    """What :func:`run_root` did: the root's ``result``, and the ``problem`` it
    raised inside the root, if any (the caller checks that the root reported it)."""

    result: Any
    problem: BaseException | None


class Words(NamedTuple):
    """How messages and journal records name a kept root: ``label`` ("the cell": "the
    cell deadlocked"), ``role`` in a ``Deadlock`` ("the notebook cell"), ``what`` for
    a refused call ("a notebook cell") and ``hint`` after a step-limit message."""

    label: str = "the root"
    role: str = "a root that is never abandoned"
    what: str = "lowlevel.run_root()"
    hint: str = "If the root really needs more steps, raise VM(max_steps=...)."


_WORDS = Words()


def run_root(vm: Any, coro: Any, name: str, words: Words = _WORDS) -> RootRun:
    """Run ``coro`` as a root task named ``name`` until it finishes, delivering any
    deadlock, step-limit or interrupt into it (see the module docstring)."""
    vm._claim(words.what, coro)
    try:
        return _run_root(vm, coro, name, words)
    finally:
        vm._release()


def _run_root(vm: Any, coro: Any, name: str, words: Words) -> RootRun:
    root = vm._spawn(coro, name, None, None, words.what)
    problem: BaseException | None = None
    deliveries = 0
    with DeferredInterrupts():
        while True:
            budget = vm._max_steps if vm._max_steps is not None else sys.maxsize
            try:
                vm._drive(root, budget)
                trouble = None
            except KeyboardInterrupt as interrupt:
                trouble = _interruption(vm, interrupt, words)
            if root._state >= S_DONE:
                if trouble is not None:  # the cell's own task was interrupted: it is over
                    problem = trouble
                break
            if trouble is None:
                if vm._ready or vm._has_timers():
                    trouble = StepLimitExceeded(
                        vm._step_limit_message(root, f"{words.label} {name!r}", words.hint)
                    )
                else:
                    trouble = vm._deadlock(root, words.role)
            trouble.__traceback__ = None
            problem = trouble
            deliveries += 1
            if deliveries > MAX_DELIVERIES:
                _drop(vm, root, words)
                break
            _deliver(vm, root, trouble, words)
        vm._flush_hooks()
        vm._cancel_errors.pop(root.id, None)
        primary = root._error if root._state == S_FAILED else problem
        if root._state != S_DONE and primary is None:
            primary = vm._cancelled_error(root)
            problem = primary
        vm._warn_unobserved(root, primary)
    if root._state == S_DONE:
        return RootRun(root._result, problem)
    if root._state == S_FAILED:
        raise root._error
    raise problem


def _interruption(vm: Any, interrupt: KeyboardInterrupt, words: Words) -> KeyboardInterrupt:
    """The KeyboardInterrupt to raise in the root: it names the task that was
    running (its own frames are in the cause)."""
    from ._vm import user_traceback

    kept = vm._kept
    task, kept.interrupted = kept.interrupted, None
    if task is None:
        return KeyboardInterrupt(f"interrupted at tick {vm.now}, between two steps")
    user_traceback(interrupt)
    fresh = KeyboardInterrupt(
        f"interrupted at tick {vm.now} while task {task.id} {task.name!r} ran "
        f"(it is cancelled; {words.label}'s other tasks too)"
    )
    fresh.__cause__ = interrupt
    return fresh


def _reason(problem: BaseException, words: Words) -> str:
    if isinstance(problem, KeyboardInterrupt):
        return f"{words.label} was interrupted"
    if isinstance(problem, StepLimitExceeded):
        return f"{words.label} exceeded max_steps"
    return f"{words.label} deadlocked"


def _deliver(vm: Any, root: Task, problem: BaseException, words: Words) -> None:
    """Cancel the root's other tasks and its pending workers, then raise ``problem``
    in the root task."""
    reason = _reason(problem, words)
    for task in list(vm._live.values()):
        if task.id > root.id:
            vm._cancel_node(task, 0, reason)
    vm._workers.cancel_started_by(root.id)  # and the workers they started
    vm._cancel_errors[root.id] = problem
    if not root._cancel_called:
        vm._cancel_node(root, 0, reason)
        if root._state == READY and root._exc is None:
            # woken, not yet resumed (by the end of the task it joined, say): raise
            # the problem at that await rather than hand over what it was waiting for
            root._exc = vm._cancelled_error(root)
    elif root._state == BLOCKED and root._cleanup is not UNINTERRUPTIBLE:
        # already cancelled, and blocked again (in a shielded scope, say): wake it
        vm._journal_cancel(root, 0, reason)
        vm._unpark(root)
        vm._throw(root, vm._cancelled_error(root))


def _drop(vm: Any, root: Task, words: Words) -> None:
    """Last resort: the root task keeps failing to unwind.  Take it out of the VM
    without resuming or closing it (closing would run IPython's handlers now)."""
    vm._journal_cancel(root, 0, f"{words.label} could not unwind and was dropped")
    if root._state == BLOCKED:
        vm._unpark(root)
    elif root in vm._ready:
        vm._ready.remove(root)
    vm._kept.stranded.append(root._coro)  # kept, so never collected and closed
    root._state = S_CANCELLED
    vm._record(root, CANCELLED)
    vm._task_exit(root)
