"""Running a notebook cell on a VM: a root task that is never abandoned.

``vm.run`` gives up on a root that deadlocks, exceeds ``max_steps`` or is
interrupted: it cancels what the run started and raises on the host, and the
cancelled tasks clean up at the next run.  A notebook cell cannot be left like
that, because its root task is IPython's own ``run_cell_async`` coroutine, with
the cell's code inside it: resumed during a later cell, it would print into that
cell.  So :func:`run_cell` *tells the cell* instead: it cancels every other task
the cell started (journaled), and raises the problem -- ``cp.Deadlock``,
``cp.StepLimitExceeded`` or ``KeyboardInterrupt`` -- inside the cell's task, at
its ``await``, where the user's traceback points.  It then drives the VM on
until the cell's task has finished (its ``finally`` blocks and scopes unwinding
as usual), so the cell ends cleanly and the next one starts on a consistent VM.

The delivery uses cancellation: the root task is cancelled, and every checkpoint
it reaches raises the problem instead of ``cp.Cancelled`` (``VM._cancel_errors``).
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

MAX_DELIVERIES = 3  # then the cell's task is dropped (its cleanup keeps failing)
CELL_HINT = (
    "If the cell really needs more steps, raise the limit with `%vm reset --max-steps N` "
    "(or `none`)."
)


class CellRun(NamedTuple):
    """What :func:`run_cell` did: the root's ``result``, and the ``problem`` it
    raised inside the cell, if any (the caller checks that the cell reported it)."""

    result: Any
    problem: BaseException | None


def run_cell(vm: Any, coro: Any, name: str) -> CellRun:
    """Run ``coro`` as a root task named ``name`` until it finishes, delivering any
    deadlock, step-limit or interrupt into it (see the module docstring)."""
    vm._claim("a notebook cell", coro)
    try:
        return _run_cell(vm, coro, name)
    finally:
        vm._release()


def _run_cell(vm: Any, coro: Any, name: str) -> CellRun:
    root = vm._spawn(coro, name, None, None, "a notebook cell")
    problem: BaseException | None = None
    deliveries = 0
    with DeferredInterrupts():
        while True:
            budget = vm._max_steps if vm._max_steps is not None else sys.maxsize
            try:
                vm._drive(root, budget)
                trouble = None
            except KeyboardInterrupt as interrupt:
                trouble = _interruption(vm, interrupt)
            if root._state >= S_DONE:
                if trouble is not None:  # the cell's own task was interrupted: it is over
                    problem = trouble
                break
            if trouble is None:
                if vm._ready or vm._has_timers():
                    trouble = StepLimitExceeded(
                        vm._step_limit_message(root, f"the cell {name!r}", CELL_HINT)
                    )
                else:
                    trouble = vm._deadlock(root, "the notebook cell")
            trouble.__traceback__ = None
            problem = trouble
            deliveries += 1
            if deliveries > MAX_DELIVERIES:
                _drop(vm, root)
                break
            _deliver(vm, root, trouble)
        vm._flush_hooks()
        vm._cancel_errors.pop(root.id, None)
        primary = root._error if root._state == S_FAILED else problem
        if root._state != S_DONE and primary is None:
            primary = vm._cancelled_error(root)
            problem = primary
        vm._warn_unobserved(root, primary)
    if root._state == S_DONE:
        return CellRun(root._result, problem)
    if root._state == S_FAILED:
        raise root._error
    raise problem


def _interruption(vm: Any, interrupt: KeyboardInterrupt) -> KeyboardInterrupt:
    """The KeyboardInterrupt to raise in the cell: it names the task that was
    running (its own frames are in the cause)."""
    from ._vm import user_traceback

    task, vm._interrupted = vm._interrupted, None
    if task is None:
        return KeyboardInterrupt(f"interrupted at tick {vm.now}, between two steps")
    user_traceback(interrupt)
    fresh = KeyboardInterrupt(
        f"interrupted at tick {vm.now} while task {task.id} {task.name!r} ran "
        f"(it is cancelled; the cell's other tasks too)"
    )
    fresh.__cause__ = interrupt
    return fresh


def _reason(problem: BaseException) -> str:
    if isinstance(problem, KeyboardInterrupt):
        return "the cell was interrupted"
    if isinstance(problem, StepLimitExceeded):
        return "the cell exceeded max_steps"
    return "the cell deadlocked"


def _deliver(vm: Any, root: Task, problem: BaseException) -> None:
    """Cancel the cell's other tasks and its pending workers, then raise ``problem``
    in the cell's task."""
    reason = _reason(problem)
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
        if root._waitq is not None:
            root._waitq.remove(root)
        if root._cleanup is not None:
            root._cleanup(root)
        root._exc = vm._cancelled_error(root)
        root._state = READY
        vm._ready.append(root)


def _drop(vm: Any, root: Task) -> None:
    """Last resort: the cell's task keeps failing to unwind.  Take it out of the VM
    without resuming or closing it (closing would run IPython's handlers now)."""
    vm._journal_cancel(root, 0, "the cell could not unwind and was dropped")
    if root._state == BLOCKED:
        if root._waitq is not None and root in root._waitq:
            root._waitq.remove(root)
        if root._cleanup is not None and root._cleanup is not UNINTERRUPTIBLE:
            root._cleanup(root)
    elif root in vm._ready:
        vm._ready.remove(root)
    vm._stranded.append(root._coro)  # kept, so never collected and closed
    root._state = S_CANCELLED
    vm._rows.append(root._k | CANCELLED)
    vm._task_exit(root)
