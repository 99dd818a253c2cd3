"""Tasks: coroutines driven by the VM, and their read-only snapshots."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

from ._errors import Cancelled, InvalidStateError, WrongVMError
from ._journal import A_SHIFT, BLOCK, STEP, TASK_SHIFT
from ._names import AND_SUSPENDED, SUSPENDED, Wait, wait_words, worker_wait
from ._traps import (
    PARK,
    RESCHEDULE,
    fail_after_step,
    observed,
    require_task,
    task_or_host,
    this_task,
)
from ._where import where_and_code

if TYPE_CHECKING:
    from ._vm import VM

# Task states (internal codes; snapshots use the names).
READY = 0
BLOCKED = 1
DONE = 2
FAILED = 3
CANCELLED = 4
_STATE_NAMES = ("ready", "blocked", "done", "failed", "cancelled")

# A blocked task whose `_cleanup` is this cannot be interrupted by cancellation
# (a scope waiting for its children: cancelling it cancels the children instead).
UNINTERRUPTIBLE = object()

_JOIN = ("join", "task")


def park(task: Task, queue: Any, waiting: tuple, row: int, value: Any, cleanup: Any = None) -> None:
    """Block ``task`` at the end of ``queue`` (FIFO) and journal a ``block`` record.

    ``waiting`` describes the wait for snapshots and deadlock reports; ``row`` is
    the record code (``BLOCK | id << A_SHIFT``) and ``value`` its op descriptor.
    The caller then yields ``PARK``.  (The channel operations inline this for speed.)
    """
    queue.append(task)
    task._state = BLOCKED
    task._waitq = queue
    task._cleanup = cleanup
    task._waiting = waiting
    vm = task._vm
    vm._rows.append(task._k | row)
    vm._vals.append(value)


def cancelled_from(node: Any) -> bool:
    """Is a task whose innermost cancel node is ``node`` cancelled?

    Walk towards the root: the first cancelled node says yes, a shielded scope
    met before any says no (see "Cancellation" in docs/design.md).
    """
    while node is not None:
        if node._cancel_called:
            return True
        if node._shield:
            return False
        node = node._parent
    return False


class TaskList(list):
    """What ``vm.tasks()`` returns: a list of :class:`TaskInfo`, shown as a table."""

    __slots__ = ()

    def _repr_html_(self) -> str:
        from ._display import tasks_table

        return tasks_table(self)


class TaskInfo(NamedTuple):
    """A snapshot of one task, as returned by ``vm.tasks()``.

    ``state`` is one of ``"running"``, ``"ready"``, ``"blocked"``, ``"sleeping"``,
    ``"done"``, ``"failed"``, ``"cancelled"``.  ``waiting_on`` says what a blocked
    or sleeping task waits for, e.g. ``"to receive on channel 2"`` (else None).
    ``where`` is ``"file.py:LINE"`` (a notebook cell: ``"Cell In[N]:LINE"``) and
    ``code`` the stripped source line where the task is paused, in its innermost
    frame that is not Counterpoint's; both None for a task not started or ended.

    >>> import counterpoint as cp
    >>> async def nap():
    ...     await cp.sleep(9)
    >>> async def main():
    ...     ch = cp.channel()
    ...     cp.spawn(ch.recv(), name="listener")
    ...     cp.spawn(nap(), name="napper")
    ...     await cp.sleep(1)
    >>> vm = cp.VM()
    >>> vm.run(main())
    >>> for info in vm.tasks():
    ...     print(info.id, info.name, info.state, info.waiting_on, info.code)
    2 listener blocked to receive on channel 1 None
    3 napper sleeping until tick 9 await cp.sleep(9)
    """

    id: int
    name: str
    state: str
    waiting_on: str | None
    where: str | None = None
    code: str | None = None


def wait_of(waiting: tuple) -> Wait:
    """A live wait descriptor (``task._waiting``) as a structured :class:`Wait`."""
    op = waiting[0]
    if op == "recv" or op == "send":  # (op, "channel", id, name)
        return Wait(op, "channel", waiting[2], waiting[3] if len(waiting) > 3 else None)
    if op == "acquire" or op == "wait":  # (op, kind, id, object); a scope's wait_all: no object
        target = waiting[3] if len(waiting) > 3 else None
        name = getattr(target, "name", None)
        holder = getattr(target, "_owner", None) if op == "acquire" else None
        if holder is not None:
            times = getattr(target, "_depth", None)  # (a cp.RLock: how many times)
            return Wait(op, waiting[1], waiting[2], name, holder.id, holder.name, count=times)
        if waiting[1] == "countdown":
            return Wait(op, "countdown", waiting[2], name, count=target._count)
        return Wait(op, waiting[1], waiting[2], name)
    if op == "join":
        return Wait(op, "task", waiting[2])
    if op == "sleep":
        return Wait(op, until=waiting[1])
    if op == "children":
        scope = waiting[1]
        if scope._par:
            return Wait("par", "scope", scope.id, tasks=tuple(scope._children))
        return Wait("exit", "scope", scope.id)
    if op == "select":  # ("select", "cases", descriptions, case objects)
        cases = tuple(
            (case.KIND, case.id, case.name) if hasattr(case, "KIND") else ("task", case.id, None)
            for case in waiting[3]
        )
        return Wait(op, "cases", cases=cases)
    if op == "worker":
        return worker_wait(waiting[1])
    return Wait(op)  # ("events",)


def describe_wait(waiting: tuple) -> str:
    """Words for a wait descriptor, completing "task 3 'x' waits ..."."""
    return wait_words(wait_of(waiting))


class Task:
    """A coroutine running on a VM.  Created by ``cp.spawn``, scopes, ``par`` and ``vm.run``.

    ``await task`` waits for it and returns its value or re-raises its exception
    (a cancelled task raises ``cp.Cancelled``).

    >>> import counterpoint as cp
    >>> async def child():
    ...     await cp.sleep(3)
    ...     return 7
    >>> async def main():
    ...     t = cp.spawn(child(), name="child")
    ...     return t.name, await t, cp.now()
    >>> cp.VM().run(main())
    ('child', 7, 3)
    """

    __slots__ = (
        "__weakref__",
        "_cancel_called",
        "_cancelled",
        "_cleanup",
        "_coro",
        "_error",
        "_exc",
        "_fresh",
        "_inner",
        "_joiners",
        "_k",
        "_kstep",
        "_observed",
        "_parent",
        "_payload",
        "_result",
        "_rng",
        "_rr",
        "_state",
        "_subnodes",
        "_suspended",
        "_val",
        "_vm",
        "_waiting",
        "_waitq",
        "id",
        "name",
    )

    def __init__(self, vm: VM, task_id: int, name: str, coro: Any, parent: Any) -> None:
        self.id = task_id
        self.name = name
        self._vm = vm
        self._coro = coro
        self._k = task_id << TASK_SHIFT
        self._kstep = self._k | STEP  # the step record, allocated once per task
        self._state = READY
        self._val = None
        self._exc = None
        self._result = None
        self._error = None
        self._waitq = None
        self._cleanup = None
        self._waiting = None
        self._payload = None
        self._joiners = None
        self._cancel_called = False
        self._parent = parent  # the scope spawned into (None for detached tasks)
        self._inner = self  # innermost cancel node: the task itself or an open scope
        self._subnodes = None
        self._fresh = None
        self._observed = parent is not None
        self._rng = None
        self._rr = None
        self._suspended = False
        self._cancelled = False if parent is None else parent._effective_cancelled()

    # -- the cancel-node protocol (shared with Scope) -----------------------------

    _shield = False

    def _owner(self) -> Task:
        return self

    def _effective_cancelled(self) -> bool:
        return cancelled_from(self._inner)

    # -- public API ------------------------------------------------------------------

    def done(self) -> bool:
        """True once the task has finished (returned, failed or was cancelled)."""
        observed(self._vm, "task", self.id)
        return self._state >= DONE

    def cancelled(self) -> bool:
        """True if the task finished by cancellation."""
        observed(self._vm, "task", self.id)
        return self._state == CANCELLED

    def result(self) -> Any:
        """The task's return value; re-raises its exception; ``cp.Cancelled`` if cancelled.

        Raises ``cp.InvalidStateError`` if the task has not finished yet.
        """
        self._observed = True
        observed(self._vm, "task", self.id)
        state = self._state
        if state == DONE:
            return self._result
        if state == FAILED:
            raise self._error
        if state == CANCELLED:
            raise Cancelled(f"task {self.id} {self.name!r} was cancelled")
        raise InvalidStateError(
            f"task {self.id} {self.name!r} has not finished yet; `await` it (inside a task) "
            f"or run the VM until it is done before asking for its result"
        )

    def exception(self) -> BaseException | None:
        """The exception the task failed with, or None if it returned normally."""
        observed(self._vm, "task", self.id)
        if self._state < DONE:
            self.result()  # raises InvalidStateError
        self._observed = True
        if self._state == CANCELLED:
            return Cancelled(f"task {self.id} {self.name!r} was cancelled")
        return self._error

    def cancel(self) -> bool:
        """Request cancellation; returns False if the task had already finished.

        A blocked task is removed from what it waits on at once and receives
        ``cp.Cancelled`` when it next runs; a task that is ready keeps the result
        of the operation it completed and receives ``cp.Cancelled`` at its next
        await.  Cancellation is level-triggered: every later await of the task
        raises ``cp.Cancelled`` again (shield cleanup with ``cp.scope(shield=True)``).
        """
        what = f"task {self.id}.cancel()"
        current = task_or_host(what)
        observed(self._vm, "task", self.id)  # the answer depends on the task's state
        if self._state >= DONE:
            return False
        if not self._cancel_called:
            if current is None:
                with self._vm._as_host(what):
                    self._vm._cancel_node(self, by=0, reason="task.cancel() from the host")
            else:
                reason = f"task.cancel() by task {current.id}"
                self._vm._cancel_node(self, by=current.id, reason=reason)
        return True

    def suspend(self) -> bool:
        """Stop scheduling this task until :meth:`resume` (from the host or a task).

        A plain method, like :meth:`cancel`: it takes effect at once, journaled as a
        ``suspend`` record at the current step (on itself: when the task next yields).
        A suspended task keeps its place in what it waits for and completes that wait
        in turn (it takes the value, the lock ...), but does not run until resumed; a
        timer that fires meanwhile makes it ready on resume.  Its state reads
        ``"suspended"``; a ``Deadlock`` lists it as such.  Cancelling it resumes it at
        once, to run its cleanup.  Returns False (and records nothing) if the task has
        finished, is suspended already or is cancelled (unwinding).  See "Suspending
        and resuming tasks" in docs/design.md.
        """
        return self._vm._set_suspended(self, True, f"task {self.id}.suspend()")

    def resume(self) -> bool:
        """Schedule this task again after :meth:`suspend`; journaled as ``resume``.

        If it could run meanwhile, it joins the end of the ready queue now.  Returns
        False (and records nothing) if it was not suspended or has finished."""
        return self._vm._set_suspended(self, False, f"task {self.id}.resume()")

    def info(self) -> TaskInfo:
        """A snapshot of this task (see :class:`TaskInfo`)."""
        state = self._state
        waiting = None
        if state == BLOCKED:
            name = "sleeping" if self._waiting[0] == "sleep" else "blocked"
            waiting = describe_wait(self._waiting)
            if self._suspended:
                name = "suspended"
                waiting += AND_SUSPENDED
        elif self._suspended and state == READY and this_task() is not self:
            name = "suspended"
            waiting = SUSPENDED
        elif state == READY and this_task() is self:
            name = "running"
        else:
            name = _STATE_NAMES[state]
        where, code = where_and_code(self._coro) if self._coro is not None else (None, None)
        return TaskInfo(self.id, self.name, name, waiting, where, code)

    def __repr__(self) -> str:
        info = self.info()
        return f"<Task {self.id} {self.name!r} {info.state}>"

    def _repr_html_(self) -> str:
        from ._display import tasks_table

        return tasks_table([self.info()])

    def __await__(self):
        task = this_task()
        if task is None:
            require_task(f"`await` on task {self.id}")
        if task._vm is not self._vm:
            raise WrongVMError(
                f"task {self.id} {self.name!r} belongs to another VM; a task can only await "
                f"tasks of its own VM"
            )
        if task is self:
            raise InvalidStateError(
                f"task {self.id} {self.name!r} awaits itself, which can never finish"
            )
        if task._cancelled:
            return (yield from fail_after_step(task, task._vm._cancelled_error(task)))
        if self._state < DONE:
            if self._joiners is None:
                self._joiners = []
            park(task, self._joiners, ("join", "task", self.id), BLOCK | self.id << A_SHIFT, _JOIN)
            yield PARK
        else:
            yield RESCHEDULE
        return self.result()
