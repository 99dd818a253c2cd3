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
    SEND,
    SET,
    SLEEP,
    SPAWN,
    START,
    STEP,
    TIMER,
    WAKE,
)
from ._task import describe_wait

if TYPE_CHECKING:
    from ._journal import Journal

SNAPSHOT_EVERY = 4096


class TaskState(NamedTuple):
    """A task at some event: ``state`` is ready, running, blocked, sleeping, done,
    failed or cancelled; ``waiting_on`` says what a blocked task waits for."""

    id: int
    name: str
    state: str
    waiting_on: str | None


class ChannelState(NamedTuple):
    """A channel at some event: buffered ``contents`` (oldest first), the tasks blocked
    receiving / sending on it (first come first), and whether it is closed."""

    id: int
    capacity: int
    contents: list
    receivers: list[int]
    senders: list[int]
    closed: bool


class WorkerState(NamedTuple):
    """A worker at some event: ``status`` as ``cp.worker.poll`` says it then."""

    handle: int
    name: str
    status: int
    due: int | None


class JournalState:
    """What ``journal.state_at(event_id)`` returns: the run just after that event.

    >>> import counterpoint as cp
    >>> async def main():
    ...     ch = cp.channel(2)
    ...     await ch.send("a")
    ...     await ch.send("b")
    ...     await ch.recv()
    >>> vm = cp.VM()
    >>> vm.run(main())
    >>> vm.journal.state_at(6).channels[1].contents
    ['a', 'b']
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

    def to_dict(self) -> dict[str, Any]:
        """Plain data (string keys), for widgets and JSON."""
        return {
            "event_id": self.event_id,
            "tick": self.tick,
            "tasks": {str(i): t._asdict() for i, t in self.tasks.items()},
            "channels": {str(i): c._asdict() for i, c in self.channels.items()},
            "locks": {str(i): owner for i, owner in self.locks.items()},
            "semaphores": {str(i): value for i, value in self.semaphores.items()},
            "events": {str(i): flag for i, flag in self.events.items()},
            "workers": {str(h): w._asdict() for h, w in self.workers.items()},
            "host_events_taken": self.host_events_taken,
        }

    def _repr_html_(self) -> str:
        from ._display import table, tasks_table

        channels = [
            [c.id, c.capacity, c.contents, c.receivers or None, c.senders or None, c.closed]
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
            name, state, wait = entry
            if state == "ready" and task == self._model.running:
                state = "running"
            words = None if wait is None else self._model._words(wait, self._ended)
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


_TERMINAL = {DONE: "done", FAIL: "failed", CANCELLED: "cancelled"}


def _add(value: int | str, units: int) -> int | str:
    """A semaphore's value changed by ``units`` (one too large to journal stays a summary)."""
    return value + units if type(value) is int else value


class _Model:
    """The mutable model the records are applied to.  Tasks: id -> (name, state, wait);
    the task that ran last is ``running`` and is stored as "ready" while it runs, so a
    step record (the commonest) writes nothing."""

    def __init__(self) -> None:
        self.index = 0  # records applied
        self.tick = 0
        self.running = 0
        self.tasks = _Tasks()
        self.channels: dict[int, _Channel] = {}
        self.locks: dict[int, int | None] = {}
        self.semaphores: dict[int, int] = {}
        self.events: dict[int, bool] = {}
        self.conditions: dict[int, tuple[int, list[int]]] = {}  # id -> (lock id, waiters)
        self.workers: dict[int, tuple] = {}
        self.host_events = 0

    def copy(self) -> _Model:
        twin = _Model()
        twin.index, twin.tick, twin.running = self.index, self.tick, self.running
        twin.tasks = self.tasks.copy()
        twin.channels = {i: c.copy() for i, c in self.channels.items()}
        twin.locks = dict(self.locks)
        twin.semaphores = dict(self.semaphores)
        twin.events = dict(self.events)
        twin.conditions = {
            i: (lock, list(waiters)) for i, (lock, waiters) in self.conditions.items()
        }
        twin.workers = dict(self.workers)
        twin.host_events = self.host_events
        return twin

    # -- waiting ---------------------------------------------------------------------

    def _block(self, task: int, wait: tuple, state: str = "blocked") -> None:
        if task == self.running:  # it has stopped running
            self.running = 0
        entry = self.tasks.get(task)
        if entry is None:
            return
        self.tasks[task] = (entry[0], state, wait)
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
        elif wait[:2] == ("wait", "condition") and wait[2] in self.conditions:
            self.conditions[wait[2]][1].append(task)

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
            elif wait[:2] == ("wait", "condition") and wait[2] in self.conditions:
                waiters = self.conditions[wait[2]][1]
                if task in waiters:
                    waiters.remove(task)
        self.tasks[task] = (entry[0], state, None)

    # -- applying records ------------------------------------------------------------------

    def apply(self, tick: int, task: int, kind: int, a: int, b: Any, ended: list) -> None:
        self.index += 1
        self.tick = tick
        tasks = self.tasks
        if kind == STEP:  # (the running task is stored as "ready": see TaskTable.get)
            self.running = task
            entry = tasks.get(task)
            if entry is not None and (entry[1] != "ready" or entry[2] is not None):
                tasks[task] = (entry[0], "ready", None)
        elif kind == SEND:
            channel = self.channels.get(a)
            if channel is not None:
                channel.contents.append(b)
                if task in channel.senders:
                    self._unblock(task)
        elif kind == RECV:
            channel = self.channels.get(a)
            if channel is not None:
                if channel.contents:
                    channel.contents.popleft()
                if self._waits_on(task, a):
                    self._unblock(task)
        elif kind in (BLOCK_RECV, BLOCK_SEND):
            self._block(task, ("recv" if kind == BLOCK_RECV else "send", "channel", a))
        elif kind == BLOCK:
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
        elif kind == SLEEP:
            if b > tick:
                self._block(task, ("sleep", b), "sleeping")
        elif kind in (TIMER, WAKE):
            self._unblock(task)
        elif kind == SPAWN:
            tasks[a] = (b, "ready", None)
        elif kind in _TERMINAL:
            entry = tasks.get(task)
            if entry is not None:
                self._unblock(task, _TERMINAL[kind])
                del tasks[task]
                ended[task] = (self.index, entry[0], _TERMINAL[kind])
            if self.running == task:
                self.running = 0
        elif kind == CANCEL:
            entry = tasks.get(task)
            wait = entry[2] if entry is not None else None
            if wait is not None and wait[0] != "exit":  # leaving a scope is not cancellable
                self._unblock(task)
        elif kind == NOTIFY:
            lock, waiters = self.conditions.get(a, (None, []))
            for waiter in waiters[:b]:  # they now queue for the condition's lock
                entry = tasks.get(waiter)
                if entry is not None:
                    tasks[waiter] = (entry[0], entry[1], ("acquire", "lock", lock))
            del waiters[:b]
        elif kind == CLOSE:
            if a in self.channels:
                self.channels[a].closed = True
        elif kind == ACQUIRE:
            if b == "lock":
                self.locks[a] = task
            else:
                self.semaphores[a] = _add(self.semaphores.get(a, 0), -1)
            entry = tasks.get(task)
            if entry is not None and entry[1] == "blocked":
                self._unblock(task)
        elif kind == RELEASE:
            if b == "lock":
                self.locks[a] = None
            else:
                self.semaphores[a] = _add(self.semaphores.get(a, 0), 1)
        elif kind in (SET, CLEAR):
            self.events[a] = kind == SET
        elif kind == CREATE:
            object_kind, extra = b
            if object_kind == "channel":
                self.channels[a] = _Channel(extra["capacity"])
            elif object_kind == "lock":
                self.locks[a] = None
            elif object_kind == "semaphore":
                self.semaphores[a] = extra["value"]
            elif object_kind == "event":
                self.events[a] = False
            elif object_kind == "condition":
                self.conditions[a] = (extra.get("lock"), [])
        elif kind == QUEUE:
            self.workers[a] = (b[0], 0, None)
        elif kind == START:
            self.workers[a] = (b[0], 0, b[3])
        elif kind == RECEIPT:
            name, _, due = self.workers.get(a, ("?", 0, None))
            self.workers[a] = (name, b[0], due)
        elif kind == EVENT:
            self.host_events += 1
            entry = tasks.get(task)
            if entry is not None and entry[2] == ("events",):
                self._unblock(task)

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
        return JournalState(
            self.index,
            self.tick,
            TaskTable(self, ended, self.index),
            {
                i: ChannelState(
                    i, c.capacity, list(c.contents), list(c.receivers), list(c.senders), c.closed
                )
                for i, c in sorted(self.channels.items())
            },
            dict(sorted(self.locks.items())),
            dict(sorted(self.semaphores.items())),
            dict(sorted(self.events.items())),
            {h: WorkerState(h, *w) for h, w in sorted(self.workers.items())},
            self.host_events,
        )

    def _words(self, wait: tuple, ended: dict[int, tuple]) -> str:
        if wait[0] == "acquire" and wait[1] == "lock":
            holder = self.locks.get(wait[2])
            if holder is not None:
                entry = self.tasks.get(holder)
                name = entry[0] if entry is not None else ended.get(holder, (0, "?"))[1]
                return f"to acquire lock {wait[2]} (held by task {holder} {name!r})"
        if wait[0] == "exit":
            return f"for the children of scope {wait[2]} to finish"
        return describe_wait(wait)


class TimeTravel:
    """Snapshots of a journal's model, every ``SNAPSHOT_EVERY`` records, built lazily."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.model = _Model()  # advanced through the journal as far as asked
        self.snapshots: list[_Model] = [self.model.copy()]
        self.ended: dict[int, tuple[int, str, str]] = {}  # task -> (event, name, how)

    def _advance(self, upto: int) -> None:
        model, ended = self.model, self.ended
        step = SNAPSHOT_EVERY
        for _, tick, task, kind, a, b in self.journal._iter_raw(model.index, upto):
            model.apply(tick, task, kind, a, b, ended)
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
