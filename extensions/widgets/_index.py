"""What a picture of a window needs from the whole journal, kept up to date cheaply.

A window of records does not say who the tasks in it are (their ``spawn`` records may be
far before it) nor where a value sent in it was received (maybe far after it), so the
widgets index the journal once, from its packed rows (no decoding), and then only the
records written since: a live timeline pays for its new records only.  The message
pairs are ``lowlevel.MessagePairs`` (the pairs of ``lowlevel.messages`` and
``journal.to_mermaid()``).
"""

from __future__ import annotations

import counterpoint as cp
from counterpoint import lowlevel

_MASK, _SPAWN = lowlevel.KIND_MASK, lowlevel.SPAWN


class JournalIndex(lowlevel.MessagePairs):
    """Message pairs (``received``, ``sent``) and task names of one journal."""

    def __init__(self, journal: cp.Journal) -> None:
        super().__init__(journal)
        self._spawns: list[int] = []  # indexes of spawn records not yet named
        self._names: dict[int, str] = {}

    def update(self, limit: int | None = None) -> int:
        """Index the records written since the last call (at most ``limit`` of them);
        return the journal's length."""
        start = self.scanned
        total = super().update(limit)
        rows = lowlevel.rows(self.journal, start, self.scanned)
        self._spawns.extend(i for i, packed in enumerate(rows, start) if packed & _MASK == _SPAWN)
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
