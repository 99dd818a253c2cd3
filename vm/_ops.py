"""Operations on time and tasks: checkpoint, sleep, now, spawn, current_task, rng.

Awaitable operations are generator functions made into VM operations by
``_traps.operation``; each public function checks its arguments, creates the
generator and registers it with the running task (see ``_traps``).
"""

from __future__ import annotations

import random
from typing import Any

from ._errors import WrongVMError
from ._journal import SLEEP, tick_error, tick_text
from ._task import BLOCKED, Task
from ._traps import (
    PARK,
    RESCHEDULE,
    check_fresh,
    current,
    describe,
    discard,
    fail_after_step,
    new_op,
    operation,
    require_task,
    task_or_session,
    this_task,
)


def adopt(op: Any):
    """Wrap an operation in a coroutine so it can be spawned (``cp.par(ch.recv(), ...)``)."""
    task = this_task()
    if task is not None and task._fresh is op:
        task._fresh = None
    coro = _run_adopted(op)
    coro.__name__ = describe(op)  # the task's default name, e.g. "cp.sleep(2)"
    return coro


async def _run_adopted(op: Any) -> Any:
    return await op


def same_vm(task: Task, vm: Any, what: str) -> None:
    if task._vm is not vm:
        raise WrongVMError(
            f"{what} belongs to another VM than the running task; objects cannot be shared "
            f"between VMs"
        )


@operation(lambda: "cp.checkpoint()")
def _checkpoint():
    task = current().task
    task._fresh = None
    if task._cancelled:
        return (yield from fail_after_step(task, task._vm._cancelled_error(task)))
    yield RESCHEDULE


def checkpoint():
    """``await cp.checkpoint()``: a schedule point and a cancel point, nothing else.

    >>> import counterpoint as cp
    >>> async def main():
    ...     order = []
    ...     async def worker(name):
    ...         for step in range(2):
    ...             order.append(f"{name}{step}")
    ...             await cp.checkpoint()  # let the other task run
    ...     await cp.par(worker("a"), worker("b"))
    ...     return order
    >>> cp.VM().run(main())
    ['a0', 'b0', 'a1', 'b1']
    """
    task = current().task
    if task is None:
        task = require_task("cp.checkpoint()")
    return new_op(task, _checkpoint())


@operation(lambda ticks: f"cp.sleep({ticks if ticks < 10**30 else tick_text(ticks)})")
def _sleep(ticks):
    task = current().task
    task._fresh = None
    vm = task._vm
    if task._cancelled:
        return (yield from fail_after_step(task, vm._cancelled_error(task)))
    until = vm._now + ticks
    if until > 4611686018427387903:  # MAX_TICK, 2**62 - 1 (a literal: this is a hot path)
        raise tick_error("cp.sleep({})", vm._now, ticks, "sleep fewer ticks")
    vm._rows.append(task._k | SLEEP)
    vm._vals.append(until)
    if ticks:
        task._state = BLOCKED
        task._waitq = vm._add_timer(until, task)
        task._cleanup = None
        task._waiting = ("sleep", until)
        yield PARK
    else:
        yield RESCHEDULE


def sleep(ticks: int):
    """``await cp.sleep(ticks)``: wait ``ticks`` of virtual time (``sleep(0)`` = checkpoint).

    >>> import counterpoint as cp
    >>> async def main():
    ...     await cp.sleep(5)
    ...     return cp.now()
    >>> cp.VM().run(main())
    5
    """
    task = current().task
    if task is None:
        task = require_task("cp.sleep()")
    if type(ticks) is not int:
        if not isinstance(ticks, int) or isinstance(ticks, bool):
            raise TypeError(
                f"cp.sleep() takes a whole number of ticks (an int), got "
                f"{type(ticks).__name__} {ticks!r}"
            )
        ticks = int(ticks)
    if ticks < 0:
        raise ValueError(
            f"cp.sleep() needs a non-negative number of ticks, got {ticks}; "
            f"virtual time only moves forward"
        )
    op = _sleep(ticks)
    if task._fresh is not None:
        check_fresh(task)
    task._fresh = op
    return op


def now() -> int:
    """The VM's virtual time, in ticks (inside a task; on the host use ``vm.now``).

    >>> import counterpoint as cp
    >>> async def main():
    ...     before = cp.now()
    ...     await cp.sleep(7)
    ...     return before, cp.now()
    >>> cp.VM().run(main())
    (0, 7)
    """
    return task_or_session("cp.now()")[1]._now


def current_task() -> Task:
    """The task that is running this code.

    >>> import counterpoint as cp
    >>> async def main():
    ...     me = cp.current_task()
    ...     return me.id, me.name
    >>> cp.VM().run(main())
    (1, 'main')
    """
    return require_task("cp.current_task()")


def spawn(coro: Any, *, name: str | None = None) -> Task:
    """Start ``coro`` as a new task and return it at once (synchronous; not a checkpoint).

    The task is detached (not bound to a scope): ``await`` it to get its result.
    It runs when the scheduler gets to it; the caller keeps running until its
    next await.

    >>> import counterpoint as cp
    >>> async def double(n):
    ...     await cp.sleep(1)
    ...     return 2 * n
    >>> async def main():
    ...     task = cp.spawn(double(21), name="doubler")
    ...     return task.id, task.name, await task
    >>> cp.VM().run(main())
    (2, 'doubler', 42)
    """
    task = this_task()
    if task is None:
        try:
            task, vm = task_or_session("cp.spawn()")
        except BaseException:
            discard(coro)
            raise
        return vm.spawn(coro, name=name)  # a notebook session's host cell
    return task._vm._spawn(coro, name, None, task, "cp.spawn()")


def rng() -> random.Random:
    """A ``random.Random`` of the running task, seeded from the VM seed and the task id.

    The same program with the same seed draws the same numbers in every run.

    >>> import counterpoint as cp
    >>> async def main():
    ...     return [cp.rng().randrange(100) for _ in range(3)]
    >>> cp.VM(seed=7).run(main()) == cp.VM(seed=7).run(main())
    True
    """
    task = require_task("cp.rng()")
    return task._vm._task_rng(task)
