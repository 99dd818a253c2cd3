"""The waiter protocol: what may sit in a wait queue besides a task.

A channel's receive queue, a task's joiners, a timer bucket and a worker job's
waiters hold *waiters*.  A waiter is either a :class:`Task` -- the fast path: the
queue's owner hands the task its result and reschedules it (``vm._reschedule``,
``vm._wake``) -- or an object that waits on several things at once on behalf of one
task (a ``select``, ``cp.worker.wait_any``, a scope's timeout, a worker's due tick)
and implements the methods below for the events it registered for.  Queue owners
test ``type(waiter) is Task`` (one pointer compare) and otherwise call the method.
"""

from __future__ import annotations

from typing import Any, Protocol


class Waiter(Protocol):
    """The events a non-task waiter receives (each only if it registered for it)."""

    def _on_value(self, channel: Any, value: Any, by: int) -> None:
        """A channel hands it ``value`` (sent by task ``by``, 0: the host)."""

    def _on_closed(self, channel: Any, by: int) -> None:
        """A channel it waits on was closed by ``by``."""

    def _task_done(self, task: Any) -> None:
        """A task it waits on has ended."""

    def _timer_fired(self) -> None:
        """Its timer's tick has come (``vm._add_timer``)."""

    def _worker_done(self, status: int, by: int) -> None:
        """A worker job it waits on has an outcome (``status``), observed by ``by``."""
