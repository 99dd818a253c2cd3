"""Structured concurrency: scopes (nurseries with a cancel scope), slots, and ``par``.

Cancellation tree.  Every task and every open scope is a *cancel node* with a
``_parent``: a scope's parent is the innermost node of the task that opened it;
a scope child's parent is the scope; a detached task has none.  A task is
cancelled when a node on its path to the root is cancelled, unless a shielded
scope comes first.  ``VM._cancel_node`` walks the subtree under a cancelled
node and delivers ``Cancelled`` to each task found, in ascending task id.
"""

from __future__ import annotations

import types
from collections import deque
from typing import Any

from ._errors import Cancelled, InvalidStateError, LimitExceeded, ScopeClosed
from ._journal import A_SHIFT, BLOCK, MAX_TICK, SCOPE, TIMEOUT, tick_error
from ._ops import same_vm
from ._task import CANCELLED, FAILED, UNINTERRUPTIBLE, Task, cancelled_from, park
from ._traps import (
    PARK,
    RESCHEDULE,
    current,
    discard,
    enter,
    fail_after_step,
    new_op,
    operation,
    require_task,
    this_task,
)

_WAIT_SCOPE = ("wait", "scope")  # scope.wait_all(): a cancel point
_EXIT_SCOPE = ("exit", "scope")  # leaving the block: waits for the children, not cancellable


def _check_ticks(value: Any, what: str, minimum: int) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{what} must be an int (ticks) or None, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{what} must be >= {minimum}, got {value}")
    return value


class Slot:
    """A scope-owned handle to a child's result, from ``scope.async_let(coro)``.

    ``await slot`` returns the child's value (or re-raises its exception);
    ``slot.done()`` tells whether it has finished.  Slots can be ``cp.select`` cases.

    >>> import counterpoint as cp
    >>> async def square(n):
    ...     await cp.sleep(n)
    ...     return n * n
    >>> async def main():
    ...     async with cp.scope() as s:
    ...         slot = s.async_let(square(3))
    ...         early = slot.done()
    ...     return early, slot.done(), await slot
    >>> cp.VM().run(main())
    (False, True, 9)
    """

    __slots__ = ("_task",)

    def __init__(self, task: Task) -> None:
        self._task = task

    @property
    def task(self) -> Task:
        return self._task

    def done(self) -> bool:
        return self._task.done()

    def cancelled(self) -> bool:
        return self._task.cancelled()

    def result(self) -> Any:
        return self._task.result()

    def __await__(self):
        return self._task.__await__()

    def __repr__(self) -> str:
        return f"<Slot of task {self._task.id} {self._task.info().state}>"


class Scope:
    """``async with cp.scope(timeout=None, max_children=None, shield=False) as s:``

    Children started with ``s.spawn`` / ``s.start_soon`` / ``s.async_let`` cannot
    outlive the block: it exits only when all of them are done.

    * A child failure cancels the body and the other children (ascending id);
      the scope then raises an ``ExceptionGroup`` of the failures, in ascending
      task id (the body's own exception first, if it raised one).
    * ``timeout`` ticks after entry the body and children are cancelled and the
      scope raises ``TimeoutError``.
    * ``max_children``: at most that many children alive at once; one more raises
      ``cp.LimitExceeded``.
    * ``shield=True``: cancellation from outside does not reach inside (for
      cleanup that must await).
    * An exception of the body alone (no child failed) propagates unchanged.

    Entering is not a checkpoint; exiting is a schedule point (not a cancel point).

    >>> import counterpoint as cp
    >>> async def main():
    ...     try:
    ...         async with cp.scope(timeout=3) as s:
    ...             s.spawn(cp.sleep(10))
    ...     except TimeoutError as error:
    ...         return str(error), cp.now()
    >>> cp.VM().run(main())
    ('scope 1 timed out after 3 ticks', 3)
    """

    __slots__ = (
        "_cancel_called",
        "_children",
        "_failures",
        "_max_children",
        "_owner_task",
        "_par",
        "_parent",
        "_shield",
        "_state",
        "_subnodes",
        "_timed_out",
        "_timeout",
        "_timer_bucket",
        "_vm",
        "_waiters",
        "id",
    )

    def __init__(
        self,
        *,
        timeout: int | None = None,
        max_children: int | None = None,
        shield: bool = False,
        _par: bool = False,
    ) -> None:
        self._timeout = _check_ticks(timeout, "scope timeout", 0)
        self._max_children = _check_ticks(max_children, "max_children", 0)
        self._shield = bool(shield)
        self._par = _par
        self.id = 0
        self._vm = None
        self._owner_task: Task | None = None
        self._parent = None
        self._cancel_called = False
        self._subnodes: dict[int, Any] = {}
        self._children: dict[int, Task] = {}
        self._failures: list[Task] = []
        self._timer_bucket: list | None = None
        self._timed_out = False
        self._state = "new"  # new -> open -> closed
        self._waiters: deque[Task] = deque()

    # -- cancel-node protocol ------------------------------------------------------------

    def _owner(self) -> Task:
        return self._owner_task

    def _effective_cancelled(self) -> bool:
        return cancelled_from(self)

    # -- entering and leaving ------------------------------------------------------------

    def __aenter__(self):
        return _enter(self)

    def __aexit__(self, exc_type, exc, tb):
        return _exit(self, exc)

    def _open(self, task: Task) -> None:
        if self._state != "new":
            raise InvalidStateError(f"scope {self.id} was already entered; create a new cp.scope()")
        vm = task._vm
        timeout = self._timeout
        if timeout is not None and timeout > MAX_TICK - vm._now:
            call = "cp.scope(timeout={})"
            raise tick_error(call, vm._now, timeout, "use a smaller timeout, or None")
        self._vm = vm
        self._owner_task = task
        number = vm._next_id("scope")
        self.id = number
        self._state = "open"
        parent = task._inner
        self._parent = parent
        parent_subnodes = parent._subnodes
        if parent_subnodes is None:
            parent_subnodes = parent._subnodes = {}
        parent_subnodes[-number] = self
        task._inner = self
        if self._shield:
            task._cancelled = task._effective_cancelled()
        info: dict[str, Any] = {}
        if self._par:
            info["par"] = True
        if self._timeout is not None:
            info["timeout"] = self._timeout
        if self._max_children is not None:
            info["max_children"] = self._max_children
        if self._shield:
            info["shield"] = True
        vm._record(task, SCOPE, number, ("open", info))
        if self._timeout is not None:
            if self._timeout == 0:
                self._timer_fired()
            else:
                self._timer_bucket = vm._add_timer(vm._now + self._timeout, self)

    def _leave_body(self, task: Task) -> None:
        """The body is done: the task leaves the scope, which lives on for its children."""
        task._inner = self._parent
        was_cancelled = task._cancelled
        task._cancelled = task._effective_cancelled()
        if task._cancelled and not was_cancelled:  # e.g. leaving a shield inside a cancelled scope
            self._vm._journal_cancel(
                task, 0, f"task {task.id} left scope {self.id} into a cancellation"
            )

    def _close(self, task: Task, outcome: str) -> None:
        """All children are done: take the scope out of the tree and journal the outcome."""
        self._state = "closed"
        del self._parent._subnodes[-self.id]
        if self._timer_bucket is not None:
            self._timer_bucket.remove(self)
            self._timer_bucket = None
        vm = self._vm
        vm._record(task, SCOPE, self.id, ("close", {"outcome": outcome}))

    def _timer_fired(self) -> None:
        self._timer_bucket = None
        self._timed_out = True
        vm = self._vm
        vm._record(self._owner_task, TIMEOUT, self.id)
        vm._cancel_node(self, 0, f"scope {self.id} timed out after {self._timeout} ticks")

    # -- children ------------------------------------------------------------------------

    def _spawn_child(self, coro: Any, name: str | None, what: str) -> Task:
        spawner = this_task()
        if spawner is None:
            discard(coro)
            spawner = require_task(what)
        if self._state != "open":
            discard(coro)
            if self._state == "new":
                raise InvalidStateError(
                    f"{what} on a scope that was not entered: write "
                    f"`async with cp.scope() as s:` and spawn inside the block"
                )
            raise ScopeClosed(
                f"{what}: scope {self.id} has already exited, so it cannot take new "
                f"children; spawn them in a scope that is still open"
            )
        same_vm(spawner, self._vm, f"scope {self.id}")
        if self._max_children is not None and len(self._children) >= self._max_children:
            discard(coro)
            raise LimitExceeded(
                f"scope {self.id} allows at most {self._max_children} children at a time "
                f"(max_children={self._max_children}) and already has {len(self._children)}"
            )
        child = self._vm._spawn(coro, name, self, spawner, what)
        self._children[child.id] = child
        self._subnodes[child.id] = child
        if child._cancelled:
            self._vm._journal_cancel(child, spawner.id, f"spawned into cancelled scope {self.id}")
        return child

    def spawn(self, coro: Any, *, name: str | None = None) -> Task:
        """Start a child task in this scope and return it."""
        return self._spawn_child(coro, name, "scope.spawn()")

    def start_soon(self, coro: Any, *, name: str | None = None) -> None:
        """Start a child task in this scope; no handle is returned."""
        self._spawn_child(coro, name, "scope.start_soon()")

    def async_let(self, coro: Any, *, name: str | None = None) -> Slot:
        """Start a child task in this scope and return a :class:`Slot` for its result."""
        return Slot(self._spawn_child(coro, name, "scope.async_let()"))

    def _child_exit(self, child: Task) -> None:
        del self._children[child.id]
        del self._subnodes[child.id]
        vm = self._vm
        if child._state == FAILED:
            self._failures.append(child)
            if not self._cancel_called:
                vm._cancel_node(self, child.id, f"task {child.id} failed in scope {self.id}")
        if not self._children:
            waiters = self._waiters
            while waiters:
                vm._wake(waiters.popleft(), None, child.id)

    # -- control -------------------------------------------------------------------------

    def cancel_all(self) -> None:
        """Cancel every child alive now, in ascending id (the body carries on)."""
        actor = require_task("scope.cancel_all()")
        vm = self._vm
        for child in list(self._children.values()):
            vm._cancel_node(child, actor.id, f"scope {self.id}.cancel_all() by task {actor.id}")

    def cancel(self) -> None:
        """Cancel the whole scope: the body and every child (level-triggered)."""
        actor = require_task("scope.cancel()")
        if self._vm is not None:
            self._vm._cancel_node(self, actor.id, f"scope {self.id}.cancel() by task {actor.id}")

    def wait_all(self):
        """``await s.wait_all()``: wait until the scope has no running children."""
        return new_op(require_task("scope.wait_all()"), _wait_all(self))

    @property
    def children(self) -> list[Task]:
        """The children alive now, in ascending id."""
        return list(self._children.values())

    @property
    def cancel_called(self) -> bool:
        return self._cancel_called

    @property
    def timed_out(self) -> bool:
        return self._timed_out

    def __repr__(self) -> str:
        return f"<Scope {self.id} {self._state} children={len(self._children)}>"


@types.coroutine
def _enter(scope: Scope):
    scope._open(require_task("entering cp.scope()"))
    return scope
    yield  # pragma: no cover - makes this a generator; entering never suspends


def _park_for_children(task: Task, scope: Scope) -> None:
    """The body is done; wait (not interruptible: cancel the children instead)."""
    row = BLOCK | scope.id << A_SHIFT
    park(task, scope._waiters, ("children", scope), row, _EXIT_SCOPE, UNINTERRUPTIBLE)


@types.coroutine
def _exit(scope: Scope, error: BaseException | None):
    task = this_task()
    if task is None or type(error) is GeneratorExit:
        return False  # a dead coroutine is being closed, not run by the VM
    scope._leave_body(task)
    if isinstance(error, Exception) and not scope._cancel_called:
        scope._vm._cancel_node(
            scope, task.id, f"the body of scope {scope.id} raised {type(error).__name__}"
        )
    if scope._children:
        _park_for_children(task, scope)
        yield PARK
    else:
        yield RESCHEDULE
    failures = [child._error for child in sorted(scope._failures, key=_task_id)]
    if failures:
        scope._close(task, "failed")
        if error is not None and not isinstance(error, Exception | Cancelled):
            return False  # KeyboardInterrupt and friends pass through
        if isinstance(error, Exception):
            failures.insert(0, error)
        count = len(failures)
        raise ExceptionGroup(
            f"{count} failure{'s' if count != 1 else ''} in scope {scope.id}", failures
        )
    if error is not None and not isinstance(error, Cancelled):
        scope._close(task, "raised")
        return False
    if scope._timed_out and not task._cancelled:
        scope._close(task, "timed out")
        raise TimeoutError(f"scope {scope.id} timed out after {scope._timeout} ticks")
    if error is not None:
        scope._close(task, "cancelled")
        return not task._cancelled  # swallow our own cancellation, pass on an outer one
    if task._cancelled and task.id in scope._vm._cancel_errors:
        # a kept root (a notebook cell) told to stop while it waited here (_roots.py): say so
        scope._close(task, "raised")
        raise scope._vm._cancelled_error(task)
    scope._close(task, "ok")
    return False


@operation(lambda scope: f"scope {scope.id}.wait_all()")
def _wait_all(scope: Scope):
    task = enter()
    if task._cancelled:
        return (yield from fail_after_step(task, task._vm._cancelled_error(task)))
    if scope._children:
        waiting = ("wait", "scope", scope.id)
        park(task, scope._waiters, waiting, BLOCK | scope.id << A_SHIFT, _WAIT_SCOPE)
        yield PARK
    else:
        yield RESCHEDULE


def _task_id(task: Task) -> int:
    return task.id


def scope(
    *, timeout: int | None = None, max_children: int | None = None, shield: bool = False
) -> Scope:
    """Open a structured-concurrency scope: ``async with cp.scope() as s: s.spawn(...)``.

    >>> import counterpoint as cp
    >>> async def work(n):
    ...     await cp.sleep(n)
    ...     return n
    >>> async def main():
    ...     async with cp.scope() as s:
    ...         a = s.async_let(work(3))
    ...         b = s.async_let(work(1))
    ...     return await a, await b, cp.now()
    >>> cp.VM().run(main())
    (3, 1, 3)
    """
    require_task("cp.scope()")
    return Scope(timeout=timeout, max_children=max_children, shield=shield)


def _close_all(coros: tuple) -> None:
    for coro in coros:
        discard(coro)


@operation(lambda coros, names: f"cp.par(<{len(coros)} coroutines>)")
def _par(coros: tuple, names: tuple):
    task = current().task
    task._fresh = None
    vm = task._vm
    if task._cancelled:
        _close_all(coros)
        return (yield from fail_after_step(task, vm._cancelled_error(task)))
    from ._vm import check_coroutine

    try:
        checked = [check_coroutine(coro, "cp.par()") for coro in coros]
    except TypeError:
        _close_all(coros)
        raise
    inner = Scope(_par=True)
    inner._open(task)
    branches = zip(checked, names, strict=True)
    children = [inner._spawn_child(coro, name, "cp.par()") for coro, name in branches]
    inner._leave_body(task)
    if inner._children:
        _park_for_children(task, inner)
        yield PARK
    else:
        yield RESCHEDULE
    if inner._failures:
        inner._close(task, "failed")
        raise min(inner._failures, key=_task_id)._error
    inner._close(task, "ok")
    if task._cancelled:
        raise vm._cancelled_error(task)
    for index, child in enumerate(children):
        if child._state == CANCELLED:  # cancelled on its own: par has no result for it
            raise Cancelled(
                f"cp.par() branch {index} (task {child.id} {child.name!r}) was cancelled, "
                f"so par has no result for it"
            )
    return [child._result for child in children]


def par(*coros: Any, names: Any = None):
    """``await cp.par(a(), b(), ...)``: run the coroutines as tasks; results in declaration order.

    If a branch fails, the others are cancelled and ``par`` raises the failure of
    the earliest-declared failed branch (branches that merely end cancelled do
    not count).

    Each branch is a task named after its coroutine's function (``deposit``), as
    ``cp.spawn`` names one; ``names=["alice", "bob"]`` (one str, or None for that
    default, per coroutine) names them in ``cp.Deadlock``, ``vm.tasks()``, the
    journal's ``spawn`` records and the Timeline instead -- two branches running the
    same function then read apart.

    >>> import counterpoint as cp
    >>> async def work(n):
    ...     await cp.sleep(n)
    ...     return n * 10
    >>> async def main():
    ...     return await cp.par(work(3), work(1), work(2))
    >>> cp.VM().run(main())
    [30, 10, 20]
    """
    task = current().task
    if task is None:
        _close_all(coros)
        task = require_task("cp.par()")
    if names is None:
        return new_op(task, _par(coros, (None,) * len(coros)))
    try:
        names = _branch_names(names, len(coros))
    except (TypeError, ValueError):
        _close_all(coros)
        raise
    return new_op(task, _par(coros, names))


def _branch_names(names: Any, count: int) -> tuple:
    """``cp.par(names=...)`` checked: a list or tuple of one str or None per branch."""
    if not isinstance(names, list | tuple):
        raise TypeError(
            f"cp.par(names=...) needs a list with one name (a str, or None) per coroutine, "
            f"got {type(names).__name__}"
        )
    if len(names) != count:
        raise ValueError(
            f"cp.par(names=...) has {len(names)} names for {count} coroutines: give one "
            f"per coroutine (None keeps a coroutine's function name)"
        )
    for name in names:
        if name is not None and not isinstance(name, str):
            raise TypeError(f"cp.par(names=...) holds a {type(name).__name__}: names are strs")
    return tuple(names)
