"""The journal: every scheduling step and effect of a VM, in order.

Storage is columnar and compact because a busy program writes hundreds of
thousands of records.  Each record is one packed int (< 2**63) in ``_rows``
(``kind | task << TASK_SHIFT | a << A_SHIFT``, where ``a`` is a small
non-negative id); records of kinds that carry a value (send, recv, done ...)
also append one slot to ``_vals``, while bare kinds (step, wake, timer ...)
append nothing more.  ``_voffsets`` is a lazily built index of where each
block of records starts in ``_vals``, for random access.
Ticks are run-length encoded: virtual time changes far less often than records
are written, so ``_mark_index``/``_mark_tick`` note where each new tick starts.
Records are decoded into :class:`Record` objects only when someone looks.

The canonical encoding of a record is one line of JSON with sorted keys and no
spaces (see ``docs/journal.md``); :meth:`Journal.digest` is the SHA-256 of
those lines, each ending in ``\\n``.
"""

from __future__ import annotations

import gc
import hashlib
import json
import math
import os
from bisect import bisect_right
from collections.abc import Iterator
from itertools import compress, repeat
from operator import is_
from pathlib import Path
from typing import Any, NamedTuple

from ._errors import TickRangeError
from ._kinds import (
    _INT_LIMIT,
    _KIND_MASK,
    _TASK_MASK,
    A_SHIFT,
    DECODE,
    HAS_VALUE,
    INT64_MAX,
    KIND_CODES,
    KIND_NAMES,
    MAX_TICK,
    NAMES,
    NO_ID,
    RECV,
    SEND,
    SLEEP,
    START,
    TASK_SHIFT,
    check_slot,
    decode,
    encode,
)

# Re-exported: record kinds and layout, for the modules that write records.
from ._kinds import (
    ACQUIRE as ACQUIRE,
)
from ._kinds import (
    BARE_KINDS as BARE_KINDS,
)
from ._kinds import (
    BLOCK as BLOCK,
)
from ._kinds import (
    BLOCK_RECV as BLOCK_RECV,
)
from ._kinds import (
    BLOCK_SEND as BLOCK_SEND,
)
from ._kinds import (
    CANCEL as CANCEL,
)
from ._kinds import (
    CANCELLED as CANCELLED,
)
from ._kinds import (
    CELL as CELL,
)
from ._kinds import (
    CELL_DONE as CELL_DONE,
)
from ._kinds import (
    CHOOSE as CHOOSE,
)
from ._kinds import (
    CLEAR as CLEAR,
)
from ._kinds import (
    CLOSE as CLOSE,
)
from ._kinds import (
    CREATE as CREATE,
)
from ._kinds import (
    DONE as DONE,
)
from ._kinds import (
    EVENT as EVENT,
)
from ._kinds import (
    FAIL as FAIL,
)
from ._kinds import (
    KINDS as KINDS,
)
from ._kinds import (
    MAX_INT_DIGITS as MAX_INT_DIGITS,
)
from ._kinds import (
    MAX_OBJECT_ID as MAX_OBJECT_ID,
)
from ._kinds import (
    MAX_TASK_ID as MAX_TASK_ID,
)
from ._kinds import (
    MAX_VALUE_DEPTH as MAX_VALUE_DEPTH,
)
from ._kinds import (
    NOTIFY as NOTIFY,
)
from ._kinds import (
    OBJECT_KINDS as OBJECT_KINDS,
)
from ._kinds import (
    QUEUE as QUEUE,
)
from ._kinds import (
    RECEIPT as RECEIPT,
)
from ._kinds import (
    RELEASE as RELEASE,
)
from ._kinds import (
    RESUME as RESUME,
)
from ._kinds import (
    SCOPE as SCOPE,
)
from ._kinds import (
    SELECT as SELECT,
)
from ._kinds import (
    SET as SET,
)
from ._kinds import (
    SPAWN as SPAWN,
)
from ._kinds import (
    STEP as STEP,
)
from ._kinds import (
    SUSPEND as SUSPEND,
)
from ._kinds import (
    TIMEOUT as TIMEOUT,
)
from ._kinds import (
    TIMER as TIMER,
)
from ._kinds import (
    WAKE as WAKE,
)
from ._kinds import (
    _check_plain as _check_plain,
)
from ._kinds import (
    _dumps as _dumps,
)
from ._kinds import (
    _int_text as _int_text,
)
from ._kinds import (
    _jv as _jv,
)

_BLOCK_SIZE = 1024  # records per entry of the lazy value-offset index


class Record(NamedTuple):
    """One journal record.  ``data`` holds plain data only (see ``docs/journal.md``).

    >>> import counterpoint as cp
    >>> async def main():
    ...     await cp.sleep(3)
    >>> vm = cp.VM()
    >>> vm.run(main())
    >>> vm.journal[2]
    Record(event_id=3, tick=0, lane=0, task=1, kind='sleep', data={'ticks': 3, 'until': 3})
    """

    event_id: int
    tick: int
    lane: int
    task: int
    kind: str
    data: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "tick": self.tick,
            "lane": self.lane,
            "task": self.task,
            "kind": self.kind,
            "data": self.data,
        }


# ---------------------------------------------------------------------------
# Plain data: what a record may contain.

_ATOMIC = frozenset({type(None), bool, int, str})
_MAX_ITEMS = 100
_MAX_DEPTH = 8


def plain(value: Any, _depth: int = 0) -> Any:
    """Return ``value`` as plain data for a record.

    None, bools, ints and strings stay as they are; finite floats too; lists and
    tuples become lists and dicts become dicts with string keys (up to 100 items
    and 8 levels deep); anything else becomes a short type name such as
    ``"<Point>"``, never a repr with a memory address.  The result is a copy, so
    a value mutated after it was sent does not change the journal.

    >>> plain((1, "a", [2.5, None]))
    [1, 'a', [2.5, None]]
    """
    cls = type(value)
    if cls is int:
        return value if -_INT_LIMIT < value < _INT_LIMIT else int_summary(value)
    if cls in _ATOMIC:
        return value
    if cls is float:
        if math.isfinite(value):
            return value
        return f"<float {value!r}>"
    if isinstance(value, int):  # IntEnum and friends: their number
        return plain(int(value))
    if isinstance(value, str):
        return str(value)
    if _depth >= _MAX_DEPTH:
        return f"<{cls.__name__}>"
    if cls is list or isinstance(value, tuple):  # named tuples too
        if len(value) > _MAX_ITEMS:
            return f"<{cls.__name__} of {len(value)}>"
        return [plain(item, _depth + 1) for item in value]
    if cls is dict:
        if len(value) > _MAX_ITEMS:
            return f"<dict of {len(value)}>"
        out = {}
        for key, item in value.items():
            out[key if type(key) is str else _key_text(key)] = plain(item, _depth + 1)
        return out
    if cls is bytes:
        return f"<bytes of {len(value)}>"
    if isinstance(value, BaseException):
        return f"<{cls.__name__}>"
    return f"<{cls.__qualname__}>"


def int_summary(value: int) -> str:
    """What a record holds for an int of more than ``MAX_INT_DIGITS`` digits.

    >>> int_summary(10**5000)
    '<int of 16610 bits>'
    """
    return f"<int of {value.bit_length()} bits>"


def tick_error(call: str, now: int, ticks: int, advice: str) -> TickRangeError:
    """The error for a deadline ``now + ticks`` past ``MAX_TICK``; ``call`` has a ``{}``
    for ``ticks`` (written in full, or summarized if too long to write)."""
    return TickRangeError(
        f"{call.format(tick_text(ticks))} at tick {now:,} would reach tick "
        f"{tick_text(now + ticks)}, past the last tick a journal can hold ({MAX_TICK:,}, "
        f"which is 2**62 - 1: ticks are stored as signed 64-bit integers, with room to add "
        f"one more count of ticks); {advice}"
    )


def tick_text(value: int) -> str:
    """A number of ticks for a message: in full, or its size if too long to write."""
    return f"{value:,}" if abs(value) < 10**30 else f"an int of {value.bit_length()} bits"


def _has_big_int(value: Any) -> bool:
    cls = type(value)
    if cls is int:
        return not -_INT_LIMIT < value < _INT_LIMIT
    if cls is tuple or cls is list:
        return any(_has_big_int(item) for item in value)
    if cls is dict:
        return any(_has_big_int(item) for item in value.values())
    return False


def _bound_ints(value: Any) -> Any:
    """``value`` with every int beyond ``MAX_INT_DIGITS`` digits as its summary."""
    cls = type(value)
    if cls is int:
        return value if -_INT_LIMIT < value < _INT_LIMIT else int_summary(value)
    if cls is tuple or cls is list:
        return cls(_bound_ints(item) for item in value)
    if cls is dict:
        return {key: _bound_ints(item) for key, item in value.items()}
    return value


def _key_text(key: Any) -> str:
    converted = plain(key, _MAX_DEPTH - 1)
    return converted if type(converted) is str else json.dumps(converted, sort_keys=True)


def exception_data(exc: BaseException) -> tuple[str, str]:
    """(type name, message) of an exception, for ``fail`` records."""
    return type(exc).__name__, str(exc)


def _line(event_id: int, tick: int, task: int, kind: int, data: str) -> str:
    return '{"data":%s,"event_id":%d,"kind":"%s","lane":0,"task":%d,"tick":%d}' % (
        data,
        event_id,
        KIND_NAMES[kind],
        task,
        tick,
    )


class Journal:
    """The sequence of records of one VM (``vm.journal``).

    Supports ``len()``, iteration, indexing (``journal[0]`` is event 1),
    :meth:`digest`, :meth:`to_records` and :meth:`filter`.

    >>> import counterpoint as cp
    >>> vm = cp.VM()
    >>> async def main():
    ...     await cp.sleep(2)
    ...     return "ok"
    >>> vm.run(main())
    'ok'
    >>> [r.kind for r in vm.journal][:3]
    ['spawn', 'step', 'sleep']
    """

    __slots__ = (
        "_hashed",
        "_hasher",
        "_mark_index",
        "_mark_tick",
        "_rows",
        "_sealed",
        "_timetravel",
        "_vals",
        "_voffsets",
        "enabled",
        "meta",
    )

    def __init__(self, enabled: bool = True) -> None:
        # packed rows (a list: its append is CPython's fastest call; an array of int64
        # would save memory but costs the hot path ~600 instructions a record)
        self._rows: list[int] = []
        self._vals: list[Any] = []
        self._voffsets: list[int] = [0]
        self._mark_index: list[int] = [0]
        self._mark_tick: list[int] = [0]
        self._hasher = hashlib.sha256()
        self._hashed = 0
        self._sealed = 0  # values checked by _seal
        self.enabled = enabled
        self.meta: dict[str, Any] = {}  # how the run was made: seed, policy (for replay)
        self._timetravel: Any = None

    # -- writing (used by the VM) ------------------------------------------------

    def _advance(self, tick: int) -> None:
        """Note that records from now on happen at ``tick``."""
        index = len(self._rows)
        if self._mark_index[-1] == index:
            self._mark_tick[-1] = tick
        else:
            self._mark_index.append(index)
            self._mark_tick.append(tick)

    def _seal(self) -> None:
        """Bound the ints of the values recorded since the last call (``MAX_INT_DIGITS``).

        Operations append values straight to ``_vals`` (the hot path checks nothing);
        everything that reads the columns calls this first, so an int beyond the bound
        is never seen: it reads as ``"<int of N bits>"``, as :func:`plain` writes it.
        """
        end = len(self._vals)
        self._seal_range(self._sealed, end)
        self._sealed = end

    def _seal_range(self, start: int, end: int) -> None:
        """Seal the values ``start..end-1`` (idempotent: a sealed value stays as it is,
        so a window of the newest records can be sealed before the ones behind it)."""
        vals = self._vals
        if start >= end:
            return
        # (in C: which values are ints, and which are tuples; then only those are looked at)
        chunk = vals[start:end]
        types = list(map(type, chunk))
        ints = list(compress(chunk, map(is_, types, repeat(int))))
        if ints and (max(ints) >= _INT_LIMIT or min(ints) <= -_INT_LIMIT):
            for index in compress(range(start, end), map(is_, types, repeat(int))):
                if not -_INT_LIMIT < vals[index] < _INT_LIMIT:
                    vals[index] = int_summary(vals[index])
        for index in compress(range(start, end), map(is_, types, repeat(tuple))):
            if _has_big_int(vals[index]):
                vals[index] = _bound_ints(vals[index])

    def _mark(self, index: int, tick: int) -> None:
        """Note that records from ``index`` on happen at ``tick`` (loading)."""
        if tick < self._mark_tick[-1] or index < self._mark_index[-1]:
            raise ValueError("virtual time or record order goes backwards")
        if self._mark_index[-1] == index:
            self._mark_tick[-1] = tick
        elif tick != self._mark_tick[-1]:
            self._mark_index.append(index)
            self._mark_tick.append(tick)

    def _append_loaded(self, row: int, value: Any, tick: int) -> None:
        """Append one record read from a file (packed by ``pack``), after checking it."""
        if type(tick) is not int or not 0 <= tick <= INT64_MAX:
            raise ValueError(f"tick {tick!r} is not an int from 0 to {INT64_MAX}")
        kind = row & _KIND_MASK
        check_slot(kind, row >> A_SHIFT, value, tick)
        self._mark(len(self._rows), tick)
        self._rows.append(row)
        if HAS_VALUE[kind]:
            self._vals.append(value)
        self._sealed = len(self._vals)  # (values read from JSON are bounded)

    def _extend_loaded(self, rows: list[int], values: list, marks: list) -> None:
        """Append a chunk read from a file, after checking that it hangs together and
        that every record is one a VM could have written (see :func:`check_slot`)."""
        start = len(self._rows)
        end = start + len(rows)
        if type(marks) is not list or not marks:
            raise ValueError("tick marks must be a list of [index, tick]")
        for mark in marks:
            if type(mark) is not list or len(mark) != 2:
                raise ValueError("tick marks must be a list of [index, tick]")
            index, tick = mark
            if type(index) is not int or type(tick) is not int:
                raise ValueError("tick marks must be ints")
            if not start <= index < end:
                raise ValueError("a tick mark points outside the chunk")
            if not 0 <= tick <= INT64_MAX:
                raise ValueError(f"tick {tick} is not from 0 to {INT64_MAX}")
            self._mark(index, tick)
        if rows and min(rows) < 0:
            raise ValueError("a record row is negative")
        has_value, names, no_id, count = HAS_VALUE, KIND_NAMES, NO_ID, len(values)
        v = 0
        for index, row in enumerate(rows, start):
            kind = row & _KIND_MASK
            if not has_value[kind]:  # step, wake ...: the commonest records, checked here
                if row >> A_SHIFT and kind in no_id:
                    raise ValueError(f"record {index + 1}: a {names[kind]} record has an id")
                continue
            if kind not in names:
                raise ValueError(f"record {index + 1} has no known kind ({kind})")
            if v >= count:
                raise ValueError(f"fewer values ({count}) than records that carry one")
            value = values[v]
            v += 1
            if kind in (SEND, RECV) and (type(value) is int or type(value) is str):
                continue  # (ints and strs read from JSON are plain and bounded)
            tick = self._tick_at(index) if kind in (SLEEP, START) else 0
            try:
                check_slot(kind, row >> A_SHIFT, value, tick)
            except ValueError as error:
                raise ValueError(f"record {index + 1} ({names[kind]}): {error}") from None
        if v != count:
            raise ValueError(f"{count} values for {v} records that carry one")
        self._rows.extend(rows)
        self._vals.extend(values)
        self._sealed = len(self._vals)  # (values read from JSON are bounded)

    def _prefix(self, count: int) -> Journal:
        """A new journal of the first ``count`` records (and this one's meta)."""
        self._seal()
        out = Journal()
        out.meta = dict(self.meta)
        rows = self._rows[:count]
        out._rows = rows
        out._vals = self._vals[: self._value_offset(count)] if count else []
        for index, tick in zip(self._mark_index, self._mark_tick, strict=True):
            if index < max(count, 1):
                out._mark(index, tick)
        return out

    def _marks_between(self, first: int, end: int) -> list[list[int]]:
        """The tick marks of records first..end-1, starting with the tick at ``first``."""
        marks = [[first, self._tick_at(first)]]
        for index, tick in zip(self._mark_index, self._mark_tick, strict=True):
            if first < index < end:
                marks.append([index, tick])
        return marks

    # -- time travel -------------------------------------------------------------

    def state_at(self, event_id: int):
        """The state of the run just after event ``event_id`` (0: before the first).

        Derived from the records alone, no code is run: every task's state and what
        it waits on, every channel's contents and waiters, lock owners, semaphore
        values, events, worker statuses and the virtual time.  The first call makes a
        snapshot every few thousand records; after that any event is a short replay
        of records away (see ``docs/journal.md``).
        """
        if self._timetravel is None:
            from ._timetravel import TimeTravel

            self._timetravel = TimeTravel(self)
        return self._timetravel.state_at(event_id)

    # -- files -------------------------------------------------------------------

    def save(self, path: str | os.PathLike) -> Path:
        """Write the journal to an SQLite file (replacing an older journal; never a
        directory, device, pipe or non-SQLite file); see ``docs/journal.md``.

        >>> # vm.journal.save("run.db");  cp.Journal.load("run.db").digest() == vm.journal.digest()
        """
        from ._store import save

        return save(self, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Journal:
        """Read a journal saved with :meth:`save`, streamed by ``VM(journal=path)``
        (maybe cut short by a crash: the records written so far), or exported with
        :meth:`export_jsonl`.  Never executes code.  A missing, truncated, corrupted
        or wrong-version file raises ``cp.JournalError`` naming the file and problem.
        """
        from ._store import load

        return load(path, cls())

    def export_jsonl(self, path: str | os.PathLike) -> Path:
        """Write one canonical JSON line per record (for diffing; ``sha256sum`` = digest)."""
        from ._store import export_jsonl

        return export_jsonl(self, path)

    # -- reading -----------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._rows)

    def _tick_at(self, index: int) -> int:
        return self._mark_tick[bisect_right(self._mark_index, index) - 1]

    def _value_offset(self, index: int) -> int:
        """Where record ``index``'s value (if any) sits in ``_vals``."""
        rows, offsets = self._rows, self._voffsets
        block = index // _BLOCK_SIZE
        if len(offsets) <= block and len(rows) - index < (block + 1 - len(offsets)) * _BLOCK_SIZE:
            # nearer the end than the index built so far (a live timeline's newest records):
            # count back from the end instead of extending the index
            offset = len(self._vals)
            for row in rows[index:]:
                offset -= HAS_VALUE[row & _KIND_MASK]
            return offset
        while len(offsets) <= block:  # extend the index up to this block
            start = (len(offsets) - 1) * _BLOCK_SIZE
            count = offsets[-1]
            for row in rows[start : start + _BLOCK_SIZE]:
                count += HAS_VALUE[row & _KIND_MASK]
            offsets.append(count)
        offset = offsets[block]
        for row in rows[block * _BLOCK_SIZE : index]:
            offset += HAS_VALUE[row & _KIND_MASK]
        return offset

    def _record(self, index: int, tick: int) -> Record:
        if self._sealed != len(self._vals):
            self._seal()
        row = self._rows[index]
        kind = row & _KIND_MASK
        value = self._vals[self._value_offset(index)] if HAS_VALUE[kind] else None
        data = decode(kind, row >> A_SHIFT, value, tick)
        return Record(index + 1, tick, 0, (row >> TASK_SHIFT) & _TASK_MASK, KIND_NAMES[kind], data)

    def _iter_raw(self, start: int = 0, stop: int | None = None):
        """Yield (index, tick, task, kind, a, value) for records start..stop-1."""
        if self._sealed != len(self._vals):
            self._seal()
        rows, vals, has_value = self._rows, self._vals, HAS_VALUE
        stop = len(rows) if stop is None else stop
        marks_i, marks_t = self._mark_index, self._mark_tick
        m = bisect_right(marks_i, start) - 1
        tick = marks_t[m]
        next_mark = marks_i[m + 1] if m + 1 < len(marks_i) else -1
        v = self._value_offset(start) if start else 0
        for index in range(start, stop):
            while index == next_mark:
                m += 1
                tick = marks_t[m]
                next_mark = marks_i[m + 1] if m + 1 < len(marks_i) else -1
            row = rows[index]
            kind = row & _KIND_MASK
            if has_value[kind]:
                value = vals[v]
                v += 1
            else:
                value = None
            yield index, tick, (row >> TASK_SHIFT) & _TASK_MASK, kind, row >> A_SHIFT, value

    def _check(self) -> None:
        """Assert the columns agree (used by the test suite)."""
        expected = sum(HAS_VALUE[row & _KIND_MASK] for row in self._rows)
        assert expected == len(self._vals), (expected, len(self._vals))

    def __iter__(self) -> Iterator[Record]:
        for index, tick, task, kind, a, b in self._iter_raw():
            yield Record(index + 1, tick, 0, task, KIND_NAMES[kind], decode(kind, a, b, tick))

    def __getitem__(self, item: int | slice) -> Record | list[Record]:
        if isinstance(item, slice):
            start, stop, step = item.indices(len(self._rows))
            if step == 1:
                return self._decode_range(start, max(start, stop))  # (in bulk)
            return [self[i] for i in range(start, stop, step)]
        index = item.__index__()
        if index < 0:
            index += len(self._rows)
        if not 0 <= index < len(self._rows):
            raise IndexError(
                f"journal index {item} out of range: the journal has {len(self._rows)} records"
            )
        return self._record(index, self._tick_at(index))

    def records(self, start: int = 1, stop: int | None = None) -> list[Record]:
        """The records with ``start <= event_id < stop`` (event ids count from 1; ``stop``
        None: to the end), decoded in bulk -- far faster than indexing one by one.

        >>> import counterpoint as cp
        >>> async def main():
        ...     await cp.sleep(3)
        >>> vm = cp.VM()
        >>> vm.run(main())
        >>> [record.kind for record in vm.journal.records(2, 4)]
        ['step', 'sleep']
        """
        for name, value in (("start", start), ("stop", stop)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                raise TypeError(f"journal.records() takes event ids (ints), got {name}={value!r}")
        if start < 1:
            raise ValueError(f"journal.records(): event ids start at 1, got start={start}")
        total = len(self._rows)
        stop = total + 1 if stop is None else min(stop, total + 1)
        if stop <= start:
            return []
        if stop - start < 10_000:
            return self._decode_range(start - 1, stop - 1)
        collecting = gc.isenabled()  # (millions of new containers, none of them garbage:
        gc.disable()  # the collector would walk them again and again for nothing)
        try:
            return self._decode_range(start - 1, stop - 1)
        finally:
            if collecting:
                gc.enable()

    def _decode_range(self, first: int, end: int) -> list[Record]:
        """Records ``first..end-1`` (indexes), one tight loop per run of equal ticks."""
        v = self._value_offset(first) if first else 0
        if self._sealed != len(self._vals):
            if len(self._vals) - self._sealed > 4 * (end - first) and self._sealed <= v:
                # a few records far beyond the sealed values (a live timeline's newest):
                # seal just theirs
                self._seal_range(
                    v, self._value_offset(end) if end < len(self._rows) else len(self._vals)
                )
            else:
                self._seal()
        new, decoders, names, has_value = tuple.__new__, DECODE, NAMES, HAS_VALUE
        rows, vals, kind_mask, shift, task_mask = (
            self._rows,
            self._vals,
            _KIND_MASK,
            TASK_SHIFT,
            _TASK_MASK,
        )
        out: list[Record] = []
        append = out.append
        for lo, hi, tick in self._tick_runs(first, end):
            for index in range(lo, hi):
                row = rows[index]
                kind = row & kind_mask
                if kind == STEP:  # (the commonest record: no value, no data)
                    data: dict[str, Any] = {}
                elif has_value[kind]:
                    data = decoders[kind](row >> A_SHIFT, vals[v], tick)
                    v += 1
                else:
                    data = decoders[kind](row >> A_SHIFT, None, tick)
                append(
                    new(Record, (index + 1, tick, 0, (row >> shift) & task_mask, names[kind], data))
                )
        return out

    def _tick_runs(self, first: int, end: int) -> Iterator[tuple[int, int, int]]:
        """(lo, hi, tick): the indexes ``first..end-1`` cut where the tick changes."""
        marks_i, marks_t = self._mark_index, self._mark_tick
        m = bisect_right(marks_i, first) - 1
        lo = first
        while lo < end:
            hi = marks_i[m + 1] if m + 1 < len(marks_i) else end
            hi = min(hi, end)
            if hi > lo:
                yield lo, hi, marks_t[m]
            lo = hi
            m += 1

    def show(self, *, x: str = "event", last: int | None = None) -> Any:
        """This journal as a ``cp.widgets.Timeline`` (in Jupyter; see
        ``docs/widgets.md``): pan and zoom over all of it, hover a mark for its record."""
        from counterpoint.widgets import Timeline

        return Timeline(self, x=x, last=last)

    def to_mermaid(self) -> str:
        """The run as a Mermaid sequence diagram (a message sequence chart): a
        participant per task, an arrow per value passed over a channel from its sender to
        its receiver, notes where tasks spawn, end, fail or are cancelled.

        >>> import counterpoint as cp
        >>> async def main():
        ...     ch = cp.channel(name="orders")
        ...     async def cook():
        ...         await ch.send("soup")
        ...     cp.spawn(cook(), name="cook")
        ...     return await ch.recv()
        >>> vm = cp.VM()
        >>> vm.run(main())
        'soup'
        >>> print(vm.journal.to_mermaid())
        sequenceDiagram
            participant t1 as main (1)
            participant t2 as cook (2)
            Note over t1: spawns cook
            t2->>t1: channel 'orders': "soup"
            Note over t1: returns
        <BLANKLINE>
        """
        from ._msc import to_mermaid

        return to_mermaid(self)

    def to_records(self) -> list[dict[str, Any]]:
        """All records as plain dicts (``event_id, tick, lane, task, kind, data``)."""
        return [record.to_dict() for record in self]

    def filter(self, *, task: int | None = None, kind: str | None = None) -> list[Record]:
        """Records of one task and/or one kind, in order.

        >>> # vm.journal.filter(kind="send") -> every send record
        """
        if kind is not None and kind not in KIND_CODES:
            known = ", ".join(sorted(KIND_CODES))
            raise ValueError(f"unknown record kind {kind!r}; the kinds are: {known}")
        out = []
        for index, tick, rtask, rkind, a, b in self._iter_raw():
            name = KIND_NAMES[rkind]
            if (kind is None or name == kind) and (task is None or rtask == task):
                data = decode(rkind, a, b, tick)
                out.append(Record(index + 1, tick, 0, rtask, name, data))
        return out

    def iter_lines(self, start: int = 0) -> Iterator[str]:
        """The canonical JSON line of each record from index ``start`` (no newline)."""
        for index, tick, task, kind, a, b in self._iter_raw(start):
            yield _line(index + 1, tick, task, kind, encode(kind, a, b, tick))

    def digest(self) -> str:
        """SHA-256 (hex) of the canonical encoding: every record's line plus ``\\n``.

        Equal journals have equal digests in any process and on any machine.
        Incremental: only records added since the last call are encoded.
        """
        if not self.enabled:
            raise RuntimeError(
                "this VM was created with journal=False, so it has no journal to digest; "
                "create it with journal=None (the default) to record one"
            )
        total = len(self._rows)
        if self._hashed < total:
            chunk: list[str] = []
            for line in self.iter_lines(self._hashed):
                chunk.append(line)
                if len(chunk) >= 8192:
                    self._hasher.update(("\n".join(chunk) + "\n").encode("ascii"))
                    chunk.clear()
            if chunk:
                self._hasher.update(("\n".join(chunk) + "\n").encode("ascii"))
            self._hashed = total
        return self._hasher.copy().hexdigest()

    def __repr__(self) -> str:
        state = "" if self.enabled else " (recording off)"
        return f"<Journal of {len(self._rows)} records{state}>"

    def _repr_html_(self, last: int = 10) -> str:
        from ._display import journal_caption, last_records, records_table

        shown, hidden = last_records(self, last)  # (effects first, as %journal shows)
        digest = self.digest() if self.enabled else None
        caption = journal_caption(len(self), digest, len(shown), hidden, "journal.records()")
        return records_table(shown, caption)
