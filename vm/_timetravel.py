"""Time travel: the state of a run at any event, derived from its records alone.

``journal.state_at(event_id)`` re-applies records to a small model of the VM
(tasks, channels, locks, semaphores, events, workers) without running any user
code.  Records are applied from the nearest *snapshot*: a copy of the model
taken every ``SNAPSHOT_EVERY`` records during a first full pass (made lazily, and
extended as a live journal grows).  Finished tasks leave the model for an
append-only list, so snapshots stay small however many tasks a run makes.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any, NamedTuple

from ._journal import (
    ACQUIRE,
    BLOCK,
    BLOCK_RECV,
    BLOCK_SEND,
    CANCEL,
    CANCELLED,
    CELL,
    CELL_DONE,
    CHOOSE,
    CLEAR,
    CLOSE,
    CREATE,
    DONE,
    EVENT,
    FAIL,
    NOTIFY,
    QUEUE,
    RECEIPT,
    RECV,
    RELEASE,
    RESUME,
    SCOPE,
    SELECT,
    SEND,
    SET,
    SLEEP,
    SPAWN,
    START,
    STEP,
    SUSPEND,
    TIMEOUT,
    TIMER,
    WAKE,
)
from ._kinds import _KIND_MASK, _TASK_MASK, A_SHIFT, ADD_COUNT, HAS_VALUE, SIGNAL, TASK_SHIFT
from ._names import AND_SUSPENDED, SUSPENDED, Wait, label, wait_words, worker_wait

if TYPE_CHECKING:
    from ._journal import Journal

SNAPSHOT_EVERY = 4096


class TaskState(NamedTuple):
    """A task at some event: ``state`` is ready, running, blocked, sleeping, done,
    failed or cancelled; ``waiting_on`` says what a blocked task waits for (the same
    words as ``vm.tasks()``; the same wait as data: ``JournalState.waits``)."""

    id: int
    name: str
    state: str
    waiting_on: str | None


class ChannelState(NamedTuple):
    """A channel at some event: buffered ``contents`` (oldest first), the tasks blocked
    receiving / sending on it (first come first), whether it is closed, and its name
    (None if it was created without one)."""

    id: int
    capacity: int
    contents: list
    receivers: list[int]
    senders: list[int]
    closed: bool
    name: str | None = None


class WorkerState(NamedTuple):
    """A worker at some event: ``status`` as ``cp.worker.poll`` says it then."""

    handle: int
    name: str
    status: int
    due: int | None


class LockState(NamedTuple):
    """A lock at some event: the holder (a task id, or None) and the tasks waiting to
    acquire it, in the order they will get it."""

    id: int
    name: str | None
    holder: int | None
    waiters: list[int]


class SemaphoreState(NamedTuple):
    """A semaphore at some event: its value (free units) and its waiters, in order."""

    id: int
    name: str | None
    value: int | str
    waiters: list[int]


class EventState(NamedTuple):
    """An event at some event id: whether it is set, and the tasks waiting for it."""

    id: int
    name: str | None
    set: bool
    waiters: list[int]


class ConditionState(NamedTuple):
    """A condition at some event: its lock's id and the tasks waiting for a notify."""

    id: int
    name: str | None
    lock: int
    waiters: list[int]


class BarrierState(NamedTuple):
    """A barrier at some event: how many parties it needs and who has arrived (in order)."""

    id: int
    name: str | None
    parties: int
    waiters: list[int]


class CountdownState(NamedTuple):
    """A ``cp.CountdownEvent`` at some event: the signals it still needs (0: set) and
    the tasks waiting for it."""

    id: int
    name: str | None
    count: int | str
    waiters: list[int]


class ScopeState(NamedTuple):
    """A scope open at some event: the task whose ``async with`` opened it, the scope it
    was opened in (None: the task's top level), whether it is a ``cp.par``, its timeout
    deadline (a tick, or None), ``exiting`` while its task is blocked at the end of the
    block until the children have finished, and ``children``: the branches of a
    ``cp.par`` still running (None for other scopes: a spawn record does not say into
    which scope the task went)."""

    id: int
    task: int
    parent: int | None
    par: bool
    due: int | None
    exiting: bool
    children: list[int] | None


class TimerState(NamedTuple):
    """A pending timer: at tick ``due``, ``object`` (``"task"``: a sleep ends;
    ``"scope"``: a scope times out) number ``id``.  Select timeouts and worker dues are
    not here: a select's block record has no timeout, and workers carry their ``due``."""

    due: int
    object: str
    id: int


class JournalState:
    """What ``journal.state_at(event_id)`` returns: the run just after that event.

    Besides ``tasks``, ``channels``, ``locks`` (id -> holder), ``semaphores`` (id ->
    value), ``events`` (id -> set), ``workers`` and ``tick``, a picture can be drawn
    from it alone: ``ready`` (task ids, in the order ``fifo`` would run them),
    ``timers``, ``waits`` (task id -> :class:`Wait`, the wait of each blocked or
    sleeping task as data), ``parents`` (task id -> the task that spawned it, None for
    the host), ``scopes`` (the open scopes), and ``lock_states``,
    ``semaphore_states``, ``event_states``, ``conditions``, ``barriers``,
    ``countdowns`` (each with its name and waiters, in the order they will be served).

    >>> import counterpoint as cp
    >>> async def main():
    ...     ch = cp.channel(2, name="mail")
    ...     await ch.send("a")
    ...     await ch.send("b")
    ...     await ch.recv()
    >>> vm = cp.VM()
    >>> vm.run(main())
    >>> vm.journal.state_at(6).channels[1].contents
    ['a', 'b']
    >>> vm.journal.state_at(6).channels[1].name
    'mail'
    """

    def __init__(
        self,
        event_id: int,
        tick: int,
        tasks: dict[int, TaskState],
        channels: dict[int, ChannelState],
        locks: dict[int, int | None],
        semaphores: dict[int, int],
        events: dict[int, bool],
        workers: dict[int, WorkerState],
        host_events_taken: int,
        **more: Any,
    ) -> None:
        self.event_id = event_id
        self.tick = tick
        self.tasks = tasks
        self.channels = channels
        self.locks = locks
        self.semaphores = semaphores
        self.events = events
        self.workers = workers
        self.host_events_taken = host_events_taken
        self.ready: list[int] = more.pop("ready", [])
        # timers, waits and parents grow with the tasks: derived on first use
        self._derive = more.pop("derive", None)
        self._derived: dict[str, Any] = {
            key: more.pop(key) for key in ("timers", "waits", "parents") if key in more
        }
        self.scopes: dict[int, ScopeState] = more.pop("scopes", {})
        self.lock_states: dict[int, LockState] = more.pop("lock_states", {})
        self.semaphore_states: dict[int, SemaphoreState] = more.pop("semaphore_states", {})
        self.event_states: dict[int, EventState] = more.pop("event_states", {})
        self.conditions: dict[int, ConditionState] = more.pop("conditions", {})
        self.barriers: dict[int, BarrierState] = more.pop("barriers", {})
        self.countdowns: dict[int, CountdownState] = more.pop("countdowns", {})
        if more:
            raise TypeError(f"JournalState() got unexpected fields {sorted(more)}")

    def _lazy(self, key: str) -> Any:
        derived = self._derived
        if key not in derived:
            if self._derive is None:
                return [] if key == "timers" else {}
            derived.update(self._derive())
            self._derive = None
        return derived[key]

    @property
    def timers(self) -> list[TimerState]:
        return self._lazy("timers")

    @property
    def waits(self) -> dict[int, Wait]:
        return self._lazy("waits")

    @property
    def parents(self) -> dict[int, int | None]:
        return self._lazy("parents")

    def to_dict(self) -> dict[str, Any]:
        """Plain data (string keys), for widgets and JSON."""

        def table(rows: dict) -> dict[str, Any]:
            return {str(i): row._asdict() for i, row in rows.items()}

        return {
            "event_id": self.event_id,
            "tick": self.tick,
            "tasks": {str(i): t._asdict() for i, t in self.tasks.items()},
            "channels": table(self.channels),
            "locks": {str(i): owner for i, owner in self.locks.items()},
            "semaphores": {str(i): value for i, value in self.semaphores.items()},
            "events": {str(i): flag for i, flag in self.events.items()},
            "workers": table(self.workers),
            "host_events_taken": self.host_events_taken,
            "ready": list(self.ready),
            "timers": [timer._asdict() for timer in self.timers],
            "waits": {str(i): wait.plain() for i, wait in self.waits.items()},
            "parents": {str(i): parent for i, parent in self.parents.items()},
            "scopes": table(self.scopes),
            "lock_states": table(self.lock_states),
            "semaphore_states": table(self.semaphore_states),
            "event_states": table(self.event_states),
            "conditions": table(self.conditions),
            "barriers": table(self.barriers),
            "countdowns": table(self.countdowns),
        }

    def _repr_html_(self) -> str:
        from ._display import table, tasks_table

        channels = [
            [
                label("channel", c.id, c.name),
                c.capacity,
                c.contents,
                c.receivers or None,
                c.senders or None,
                c.closed,
            ]
            for c in self.channels.values()
        ]
        heading = ["channel", "capacity", "contents", "receivers", "senders", "closed"]
        return tasks_table(self.tasks.values(), f"at event {self.event_id}, tick {self.tick}") + (
            table(heading, channels) if channels else ""
        )

    def __repr__(self) -> str:
        live = sum(1 for t in self.tasks.values() if t.state not in ("done", "failed", "cancelled"))
        return (
            f"<JournalState at event {self.event_id}, tick {self.tick}: "
            f"{live} live tasks of {len(self.tasks)}, {len(self.channels)} channels>"
        )


_BUCKET = 256  # tasks per copy-on-write bucket


class _Tasks:
    """id -> (name, state, wait), in buckets of ``_BUCKET`` ids shared copy-on-write
    between a model and its snapshots: a snapshot costs one small dict, and only the
    buckets written after it are ever copied."""

    __slots__ = ("buckets", "owned")

    def __init__(self) -> None:
        self.buckets: dict[int, dict[int, tuple]] = {}
        self.owned: set[int] = set()  # buckets no snapshot shares: safe to write

    def copy(self) -> _Tasks:
        twin = _Tasks()
        twin.buckets = dict(self.buckets)
        self.owned = set()  # from now on both sides share every bucket
        return twin

    def get(self, task: int) -> tuple | None:
        bucket = self.buckets.get(task // _BUCKET)
        return None if bucket is None else bucket.get(task)

    def __contains__(self, task: int) -> bool:
        return self.get(task) is not None

    def _writable(self, task: int) -> dict[int, tuple]:
        key = task // _BUCKET
        bucket = self.buckets.get(key)
        if key not in self.owned:
            bucket = self.buckets[key] = {} if bucket is None else dict(bucket)
            self.owned.add(key)
        return bucket

    def __setitem__(self, task: int, entry: tuple) -> None:
        self._writable(task)[task] = entry

    def __delitem__(self, task: int) -> None:
        del self._writable(task)[task]

    def items(self):
        for key in sorted(self.buckets):
            yield from sorted(self.buckets[key].items())


class TaskTable:
    """``JournalState.tasks``: a read-only mapping id -> TaskState, built on demand.

    Holds every task spawned up to the event: live ones with their state then,
    finished ones with how they ended.
    """

    def __init__(self, model: _Model, ended: dict[int, tuple], event_id: int) -> None:
        self._model = model
        self._ended = ended
        self._event_id = event_id

    def get(self, task: int, default: Any = None) -> TaskState | None:
        entry = self._model.tasks.get(task)
        if entry is not None:
            name, state, wait, _ = entry
            if state == "ready" and task == self._model.running:
                state = "running"
            words = None if wait is None else wait_words(self._model._wait(wait, self._ended))
            if task in self._model.suspended and state != "running":  # (as TaskInfo says)
                state = "suspended"
                words = SUSPENDED if words is None else words + AND_SUSPENDED
            return TaskState(task, name, state, words)
        end = self._ended.get(task)
        if end is not None and end[0] <= self._event_id:
            return TaskState(task, end[1], end[2], None)
        return default

    def __getitem__(self, task: int) -> TaskState:
        found = self.get(task)
        if found is None:
            raise KeyError(task)
        return found

    def __contains__(self, task: object) -> bool:
        return isinstance(task, int) and self.get(task) is not None

    def keys(self) -> list[int]:
        live = [task for task, _ in self._model.tasks.items()]
        done = [task for task, end in self._ended.items() if end[0] <= self._event_id]
        return sorted(live + done)

    def __iter__(self):
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.keys())

    def values(self) -> list[TaskState]:
        return [self[task] for task in self.keys()]

    def items(self) -> list[tuple[int, TaskState]]:
        return [(task, self[task]) for task in self.keys()]

    def __eq__(self, other: object) -> bool:
        return dict(self.items()) == (dict(other.items()) if hasattr(other, "items") else other)

    def __repr__(self) -> str:
        return f"<TaskTable of {len(self)} tasks at event {self._event_id}>"


class _Channel:
    __slots__ = ("capacity", "closed", "contents", "receivers", "senders")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.contents: deque = deque()
        self.receivers: list[int] = []
        self.senders: list[int] = []
        self.closed = False

    def copy(self) -> _Channel:
        twin = _Channel(self.capacity)
        twin.contents = deque(self.contents)
        twin.receivers = list(self.receivers)
        twin.senders = list(self.senders)
        twin.closed = self.closed
        return twin


# kinds of objects with FIFO waiters
_QUEUED = frozenset({"lock", "semaphore", "event", "condition", "barrier", "countdown"})


# a cancel or wake record with ``by`` 0 is made by the host (or the clock), not a step
_HOST = frozenset({CANCEL, WAKE, SUSPEND, RESUME})  # (by the host when ``a`` is 0)


def _add(value: int | str, units: int) -> int | str:
    """A semaphore's value changed by ``units`` (one too large to journal stays a summary)."""
    return value + units if type(value) is int else value


def _case(case: str) -> tuple[str, int]:
    """A select case as journaled ("channel 3", "task 4") -> ("channel", 3)."""
    kind, _, number = case.partition(" ")
    return kind, int(number)


class _Model:
    """The mutable model the records are applied to.  Tasks: id -> (name, state, wait,
    spawner); the task that ran last is ``running`` and is stored as "ready" while it
    runs, so a step record (the commonest) writes nothing.

    The ready queue: tasks join it as the live VM appends them (spawned, woken, handed
    a value); the task of the last step leaves it and, if its step ends ready, rejoins
    at the end -- which the journal shows only by the next step or host action, so
    until then it is ``stepping`` and the view puts it last."""

    def __init__(self, swap_remove: bool = False) -> None:
        self.index = 0  # records applied
        self.tick = 0
        self.running = 0
        self.stepping = 0  # the task of the last step, until it has rejoined the queue
        self.swap_remove = swap_remove  # policy "random": the live VM swaps with the last
        self.tasks = _Tasks()
        self.ready: deque[int] = deque()
        self.channels: dict[int, _Channel] = {}
        self.locks: dict[int, int | None] = {}
        self.semaphores: dict[int, int] = {}
        self.events: dict[int, bool] = {}
        self.conditions: dict[int, int] = {}  # id -> its lock's id
        self.barriers: dict[int, int] = {}  # id -> parties
        self.depths: dict[int, int] = {}  # cp.RLock id -> how many times its holder holds it
        self.countdowns: dict[int, int] = {}  # id -> signals still needed
        self.queues: dict[tuple[str, int], list[int]] = {}  # (kind, id) -> waiters
        self.names: dict[tuple[str, int], str] = {}  # (kind, id) -> name, if it has one
        # scope id -> [task, enclosing scope, par, due, exiting, children (par only)]
        self.scopes: dict[int, list] = {}
        self.collector = 0  # while cp.par spawns its branches: its task ...
        self.collecting = 0  # ... and its scope
        self.workers: dict[int, tuple] = {}
        self.host_events = 0
        self.suspended: set[int] = set()  # task.suspend(): not ready, whatever it waits for

    def copy(self) -> _Model:
        twin = _Model(self.swap_remove)
        twin.index, twin.tick, twin.running = self.index, self.tick, self.running
        twin.stepping, twin.collector = self.stepping, self.collector
        twin.collecting = self.collecting
        twin.tasks = self.tasks.copy()
        twin.ready = deque(self.ready)
        twin.channels = {i: c.copy() for i, c in self.channels.items()}
        twin.locks = dict(self.locks)
        twin.semaphores = dict(self.semaphores)
        twin.events = dict(self.events)
        twin.conditions = dict(self.conditions)
        twin.barriers = dict(self.barriers)
        twin.depths = dict(self.depths)
        twin.countdowns = dict(self.countdowns)
        twin.queues = {key: list(waiters) for key, waiters in self.queues.items()}
        twin.names = dict(self.names)
        twin.scopes = {
            i: [*scope[:5], None if scope[5] is None else list(scope[5])]
            for i, scope in self.scopes.items()
        }
        twin.workers = dict(self.workers)
        twin.host_events = self.host_events
        twin.suspended = set(self.suspended)
        return twin

    # -- the ready queue ---------------------------------------------------------------

    def _rejoin(self) -> None:
        """The last step has ended with its task ready: it is at the end of the queue.
        (``stepping`` is cleared when its task blocks or ends, so it is still ready.)"""
        self.ready.append(self.stepping)
        self.stepping = 0

    def _picked(self, task: int) -> None:
        """``task`` takes a step: it leaves the queue as the live policy takes it out."""
        ready = self.ready
        if self.swap_remove:  # policy "random" moves the last task into the gap
            if task in ready:
                ready[ready.index(task)] = ready[-1]
                ready.pop()
        elif ready and ready[0] == task:
            ready.popleft()  # fifo
        elif task in ready:  # a schedule, an explorer, the host's vm.step(task=...)
            ready.remove(task)

    # -- waiting ---------------------------------------------------------------------

    def _block(self, task: int, wait: tuple, state: str = "blocked") -> None:
        if task == self.running:  # it has stopped running
            self.running = 0
        if task == self.stepping:
            self.stepping = 0
        entry = self.tasks.get(task)
        if entry is None:
            return
        self.tasks[task] = (entry[0], state, wait, entry[3])
        op = wait[0]
        if op in ("recv", "send"):
            channel = self.channels.get(wait[2])
            if channel is not None:  # (None: a loaded journal that never created it)
                (channel.receivers if op == "recv" else channel.senders).append(task)
        elif op == "select":
            for case in wait[2]:
                if case.startswith("channel "):
                    channel = self.channels.get(int(case[8:]))
                    if channel is not None:
                        channel.receivers.append(task)
        elif op == "exit":
            scope = self.scopes.get(wait[2])
            if scope is not None:
                scope[4] = True
        elif len(wait) == 3 and wait[1] in _QUEUED:
            waiters = self.queues.get((wait[1], wait[2]))
            if waiters is not None:
                waiters.append(task)

    def _unblock(self, task: int, state: str = "ready") -> None:
        entry = self.tasks.get(task)
        if entry is None:
            return
        wait = entry[2]
        if wait is not None:
            op = wait[0]
            if op in ("recv", "send"):
                channel = self.channels.get(wait[2])
                waiters = (
                    []
                    if channel is None
                    else channel.receivers
                    if op == "recv"
                    else channel.senders
                )
                if task in waiters:
                    waiters.remove(task)
            elif op == "select":
                for case in wait[2]:
                    if case.startswith("channel "):
                        channel = self.channels.get(int(case[8:]))
                        if channel is not None and task in channel.receivers:
                            channel.receivers.remove(task)
            elif len(wait) == 3 and wait[1] in _QUEUED:
                waiters = self.queues.get((wait[1], wait[2]), [])
                if task in waiters:
                    waiters.remove(task)
            elif op == "exit":
                scope = self.scopes.get(wait[2])
                if scope is not None:
                    scope[4] = False
        self.tasks[task] = (entry[0], state, None, entry[3])
        if state == "ready":
            if wait is not None:  # (a blocked task is never in the queue)
                self.ready.append(task)
        elif task != self.stepping and task in self.ready:  # ended by the host (a cell)
            self.ready.remove(task)

    # -- applying records ------------------------------------------------------------------

    def apply(self, tick: int, task: int, kind: int, a: int, b: Any, ended: dict) -> None:
        """Apply one record: the step record here (the commonest), every other kind
        through its handler in ``_APPLY`` (one per kind of ``_kinds.KINDS``)."""
        self.index += 1
        self.tick = tick
        if kind == STEP:  # (the running task is stored as "ready": see TaskTable.get)
            ready = self.ready
            if self.stepping:
                ready.append(self.stepping)  # (see _rejoin)
            if ready and ready[0] == task and not self.swap_remove:
                ready.popleft()  # fifo
            else:
                self._picked(task)
            self.running = self.stepping = task
            self.collector = 0
            bucket = self.tasks.buckets.get(task // _BUCKET)  # (tasks.get, inlined)
            entry = None if bucket is None else bucket.get(task)
            if entry is not None and (entry[1] != "ready" or entry[2] is not None):
                self.tasks[task] = (entry[0], "ready", None, entry[3])
            return
        stepping = self.stepping
        if (
            stepping
            and task != stepping
            and (task == 0 or kind == TIMER or (a == 0 and kind in _HOST))
        ):
            self._rejoin()  # the host (or the clock) acts: the step has ended
        if self.collector and (task != self.collector or kind != SPAWN):
            self.collector = 0  # cp.par has spawned all its branches
        handler = _APPLY[kind]
        if handler is not None:
            handler(self, tick, task, a, b, ended)

    # -- one handler per record kind (``_APPLY``): how the kind changes the state --------

    def _on_suspend(self, tick: int, task: int, a: int, b: Any, ended: dict) -> None:
        self.suspended.add(task)

    def _on_resume(self, tick: int, task: int, a: int, b: Any, ended: dict) -> None:
        self.suspended.discard(task)

    def _on_send(self, tick: int, task: int, a: int, b: Any, ended: dict) -> None:
        channel = self.channels.get(a)
        if channel is not None:
            channel.contents.append(b)
            if task in channel.senders:
                self._unblock(task)

    def _on_recv(self, tick: int, task: int, a: int, b: Any, ended: dict) -> None:
        channel = self.channels.get(a)
        if channel is not None:
            if channel.contents:
                channel.contents.popleft()
            if self._waits_on(task, a):
                self._unblock(task)

    def _on_block_recv(self, tick: int, task: int, a: int, b: Any, ended: dict) -> None:
        self._block(task, ("recv", "channel", a))

    def _on_block_send(self, tick: int, task: int, a: int, b: Any, ended: dict) -> None:
        self._block(task, ("send", "channel", a))

    def _on_block(self, tick: int, task: int, a: int, b: Any, ended: dict) -> None:
        if len(b) == 3:
            op, what, items = b
            if op == "wait_any":
                self._block(task, ("worker", tuple(items)))
            else:
                self._block(task, (op, what, list(items)))
        elif b[1] == "worker":
            self._block(task, ("worker", (a,)))
        elif b[1] == "events":
            self._block(task, ("events",))
        else:
            self._block(task, (b[0], b[1], a))

    def _on_sleep(self, tick: int, task: int, a: int, b: Any, ended: dict) -> None:
        if b > tick:
            self._block(task, ("sleep", b), "sleeping")

    def _on_wake(self, tick: int, task: int, a: int, b: Any, ended: dict) -> None:
        self._unblock(task)  # (a timer too)

    def _on_spawn(self, tick: int, task: int, a: int, b: Any, ended: dict) -> None:
        self.tasks[a] = (b, "ready", None, task or None)
        self.ready.append(a)
        if task and self.collector == task:
            self.scopes[self.collecting][5].append(a)

    def _end(self, task: int, how: str, ended: dict) -> None:
        """The task has ended (``how``: done, failed, cancelled)."""
        entry = self.tasks.get(task)
        if entry is not None:
            self._unblock(task, how)
            del self.tasks[task]
            ended[task] = (self.index, entry[0], how, entry[3])
        if self.running == task:
            self.running = 0
        if self.stepping == task:
            self.stepping = 0

    def _on_done(self, tick: int, task: int, a: int, b: Any, ended: dict) -> None:
        self._end(task, "done", ended)

    def _on_fail(self, tick: int, task: int, a: int, b: Any, ended: dict) -> None:
        self._end(task, "failed", ended)

    def _on_cancelled(self, tick: int, task: int, a: int, b: Any, ended: dict) -> None:
        self._end(task, "cancelled", ended)

    def _on_cancel(self, tick: int, task: int, a: int, b: Any, ended: dict) -> None:
        entry = self.tasks.get(task)
        wait = entry[2] if entry is not None else None
        if wait is not None and wait[0] != "exit":  # leaving a scope is not cancellable
            self._unblock(task)

    def _on_notify(self, tick: int, task: int, a: int, b: Any, ended: dict) -> None:
        tasks = self.tasks
        lock = self.conditions.get(a)
        waiters = self.queues.get(("condition", a), [])
        queue = self.queues.setdefault(("lock", lock), [])
        for waiter in waiters[:b]:  # they now queue for the condition's lock
            entry = tasks.get(waiter)
            if entry is not None:
                tasks[waiter] = (entry[0], entry[1], ("acquire", "lock", lock), entry[3])
            queue.append(waiter)
        del waiters[:b]

    def _on_close(self, tick: int, task: int, a: int, b: Any, ended: dict) -> None:
        if a in self.channels:
            self.channels[a].closed = True

    def _on_acquire(self, tick: int, task: int, a: int, b: Any, ended: dict) -> None:
        if b == "lock":
            if a in self.depths:  # a cp.RLock: counts its holder's acquires
                self.depths[a] = self.depths[a] + 1 if self.locks.get(a) == task else 1
            self.locks[a] = task
        else:
            self.semaphores[a] = _add(self.semaphores.get(a, 0), -1)
        entry = self.tasks.get(task)
        if entry is not None and entry[1] == "blocked":
            self._unblock(task)

    def _on_release(self, tick: int, task: int, a: int, b: Any, ended: dict) -> None:
        if b == "lock":
            depth = self.depths.get(a)
            if depth is not None:
                self.depths[a] = depth = depth - 1
                if depth > 0:
                    return
            self.locks[a] = None
        else:
            self.semaphores[a] = _add(self.semaphores.get(a, 0), 1)

    def _on_set(self, tick: int, task: int, a: int, b: Any, ended: dict) -> None:
        self.events[a] = True

    def _on_clear(self, tick: int, task: int, a: int, b: Any, ended: dict) -> None:
        self.events[a] = False

    def _on_signal(self, tick: int, task: int, a: int, b: Any, ended: dict) -> None:
        self.countdowns[a] = _add(self.countdowns.get(a, 0), -b)

    def _on_add_count(self, tick: int, task: int, a: int, b: Any, ended: dict) -> None:
        self.countdowns[a] = _add(self.countdowns.get(a, 0), b)

    def _on_create(self, tick: int, task: int, a: int, b: Any, ended: dict) -> None:
        self._create(a, b)

    def _on_scope(self, tick: int, task: int, a: int, b: Any, ended: dict) -> None:
        self._scope(task, a, b, tick)

    def _on_timeout(self, tick: int, task: int, a: int, b: Any, ended: dict) -> None:
        scope = self.scopes.get(a)
        if scope is not None:
            scope[3] = None

    def _on_queue(self, tick: int, task: int, a: int, b: Any, ended: dict) -> None:
        self.workers[a] = (b[0], 0, None)

    def _on_start(self, tick: int, task: int, a: int, b: Any, ended: dict) -> None:
        self.workers[a] = (b[0], 0, b[3])

    def _on_receipt(self, tick: int, task: int, a: int, b: Any, ended: dict) -> None:
        name, _, due = self.workers.get(a, ("?", 0, None))
        self.workers[a] = (name, b[0], due)

    def _on_event(self, tick: int, task: int, a: int, b: Any, ended: dict) -> None:
        self.host_events += 1
        entry = self.tasks.get(task)
        if entry is not None and entry[2] == ("events",):
            self._unblock(task)

    def _create(self, ident: int, b: Any) -> None:
        object_kind, extra = b
        name = extra.get("name")
        if name is not None:
            self.names[object_kind, ident] = name
        if object_kind in _QUEUED:
            self.queues[object_kind, ident] = []
        if object_kind == "channel":
            self.channels[ident] = _Channel(extra["capacity"])
        elif object_kind == "lock":
            self.locks[ident] = None
            if extra.get("reentrant"):
                self.depths[ident] = 0
        elif object_kind == "semaphore":
            self.semaphores[ident] = extra["value"]
        elif object_kind == "event":
            self.events[ident] = False
        elif object_kind == "condition":
            self.conditions[ident] = extra.get("lock")
        elif object_kind == "barrier":
            self.barriers[ident] = extra.get("parties")
        elif object_kind == "countdown":
            self.countdowns[ident] = extra["count"]

    def _scope(self, task: int, ident: int, b: Any, tick: int) -> None:
        event, details = b
        if event == "open":
            enclosing = [i for i, s in self.scopes.items() if s[0] == task and not s[4]]
            timeout = details.get("timeout")
            par = details.get("par", False)
            due = None if not timeout else tick + timeout  # (0: it times out at once)
            parent = max(enclosing) if enclosing else None
            self.scopes[ident] = [task, parent, par, due, False, [] if par else None]
            if par:
                self.collector, self.collecting = task, ident
        elif event == "close":
            self.scopes.pop(ident, None)

    def _waits_on(self, task: int, channel: int) -> bool:
        entry = self.tasks.get(task)
        wait = entry[2] if entry is not None else None
        if wait is None:
            return False
        if wait[0] in ("recv", "send"):
            return wait[2] == channel
        return wait[0] == "select" and f"channel {channel}" in wait[2]

    # -- the public view ----------------------------------------------------------------

    def view(self, ended: dict[int, tuple]) -> JournalState:
        names = self.names
        ready = list(self.ready)
        if self.stepping:
            ready.append(self.stepping)  # its step ended ready: it is last in the queue
        if self.suspended:  # (held aside by the live VM, as vm.ready() leaves them out)
            ready = [task for task in ready if task not in self.suspended]
        return JournalState(
            self.index,
            self.tick,
            TaskTable(self, ended, self.index),
            {
                i: ChannelState(
                    i,
                    c.capacity,
                    list(c.contents),
                    list(c.receivers),
                    list(c.senders),
                    c.closed,
                    names.get(("channel", i)),
                )
                for i, c in sorted(self.channels.items())
            },
            dict(sorted(self.locks.items())),
            dict(sorted(self.semaphores.items())),
            dict(sorted(self.events.items())),
            {h: WorkerState(h, *w) for h, w in sorted(self.workers.items())},
            self.host_events,
            ready=ready,
            derive=lambda: self._per_task(ended),
            scopes={
                i: ScopeState(i, s[0] or 0, s[1], s[2], s[3], s[4], self._alive(s[5]))
                for i, s in sorted(self.scopes.items())
            },
            lock_states=self._queued("lock", LockState, self.locks),
            semaphore_states=self._queued("semaphore", SemaphoreState, self.semaphores),
            event_states=self._queued("event", EventState, self.events),
            conditions=self._queued("condition", ConditionState, self.conditions),
            barriers=self._queued("barrier", BarrierState, self.barriers),
            countdowns=self._queued("countdown", CountdownState, self.countdowns),
        )

    def _queued(self, kind: str, row: Any, table: dict[int, Any]) -> dict[int, Any]:
        """``row(id, name, value, waiters)`` for every object of ``kind``, by id."""
        names, queues = self.names, self.queues
        return {
            i: row(i, names.get((kind, i)), value, list(queues.get((kind, i), ())))
            for i, value in sorted(table.items())
        }

    def _per_task(self, ended: dict[int, tuple]) -> dict[str, Any]:
        """The view's fields that grow with the number of tasks (made when first read)."""
        timers = [TimerState(scope[3], "scope", i) for i, scope in self.scopes.items() if scope[3]]
        waits: dict[int, Wait] = {}
        parents: dict[int, int | None] = {}
        for task, (_, state, wait, parent) in self.tasks.items():
            parents[task] = parent
            if wait is not None:
                waits[task] = self._wait(wait, ended)
                if state == "sleeping":
                    timers.append(TimerState(wait[1], "task", task))
        for task, end in ended.items():
            if end[0] <= self.index:
                parents[task] = end[3]
        return {
            "timers": sorted(timers),
            "waits": waits,
            "parents": dict(sorted(parents.items())),
        }

    def _alive(self, children: list[int] | None) -> list[int] | None:
        """The branches of a par scope that have not ended (None: not a par scope)."""
        return None if children is None else [child for child in children if child in self.tasks]

    def _holder_name(self, holder: int, ended: dict[int, tuple]) -> str:
        entry = self.tasks.get(holder)
        return entry[0] if entry is not None else ended.get(holder, (0, "?"))[1]

    def _wait(self, wait: tuple, ended: dict[int, tuple]) -> Wait:
        """A model wait descriptor as a structured :class:`Wait` (the live VM's shape)."""
        op = wait[0]
        names = self.names
        if op in ("recv", "send", "acquire") or (op == "wait" and wait[1] != "scope"):
            kind, ident = wait[1], wait[2]
            name = names.get((kind, ident))
            holder = self.locks.get(ident) if op == "acquire" and kind == "lock" else None
            if holder is not None:
                times = self.depths.get(ident)  # (a cp.RLock: how many times)
                holder_name = self._holder_name(holder, ended)
                return Wait(op, kind, ident, name, holder, holder_name, count=times)
            if kind == "countdown":
                return Wait(op, kind, ident, name, count=self.countdowns.get(ident))
            return Wait(op, kind, ident, name)
        if op == "wait":  # a scope's wait_all
            return Wait(op, "scope", wait[2])
        if op == "join":
            return Wait(op, "task", wait[2])
        if op == "sleep":
            return Wait(op, until=wait[1])
        if op == "exit":
            scope = self.scopes.get(wait[2])
            if scope is not None and scope[2]:
                return Wait("par", "scope", wait[2], tasks=tuple(self._alive(scope[5])))
            return Wait("exit", "scope", wait[2])
        if op == "select":
            cases = []
            for case in wait[2]:
                kind, ident = _case(case)
                cases.append((kind, ident, names.get((kind, ident))))
            return Wait(op, "cases", cases=tuple(cases))
        if op == "worker":
            return worker_wait(wait[1])
        return Wait(op)  # ("events",)


# How each record kind changes the state: its handler, by code.  Kinds that change
# nothing a view shows (a select's pick, a choice, a notebook cell's markers) map to
# None.  tests/test_time_travel.py checks that every kind of _kinds.KINDS is here.
_APPLY: list = [None] * 64
for _code, _handler in {
    SPAWN: _Model._on_spawn,
    BLOCK: _Model._on_block,
    BLOCK_SEND: _Model._on_block_send,
    BLOCK_RECV: _Model._on_block_recv,
    WAKE: _Model._on_wake,
    TIMER: _Model._on_wake,
    SEND: _Model._on_send,
    RECV: _Model._on_recv,
    CLOSE: _Model._on_close,
    SLEEP: _Model._on_sleep,
    CANCEL: _Model._on_cancel,
    DONE: _Model._on_done,
    FAIL: _Model._on_fail,
    CANCELLED: _Model._on_cancelled,
    ACQUIRE: _Model._on_acquire,
    RELEASE: _Model._on_release,
    SET: _Model._on_set,
    CLEAR: _Model._on_clear,
    NOTIFY: _Model._on_notify,
    SIGNAL: _Model._on_signal,
    ADD_COUNT: _Model._on_add_count,
    CREATE: _Model._on_create,
    SCOPE: _Model._on_scope,
    TIMEOUT: _Model._on_timeout,
    QUEUE: _Model._on_queue,
    START: _Model._on_start,
    RECEIPT: _Model._on_receipt,
    EVENT: _Model._on_event,
    SUSPEND: _Model._on_suspend,
    RESUME: _Model._on_resume,
}.items():
    _APPLY[_code] = _handler
NO_STATE = frozenset({STEP, SELECT, CHOOSE, CELL, CELL_DONE})  # (the step: in apply itself)


class TimeTravel:
    """Snapshots of a journal's model, every ``SNAPSHOT_EVERY`` records, built lazily."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        meta = journal.meta
        swap = meta.get("policy") == "random"  # (its picks swap, chosen ones too: _unready)
        self.model = _Model(swap)  # advanced through the journal as far as asked
        self.snapshots: list[_Model] = [self.model.copy()]
        # task -> (event, name, how, spawner)
        self.ended: dict[int, tuple[int, str, str, int | None]] = {}

    def _advance(self, upto: int) -> None:
        """Apply records up to ``upto``, snapshotting every ``SNAPSHOT_EVERY``: the first
        ``state_at`` of a big journal is this loop, so it reads the journal's columns
        itself (as ``Journal._iter_raw`` does, without a generator in between)."""
        model, ended, journal = self.model, self.ended, self.journal
        if journal._sealed != len(journal._vals):
            journal._seal()
        rows, vals, has_value = journal._rows, journal._vals, HAS_VALUE
        kind_mask, shift, task_mask, a_shift = _KIND_MASK, TASK_SHIFT, _TASK_MASK, A_SHIFT
        apply, step = model.apply, SNAPSHOT_EVERY
        while model.index < upto:
            first = model.index
            end = min(upto, (first // step + 1) * step)
            v = journal._value_offset(first) if first else 0
            for lo, hi, tick in journal._tick_runs(first, end):
                for index in range(lo, hi):
                    row = rows[index]
                    kind = row & kind_mask
                    if has_value[kind]:
                        b = vals[v]
                        v += 1
                    else:
                        b = None
                    apply(tick, (row >> shift) & task_mask, kind, row >> a_shift, b, ended)
            if model.index == first:
                break  # (nothing to read: never loop)
            if model.index % step == 0:
                self.snapshots.append(model.copy())

    def state_at(self, event_id: int) -> JournalState:
        total = len(self.journal)
        if not isinstance(event_id, int) or isinstance(event_id, bool):
            raise TypeError(f"state_at() takes an event id (an int), got {event_id!r}")
        if not 0 <= event_id <= total:
            raise IndexError(
                f"state_at({event_id}): the journal has events 1..{total} (0 is the start)"
            )
        if self.model.index < event_id:
            self._advance(event_id)
        snapshot = self.snapshots[min(event_id // SNAPSHOT_EVERY, len(self.snapshots) - 1)]
        model = snapshot.copy()
        scratch: dict = {}
        for _, tick, task, kind, a, b in self.journal._iter_raw(model.index, event_id):
            model.apply(tick, task, kind, a, b, scratch)
        return model.view(self.ended)
