"""Recovering a run from its journal file: ``cp.VM.recover(path, **options)``.

A VM made with ``VM(journal=path)`` streams its journal to an SQLite file; a
process killed at any moment leaves an exact prefix of it (docs/journal.md).
``VM.recover(path)`` makes a VM that re-executes the program against that prefix
and then goes on live, appending to the same file:

* the VM is made like the one that wrote the file (its seed, policy,
  ``max_workers``, ``max_steps``, ``schedule`` from the file's meta), so it makes
  the same choices;
* worker outcomes come from the file's receipts (the workers are not run again);
  a worker the file has no receipt for (still pending when the run died) runs
  live, on the backend the caller gives;
* host events come from the file's ``event`` records, taken where the original
  run took them; events the host gives while the VM is still replaying are
  matched against the ones the file shows taken (re-given: dropped), the rest
  are queued live;
* every record the program writes is checked against the file's (as
  ``cp.replay`` does) before anything is written: a program that diverges gets
  ``NondeterminismError`` and the file is not touched;
* once the records of the file are used up the run continues live, and its new
  records are appended to the file in the file's own format, so the finished
  file is the file an uninterrupted run writes (same records, meta and digest).

See docs/recovery.md.
"""

from __future__ import annotations

import os
import sqlite3
from bisect import bisect_left, bisect_right
from collections import deque
from pathlib import Path
from typing import Any

from . import _store
from ._errors import JournalError, NondeterminismError
from ._journal import EVENT, Journal
from ._plaindata import encode
from ._replay import ReplayEvents, divergence, first_difference
from ._sources import Sources, from_journal
from ._store import _SQLITE_MAGIC, Writer, _connect
from .events import EventQueue

# the options that change what a run does: they must be the file's
RUN_OPTIONS = ("seed", "policy", "max_workers", "max_steps", "schedule")
_DEFAULTS = {"seed": 0, "policy": "fifo", "max_workers": None, "max_steps": None, "schedule": None}


class Recovery:
    """``vm.recovery`` of a VM made by ``cp.VM.recover``: what the file held and how far
    the recovery got.  ``records``: records in the file when it was opened;
    ``complete``: the file was finished (``vm.close()``) before; ``checked``: records
    re-executed and found equal so far; ``live``: the VM has used up the file's
    records and runs live (``appended`` records written after them)."""

    def __init__(self, path: Path | None, records: int, complete: bool, checker: _Checker) -> None:
        self.path = path
        self.records = records
        self.complete = complete
        self._checker = checker

    @property
    def checked(self) -> int:
        return self._checker.checked

    @property
    def live(self) -> bool:
        return self._checker.checked >= self.records and self._checker.error is None

    @property
    def appended(self) -> int:
        return max(0, len(self._checker.got) - self.records) if self.live else 0

    def __repr__(self) -> str:
        state = (
            f"re-executed, then {self.appended:,} live"
            if self.live
            else f"replaying ({self.checked:,} checked)"
        )
        return (
            f"<Recovery of {self.path}: {self.records:,} records in the file"
            f"{' (complete)' if self.complete else ''}, {state}>"
        )


def _ticks(journal: Journal, first: int, end: int) -> list[tuple[int, int]]:
    """The (index, tick) changes of records first..end-1, starting at ``first``."""
    marks_i, marks_t = journal._mark_index, journal._mark_tick
    m = bisect_right(marks_i, first) - 1
    out = [(first, marks_t[m])]
    for k in range(bisect_left(marks_i, first + 1), bisect_left(marks_i, end)):
        if marks_t[k] != out[-1][1]:
            out.append((marks_i[k], marks_t[k]))
    return out


def _listed(value: Any) -> Any:
    """``value`` with tuples as lists (what a value read back from a file looks like)."""
    if type(value) is tuple or type(value) is list:
        return [_listed(item) for item in value]
    if type(value) is dict:
        return {key: _listed(item) for key, item in value.items()}
    return value


class _Checker:
    """Checks the records a recovering VM writes against the file's, between slices of
    steps and before any record is written to the file."""

    def __init__(self, expected: Journal, got: Journal, complete: bool) -> None:
        self.expected: Journal | None = expected  # (None once it is re-made: memory)
        self.end = len(expected)
        self.got = got
        self.complete = complete
        self.checked = 0
        self.error: NondeterminismError | None = None

    def __call__(self) -> None:
        if self.error is not None:
            raise self.error
        expected, got = self.expected, self.got
        if expected is None:
            return  # re-made to its end: live
        end, upto = self.end, len(got)
        if self.checked < end:
            stop = min(upto, end)
            if stop > self.checked:
                if not self._same(self.checked, stop):
                    index = first_difference(expected, got, self.checked)
                    if index is not None and index < stop:
                        self._fail(divergence(expected, got, index, self._how()))
                self.checked = stop
        if self.checked == end:
            self.expected = None

    def _how(self) -> str:
        return "the recovery diverged from the journal file"

    def _fail(self, error: NondeterminismError) -> None:
        self.error = error
        raise error

    def _same(self, first: int, stop: int) -> bool:
        """Records first..stop-1 are the same in both (quick: whole columns at C speed;
        False may also mean "not sure")."""
        expected, got = self.expected, self.got
        if expected._rows[first:stop] != got._rows[first:stop]:
            return False
        if _ticks(expected, first, stop) != _ticks(got, first, stop):
            return False
        got._seal()
        va, vb = expected._value_offset(first), expected._value_offset(stop)
        wanted, written = expected._vals[va:vb], got._vals[va:vb]
        if wanted == written:
            return True
        for want, value in zip(wanted, written, strict=True):
            if want != value and want != _listed(value):
                return False
        return True


class RecoveryEvents(ReplayEvents):
    """Host events of a recovering VM: the file's, where it took them; then the host's."""

    def __init__(self, vm: Any, expected: Journal) -> None:
        super().__init__(vm, expected)
        self._end = len(expected)
        # per source, the wire forms of the events the file shows taken and the host has
        # not given again yet (a host re-running its code gives them again: dropped)
        self._regiven: dict[str, deque] = {}
        for _, _, _, kind, _, b in expected._iter_raw():
            if kind == EVENT:
                self._regiven.setdefault(b[0], deque()).append(b[1])

    def _replaying(self) -> bool:
        return len(self._vm._rows) < self._end

    enqueue = EventQueue.enqueue  # (a replay's queue ignores the host; this one does not)

    def _put(self, source: str, payload: Any) -> None:
        with self._lock:
            regiven = self._regiven.get(source)
            if regiven and self._replaying():
                if regiven[0] == encode(payload):
                    regiven.popleft()  # the file shows it taken: delivered already
                    return
                del self._regiven[source]  # the host gives other events: new from here
        EventQueue._put(self, source, payload)

    def pending(self) -> int:
        return super().pending() if self._replaying() else EventQueue.pending(self)

    def _available(self) -> bool:
        return super()._available() if self._replaying() else EventQueue._available(self)

    def _take(self, limit: int) -> list:
        if not self._replaying():
            return EventQueue._take(self, limit)
        taken = super()._take(limit)
        if taken:
            self._last = taken[-1].source  # (the live round-robin goes on after it)
        return taken


class AppendingWriter(Writer):
    """Appends a recovering VM's records to the file it recovers, once they are checked:
    nothing is written (the file is not even opened for writing) before the run has gone
    past the file's records."""

    def __init__(
        self, journal: Journal, path: Path | None, prefix: Journal, checker: _Checker
    ) -> None:
        self.path = path
        self.journal = journal
        self.written = len(prefix)
        self.values_written = len(prefix._vals)
        self.chunks = 0
        self.connection: sqlite3.Connection | None = None
        self.checker = checker
        self.finished = False

    def _open(self) -> None:
        try:
            self.connection = _connect(self.path)
        except (OSError, ValueError, sqlite3.Error) as error:
            self._fail(error)

    def flush(self, force: bool = False) -> None:  # (a VM slice hook)
        self.checker()  # raises at a divergence: then nothing is written
        pending = len(self.journal._rows) - self.written
        if self.path is None or pending < (1 if force else _store.CHUNK):
            return
        if self.connection is None:
            if self.finished:
                raise JournalError(f"{self.path}: the journal file is closed; nothing more fits")
            self._open()
            if self.checker.complete:  # a finished file goes on: unfinished until closed again
                self._set_meta({"complete": "0"})
                self.connection.execute("DELETE FROM meta WHERE key IN ('records', 'digest')")
        super().flush(force)

    def finish(self) -> None:
        checker = self.checker
        self.finished = True
        if self.path is None or checker.error is not None:
            return  # (in memory only; or diverged: the file is left as it was)
        if checker.checked < checker.end:
            return  # not re-executed to the end of the file: leave it as it was
        if checker.complete and len(self.journal) == checker.end:
            return  # a finished file, reproduced: nothing to add
        if self.connection is None:
            self._open()
        super().finish()


def _file_state(path: Path) -> bool:
    """Whether the journal file at ``path`` (loaded already) says it is complete."""
    uri = path.absolute().as_uri() + "?mode=ro"
    try:
        connection = sqlite3.connect(uri, uri=True)
        try:
            row = connection.execute("SELECT value FROM meta WHERE key = 'complete'").fetchone()
        finally:
            connection.close()
    except sqlite3.Error as error:
        raise JournalError(f"{path}: cannot read the journal: {error}") from error
    return row is not None and row[0] == "1"


def recover(cls: Any, path: str | os.PathLike, **options: Any) -> Any:
    """``cp.VM.recover(path, **options)``: see :meth:`counterpoint.VM.recover`."""
    if not isinstance(path, str | os.PathLike):
        raise TypeError(
            f"cp.VM.recover() needs a journal file path (str or os.PathLike), "
            f"got {type(path).__name__}"
        )
    unknown = sorted(set(options) - set(RUN_OPTIONS) - {"workers"})
    if unknown:
        raise TypeError(
            f"cp.VM.recover() got unexpected option(s) {', '.join(unknown)}; it takes "
            f"{', '.join(RUN_OPTIONS)} (which must be the file's) and workers"
        )
    path = Path(path)
    expected = Journal.load(path)  # JournalError: missing, empty, corrupt, not a journal ...
    with open(path, "rb") as file:
        if file.read(len(_SQLITE_MAGIC)) != _SQLITE_MAGIC:
            raise JournalError(
                f"{path}: cp.VM.recover() appends to the SQLite journal file a "
                f"cp.VM(journal=path) streams; this is a JSON-lines export (replay it with "
                f"cp.replay(main, cp.Journal.load(path)) instead)"
            )
    return recovering_vm(cls, expected, path, _file_state(path), **options)


def recovering_vm(
    cls: Any, expected: Journal, path: Path | None, complete: bool = False, **options: Any
) -> Any:
    """A VM (of class ``cls``) that re-executes ``expected``'s run, checking every record,
    then goes on live, appending to the file at ``path`` (None: in memory only, the file
    left as it is -- ``%recover`` of a session it cannot re-execute to the end)."""
    run_options = {}
    where = path if path is not None else "the journal"
    for key in RUN_OPTIONS:
        recorded = expected.meta.get(key, _DEFAULTS[key])
        if key in options and options[key] != recorded:
            raise ValueError(
                f"cp.VM.recover(): {key}={options[key]!r} is not the {key} of the run in "
                f"{where}, which was made with {key}={recorded!r}; a recovery re-makes that "
                f"run's choices, so leave {key} out (the file's is used) or give the file's"
            )
        if recorded is not None:
            run_options[key] = recorded
    sources = Sources(
        receipts=from_journal(expected).receipts,
        events=lambda vm: RecoveryEvents(vm, expected),
    )
    vm = cls(**run_options, workers=options.get("workers", "inline"), sources=sources)
    vm._workers.run_missing = True  # workers the file has no receipt for: run live
    vm.journal.meta.update(expected.meta)
    checker = _Checker(expected, vm.journal, complete)
    vm._stream = AppendingWriter(vm.journal, path, expected, checker)
    vm._slice_hooks.append(vm._stream.flush)
    vm.recovery = Recovery(path, len(expected), complete, checker)
    return vm
