"""Message sequence charts: which value went from which task to which, over which channel.

:class:`MessagePairs` pairs every ``send`` record with the ``recv`` record that took its
value (per channel, first in first out: a buffer keeps order and a hand-over is
immediate), from the journal's packed rows alone and incrementally; :func:`messages` lists
the pairs with their tasks and values.  :func:`to_mermaid` writes a run as a Mermaid
sequence diagram (``journal.to_mermaid()``); the widgets' timeline draws the same pairs
as arrows.
"""

from __future__ import annotations

import json
from collections import deque
from typing import TYPE_CHECKING, Any, NamedTuple

from ._kinds import (
    _KIND_MASK,
    _TASK_MASK,
    A_SHIFT,
    CANCELLED,
    CLOSE,
    CREATE,
    DONE,
    FAIL,
    RECV,
    SEND,
    SPAWN,
    TASK_SHIFT,
)

if TYPE_CHECKING:
    from ._journal import Journal


class Message(NamedTuple):
    """A value sent over a channel: the ``send`` record's event id and task, the
    ``recv`` record's (``None`` while the value is still in the channel), the channel
    and the value (as journaled)."""

    channel: int
    sent: int
    sender: int
    received: int | None
    receiver: int | None
    value: Any


class MessagePairs:
    """Which ``recv`` took the value of which ``send``, for one journal, kept up to date
    cheaply: :meth:`update` reads only the packed rows written since the last call (no
    decoding), so a live picture pays for its new records only.  ``received[send_event]
    = recv_event`` and ``sent[recv_event] = send_event``; receives are matched first in,
    first out per channel from the start of the journal."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.scanned = 0  # records read so far
        self.received: dict[int, int] = {}
        self.sent: dict[int, int] = {}
        self._pending: dict[int, deque[int]] = {}

    def update(self, limit: int | None = None) -> int:
        """Read the records written since the last call (at most ``limit`` of them);
        return the journal's length."""
        rows = self.journal._rows
        total = len(rows)
        start = self.scanned
        stop = total if limit is None else min(total, start + limit)
        pending, received, sent = self._pending, self.received, self.sent
        for index in range(start, stop):
            packed = rows[index]
            kind = packed & _KIND_MASK
            if kind == SEND:
                queue = pending.get(packed >> A_SHIFT)
                if queue is None:
                    queue = pending[packed >> A_SHIFT] = deque()
                queue.append(index + 1)
            elif kind == RECV:
                queue = pending.get(packed >> A_SHIFT)
                if queue:  # (a journal cut short may lack the send: nothing to pair)
                    send = queue.popleft()
                    received[send] = index + 1
                    sent[index + 1] = send
        self.scanned = max(start, stop)
        return total


def messages(journal: Journal, start: int = 1, stop: int | None = None) -> list[Message]:
    """Every value sent over a channel with ``start <= sent < stop`` (event ids), in the
    order sent, paired with the record that received it.  Receives are matched from the
    start of the journal, so a window gets the same pairs as the whole run."""
    total = len(journal)
    stop = total + 1 if stop is None else min(stop, total + 1)
    pairs = MessagePairs(journal)
    pairs.update()
    rows = journal._rows
    found = []
    for index, _, task, kind, a, b in journal._iter_raw(max(0, start - 1), max(0, stop - 1)):
        if kind == SEND:
            got = pairs.received.get(index + 1)
            receiver = None if got is None else (rows[got - 1] >> TASK_SHIFT) & _TASK_MASK
            found.append(Message(a, index + 1, task, got, receiver, b))
    return found


def _participant(task: int) -> str:
    return "host" if task == 0 else f"t{task}"


_ENTITIES = {"#": "#35;", ";": "#59;"}  # Mermaid's own escapes for its syntax


def _label(text: str) -> str:
    """Text Mermaid shows as written: one line, at most 60 characters, ``#`` and ``;``
    (its syntax) as its entity codes."""
    clean = " ".join(str(text).split())
    if len(clean) > 60:
        clean = clean[:57] + "..."
    return "".join(_ENTITIES.get(char, char) for char in clean)


def to_mermaid(journal: Journal) -> str:
    """The run as a Mermaid sequence diagram: a participant per task (its name), an
    arrow per value sent over a channel (from the sender, at the send, to the receiver),
    a note where a task spawns another, closes a channel, returns, fails or is
    cancelled.  Deterministic: the same journal gives the same text on every machine."""
    names: dict[int, str] = {}
    channel_names: dict[int, str] = {}
    used: set[int] = set()
    body: list[str] = []
    pairs = {m.sent: m for m in messages(journal)}

    def note(task: int, text: str) -> None:
        used.add(task)
        body.append(f"    Note over {_participant(task)}: {text}")

    for index, _, task, kind, a, b in journal._iter_raw():
        if kind == SPAWN:
            names[a] = b
            if task:
                note(task, f"spawns {_label(b)}")
        elif kind == CREATE and b[0] == "channel":
            name = b[1].get("name")
            channel_names[a] = f"channel {name!r}" if name else f"channel {a}"
        elif kind == SEND:
            message = pairs.get(index + 1)
            value = _label(json.dumps(b, sort_keys=True, ensure_ascii=False))
            where = _label(channel_names.get(a, f"channel {a}"))
            if message is not None and message.receiver is not None:
                used.update((task, message.receiver))
                body.append(
                    f"    {_participant(task)}->>{_participant(message.receiver)}: {where}: {value}"
                )
            else:
                note(task, f"sends {value} on {where} (not taken)")
        elif kind == CLOSE:
            note(task, f"closes {_label(channel_names.get(a, f'channel {a}'))}")
        elif kind == DONE:
            note(task, "returns")
        elif kind == FAIL:
            note(task, f"fails: {_label(b[0])}")
        elif kind == CANCELLED:
            note(task, "cancelled")
    lines = ["sequenceDiagram"]
    if 0 in used:
        lines.append("    participant host as host")
    for task in sorted(names):
        lines.append(f"    participant t{task} as {_label(names[task])} ({task})")
    return "\n".join(lines + body) + "\n"
