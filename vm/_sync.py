"""Synchronization primitives: Lock, RLock, Semaphore, Event, Condition, Barrier,
CountdownEvent.

All wake-ups are first come, first served.  Locks and semaphores hand over
directly to the longest waiter on release (no barging), as in trio.  Acquiring
and waiting are checkpoints (schedule and cancel points) even when they could
complete at once; releasing, setting and notifying are synchronous.

Each takes a keyword-only ``name=`` (1 to 100 printable characters): it is journaled
in the object's ``create`` record and spells the object in its repr, in every message,
in ``cp.Deadlock`` and in ``journal.state_at`` -- ``lock 'fork 1'`` -- while an
unnamed object stays ``lock 2`` (and its run journals exactly what it did before).
"""

from __future__ import annotations

from collections import deque
from typing import Any

from ._errors import Cancelled, LockError
from ._journal import A_SHIFT, ACQUIRE, BLOCK, CLEAR, NOTIFY, RELEASE, SET
from ._kinds import ADD_COUNT, SIGNAL
from ._names import check_name, label
from ._ops import same_vm
from ._task import UNINTERRUPTIBLE, Task, park
from ._traps import (
    PARK,
    RESCHEDULE,
    enter,
    fail_after_step,
    new_op,
    observed,
    operation,
    require_task,
    task_or_host,
    task_or_session,
    this_task,
)


def _check_value(value: Any, what: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{what} needs an int, got {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{what} needs value >= 0, got {value}")


class _Primitive:
    """Common part: a numbered object of one VM with a FIFO queue of waiting tasks."""

    __slots__ = ("_a", "_label", "_vm", "_waiters", "id", "name")
    KIND = "object"

    def __init__(self, extra: dict | None = None, name: str | None = None) -> None:
        what = f"cp.{type(self).__name__}()"
        self.name = check_name(name, f"a {self.KIND}")
        task, vm = task_or_session(what)
        self._vm = vm
        self._waiters: deque[Task] = deque()
        if name is not None:
            extra = {**(extra or {}), "name": name}
        if task is None:  # host code of a notebook session
            with vm._as_host(what):
                self.id = vm._new_object(self.KIND, None, extra)
        else:
            self.id = vm._new_object(self.KIND, task, extra)
        self._label = label(self.KIND, self.id, name)
        self._a = self.id << A_SHIFT

    def _actor(self, what: str) -> Task:
        task = require_task(f"{self._label}.{what}")
        if task._vm is not self._vm:
            same_vm(task, self._vm, self._label)
        return task

    def _record(self, task: Task, kind: int) -> None:
        self._vm._record(task, kind, self.id, self.KIND)

    def _park(self, task: Task, op: str) -> None:
        """Queue ``task`` (FIFO) and journal the block; the caller then yields PARK."""
        park(task, self._waiters, (op, self.KIND, self.id, self), BLOCK | self._a, (op, self.KIND))

    def _ready(self, task: Task, value: Any = None) -> None:
        self._vm._reschedule(task, value)

    def __repr__(self) -> str:
        named = "" if self.name is None else f" {self.name!r}"
        return f"<{type(self).__name__} {self.id}{named} waiters={len(self._waiters)}>"


@operation(lambda target, verb: f"{target._label}.{verb}()")
def _checkpointed(target: _Primitive, verb: str):
    """``await lock.acquire()``, ``await event.wait()`` ...: a checkpoint, then
    ``target._acquire(task)`` or ``target._wait(task)`` (generators that end by
    yielding RESCHEDULE or PARK)."""
    task = enter()
    if task._vm is not target._vm:
        same_vm(task, target._vm, target._label)
    if task._cancelled:
        return (yield from fail_after_step(task, task._vm._cancelled_error(task)))
    if verb == "acquire":
        return (yield from target._acquire(task))
    return (yield from target._wait(task))


class _AcquireContext:
    """Acquire/release for Lock and Semaphore, and ``async with`` support."""

    __slots__ = ()

    def acquire(self):
        """``await x.acquire()``; waits (FIFO) while the lock/semaphore is taken."""
        return new_op(require_task(f"{self.KIND}.acquire()"), _checkpointed(self, "acquire"))

    def try_acquire(self) -> bool:
        """Take it now if it is free (the lock, or one unit) and return True; else
        return False at once -- no waiting and no schedule point, like
        ``threading.Lock.acquire(blocking=False)``.  A success is journaled as an
        ``acquire``; a failure only reads the state (exploration sees the read).

        >>> import counterpoint as cp
        >>> async def main():
        ...     door = cp.Lock(name="door")
        ...     async def knock():
        ...         return door.try_acquire()
        ...     mine = door.try_acquire()
        ...     theirs = await cp.spawn(knock())
        ...     return mine, theirs
        >>> cp.VM().run(main())
        (True, False)
        """
        task = self._actor("try_acquire()")
        if self._try_take(task):
            self._record(task, ACQUIRE)
            return True
        observed(self._vm, self.KIND, self.id)
        return False

    def _acquire(self, task: Task):
        if self._try_take(task):
            self._record(task, ACQUIRE)
            yield RESCHEDULE
        else:
            self._park(task, "acquire")
            yield PARK  # woken only once the lock/unit has been handed to us

    async def __aenter__(self) -> None:
        await self.acquire()

    def __aexit__(self, exc_type, exc, tb) -> _Immediate:
        if this_task() is not None and exc_type is not GeneratorExit:
            self.release()  # (else a dead coroutine is being closed, not run by the VM)
        return _IMMEDIATE_FALSE


class _Immediate:
    """An awaitable that completes at once with False (no schedule point)."""

    __slots__ = ()

    def __await__(self):
        return False
        yield  # pragma: no cover


_IMMEDIATE_FALSE = _Immediate()


class Lock(_AcquireContext, _Primitive):
    """A mutual-exclusion lock with FIFO hand-over; not re-entrant.  ``cp.Lock(name="door")``
    names it in messages and reports (``lock 'door'``).

    >>> import counterpoint as cp
    >>> async def main():
    ...     lock, log = cp.Lock(), []
    ...     async def worker(name):
    ...         async with lock:
    ...             log.append(name)
    ...             await cp.sleep(1)
    ...     await cp.par(worker("a"), worker("b"))
    ...     return log, cp.now()
    >>> cp.VM().run(main())
    (['a', 'b'], 2)
    """

    __slots__ = ("_owner",)
    KIND = "lock"

    def __init__(self, *, name: str | None = None) -> None:
        super().__init__(None, name)
        self._owner: Task | None = None

    def _try_take(self, task: Task) -> bool:
        owner = self._owner
        if owner is None:
            self._owner = task
            return True
        if owner is task:
            raise LockError(
                f"task {task.id} {task.name!r} already holds {self._label}; cp.Lock is not "
                f"re-entrant, so acquiring it again would wait forever. Release it first, or "
                f"restructure the code so that the lock is taken once"
            )
        return False

    def release(self) -> None:
        """Release the lock; the longest waiter (if any) gets it at once."""
        task = self._releaser()
        self._record(task, RELEASE)
        self._hand_over()

    def _releaser(self) -> Task:
        """The task releasing the lock, which must hold it (else ``cp.LockError``)."""
        task = self._actor("release()")
        if self._owner is not task:
            holder = "nobody" if self._owner is None else f"task {self._owner.id}"
            raise LockError(
                f"task {task.id} {task.name!r} released {self._label}, which is held by "
                f"{holder}; only the task that acquired a lock may release it (use "
                f"`async with lock:` so that acquire and release pair up; to signal between "
                f"tasks use cp.Event or cp.Semaphore)"
            )
        return task

    def _hand_over(self) -> None:
        if self._waiters:
            successor = self._waiters.popleft()
            self._owner = successor
            self._record(successor, ACQUIRE)
            self._ready(successor)
        else:
            self._owner = None

    def locked(self) -> bool:
        observed(self._vm, self.KIND, self.id)
        return self._owner is not None

    @property
    def owner(self) -> Task | None:
        observed(self._vm, self.KIND, self.id)
        return self._owner


class RLock(Lock):
    """A re-entrant lock, like ``threading.RLock``: the task holding it may acquire it
    again, and it is free once released as many times as it was acquired.  Every acquire
    and release is journaled (``acquire`` / ``release`` of ``lock N``, whose ``create``
    record says ``reentrant``); a ``cp.Deadlock`` says who holds it and how many times.
    Releasing it from a task that does not hold it is a ``cp.LockError``.  It cannot be
    the lock of a ``cp.Condition`` (whose ``wait`` releases the lock once).

    >>> import counterpoint as cp
    >>> async def main():
    ...     account = cp.RLock(name="account")
    ...     async def deposit():
    ...         async with account:
    ...             return await audit()  # takes the lock again: no deadlock
    ...     async def audit():
    ...         async with account:
    ...             return account.locked()
    ...     held = await deposit()
    ...     return held, account.locked()
    >>> cp.VM().run(main())
    (True, False)
    """

    __slots__ = ("_depth",)

    def __init__(self, *, name: str | None = None) -> None:
        _Primitive.__init__(self, {"reentrant": True}, name)
        self._owner: Task | None = None
        self._depth = 0

    def _try_take(self, task: Task) -> bool:
        owner = self._owner
        if owner is None or owner is task:
            self._owner = task
            self._depth += 1
            return True
        return False

    def release(self) -> None:
        """Release once; after as many releases as acquires the lock is free, and the
        longest waiter (if any) gets it at once."""
        task = self._releaser()
        self._record(task, RELEASE)
        self._depth -= 1
        if not self._depth:
            self._hand_over()

    def _hand_over(self) -> None:
        super()._hand_over()
        self._depth = 0 if self._owner is None else 1


class Semaphore(_AcquireContext, _Primitive):
    """A counting semaphore with FIFO hand-over: ``cp.Semaphore(n, name=None)``, ``n >= 0``.

    >>> import counterpoint as cp
    >>> async def main():
    ...     pool, started = cp.Semaphore(2), []
    ...     async def job(name):
    ...         async with pool:
    ...             started.append((name, cp.now()))
    ...             await cp.sleep(5)
    ...     await cp.par(job("a"), job("b"), job("c"))
    ...     return started
    >>> cp.VM().run(main())
    [('a', 0), ('b', 0), ('c', 5)]
    """

    __slots__ = ("_value",)
    KIND = "semaphore"

    def __init__(self, value: int = 1, *, name: str | None = None) -> None:
        _check_value(value, "cp.Semaphore(value)")
        super().__init__({"value": value}, name)
        self._value = value

    def _try_take(self, task: Task) -> bool:
        if self._value > 0:
            self._value -= 1
            return True
        return False

    def release(self) -> None:
        """Release one unit; the longest waiter (if any) gets it at once."""
        task = self._actor("release()")
        self._record(task, RELEASE)
        if self._waiters:
            successor = self._waiters.popleft()
            self._record(successor, ACQUIRE)
            self._ready(successor)
        else:
            self._value += 1

    @property
    def value(self) -> int:
        observed(self._vm, self.KIND, self.id)
        return self._value


class BoundedSemaphore(Semaphore):
    """A semaphore that cannot be released more often than it was acquired:
    ``release()`` that would raise the value past the initial one raises
    ``ValueError`` (as ``threading.BoundedSemaphore`` and trio's ``max_value`` do).
    ``cp.Semaphore`` has no bound: releasing it more often than acquiring it adds
    units, which is how a semaphore signals.

    >>> import counterpoint as cp
    >>> async def main():
    ...     pool = cp.BoundedSemaphore(1)
    ...     async with pool:
    ...         pass
    ...     try:
    ...         pool.release()
    ...     except ValueError as error:
    ...         return str(error).split(";")[0]
    >>> cp.VM().run(main())
    'semaphore 1 released too many times'
    """

    __slots__ = ("_bound",)

    def __init__(self, value: int = 1, *, name: str | None = None) -> None:
        _check_value(value, "cp.BoundedSemaphore(value)")
        _Primitive.__init__(self, {"value": value, "bounded": True}, name)
        self._value = value
        self._bound = value

    def release(self) -> None:
        """Release one unit; ``ValueError`` if every unit is already free."""
        if not self._waiters and self._value >= self._bound:
            task = self._actor("release()")
            raise ValueError(
                f"{self._label} released too many times; task {task.id} {task.name!r} "
                f"released it while all {self._bound} units were free (release only what "
                f"you acquired: use `async with sem:`)"
            )
        super().release()


class Event(_Primitive):
    """A flag tasks can wait for: ``set()`` wakes every waiter (FIFO); ``clear()`` resets.
    ``cp.Event(name="ready")`` names it in messages and reports.

    >>> import counterpoint as cp
    >>> async def main():
    ...     ready = cp.Event()
    ...     async def waiter(name):
    ...         await ready.wait()
    ...         return name, cp.now()
    ...     async def starter():
    ...         await cp.sleep(2)
    ...         ready.set()
    ...     return await cp.par(waiter("a"), waiter("b"), starter())
    >>> cp.VM().run(main())
    [('a', 2), ('b', 2), None]
    """

    __slots__ = ("_flag",)
    KIND = "event"

    def __init__(self, *, name: str | None = None) -> None:
        super().__init__(None, name)
        self._flag = False

    def is_set(self) -> bool:
        observed(self._vm, self.KIND, self.id)
        return self._flag

    def set(self) -> None:
        """Set the flag and wake every waiter (FIFO); tasks and host code may call it."""
        what = f"{self._label}.set()"
        setter = task_or_host(what)
        if setter is None:
            with self._vm._as_host(what):
                return self._set(None)
        same_vm(setter, self._vm, self._label)
        return self._set(setter)

    def _set(self, setter: Task | None) -> None:
        if self._flag:
            observed(self._vm, self.KIND, self.id)
            return
        self._flag = True
        by = 0 if setter is None else setter.id
        self._vm._record(setter, SET, self.id, self.KIND)
        waiters, self._waiters = self._waiters, deque()
        for waiter in waiters:
            self._vm._wake(waiter, None, by)

    def clear(self) -> None:
        actor = self._actor("clear()")
        if self._flag:
            self._flag = False
            self._record(actor, CLEAR)
        else:
            observed(self._vm, self.KIND, self.id)

    def wait(self):
        """``await event.wait()``: return once the event is set (a checkpoint even if set)."""
        return new_op(require_task(f"{self.KIND}.wait()"), _checkpointed(self, "wait"))

    def _wait(self, task: Task):
        if self._flag:
            observed(self._vm, self.KIND, self.id)
            yield RESCHEDULE
        else:
            self._park(task, "wait")
            yield PARK


class Condition(_Primitive):
    """A condition variable over a ``cp.Lock`` (its own, unnamed, unless one is given):
    ``cp.Condition(lock=None, *, name=None)``.

    ``async with cond:`` holds the lock; ``await cond.wait()`` releases it, waits for
    ``notify``, and re-acquires it before returning (also when cancelled).

    >>> import counterpoint as cp
    >>> async def main():
    ...     cond, box = cp.Condition(), []
    ...     async def consumer():
    ...         async with cond:
    ...             await cond.wait_for(lambda: box)
    ...             return box.pop(), cp.now()
    ...     async def producer():
    ...         await cp.sleep(4)
    ...         async with cond:
    ...             box.append("parcel")
    ...             cond.notify()
    ...     got, _ = await cp.par(consumer(), producer())
    ...     return got
    >>> cp.VM().run(main())
    ('parcel', 4)
    """

    __slots__ = ("_lock",)
    KIND = "condition"

    def __init__(self, lock: Lock | None = None, *, name: str | None = None) -> None:
        if lock is not None and (not isinstance(lock, Lock) or isinstance(lock, RLock)):
            raise TypeError(
                f"cp.Condition(lock) needs a cp.Lock (not re-entrant: wait() releases it "
                f"once), got {type(lock).__name__}"
            )
        check_name(name, "a condition")  # before the lock is made: bad input makes nothing
        self._lock = lock if lock is not None else Lock()
        super().__init__({"lock": self._lock.id}, name)

    @property
    def lock(self) -> Lock:
        return self._lock

    async def __aenter__(self) -> None:
        await self._lock.acquire()

    def __aexit__(self, exc_type, exc, tb) -> _Immediate:
        if this_task() is not None and exc_type is not GeneratorExit:
            self._lock.release()  # (else a dead coroutine is being closed, not run by the VM)
        return _IMMEDIATE_FALSE

    def acquire(self):
        return self._lock.acquire()

    def release(self) -> None:
        self._lock.release()

    def locked(self) -> bool:
        return self._lock.locked()

    def _check_holder(self, task: Task, what: str) -> None:
        if self._lock._owner is not task:
            raise LockError(
                f"{self._label}.{what} needs the condition's lock, which task "
                f"{task.id} {task.name!r} does not hold: use it inside `async with cond:`"
            )

    def wait(self):
        """``await cond.wait()``: release the lock, wait for a notify, re-acquire."""
        return new_op(require_task(f"{self.KIND}.wait()"), _checkpointed(self, "wait"))

    def _wait(self, task: Task):
        self._check_holder(task, "wait()")
        lock = self._lock
        lock._record(task, RELEASE)
        lock._hand_over()
        self._park(task, "wait")
        try:
            yield PARK  # resumed only when notified *and* holding the lock again
        except Cancelled:
            if lock._owner is not task:
                if lock._owner is None:
                    lock._owner = task
                    lock._record(task, ACQUIRE)
                else:
                    lock._park(task, "acquire")
                    task._cleanup = UNINTERRUPTIBLE
                    yield PARK
            raise

    async def wait_for(self, predicate) -> Any:
        """Wait until ``predicate()`` is true (checked with the lock held); return its value."""
        result = predicate()
        while not result:
            await self.wait()
            result = predicate()
        return result

    def notify(self, n: int = 1) -> None:
        """Wake up to ``n`` waiters (FIFO); each re-acquires the lock before it resumes."""
        task = self._actor("notify()")
        self._check_holder(task, "notify()")
        lock = self._lock
        count = 0
        while self._waiters and count < n:
            waiter = self._waiters.popleft()
            count += 1
            lock._waiters.append(waiter)  # the notifier holds the lock, so queue for it
            waiter._waitq = lock._waiters
            waiter._waiting = ("acquire", "lock", lock.id, lock)
        self._vm._record(task, NOTIFY, self.id, count)

    def notify_all(self) -> None:
        """Wake every waiter (FIFO)."""
        self.notify(len(self._waiters))


class Barrier(_Primitive):
    """``cp.Barrier(n, *, name=None)``: ``await b.wait()`` blocks until ``n`` tasks have arrived.

    The n-th arrival releases everyone (FIFO); ``wait`` returns the arrival index
    (0 .. n-1) and the barrier is ready for the next round.

    >>> import counterpoint as cp
    >>> async def main():
    ...     barrier = cp.Barrier(2)
    ...     async def runner(delay):
    ...         await cp.sleep(delay)
    ...         return await barrier.wait(), cp.now()
    ...     return await cp.par(runner(3), runner(1))
    >>> cp.VM().run(main())
    [(1, 3), (0, 3)]
    """

    __slots__ = ("_parties",)
    KIND = "barrier"

    def __init__(self, parties: int, *, name: str | None = None) -> None:
        if not isinstance(parties, int) or isinstance(parties, bool):
            raise TypeError(f"cp.Barrier(parties) needs an int, got {type(parties).__name__}")
        if parties < 1:
            raise ValueError(f"cp.Barrier(parties) needs parties >= 1, got {parties}")
        super().__init__({"parties": parties}, name)
        self._parties = parties

    @property
    def parties(self) -> int:
        return self._parties

    @property
    def n_waiting(self) -> int:
        observed(self._vm, self.KIND, self.id)
        return len(self._waiters)

    def wait(self):
        """``await barrier.wait()``: the arrival index once all parties are here."""
        return new_op(require_task(f"{self.KIND}.wait()"), _checkpointed(self, "wait"))

    def _wait(self, task: Task):
        if len(self._waiters) + 1 < self._parties:
            self._park(task, "wait")
            index = yield PARK
            return index
        observed(self._vm, self.KIND, self.id)  # the last arrival
        waiters, self._waiters = self._waiters, deque()
        for index, waiter in enumerate(waiters):
            self._vm._wake(waiter, index, task.id)
        yield RESCHEDULE
        return self._parties - 1


class CountdownEvent(_Primitive):
    """``cp.CountdownEvent(count, *, name=None)``: set once it has been signalled
    ``count`` times (as .NET's ``CountdownEvent``).  ``signal(n=1)`` counts down,
    ``add_count(n=1)`` counts up while it is not set yet, ``await wait()`` returns once
    the count is 0 (at once if it is); ``count`` and ``is_set()`` read it.  Signalling
    past 0 or adding to a set countdown is a ``ValueError`` and changes nothing.
    Journaled as ``signal`` / ``add_count`` records; a ``cp.Deadlock`` says
    ``waits for countdown 'done' (2 left)``.

    >>> import counterpoint as cp
    >>> async def main():
    ...     done = cp.CountdownEvent(2, name="done")
    ...     async def worker(ticks):
    ...         await cp.sleep(ticks)
    ...         done.signal()
    ...     async def boss():
    ...         await done.wait()
    ...         return cp.now()
    ...     finished, *_ = await cp.par(boss(), worker(3), worker(5))
    ...     return finished, done.count, done.is_set()
    >>> cp.VM().run(main())
    (5, 0, True)
    """

    __slots__ = ("_count",)
    KIND = "countdown"

    def __init__(self, count: int, *, name: str | None = None) -> None:
        _check_value(count, "cp.CountdownEvent(count)")
        super().__init__({"count": count}, name)
        self._count = count

    @property
    def count(self) -> int:
        """How many signals it still needs (0: it is set)."""
        observed(self._vm, self.KIND, self.id)
        return self._count

    def is_set(self) -> bool:
        observed(self._vm, self.KIND, self.id)
        return self._count == 0

    def _units(self, n: Any, what: str) -> Task:
        if not isinstance(n, int) or isinstance(n, bool):
            raise TypeError(f"{self._label}.{what}(n) needs an int, got {type(n).__name__}")
        if n < 1:
            raise ValueError(f"{self._label}.{what}(n) needs n >= 1, got {n}")
        return self._actor(f"{what}()")

    def signal(self, n: int = 1) -> bool:
        """Count down by ``n``; return True if that set it (the count reached 0), which
        wakes every waiter (FIFO).  ``ValueError`` if the count is less than ``n``."""
        task = self._units(n, "signal")
        if n > self._count:
            observed(self._vm, self.KIND, self.id)
            raise ValueError(
                f"{self._label}.signal({n}) would take the count below 0: only "
                f"{self._count} signal{'' if self._count == 1 else 's'} left. Signal once per "
                f"piece of work counted (or add_count() before signalling more)"
            )
        self._count -= n
        self._vm._record(task, SIGNAL, self.id, n)
        if self._count:
            return False
        waiters, self._waiters = self._waiters, deque()
        for waiter in waiters:
            self._vm._wake(waiter, None, task.id)
        return True

    def add_count(self, n: int = 1) -> None:
        """Count up by ``n`` (more work to wait for); ``ValueError`` once it is set."""
        task = self._units(n, "add_count")
        if not self._count:
            observed(self._vm, self.KIND, self.id)
            raise ValueError(
                f"{self._label}.add_count({n}): the countdown is already set (its count "
                f"reached 0) and its waiters may have gone on; count up before the last "
                f"signal, or use a new cp.CountdownEvent"
            )
        self._count += n
        self._vm._record(task, ADD_COUNT, self.id, n)

    def wait(self):
        """``await countdown.wait()``: return once the count is 0 (a checkpoint even then)."""
        return new_op(require_task(f"{self.KIND}.wait()"), _checkpointed(self, "wait"))

    def _wait(self, task: Task):
        if not self._count:
            observed(self._vm, self.KIND, self.id)
            yield RESCHEDULE
        else:
            self._park(task, "wait")
            yield PARK

    def __repr__(self) -> str:
        named = "" if self.name is None else f" {self.name!r}"
        return f"<CountdownEvent {self.id}{named} count={self._count} waiters={len(self._waiters)}>"
