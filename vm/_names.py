"""Names of VM objects, and the words for what a task waits on.

One spelling for every message, repr, ``Deadlock`` report and ``state_at`` view:
``lock 'fork 1'`` for an object created with ``name="fork 1"``, ``lock 2`` for an
unnamed one.  One function, :func:`wait_words`, turns a structured :class:`Wait`
into the words after "task 3 'x' waits ..."; the live VM (``vm.tasks()``,
``cp.Deadlock``) and time travel (``journal.state_at``) both build a ``Wait`` and
call it, so they cannot word the same wait differently.
"""

from __future__ import annotations

from typing import Any, NamedTuple

MAX_NAME = 100  # characters in an object name

# what a suspended task waits for (the live VM and state_at say the same)
SUSPENDED = "to be resumed: it is suspended (task.resume() schedules it again)"
AND_SUSPENDED = ", and is suspended (task.resume() schedules it again)"


def check_name(name: Any, what: str) -> str | None:
    """``name`` if it is a valid object name (or None); else TypeError/ValueError."""
    if name is None:
        return None
    if type(name) is not str:
        raise TypeError(f"{what} name must be a str (or None), got {type(name).__name__}")
    if not 1 <= len(name) <= MAX_NAME:
        raise ValueError(
            f"{what} name must have 1 to {MAX_NAME} characters, got {len(name)}; "
            f"leave it out (name=None) for a numbered object"
        )
    if not name.isprintable():
        raise ValueError(
            f"{what} name {name!r} has a control character; names appear in one-line "
            f"messages and reports, so use printable characters only"
        )
    return name


def label(kind: str, ident: Any, name: str | None) -> str:
    """``"lock 'fork 1'"`` when named, ``"lock 2"`` when not."""
    return f"{kind} {ident}" if name is None else f"{kind} {name!r}"


class Wait(NamedTuple):
    """What a blocked or sleeping task waits for, as data (``journal.state_at(e).waits``).

    ``op`` is one of ``recv``, ``send`` (a channel), ``join`` (a task), ``acquire``
    (a lock or semaphore), ``wait`` (an event, condition, barrier, or a scope's
    ``wait_all``), ``exit`` (leaving a scope: its children must finish), ``par``
    (``cp.par`` waiting for its branches), ``select``, ``sleep``, ``worker``,
    ``events`` (host events).  ``object``/``id``/``name`` say which object (``name``
    is None for unnamed ones).  ``holder`` (and ``holder_name``): the task holding
    the lock waited for; ``until``: the tick a sleep ends; ``tasks``: the branches of
    ``cp.par``; ``cases``: ``(object, id, name)`` of each select case or awaited worker;
    ``count``: how many times the holder of a ``cp.RLock`` holds it, or how many signals
    a ``cp.CountdownEvent`` still needs.
    """

    op: str
    object: str | None = None
    id: int | None = None
    name: str | None = None
    holder: int | None = None
    holder_name: str | None = None
    until: int | None = None
    tasks: tuple[int, ...] = ()
    cases: tuple[tuple[str, int, str | None], ...] = ()
    count: int | None = None

    def plain(self) -> dict[str, Any]:
        """Plain data (lists, not tuples), for JSON and widgets."""
        out = self._asdict()
        out["tasks"] = list(self.tasks)
        out["cases"] = [list(case) for case in self.cases]
        return out


def worker_wait(handles: tuple[int, ...]) -> Wait:
    """Waiting for one worker (``cp.worker.wait``) or the first of several (``wait_any``)."""
    if len(handles) == 1:
        return Wait("worker", "worker", handles[0])
    return Wait("worker", "worker", cases=tuple(("worker", handle, None) for handle in handles))


_VERBS = {"recv": "to receive on", "send": "to send on", "acquire": "to acquire"}


def wait_words(wait: Wait) -> str:
    """The words for ``wait``, completing "task 3 'x' waits ..."."""
    op = wait.op
    verb = _VERBS.get(op)
    if verb is not None:
        words = f"{verb} {label(wait.object, wait.id, wait.name)}"
        if wait.holder is not None:
            times = f", {wait.count} times" if wait.count and wait.count > 1 else ""
            words += f" (held by task {wait.holder} {wait.holder_name!r}{times})"
        return words
    if op == "join":
        return f"for task {wait.id} to finish"
    if op == "wait":
        what = label(wait.object, wait.id, wait.name)
        if wait.object == "scope":
            return f"for the children of {what} to finish (wait_all)"
        if wait.object == "countdown":
            return f"for {what} ({wait.count} left)"
        return f"at {what}" if wait.object == "barrier" else f"for {what}"
    if op == "sleep":
        return f"until tick {wait.until}"
    if op == "exit":
        return f"for the children of scope {wait.id} to finish"
    if op == "par":
        return f"for its cp.par() branches (tasks {', '.join(map(str, wait.tasks))}) to finish"
    if op == "select":
        return "in select on " + ", ".join(label(*case) for case in wait.cases)
    if op == "worker":
        if wait.id is not None:
            return f"for worker {wait.id}"
        return "for any of workers " + ", ".join(str(case[1]) for case in wait.cases)
    if op == "events":
        return "for host events (none are queued: enqueue with vm.events.enqueue)"
    return " ".join(str(part) for part in wait if part)  # pragma: no cover - every op above
