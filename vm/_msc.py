"""Message sequence charts: which value went from which task to which, over which channel.

:func:`messages` pairs every ``send`` record with the ``recv`` record that took its value
(per channel, first in first out: a buffer keeps order and a hand-over is immediate),
from the journal alone.  :func:`to_mermaid` writes a run as a Mermaid sequence diagram
(``journal.to_mermaid()``); the widgets' timeline draws the same pairs as arrows.
"""

from __future__ import annotations

import json
from collections import deque
from typing import TYPE_CHECKING, Any, NamedTuple

from ._kinds import CANCELLED, CLOSE, CREATE, DONE, FAIL, RECV, SEND, SPAWN

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


def messages(journal: Journal, start: int = 1, stop: int | None = None) -> list[Message]:
    """Every value sent over a channel with ``start <= sent < stop`` (event ids), in the
    order sent, paired with the record that received it.  Receives are matched from the
    start of the journal, so a window gets the same pairs as the whole run."""
    total = len(journal)
    stop = total + 1 if stop is None else min(stop, total + 1)
    pending: dict[int, deque[int]] = {}
    found: list[list] = []
    for index, _, task, kind, a, b in journal._iter_raw(0, total):
        if kind == SEND:
            pending.setdefault(a, deque()).append(len(found))
            found.append([a, index + 1, task, None, None, b])
        elif kind == RECV:
            queue = pending.get(a)
            if queue:  # (a journal cut short may lack the send: nothing to pair)
                entry = found[queue.popleft()]
                entry[3], entry[4] = index + 1, task
    return [Message(*entry) for entry in found if start <= entry[1] < stop]


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
