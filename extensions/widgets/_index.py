"""What a picture of a window needs from the whole journal, kept up to date cheaply.

A window of records does not say who the tasks in it are (their ``spawn`` records may be
far before it) nor where a value sent in it was received (maybe far after it), so the
widgets index the journal once, from its packed rows (no decoding), and then only the
records written since: a live timeline pays for its new records only.
"""

from __future__ import annotations

from collections import deque

import counterpoint as cp
from counterpoint import lowlevel

_MASK = lowlevel.KIND_MASK
_SEND, _RECV, _SPAWN = lowlevel.SEND, lowlevel.RECV, lowlevel.SPAWN
_SHIFT = lowlevel.A_SHIFT


class JournalIndex:
    """Task names and message pairs of one journal (see the module's docstring).

    ``received[send_event] = recv_event`` and ``sent[recv_event] = send_event`` pair
    every value passed over a channel with the receive that took it, matched first in,
    first out per channel from the start of the journal -- the pairs of
    ``lowlevel.messages`` and ``journal.to_mermaid()``.
    """

    def __init__(self, journal: cp.Journal) -> None:
        self.journal = journal
        self.scanned = 0  # records indexed so far
        self.received: dict[int, int] = {}
        self.sent: dict[int, int] = {}
        self._pending: dict[int, deque[int]] = {}
        self._spawns: list[int] = []  # indexes of spawn records not yet named
        self._names: dict[int, str] = {}

    def update(self, limit: int | None = None) -> int:
        """Index the records written since the last call (at most ``limit`` of them);
        return the journal's length."""
        total = len(self.journal)
        if total <= self.scanned:
            return total
        start = self.scanned
        stop = total if limit is None else min(total, start + limit)
        pending, received, sent = self._pending, self.received, self.sent
        spawns = self._spawns
        for index, packed in enumerate(lowlevel.rows(self.journal, start, stop), start):
            kind = packed & _MASK
            if kind == _SEND:
                queue = pending.get(packed >> _SHIFT)
                if queue is None:
                    queue = pending[packed >> _SHIFT] = deque()
                queue.append(index + 1)
            elif kind == _RECV:
                queue = pending.get(packed >> _SHIFT)
                if queue:  # (a journal cut short may lack the send)
                    send = queue.popleft()
                    received[send] = index + 1
                    sent[index + 1] = send
            elif kind == _SPAWN:
                spawns.append(index)
        self.scanned = stop
        return total

    def name(self, task: int) -> str | None:
        """The name ``task`` was spawned with (None if no spawn of it was indexed)."""
        if task in self._names:
            return self._names[task]
        if self._spawns:
            for index in self._spawns:
                raw = next(lowlevel.raw_records(self.journal, index, index + 1))
                self._names[raw.a] = raw.value
            self._spawns.clear()
        return self._names.get(task)
