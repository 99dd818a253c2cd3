"""Host events: a thread-safe bridge from the outside world into the VM.

The host (any thread, a widget callback, a timer ...) puts events in with
``vm.events.enqueue(source, payload)``.  They become visible only when a task
takes them: ``await cp.events.next()`` (waits for one) or
``cp.events.drain(max_events)`` (takes at most that many, maybe none).  Each
event a task takes is a journal record, so a run that used host events can be
replayed from its journal.

Order: FIFO within a source.  Across sources, tasks take events round-robin
over the sources in sorted name order, one per source per round, continuing
after the source served last; so which events a task gets depends on what is
queued, not on which host thread happened to enqueue first, and no source can
starve another.

>>> import counterpoint as cp
>>> vm = cp.VM()
>>> vm.events.enqueue("keyboard", "a")
>>> vm.events.enqueue("mouse", [10, 20])
>>> vm.events.enqueue("keyboard", "b")
>>> async def main():
...     first = await cp.events.next()
...     return first, cp.events.drain(10), cp.events.drain(10)
>>> vm.run(main())
(HostEvent(source='keyboard', payload='a'), [HostEvent(source='mouse', payload=[10, 20]), \
HostEvent(source='keyboard', payload='b')], [])
"""

from __future__ import annotations

import threading
from bisect import bisect_right
from collections import deque
from typing import Any, NamedTuple

from ._journal import BLOCK, EVENT
from ._plaindata import copy_plain, encode
from ._task import Task, park
from ._traps import (
    PARK,
    RESCHEDULE,
    current,
    enter,
    fail_after_step,
    new_op,
    operation,
    refuse_worker,
    require_task,
)

__all__ = ["EventQueue", "HostEvent", "drain", "next"]


class HostEvent(NamedTuple):
    """An event from the host: its ``source`` name and plain-data ``payload``.

    >>> import counterpoint as cp
    >>> vm = cp.VM()
    >>> vm.events.enqueue("sensor", {"celsius": 21.5})
    >>> async def main():
    ...     event = await cp.events.next()
    ...     return event.source, event.payload["celsius"]
    >>> vm.run(main())
    ('sensor', 21.5)
    """

    source: str
    payload: Any


class EventQueue:
    """``vm.events``: the host side of the event bridge (thread-safe)."""

    def __init__(self, vm: Any) -> None:
        self._vm = vm
        self._lock = threading.Lock()
        self._sources: dict[str, deque] = {}
        self._count = 0
        self._last: str | None = None  # the source served last; the round-robin goes on after it
        self._waiters: deque[Task] = deque()

    def enqueue(self, source: str, payload: Any = None) -> None:
        """Queue an event; callable from any thread (not from a worker function: workers
        are isolated).  The payload must be plain data."""
        refuse_worker(current(), "vm.events.enqueue()")
        if not isinstance(source, str):
            raise TypeError(f"an event source must be a str, got {type(source).__name__}")
        self._put(source, copy_plain(payload, "the event payload"))

    def _put(self, source: str, payload: Any) -> None:
        with self._lock:
            queue = self._sources.get(source)
            if queue is None:
                queue = self._sources[source] = deque()
            queue.append(payload)
            self._count += 1

    def pending(self) -> int:
        """How many events are queued and not yet taken by a task."""
        return self._count

    def _available(self) -> bool:
        """Can a task take an event now?  (A replay's queue answers from its journal.)"""
        return self._count > 0

    def _take(self, limit: int) -> list[HostEvent]:
        taken: list[HostEvent] = []
        with self._lock:
            while len(taken) < limit and self._count:
                names = sorted(self._sources)
                start = 0 if self._last is None else bisect_right(names, self._last)
                for source in names[start:] + names[:start]:
                    queue = self._sources[source]
                    if queue and len(taken) < limit:
                        taken.append(HostEvent(source, queue.popleft()))
                        self._count -= 1
                        self._last = source
        return taken

    def _record(self, task: Task, event: HostEvent) -> None:
        vm = self._vm
        vm._record(task, EVENT, 0, (event.source, encode(event.payload)))

    def _deliver(self) -> bool:
        """Hand queued events to waiting tasks (FIFO); True if any task woke."""
        woke = False
        while self._waiters and self._available():
            (event,) = self._take(1)
            task = self._waiters.popleft()
            self._record(task, event)
            self._vm._wake(task, event, 0)
            woke = True
        return woke

    def __repr__(self) -> str:
        return f"<EventQueue {self._count} pending from {len(self._sources)} sources>"


@operation(lambda: "cp.events.next()")
def _next():
    task = enter()
    if task._cancelled:
        return (yield from fail_after_step(task, task._vm._cancelled_error(task)))
    queue = task._vm.events
    if not queue._waiters and queue._available():  # tasks already waiting are served first
        (event,) = queue._take(1)
        queue._record(task, event)
        yield RESCHEDULE
        return event
    park(task, queue._waiters, ("events",), BLOCK, ("wait", "events"))
    return (yield PARK)


def next():
    """``await cp.events.next()``: the next host event (waits until one is queued).

    Tasks waiting here are served first come, first served.

    If nothing else can run while tasks wait here, ``vm.run`` reports a deadlock
    that says they wait for host events, rather than hanging.
    """
    return new_op(require_task("cp.events.next()"), _next())


def drain(max_events: int) -> list[HostEvent]:
    """Take up to ``max_events`` queued host events now (not a checkpoint; maybe ``[]``)."""
    task = require_task("cp.events.drain()")
    if not isinstance(max_events, int) or isinstance(max_events, bool):
        raise TypeError(f"max_events must be an int, got {type(max_events).__name__}")
    if max_events < 0:
        raise ValueError(f"max_events must be >= 0, got {max_events}")
    queue = task._vm.events
    taken = queue._take(max_events)
    for event in taken:
        queue._record(task, event)
    return taken
