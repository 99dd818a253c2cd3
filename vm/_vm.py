"""The VM: one scheduler loop over tasks, virtual time, and the journal.

Invariants (see ``docs/design.md``):

* One task runs at a time; it runs until it yields a trap (``_traps``).
* ``fifo`` resumes ready tasks in the order they became ready; ``random``
  picks among them with a ``random.Random(seed)`` of its own.
* Virtual time advances only when no task is ready, straight to the earliest
  timer; timers of one tick fire in the order they were set.
* Every resumption and every effect appends a journal record.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import os
import random
import sys
import threading
import warnings
from collections import deque
from collections.abc import Callable
from heapq import heapify, heappop, heappush
from itertools import pairwise, repeat
from os import PathLike
from pathlib import Path
from threading import get_ident
from types import CoroutineType, TracebackType
from typing import Any, Literal

from ._errors import (
    Cancelled,
    Deadlock,
    ForeignAwaitableError,
    InvalidStateError,
    JournalError,
    LimitExceeded,
    StepLimitExceeded,
    UnobservedTaskFailure,
    VMBusyError,
)
from ._interrupts import DeferredInterrupts, noted_here, take_interrupt
from ._journal import (
    A_SHIFT,
    CANCEL,
    CANCELLED,
    CREATE,
    DONE,
    FAIL,
    HAS_VALUE,
    MAX_OBJECT_ID,
    MAX_TASK_ID,
    SPAWN,
    TIMER,
    WAKE,
    Journal,
    exception_data,
    plain,
)
from ._names import AND_SUSPENDED
from ._sources import Sources
from ._task import BLOCKED, FAILED, READY, UNINTERRUPTIBLE, Task, TaskInfo, TaskList
from ._task import CANCELLED as S_CANCELLED
from ._task import DONE as S_DONE
from ._traps import (
    PARK,
    RESCHEDULE,
    RunState,
    check_fresh,
    current,
    discard,
    enter_run_state,
    is_operation,
    leave_run_state,
    refuse_worker,
)
from ._workers import Workers
from .events import EventQueue


def source_dirs(module_file: str) -> frozenset[str]:
    """The directory of ``module_file`` as frame file names spell it (as imported,
    and with symlinks resolved)."""
    return frozenset({os.path.dirname(module_file), str(Path(module_file).resolve().parent)})


# the VM's own modules: this directory only, not the subpackages beside it
# (counterpoint.ipython, counterpoint.kernel), in a wheel as in an editable install
_PACKAGE_DIRS = source_dirs(__file__)
_ATOMIC = frozenset({type(None), bool, int, str})
POLICIES = ("fifo", "random")
_SLICE = 16384  # steps between slice hooks (journal file flushes, replay checks)
_TIMER_SWEEP_MIN = 64  # timer buckets below which emptied ones are never swept
_NO_SOURCES = Sources()
_FOREIGN_LOOP_MESSAGES = ("no running event loop", "must be called from async context")


@functools.lru_cache(maxsize=1024)  # (a failing run asks for the same few files)
def is_internal(filename: str) -> bool:
    """True for the VM's own source files (``counterpoint/*.py``)."""
    return os.path.dirname(filename) in _PACKAGE_DIRS


def failure_site(error: BaseException) -> TracebackType | None:
    """The innermost traceback entry of ``error`` in user code (None if it has none)."""
    site = None
    tb = error.__traceback__
    while tb is not None:
        if not is_internal(tb.tb_frame.f_code.co_filename):
            site = tb
        tb = tb.tb_next
    return site


def user_traceback(error: BaseException, internal: Callable[[str], bool] = is_internal) -> None:
    """Drop the VM's own frames (files for which ``internal`` is true) from ``error``'s
    traceback, keeping the user's."""
    tb = error.__traceback__
    kept = []
    while tb is not None:
        if not internal(tb.tb_frame.f_code.co_filename):
            kept.append(tb)
        tb = tb.tb_next
    if not kept:
        error.__traceback__ = None
        return
    for first, second in pairwise(kept):
        first.tb_next = second
    kept[-1].tb_next = None
    error.__traceback__ = kept[0]


def check_coroutine(coro: Any, what: str) -> CoroutineType:
    """Return ``coro`` if it is a coroutine object; adopt VM operations; else TypeError."""
    if type(coro) is CoroutineType:
        return coro
    if is_operation(coro):
        from ._ops import adopt

        return adopt(coro)
    if callable(coro) and hasattr(coro, "__name__"):
        got = f"the function {coro.__name__!r} itself"
    else:
        got = f"an object of type {type(coro).__name__}"
    raise TypeError(
        f"{what} needs a coroutine object (the result of calling an `async def` function), "
        f"but got {got}: did you forget to call it, or to write `async def`?"
    )


class VM:
    """A deterministic concurrency VM.

    ``seed`` feeds the ``random`` policy and ``cp.rng()``; ``policy`` is ``"fifo"``
    (ready-queue order) or ``"random"`` (seeded choice among ready tasks);
    ``workers`` is where worker functions run (``"inline"``, ``"thread"``,
    ``"process"``, ``"dask"``, a ``distributed.Client``, a Dask scheduler address or
    a ``cp.worker`` backend object) and ``max_workers`` bounds the workers in
    flight (0 disables them); ``max_steps`` bounds the task resumptions of one
    ``run``; ``journal=None`` records the journal in memory and ``journal=False``
    turns recording off (for benchmarks).  ``vm.events`` is the host event queue.

    >>> import counterpoint as cp
    >>> async def main():
    ...     results = await cp.par(cp.sleep(2), cp.sleep(1))
    ...     return cp.now()
    >>> vm = cp.VM(seed=1)
    >>> vm.run(main())
    2
    >>> len(vm.journal.digest())
    64
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        policy: str = "fifo",
        workers: Any = "inline",
        max_workers: int | None = None,
        max_steps: int | None = None,
        schedule: str | None = None,
        journal: str | PathLike | Literal[False] | None = None,
        sources: Sources | None = None,
    ) -> None:
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise TypeError(f"seed must be an int, got {type(seed).__name__}")
        if not -(2**63) <= seed < 2**63:
            raise ValueError(
                f"seed must fit in 64 bits (from -2**63 to 2**63 - 1, as a journal stores it), "
                f"got an int of {seed.bit_length()} bits; reduce it, e.g. seed % 2**63"
            )
        if policy not in POLICIES:
            raise ValueError(f"unknown policy {policy!r}: choose 'fifo' or 'random'")
        if max_steps is not None:
            if not isinstance(max_steps, int) or isinstance(max_steps, bool):
                raise TypeError(f"max_steps must be an int or None, got {max_steps!r}")
            if max_steps < 1:
                raise ValueError(f"max_steps must be a positive int (at least 1), got {max_steps}")
        if max_workers is not None:
            if not isinstance(max_workers, int) or isinstance(max_workers, bool):
                raise TypeError(f"max_workers must be an int or None, got {max_workers!r}")
            if max_workers < 0:
                raise ValueError(
                    f"max_workers must be >= 0 (0 disables workers), got {max_workers}"
                )
        named = ("inline", "thread", "process", "dask")
        if isinstance(workers, str) and workers not in named and "://" not in workers:
            raise ValueError(
                f"unknown workers backend {workers!r}: use 'inline', 'thread', 'process', "
                f"'dask', a distributed.Client or a Dask scheduler address"
            )
        if journal is not None and journal is not False and not isinstance(journal, str | PathLike):
            raise TypeError(
                f"journal must be None (record in memory), a file path (stream to it) or "
                f"False (recording off), got {journal!r}"
            )
        self._seed = seed
        self._policy = policy
        self._max_steps = max_steps
        self._now = 0
        self._fifo = policy == "fifo"
        self._ready: deque[Task] | list[Task] = deque() if self._fifo else []
        # (only the random policy draws from it: seeding one costs about as much as the rest
        # of a VM, and exploring makes a VM per schedule)
        self._policy_rng = None if self._fifo else random.Random(seed)
        self._timers: dict[int, list] = {}
        self._deadlines: list[int] = []
        self._timer_sweep = _TIMER_SWEEP_MIN  # sweep emptied buckets past this many
        self._live: dict[int, Task] = {}
        self._cancel_errors: dict[int, BaseException] = {}  # raised instead of Cancelled
        self._kept = _Kept()  # what kept roots (_roots.py) need to remember
        # suspended tasks: id -> the task if it could run (held out of the ready queue),
        # else None.  (One attribute: at 30, CPython 3.11 stops specializing the VM's
        # attribute loads -- see "Performance shape" in docs/design.md.)
        self._suspended: dict[int, Task | None] = {}
        self._next_task = 1
        self._counters: dict[str, int] = {}
        self._unobserved: list[Task] = []
        # the thread driving the VM (vm.run, vm.step, a cell ...): one at a time
        self._driver = _Driver()
        self._journal = Journal(enabled=journal is not False)
        self._journal.meta.update(seed=seed, policy=policy, max_workers=max_workers)
        if sources is None:
            sources = _NO_SOURCES
        elif not isinstance(sources, Sources):
            raise TypeError(f"sources must be a lowlevel.Sources, got {type(sources).__name__}")
        if sources.chooser is not None and schedule is not None:
            raise ValueError("give a schedule or a chooser in sources, not both")
        # who decides at choice points: None (the policy), a schedule, or an explorer
        self._chooser: Any = sources.chooser
        if schedule is not None:
            from ._schedule import ScheduleChooser

            self._chooser = ScheduleChooser(schedule)
            self._journal.meta["schedule"] = schedule
        if max_steps is not None:
            self._journal.meta["max_steps"] = max_steps
        # Operations append records straight to these columns (list.append is the
        # fastest call CPython has); with recording off they discard everything.
        if journal is not False:
            self._rows: list | deque = self._journal._rows
            self._vals: list | deque = self._journal._vals
        else:
            self._rows = deque(maxlen=0)
            self._vals = deque(maxlen=0)
        self._workers = Workers(self, workers, max_workers)
        self._workers.receipts = sources.receipts  # (None: the workers run)
        self.events = EventQueue(self) if sources.events is None else sources.events(self)
        # called between slices of a run (streaming to a file, replay checks)
        self._slice_hooks: list = []
        self._slice = _SLICE
        self._stream = None
        if journal is not None and journal is not False:
            from ._store import Writer

            self._stream = Writer(self._journal, journal)
            self._slice_hooks.append(self._stream.flush)

    @classmethod
    def recover(cls, path: str | PathLike, **options: Any) -> VM:
        """A VM that recovers the run whose journal file (``VM(journal=path)``) is at
        ``path``, left by a run that stopped or was killed: ``vm.run(program)``
        re-executes the program against the file's records (checking each one; worker
        receipts and host events come from the file), then goes on live, appending to
        the same file.  ``options``: ``seed``, ``policy``, ``max_workers``,
        ``max_steps``, ``schedule`` default to the file's (given and different:
        ``ValueError``), and ``workers`` (where workers the file lacks receipts for
        run).  ``vm.recovery`` says how far it got.  See ``docs/recovery.md``."""
        from ._recover import recover

        return recover(cls, path, **options)

    recovery: Any = None  # (a VM made by VM.recover: its _recover.Recovery)

    # -- public, host side ---------------------------------------------------------

    @property
    def now(self) -> int:
        """Virtual time in ticks."""
        state = current()
        if state.worker is not None:
            refuse_worker(state, "vm.now")
        return self._now

    @property
    def seed(self) -> int:
        return self._seed

    @property
    def policy(self) -> str:
        return self._policy

    @property
    def journal(self) -> Journal:
        """The journal of everything this VM did (see ``docs/journal.md``)."""
        return self._journal

    def show(self, *, x: str = "event", last: int | None = None) -> Any:
        """This VM's run as a ``cp.widgets.Timeline`` that follows it as it runs (in
        Jupyter; see ``docs/widgets.md``).  Imports the widgets (and Jupyter's) on first
        use."""
        from counterpoint.widgets import Timeline

        return Timeline(self, x=x, last=last)

    def tasks(self) -> list[TaskInfo]:
        """Snapshots of the live (unfinished) tasks, in ascending id (a list, shown as a
        table in Jupyter)."""
        refuse_worker(current(), "vm.tasks()")
        return TaskList(task.info() for task in self._live.values())

    def spawn(self, coro: Any, *, name: str | None = None) -> Task:
        """Create a task from the host without running anything (see :meth:`step`)."""
        with self._as_host("vm.spawn()", coro):
            return self._spawn(coro, name, None, None, "vm.spawn()")

    def run(self, coro: Any) -> Any:
        """Run ``coro`` as a new root task until it finishes; return its value or raise.

        Other tasks keep their state and continue in the next ``run`` or ``step``.
        Raises ``cp.Deadlock`` if nothing can progress while the root waits and
        ``cp.StepLimitExceeded`` past ``max_steps`` resumptions.
        """
        __tracebackhide__ = True
        self._claim("vm.run()", coro)
        try:
            root = self._spawn(coro, None, None, None, "vm.run()")
            try:
                error = self._run(root)
            except BaseException as interrupt:  # KeyboardInterrupt and friends
                self._warn_unobserved(root, interrupt)
                raise
        finally:
            self._release()
        if root._state == FAILED:
            error = root._error
        self._warn_unobserved(root, error)  # (from here: the warning points at vm.run)
        if error is None:
            return root._result
        raise error  # (from here, so the traceback is vm.run + the user's frames)

    def _run(self, root: Task) -> BaseException | None:
        """Drive the root task; return None if it finished, else the error that ``run``
        raises (its tasks abandoned: cancelled, deadlocked, over max_steps)."""
        with DeferredInterrupts():  # Ctrl-C: in user code, or at a safe point
            budget = self._max_steps if self._max_steps is not None else sys.maxsize
            try:
                self._drive(root, budget)
            except BaseException:  # KeyboardInterrupt and friends: abandon this run
                self._abandon(root, "vm.run() was interrupted")
                self._flush_hooks()
                raise
            if root._state == S_DONE or root._state == FAILED:
                return None
            if root._state == S_CANCELLED:
                return self._cancelled_error(root)
            if self._ready or self._has_timers():
                error: Exception = StepLimitExceeded(self._step_limit_message(root))
                self._abandon(root, f"vm.run() exceeded max_steps={self._max_steps}")
            else:
                error = self._deadlock(root)
                self._abandon(root, "vm.run() found a deadlock")
            self._flush_hooks()
            return error

    def _flush_hooks(self) -> None:
        """After records written outside the loop (abandoning a run): the file gets them."""
        if self._stream is not None:
            self._stream.flush(True)
        if self._watchers is not None:
            self._watchers()

    def _abandon(self, root: Task, reason: str) -> None:
        """Cancel every task the failed run started, so they do not haunt later runs.

        That is the root and every live task spawned after it (ids are ascending),
        detached ones included.  The cancellations are journaled now; the tasks
        run their cleanup (``finally`` blocks) at the VM's next ``run`` or ``step``.
        """
        if self._chooser is not None:
            self._chooser.abandoning(self)
        for task in list(self._live.values()):
            if task.id >= root.id:
                self._cancel_node(task, 0, reason)

    def step(self, n: int = 1, *, task: Any = None) -> int:
        """Perform up to ``n`` task resumptions; return how many ran (0: nothing can run).

        When no task is ready, virtual time first advances to the next timer.
        ``vm.step(task=ID)`` makes the host the scheduler: it runs exactly one step of
        that ready task (an id, a ``Task`` or a ``TaskInfo``) and returns 1; a task that
        is not ready raises ``cp.InvalidStateError`` naming the ready ones.  The choice
        is part of :attr:`schedule`.
        """
        if task is not None:
            if n != 1:
                raise ValueError(f"vm.step(task=...) runs exactly one step; got n={n!r}")
            return self._step_task(_task_id_of(task))
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise ValueError(f"vm.step(n) needs a non-negative int, got {n!r}")
        self._claim("vm.step()")
        try:
            with DeferredInterrupts():
                return self._drive(None, n)
        finally:
            self._release()

    def _dispose(self) -> None:
        """Close the coroutines of the tasks left behind, for a VM about to be dropped
        (a replay that diverged, an exploration's run): Python would warn about each
        one never awaited.  Their ``finally`` blocks run outside the VM, so an ``await``
        there fails; that error is of no interest here.  The tasks then let go of each
        other and of the VM (see _task_exit), so dropping it frees them at once."""
        for task in list(self._live.values()):
            try:
                task._coro.close()
            except Exception:  # its finally blocks awaited: see above
                pass
            task._inner = task._waiting = task._waitq = task._exc = None
            task._parent = task._subnodes = None  # (a scope and its tasks: a cycle too)
        self._live.clear()
        self._ready.clear()

    def _step_task(self, task_id: int) -> int:
        what = f"vm.step(task={task_id})"
        self._claim(what)
        try:
            if self._ready:  # refuse before anything changes
                self._ready_task(task_id, what)
            with DeferredInterrupts():
                # nothing ready: time advances first (not a choice), then the pick
                return self._drive(None, 1, lambda: self._take_ready(task_id, what))
        finally:
            self._release()

    def _ready_task(self, task_id: int, what: str) -> Task:
        """The ready task ``task_id``, or raise ``InvalidStateError``."""
        task = self._live.get(task_id)
        if task is None or task._state != READY or task._suspended or task not in self._ready:
            raise InvalidStateError(self._not_ready_message(task_id, task, what))
        return task

    def _take_ready(self, task_id: int, what: str) -> Task:
        """Remove the ready task ``task_id`` from the ready queue, or raise."""
        task = self._ready_task(task_id, what)
        self._unready(task)
        return task

    def _unready(self, task: Task) -> None:
        """Take a ready task out of the ready queue, as the policy's own pick would:
        fifo keeps the others' order, random swaps the last one into its place (so
        ``state_at`` can follow the order)."""
        ready = self._ready
        if self._fifo:
            if ready[0] is task:
                ready.popleft()
            else:
                ready.remove(task)
        else:
            index = ready.index(task)
            ready[index] = ready[-1]
            ready.pop()

    def _not_ready_message(self, task_id: int, task: Task | None, what: str) -> str:
        if task is not None:
            info = task.info()
            state = f"{info.state}" + (f" {info.waiting_on}" if info.waiting_on else "")
            about = f"task {task_id} {task.name!r} is not ready (it is {state})"
        elif 0 < task_id < self._next_task:
            about = f"task {task_id} has ended"
        else:
            about = f"this VM has no task {task_id}"
        ready = self._ready_order()
        if ready:
            names = ", ".join(f"{t.id} {t.name!r}" for t in ready)
            return f"{what}: {about}; the ready tasks are {names}"
        return f"{what}: {about}, and no task is ready (nothing can run)"

    def ready(self) -> TaskList:
        """The ready tasks, in the order ``fifo`` would run them (``TaskInfo`` snapshots).

        Under the ``random`` policy, whose ready set has no order, in ascending id.
        Nothing changes: a VM with no ready task but a pending timer returns ``[]``
        (``vm.step()`` advances the time).
        """
        refuse_worker(current(), "vm.ready()")
        return TaskList(task.info() for task in self._ready_order())

    def _ready_order(self) -> list[Task]:
        ready = [task for task in self._ready if not task._suspended]
        return ready if self._fifo else sorted(ready, key=_task_id)

    @property
    def schedule(self) -> str:
        """The ``cp1:`` string of every choice made so far -- by the policy, a schedule,
        or the host (``vm.step(task=...)``): ``cp.VM(schedule=vm.schedule)`` re-runs the
        same program to the same journal.  Read from the journal (not kept while running,
        so it costs nothing until asked); a VM made with ``journal=False`` has none."""
        refuse_worker(current(), "vm.schedule")
        if not self._journal.enabled:
            raise JournalError(
                "vm.schedule is read from the journal, and this VM records none "
                "(journal=False); make the VM with a journal to get its schedule"
            )
        if self._schedule_reader is None:
            from ._steering import ScheduleReader

            self._schedule_reader = ScheduleReader(self._journal)
        return self._schedule_reader.read()

    _schedule_reader: Any = None

    def watch(self, callback: Callable[[VM, int, int], Any]) -> Callable[[], None]:
        """Call ``callback(vm, first, last)`` after records ``first..last`` (event ids)
        were written: at most every 1,000 steps while running, at the end of each
        ``run``/``step`` and after host calls that write records; on the VM's thread,
        never inside a task's step.  The callback cannot change the VM (calls that would
        raise ``cp.VMBusyError``).  Returns ``unwatch()``, which stops the calls.
        """
        from ._steering import Watchers

        if not callable(callback):
            raise TypeError(f"vm.watch() needs a callable, got {type(callback).__name__}")
        if not self._journal.enabled:
            raise JournalError(
                "vm.watch() follows the journal, and this VM records none (journal=False)"
            )
        if self._watchers is None:
            self._watchers = Watchers(self)
        return self._watchers.add(callback)

    _watchers: Any = None

    def channel(self, capacity: int = 0, *, name: str | None = None):
        """Create a channel of this VM from the host (inside tasks use ``cp.channel``)."""
        from ._channel import Channel

        with self._as_host("vm.channel()"):
            return Channel(self, capacity, None, name)

    def close(self) -> None:
        """Release host resources: finish the journal file (``VM(journal=path)``) and
        close a worker backend this VM created.  Idempotent.

        ``with cp.VM(workers="process") as vm: ...`` closes on exit.  A VM whose
        journal file is closed refuses to go on (``cp.JournalError``): its records
        would not reach the finished file.
        """
        self._claim("vm.close()", closing=True)
        try:
            self._close()
        finally:
            self._release()

    def _close(self) -> None:
        self._workers.close()
        if self._stream is not None:
            from ._store import ClosedColumn

            stream, self._stream = self._stream, None
            self._slice_hooks.remove(stream.flush)
            self._closed_file = stream.path
            self._rows = ClosedColumn(self._journal._rows, stream.path)  # any late record: refused
            self._vals = ClosedColumn(self._journal._vals, stream.path)
            stream.finish()

    _closed_file: Path | None = None  # the journal file vm.close() finished

    def _check_open(self, what: str, coro: Any = None) -> None:
        if self._closed_file is not None:
            from ._store import closed_error

            discard(coro)
            raise closed_error(self._closed_file, what)

    def __enter__(self) -> VM:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"<VM policy={self._policy} seed={self._seed} now={self._now} "
            f"tasks={len(self._live)} records={len(self._journal)}>"
        )

    # -- scheduler -------------------------------------------------------------------

    def _claim(self, what: str, coro: Any = None, *, closing: bool = False) -> None:
        """Make this thread the one driving the VM, or raise ``VMBusyError`` (a VM runs
        on one thread at a time; the claim is atomic) -- or ``JournalError`` if
        ``vm.close()`` finished the VM's journal file.  A refused ``coro`` is closed."""
        state = current()
        driver = self._driver
        if state.task is None and state.worker is None and driver.lock.acquire(blocking=False):
            if self._closed_file is not None and not closing:
                driver.lock.release()
                self._check_open(what, coro)  # raises
            driver.thread = get_ident()
            driver.name = threading.current_thread().name
            return
        discard(coro)  # refused: do not leave it to warn "never awaited"
        refuse_worker(state, what)
        task = state.task
        if task is not None:
            raise VMBusyError(
                f"{what} was called from inside a running task (task {task.id} {task.name!r}); "
                f"inside tasks use `await`, cp.spawn() or cp.par() instead"
            )
        where = "this thread" if driver.thread == get_ident() else f"thread {driver.name!r}"
        raise VMBusyError(
            f"{what} was called while this VM is running on {where}. A VM runs on one thread "
            f"at a time: wait until that vm.run()/vm.step() returns, give each thread its own "
            f"VM, or feed a running VM from other threads with vm.events.enqueue()"
        )

    def _release(self) -> None:
        driver = self._driver
        driver.thread = 0
        driver.lock.release()

    def _as_host(self, what: str, coro: Any = None) -> _HostCall:
        """``with vm._as_host(what):`` around a host call that changes the VM (vm.spawn,
        ``channel.close()`` from host code ...): refused while the VM runs."""
        self._claim(what, coro)
        return _HostCall(self)

    def _drive(self, root: Task | None, budget: int, pick: Any = None) -> int:
        """Run the loop; with slice hooks (a journal file, a replay, watchers), in slices
        of steps with the hooks called between them and at the end.  ``pick``: who runs
        next (the host's choice), else the policy or the chooser."""
        previous = enter_run_state(RunState())  # tasks on this thread run for this VM now
        try:
            return self._drive_slices(root, budget, pick)
        finally:
            leave_run_state(previous)

    def _drive_slices(self, root: Task | None, budget: int, pick: Any) -> int:
        hooks = self._slice_hooks
        if not hooks:
            return self._loop(root, budget, pick)
        done = 0
        try:
            while done < budget:
                size = min(budget - done, self._slice)
                ran = self._loop(root, size, pick)
                done += ran
                if ran < size or (root is not None and root._state >= S_DONE):
                    break
                for hook in hooks:
                    hook()
        finally:
            for hook in hooks:
                hook(True)
        return done

    def _loop(self, root: Task | None, budget: int, pick: Any = None) -> int:
        """Resume tasks until ``root`` finishes, ``budget`` steps ran, or nothing can run.

        Returns the number of resumptions.  This is the hot loop: one journal
        append per step, and everything else happens inside the operations.
        (``repeat`` counts the steps without allocating an int per step; its
        length hint is the budget left.)
        """
        ready = self._ready
        if pick is not None:
            pass  # the host chose
        elif self._chooser is not None:
            pick = self._pick_chosen
        else:
            pick = ready.popleft if self._fifo else self._pick_random
        push = ready.append
        ra = self._rows.append
        advance = self._advance_time
        running = current()  # set by _drive: separate VMs on separate threads
        interrupts = noted_here()  # Ctrl-C noted during bookkeeping: raise it here
        reschedule, park = RESCHEDULE, PARK
        budget_left = repeat(None, budget)
        try:
            for _ in budget_left:
                if interrupts:
                    take_interrupt()
                while not ready:
                    if not advance():
                        return budget - budget_left.__length_hint__() - 1
                task = pick()
                if task._suspended:  # (rare) held until resumed; pick again
                    task = self._pick_unsuspended(task, pick)
                    if task is None:
                        return budget - budget_left.__length_hint__() - 1
                running.task = task
                ra(task._kstep)
                try:
                    if task._exc is None:
                        trap = task._coro.send(task._val)
                    else:
                        exc, task._exc = task._exc, None
                        trap = task._coro.throw(exc)
                except StopIteration as stop:
                    self._finish(task, stop.value)
                    if task is root:
                        break
                except BaseException as error:
                    self._fail(task, error)
                    if task is root:
                        break
                else:
                    if trap is reschedule:
                        push(task)
                    elif trap is not park:
                        self._foreign(task, trap)
        finally:
            running.task = None
        return budget - budget_left.__length_hint__()

    def _pick_unsuspended(self, task: Task, pick: Callable[[], Task]) -> Task | None:
        """``task`` was picked but is suspended: hold it (``_suspended``) and pick another,
        advancing time as the loop does; None if nothing can run."""
        ready = self._ready
        while task._suspended:
            self._suspended[task.id] = task
            while not ready:
                if not self._advance_time():
                    return None
            task = pick()
        return task

    def _set_suspended(self, task: Task, suspend: bool, what: str) -> bool:
        """``task.suspend()`` / ``task.resume()``: from the host or a task of this VM
        (see "Suspending and resuming tasks" in docs/design.md)."""
        from ._journal import RESUME, SUSPEND
        from ._traps import observed, task_or_host

        current = task_or_host(what)
        kind = SUSPEND if suspend else RESUME
        if current is None:
            with self._as_host(what):  # (refused while the VM runs on another thread)
                if _unchanged(task, suspend):
                    return False
                self._switch_suspended(task, suspend, 0, kind)
            return True
        if current._vm is not self:
            from ._errors import WrongVMError

            raise WrongVMError(
                f"{what} was called from task {current.id} {current.name!r} of another VM; "
                f"a task can suspend and resume only tasks of its own VM (the host can "
                f"call it on any VM that is not running)"
            )
        observed(self, "task", task.id)  # (the answer depends on the task's state)
        if _unchanged(task, suspend):
            return False
        self._switch_suspended(task, suspend, current.id, kind)
        return True

    def _switch_suspended(self, task: Task, suspend: bool, by: int, kind: int) -> None:
        task._suspended = suspend
        self._record(task, kind, by)
        held = self._suspended
        if suspend:
            held[task.id] = None
            if task._state == READY and task is not current().task and task in self._ready:
                self._unready(task)
                held[task.id] = task
        elif held.pop(task.id, None) is not None:
            self._ready.append(task)

    def _pick_chosen(self) -> Task:
        """A schedule or an explorer picks (ready tasks offered in ascending id; the
        policy's ready list may be a deque (fifo) or a list (random))."""
        ready = self._ready
        chooser = self._chooser
        if self._suspended:  # never offer a suspended task: give it to the loop to hold
            for task in ready:
                if task._suspended:
                    self._unready(task)
                    return task
        front = ready[0]
        if len(ready) == 1:
            ready.pop()
            chooser.ran(self, front, None)
            return front
        candidates = sorted(ready, key=_task_id)
        task = candidates[chooser.pick(self, candidates, front)]
        self._unready(task)
        chooser.ran(self, task, candidates)
        return task

    def _choose(self, count: int) -> int:
        """The index of the option a ``cp.choose`` takes (a data choice point)."""
        if self._chooser is not None:
            return self._chooser.choose(self, count)
        if self._fifo or count == 1:
            return 0
        return self._policy_rng.randrange(count)

    def _pick_random(self) -> Task:
        ready = self._ready
        count = len(ready)
        if count == 1:
            return ready.pop()
        index = self._policy_rng.randrange(count)
        task = ready[index]
        ready[index] = ready[-1]
        ready.pop()
        return task

    def _has_timers(self) -> bool:
        return any(self._timers.values())

    def _advance_time(self) -> bool:
        """Nothing is ready: hand queued host events to waiting tasks, or jump to the
        earliest live timer and fire its bucket.  False if neither can happen."""
        if self._chooser is not None:
            self._chooser.advancing(self)
        events = self.events
        if events._waiters and events._available() and events._deliver():
            return True
        deadlines = self._deadlines
        timers = self._timers
        while deadlines:
            deadline = heappop(deadlines)
            bucket = timers.pop(deadline)
            if not bucket:
                continue
            self._now = deadline
            self._journal._advance(deadline)
            push = self._ready.append
            for target in bucket:
                if type(target) is Task:
                    target._state = READY
                    target._val = None
                    push(target)
                    self._rows.append(target._k | TIMER)
                else:
                    target._timer_fired()
            return True
        return False

    def _add_timer(self, deadline: int, target: Any) -> list:
        """Register ``target`` (a Task or an object with ``_timer_fired``) at ``deadline``.

        A timer is cancelled by removing its target from the bucket (a scope that
        exits before its timeout, a select that completes, a cancelled worker), which
        can leave empty buckets until their deadline.  Whenever the number of buckets
        has doubled since the last sweep, the empty ones are dropped with their heap
        entries: memory stays proportional to the live timers, at O(1) amortized.
        """
        bucket = self._timers.get(deadline)
        if bucket is None:
            self._timers[deadline] = bucket = [target]
            deadlines = self._deadlines
            heappush(deadlines, deadline)
            if len(deadlines) > self._timer_sweep:
                self._sweep_timers()
        else:
            bucket.append(target)
        return bucket

    def _sweep_timers(self) -> None:
        """Drop empty timer buckets and their deadlines (in place: callers hold both)."""
        timers = self._timers
        for deadline in [deadline for deadline, bucket in timers.items() if not bucket]:
            del timers[deadline]
        deadlines = self._deadlines
        deadlines[:] = timers
        heapify(deadlines)
        self._timer_sweep = max(_TIMER_SWEEP_MIN, 2 * len(deadlines))

    # -- tasks -----------------------------------------------------------------------

    def _spawn(
        self, coro: Any, name: str | None, parent: Any, spawner: Task | None, what: str
    ) -> Task:
        if type(coro) is not CoroutineType:
            coro = check_coroutine(coro, what)
        if name is None:
            name = coro.__name__
        elif not isinstance(name, str):
            coro.close()
            raise TypeError(f"a task name must be a str, got {type(name).__name__}")
        task_id = self._next_task
        if task_id > MAX_TASK_ID:
            discard(coro)
            raise LimitExceeded(
                f"this VM has made {MAX_TASK_ID:,} tasks, the most one VM can journal; "
                f"start a new VM"
            )
        self._next_task = task_id + 1
        task = Task(self, task_id, name, coro, parent)
        self._live[task_id] = task
        self._ready.append(task)
        self._rows.append((0 if spawner is None else spawner._k) | SPAWN | task_id << A_SHIFT)
        self._vals.append(name)
        return task

    def _finish(self, task: Task, value: Any) -> None:
        if task._fresh is not None:
            try:
                check_fresh(task)
            except Exception as error:
                self._fail(task, error)
                return
        task._state = S_DONE
        task._result = value
        self._rows.append(task._k | DONE)
        self._vals.append(value if type(value) in _ATOMIC else plain(value))
        self._task_exit(task)

    def _fail(self, task: Task, error: BaseException) -> None:
        if isinstance(error, Cancelled):
            task._state = S_CANCELLED
            self._rows.append(task._k | CANCELLED)
            self._task_exit(task)
            return
        if not isinstance(error, Exception):
            # KeyboardInterrupt, SystemExit: the task is gone; record it and pass it on.
            task._state = S_CANCELLED
            self._kept.interrupted = task
            self._record(task, CANCEL, 0, f"interrupted by {type(error).__name__}")
            self._record(task, CANCELLED)
            self._task_exit(task)
            raise error
        error = self._explain_foreign(task, error)
        user_traceback(error)
        task._state = FAILED
        task._error = error
        self._record(task, FAIL, 0, exception_data(error))
        self._task_exit(task)

    def _task_exit(self, task: Task) -> None:
        task._coro = None
        # an ended task keeps no reference to itself (its innermost cancel node) or to
        # what it last waited on (read only while it blocks): its run's objects are then
        # freed as they are dropped, not left to the cycle collector (exploring makes a
        # VM per schedule; that collector cost a tenth of each)
        task._inner = task._waiting = task._waitq = None
        del self._live[task.id]
        if task._suspended:  # (it suspended itself, then ended in the same step)
            del self._suspended[task.id]
        joiners = task._joiners
        if joiners is not None:
            task._joiners = None
            for joiner in joiners:
                if type(joiner) is Task:
                    self._wake(joiner, None, task.id)
                else:
                    joiner._task_done(task)
        parent = task._parent
        if parent is not None:
            parent._child_exit(task)
        elif task._state == FAILED:
            self._unobserved.append(task)

    def _record(self, task: Task | None, kind: int, a: int = 0, value: Any = None) -> None:
        """Append one record of ``kind`` by ``task`` (None: the host) about id ``a``, with
        ``value`` in its value slot if the kind has one (``_kinds.KINDS``).  The writer
        helper; the hot paths (steps, channels, sleep, spawn, task endings) inline it."""
        self._rows.append((0 if task is None else task._k) | kind | a << A_SHIFT)
        if HAS_VALUE[kind]:
            self._vals.append(value)

    # -- the scheduler calls (counterpoint.lowlevel; see "Who may change scheduler state"
    # in docs/design.md).  The channel fast paths and the timer loop inline _reschedule.

    def _reschedule(self, task: Task, value: Any = None) -> None:
        """Make a parked task ready, to be resumed with ``value`` (journal nothing:
        the caller journals the effect, such as the ``recv`` of a value handed over)."""
        task._val = value
        task._state = READY
        self._ready.append(task)

    def _wake(self, task: Task, value: Any, by: int) -> None:
        """Make a parked task ready, to be resumed with ``value``; journal ``wake``."""
        task._val = value
        task._state = READY
        self._ready.append(task)
        self._rows.append(task._k | WAKE | by << A_SHIFT)

    def _throw(self, task: Task, error: BaseException, by: int = -1) -> None:
        """Make a parked task ready, to raise ``error`` at its await; journal ``wake``
        by ``by`` (-1: journal nothing, the caller did)."""
        task._exc = error
        task._state = READY
        self._ready.append(task)
        if by >= 0:
            self._record(task, WAKE, by)

    def _unpark(self, task: Task) -> None:
        """Take a parked task out of what it waits on (its queue; its cleanup runs),
        leaving it to the caller to make it ready."""
        queue = task._waitq
        if queue is not None and task in queue:
            queue.remove(task)
        cleanup = task._cleanup
        if cleanup is not None and cleanup is not UNINTERRUPTIBLE:
            cleanup(task)

    def _foreign(self, task: Task, trap: Any) -> None:
        if trap is None:
            what = "a bare `yield` (such as asyncio.sleep(0))"
        else:
            kind = trap if isinstance(trap, type) else type(trap)
            library = kind.__module__.split(".")[0].lstrip("_")
            what = f"{kind.__qualname__} from {library}"
        task._exc = ForeignAwaitableError(
            f"task {task.id} {task.name!r} awaited {what}, which belongs to another event "
            f"loop. Counterpoint tasks can only await VM operations: use cp.sleep / "
            f"cp.channel (and cp.spawn, cp.par, cp.Lock ...) instead of asyncio or trio."
        )
        self._ready.append(task)  # (still ready: it raises at its next step)

    def _explain_foreign(self, task: Task, error: Exception) -> Exception:
        """A task that called into asyncio or trio fails with ``ForeignAwaitableError``:
        "no running event loop", or (asyncio's loop-bound objects, on Python 3.11) an
        ``AttributeError`` on the missing loop, raised inside the library."""
        kind = type(error)
        if (kind is RuntimeError and str(error) in _FOREIGN_LOOP_MESSAGES) or (
            kind is AttributeError and str(error).startswith("'NoneType' object")
        ):
            tb = error.__traceback__
            while tb is not None and tb.tb_next is not None:
                tb = tb.tb_next
            origin = tb.tb_frame.f_code.co_filename if tb is not None else ""
            if "asyncio" in origin or "trio" in origin:
                library = "asyncio" if "asyncio" in origin else "trio"
                wrapped = ForeignAwaitableError(
                    f"task {task.id} {task.name!r} called into {library} ({error}). "
                    f"Counterpoint tasks do not run on {library}'s event loop: use cp.sleep / "
                    f"cp.channel (and cp.spawn, cp.par, cp.Lock ...) instead."
                )
                wrapped.__cause__ = error
                wrapped.__traceback__ = error.__traceback__
                return wrapped
        return error

    def _warn_unobserved(self, root: Task, outcome: BaseException | None = None) -> None:
        """Warn ``UnobservedTaskFailure`` for each detached task that failed in this run
        and that nothing awaited.  With warnings turned into errors, the warning is
        raised -- unless the run has an error of its own (``outcome``), which goes
        first and carries the warning as a note."""
        root._observed = True
        pending, self._unobserved = self._unobserved, []
        for task in pending:
            if task._observed:
                continue
            try:
                _warn_failure(task)
            except Warning as warned:
                if outcome is None:
                    raise
                outcome.add_note(f"(and, as an error: {type(warned).__name__}: {warned})")

    # -- cancellation ------------------------------------------------------------------

    def _cancelled_error(self, task: Task) -> BaseException:
        raised = self._cancel_errors.get(task.id) if self._cancel_errors else None
        if raised is not None:  # a cell told why it stops (see _cells.py)
            return copy.copy(raised).with_traceback(None) if raised.__traceback__ else raised
        return Cancelled(f"task {task.id} {task.name!r} was cancelled")

    def _cancel_node(self, node: Any, by: int, reason: str) -> None:
        """Cancel a task or scope: every task under it (ascending id) gets cancelled."""
        if node._cancel_called:
            return
        node._cancel_called = True
        targets: list[Task] = []
        self._collect(node, targets)
        targets.sort(key=_task_id)
        for task in targets:
            self._deliver_cancel(task, by, reason)

    def _collect(self, node: Any, out: list[Task]) -> None:
        owner = node._owner()
        if owner._inner is node and owner._state < S_DONE:
            out.append(owner)
        subnodes = node._subnodes
        if subnodes:
            for sub in subnodes.values():
                if not sub._shield and not sub._cancel_called:
                    self._collect(sub, out)

    def _journal_cancel(self, task: Task, by: int, reason: str) -> None:
        """The ``cancel`` record: a cancellation has reached ``task``."""
        self._record(task, CANCEL, by, reason)

    def _deliver_cancel(self, task: Task, by: int, reason: str) -> None:
        if task._cancelled or task._state >= S_DONE:
            return
        task._cancelled = True
        if task._suspended:  # a cancel resumes the task, to run its cleanup at once
            from ._journal import RESUME

            self._switch_suspended(task, False, by, RESUME)
        self._journal_cancel(task, by, reason)
        if task._state == BLOCKED and task._cleanup is not UNINTERRUPTIBLE:
            self._unpark(task)
            self._throw(task, self._cancelled_error(task))

    # -- objects -----------------------------------------------------------------------

    def _next_id(self, kind: str) -> int:
        """The next number of ``kind`` (channel 1, 2 ...), within what a record can hold."""
        number = self._counters.get(kind, 0) + 1
        if number > MAX_OBJECT_ID:
            raise LimitExceeded(
                f"this VM has made {MAX_OBJECT_ID:,} objects of kind {kind!r}, the most one VM "
                f"can journal; start a new VM"
            )
        self._counters[kind] = number
        return number

    def _new_object(self, kind: str, creator: Task | None, extra: dict | None = None) -> int:
        """Number a new object of ``kind`` (channel 1, 2 ...) and journal its creation."""
        number = self._next_id(kind)
        self._record(creator, CREATE, number, (kind, extra or {}))
        return number

    def _task_rng(self, task: Task) -> random.Random:
        rng = task._rng
        if rng is None:
            digest = hashlib.sha256(f"counterpoint/{self._seed}/{task.id}".encode()).digest()
            rng = task._rng = random.Random(int.from_bytes(digest[:8], "big"))
        return rng

    # -- reports -------------------------------------------------------------------------

    def _blocked(self) -> list[tuple[int, str, str]]:
        out = []
        for task in self._live.values():
            info = task.info()
            if info.waiting_on is not None:
                out.append((task.id, task.name, info.waiting_on))
        return out

    def _finished(self) -> list[tuple[int, str, str]]:
        """``(task id, name, "done" / "failed" / "cancelled")`` of every task that has
        ended, by id, read off the journal in memory (empty with recording off)."""
        from ._kinds import _KIND_MASK, _TASK_MASK, TASK_SHIFT

        ends = {DONE: "done", FAIL: "failed", CANCELLED: "cancelled"}
        spawned: dict[int, int] = {}  # task id -> index of its spawn record
        ended: dict[int, str] = {}
        for index, row in enumerate(self._journal._rows):
            kind = row & _KIND_MASK
            if kind == SPAWN:
                spawned[row >> A_SHIFT] = index
            elif kind in ends:
                ended[(row >> TASK_SHIFT) & _TASK_MASK] = ends[kind]
        journal = self._journal
        return [
            (task, journal[spawned[task]].data["name"] if task in spawned else "?", how)
            for task, how in sorted(ended.items())
        ]

    def _deadlock(self, root: Task, role: str = "the root of vm.run") -> Deadlock:
        blocked = self._blocked()
        lines = []
        suspended = []  # the tasks that could run, but for the suspension
        held = False  # some task is suspended (waiting or not)
        for tid, name, waiting in blocked:
            if not self._live[tid]._suspended:
                lines.append(f"  task {tid} {name!r} waits {waiting}")
                continue
            held = True
            if waiting.endswith(AND_SUSPENDED):  # blocked too: say what it waits for
                waits = waiting[: -len(AND_SUSPENDED)]
                lines.append(f"  task {tid} {name!r} is suspended and waits {waits}")
            else:
                suspended.append(f"task {tid} {name!r} is suspended")
                lines.append(f"  task {tid} {name!r} is suspended")
        head = f"deadlock at tick {self._now}: "
        if suspended:
            head += f"nothing can run: {'; '.join(suspended)}, and "
        if held:
            lines.append("  (task.resume(), from the host or a task, schedules it again)")
        return Deadlock(
            f"{head}no task can make progress while task {root.id} {root.name!r} ({role}) "
            f"waits.\n" + "\n".join(lines),
            blocked,
            self._finished(),
        )

    def _step_limit_message(
        self,
        root: Task,
        where: str = "vm.run()",
        hint: str = "If the program really needs more steps, raise VM(max_steps=...).",
    ) -> str:
        ready = sorted(self._ready, key=_task_id)[:8]
        names = ", ".join(f"{task.id} {task.name!r}" for task in ready)
        return (
            f"more than {self._max_steps} steps in {where} and task {root.id} {root.name!r} "
            f"has not finished: an unfair schedule or a livelock? Ready tasks: {names or 'none'}. "
            f"{hint}"
        )


def _task_id(task: Task) -> int:
    return task.id


def _unchanged(task: Task, suspend: bool) -> bool:
    """Would ``task.suspend()`` (``suspend``) or ``resume()`` change nothing?  So for a
    finished task, and a suspend of a cancelled one: cancellation wins, in either order
    (a cancel resumes a suspended task; a cancelled task unwinds, unsuspendable)."""
    if task._state >= S_DONE or task._suspended == suspend:
        return True
    return suspend and task._cancelled


def _task_id_of(task: Any) -> int:
    """The id in ``vm.step(task=...)``: an int, a ``Task`` or a ``TaskInfo``."""
    if isinstance(task, Task | TaskInfo):
        return task.id
    if isinstance(task, int) and not isinstance(task, bool):
        return task
    raise TypeError(
        f"vm.step(task=...) takes a task id (an int), a Task or a TaskInfo, "
        f"got {type(task).__name__}"
    )


def _warn_failure(task: Task) -> None:
    """The ``UnobservedTaskFailure`` warning of one task, shown at the user's line that
    raised (else at the caller of ``vm.run``: stack level 4 from here)."""
    error = task._error
    message = (
        f"task {task.id} {task.name!r} failed and nothing awaited it: "
        f"{type(error).__name__}: {error}"
    )
    site = failure_site(error)
    if site is None:
        warnings.warn(message, UnobservedTaskFailure, stacklevel=4)
        return
    f_globals = site.tb_frame.f_globals
    where = site.tb_frame.f_code.co_filename, site.tb_lineno
    module = f_globals.get("__name__")
    try:
        warnings.warn_explicit(
            message, UnobservedTaskFailure, *where, module=module, module_globals=f_globals
        )
    except ImportError:  # `python -c`, stdin, the REPL: __main__'s loader has no source
        warnings.warn_explicit(message, UnobservedTaskFailure, *where, module=module)


class _Driver:
    """Who drives a VM: the claim's lock, and the thread holding it (ident, name)."""

    __slots__ = ("lock", "name", "thread")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.thread = 0
        self.name = ""


class _Kept:
    """For kept roots (``_roots.py``): the task a KeyboardInterrupt ended, and the
    coroutines of roots that could not unwind (kept, so never collected and closed)."""

    __slots__ = ("interrupted", "stranded")

    def __init__(self) -> None:
        self.interrupted: Task | None = None
        self.stranded: list[Any] = []


class _HostCall:
    """The claim of :meth:`VM._as_host`, released when the ``with`` block ends."""

    __slots__ = ("vm",)

    def __init__(self, vm: VM) -> None:
        self.vm = vm

    def __enter__(self) -> None:
        pass

    def __exit__(self, *exc_info: Any) -> None:
        vm = self.vm
        try:
            if vm._watchers is not None:  # (still claimed: the callbacks cannot change it)
                vm._watchers()
        finally:
            vm._release()
