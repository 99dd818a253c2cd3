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

import hashlib
import json
import math
import os
import re
from bisect import bisect_right
from collections.abc import Iterator
from decimal import Decimal
from itertools import compress, repeat
from operator import is_
from pathlib import Path
from typing import Any, NamedTuple

from ._errors import TickRangeError

TASK_SHIFT = 6
A_SHIFT = 34
# A packed row is a signed 64-bit int: 6 bits of kind, 28 of task id, 29 of ``a``.
MAX_TASK_ID = (1 << (A_SHIFT - TASK_SHIFT)) - 1
MAX_OBJECT_ID = (1 << (63 - A_SHIFT)) - 1
# Ticks are SQLite INTEGERs (signed 64-bit) in a journal file.  A deadline that enters
# through the API (now + ticks: cp.sleep, scope and select timeouts, worker costs) may be
# at most MAX_TICK, half of that, so that adding one more such count to a tick (a queued
# worker starts at the due tick of another one) still fits; loading accepts INT64_MAX.
MAX_TICK = (1 << 62) - 1
INT64_MAX = (1 << 63) - 1
# Ints in record values have at most MAX_INT_DIGITS decimal digits (CPython's default
# int<->str limit): reading a decimal int costs time quadratic in its length, so a bound
# keeps every journal file fast to load.  Recording writes a larger int as "<int of N
# bits>" (as it writes other things a record cannot hold); loading refuses one.
MAX_INT_DIGITS = 4300
_INT_LIMIT = 10**MAX_INT_DIGITS
# How deeply a value read from a file may nest: plain() keeps 8 levels, and the wire form
# of plain data (workers, host events: 101 levels, 3 per dict with non-str keys) fits.
MAX_VALUE_DEPTH = 320
_KIND_MASK = (1 << TASK_SHIFT) - 1
_TASK_MASK = (1 << (A_SHIFT - TASK_SHIFT)) - 1

# Record kinds.  The numbers are internal; records expose the names.
SPAWN = 1
STEP = 2
BLOCK = 3
WAKE = 4
SEND = 5
RECV = 6
CLOSE = 7
SLEEP = 8
TIMER = 9
CANCEL = 10
DONE = 11
FAIL = 12
CANCELLED = 13
SELECT = 14
ACQUIRE = 15
RELEASE = 16
SET = 17
CLEAR = 18
NOTIFY = 19
CREATE = 20
SCOPE = 21
TIMEOUT = 22
QUEUE = 23
START = 24
RECEIPT = 25
EVENT = 26
CHOOSE = 29
CELL = 30  # a notebook cell starts: its number in the session and its source
CELL_DONE = 31  # ... and ends: "ok", or the exception it raised
# Internal spellings of frequent records, without a value slot: they read as
# ordinary "block" records ({"op": "send"/"recv", "channel": id}).
BLOCK_SEND = 27
BLOCK_RECV = 28

KIND_NAMES: dict[int, str] = {
    SPAWN: "spawn",
    STEP: "step",
    BLOCK: "block",
    WAKE: "wake",
    SEND: "send",
    RECV: "recv",
    CLOSE: "close",
    SLEEP: "sleep",
    TIMER: "timer",
    CANCEL: "cancel",
    DONE: "done",
    FAIL: "fail",
    CANCELLED: "cancelled",
    SELECT: "select",
    ACQUIRE: "acquire",
    RELEASE: "release",
    SET: "set",
    CLEAR: "clear",
    NOTIFY: "notify",
    CREATE: "create",
    SCOPE: "scope",
    TIMEOUT: "timeout",
    QUEUE: "queue",
    START: "start",
    RECEIPT: "receipt",
    EVENT: "event",
    BLOCK_SEND: "block",
    BLOCK_RECV: "block",
    CHOOSE: "choose",
    CELL: "cell",
    CELL_DONE: "cell_done",
}
KIND_CODES: dict[str, int] = {
    name: code for code, name in KIND_NAMES.items() if code not in (BLOCK_SEND, BLOCK_RECV)
}

# Kinds whose records carry nothing but their ids: they append no value slot,
# which keeps the most frequent record (step) to a single int.
BARE_KINDS = frozenset({STEP, TIMER, WAKE, CANCELLED, CLOSE, TIMEOUT, BLOCK_SEND, BLOCK_RECV})
_CHANNEL_BLOCKS = {BLOCK_SEND: ("send", "channel"), BLOCK_RECV: ("recv", "channel")}
_HAS_VALUE = tuple(code not in BARE_KINDS for code in range(64))
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


# ---------------------------------------------------------------------------
# Decoding and canonical encoding, per kind.

_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
)
_dumps = _ENCODER.encode


def _int_text(value: int) -> str:
    """Decimal digits of an int of any size.

    ``int.__repr__`` refuses ints longer than ``sys.get_int_max_str_digits()``, a
    per-process setting; ``Decimal`` has no such limit, so the encoding of a
    journal never depends on the process that writes it.
    """
    try:
        return int.__repr__(value)
    except ValueError:
        return str(Decimal(value))


def _jv(value: Any) -> str:
    """Canonical JSON text of a plain value (fast path for ints and None)."""
    if type(value) is int:
        return _int_text(value)
    if value is None:
        return "null"
    try:
        return _dumps(value)
    except ValueError:  # an int too long for the process's int->str limit
        return _json_any_int(value)


def _json_any_int(value: Any) -> str:
    """``_dumps`` for plain data, writing ints of any size in full."""
    if type(value) is int:
        return _int_text(value)
    if type(value) is list:
        return "[" + ",".join(_json_any_int(item) for item in value) + "]"
    if type(value) is dict:
        items = sorted(value.items())
        return "{" + ",".join(_dumps(k) + ":" + _json_any_int(v) for k, v in items) + "}"
    return _dumps(value)


def _decode(kind: int, a: int, b: Any, tick: int) -> dict[str, Any]:
    if kind in (STEP, TIMER, CANCELLED):
        return {}
    if kind in _CHANNEL_BLOCKS:
        kind, b = BLOCK, _CHANNEL_BLOCKS[kind]
    if kind in (SEND, RECV):
        return {"channel": a, "value": b}
    if kind == BLOCK:
        if len(b) == 3:  # waits on several things: ("select", "cases", [...]) ...
            return {"op": b[0], b[1]: list(b[2])}
        return {"op": b[0], b[1]: a}
    if kind == WAKE:
        return {"by": a}
    if kind == SPAWN:
        return {"child": a, "name": b}
    if kind == SLEEP:
        return {"ticks": b - tick, "until": b}
    if kind == DONE:
        return {"value": b}
    if kind == FAIL:
        return {"error": b[0], "message": b[1]}
    if kind == CANCEL:
        return {"by": a, "reason": b}
    if kind == CLOSE:
        return {"channel": a}
    if kind == SELECT:
        return {"index": b[0], "tag": b[1]}
    if kind in (ACQUIRE, RELEASE, SET, CLEAR):
        return {b: a}
    if kind == NOTIFY:
        return {"condition": a, "woken": b}
    if kind == CREATE:
        data = {b[0]: a}
        data.update(b[1])
        return data
    if kind == SCOPE:
        data = {"scope": a, "event": b[0]}
        data.update(b[1])
        return data
    if kind == TIMEOUT:
        return {"scope": a}
    if kind == QUEUE:
        return {"worker": a, "name": b[0], "payload": b[1]}
    if kind == START:
        return {"worker": a, "name": b[0], "payload": b[1], "cost": b[2], "due": b[3]}
    if kind == RECEIPT:
        data = {"worker": a, "status": b[0]}
        if b[0] == 1:
            data["result"] = b[1]
            data["result_digest"] = b[2]
        elif b[0] == -1:
            data["error"] = b[3]
        return data
    if kind == EVENT:
        return {"source": b[0], "payload": b[1]}
    if kind == CHOOSE:
        return {"options": a, "index": b}
    if kind == CELL:
        return {"cell": a, "source": b}
    if kind == CELL_DONE:
        if b[0] == "ok":
            return {"cell": a, "outcome": "ok"}
        return {"cell": a, "outcome": b[0], "error": b[1], "message": b[2]}
    raise AssertionError(f"unknown record kind {kind}")


OBJECT_KINDS = frozenset({"channel", "lock", "semaphore", "event", "condition", "barrier"})


def _pack(kind: int, task: int, data: dict[str, Any]) -> tuple[int, Any]:
    """The inverse of :func:`_decode`: a record's packed row and its value slot.

    Used to load journals from files (JSON lines, the SQL ``records`` table).
    Raises KeyError/TypeError/ValueError on data that no VM could have written.
    """
    a, b = 0, None
    if kind in (SEND, RECV):
        a, b = data["channel"], data["value"]
    elif kind == BLOCK:
        ((key, target),) = ((k, v) for k, v in data.items() if k != "op")
        if type(target) is list:
            b = (data["op"], key, target)
        elif key == "channel" and data["op"] in ("send", "recv"):
            kind, a = BLOCK_SEND if data["op"] == "send" else BLOCK_RECV, target
        else:
            a, b = target, (data["op"], key)
    elif kind == WAKE:
        a = data["by"]
    elif kind == SPAWN:
        a, b = data["child"], data["name"]
    elif kind == SLEEP:
        b = data["until"]
    elif kind == DONE:
        b = data["value"]
    elif kind == FAIL:
        b = (data["error"], data["message"])
    elif kind == CANCEL:
        a, b = data["by"], data["reason"]
    elif kind == CLOSE:
        a = data["channel"]
    elif kind == SELECT:
        b = (data["index"], data["tag"])
    elif kind in (ACQUIRE, RELEASE, SET, CLEAR):
        ((b, a),) = data.items()
    elif kind == NOTIFY:
        a, b = data["condition"], data["woken"]
    elif kind == CREATE:
        kinds = [k for k in data if k in OBJECT_KINDS]
        (object_kind,) = ["condition"] if "condition" in kinds else kinds  # (+ its "lock")
        a = data[object_kind]
        b = (object_kind, {k: v for k, v in data.items() if k != object_kind})
    elif kind == SCOPE:
        a = data["scope"]
        b = (data["event"], {k: v for k, v in data.items() if k not in ("scope", "event")})
    elif kind == TIMEOUT:
        a = data["scope"]
    elif kind == QUEUE:
        a, b = data["worker"], (data["name"], data["payload"])
    elif kind == START:
        a = data["worker"]
        b = (data["name"], data["payload"], data["cost"], data["due"])
    elif kind == RECEIPT:
        a, status = data["worker"], data["status"]
        if status == 1:
            b = (status, data["result"], data["result_digest"], "")
        else:
            b = (status, None, None, data.get("error", ""))
    elif kind == EVENT:
        b = (data["source"], data["payload"])
    elif kind == CHOOSE:
        a, b = data["options"], data["index"]
    elif kind == CELL:
        a, b = data["cell"], data["source"]
        if type(b) is not str:
            raise TypeError("a cell's source is a str")
    elif kind == CELL_DONE:
        a = data["cell"]
        outcome = data["outcome"]
        b = ("ok",) if outcome == "ok" else (outcome, data["error"], data["message"])
    elif kind not in (STEP, TIMER, CANCELLED):
        raise ValueError(f"unknown record kind {kind}")
    if type(task) is not int or not 0 <= task <= MAX_TASK_ID:
        raise ValueError(f"the task must be an int from 0 to {MAX_TASK_ID:,}, not {task!r}")
    if type(a) is not int or not 0 <= a <= MAX_OBJECT_ID:
        raise ValueError(f"an id must be an int from 0 to {MAX_OBJECT_ID:,}, not {a!r}")
    return kind | task << TASK_SHIFT | a << A_SHIFT, b


# ---------------------------------------------------------------------------
# Validation of records read from a file: every record that loads must be one a VM
# could have written, so that every operation on the journal (iteration, digest,
# state_at, save, replay) works on it.  Values read from JSON are already plain,
# with finite floats and bounded ints (``_store._parse_json``).

_SEQUENCES = (list, tuple)
_NAME = re.compile(r"[a-z][a-z_]{0,31}\Z")  # op and object names, written into JSON as is
_CASE = re.compile(r"(channel|task) (0|[1-9][0-9]{0,8})\Z")  # a select case
# kinds whose packed row has no id (a = 0)
_NO_ID = frozenset({STEP, TIMER, CANCELLED, SLEEP, DONE, FAIL, SELECT, EVENT})
_SUMMARY = re.compile(r"<int of [1-9][0-9]{0,15} bits>\Z")  # what int_summary writes


def _count(value: Any, least: int = 0) -> bool:
    """An int >= ``least`` given by a program, or the summary of one that was too long."""
    if type(value) is int:
        return value >= least
    return type(value) is str and _SUMMARY.match(value) is not None


_SCOPE_OPTIONS: dict[str, Any] = {
    "par": lambda v: v is True,
    "shield": lambda v: v is True,
    "timeout": lambda v: type(v) is int and 0 <= v <= INT64_MAX,
    "max_children": _count,
}


# the extra data of a create record, per object kind: name -> check
_CREATE_EXTRAS: dict[str, dict[str, Any]] = {
    "channel": {"capacity": _count},
    "lock": {},
    "semaphore": {"value": _count},
    "event": {},
    "condition": {"lock": lambda v: type(v) is int and 0 <= v <= MAX_OBJECT_ID},
    "barrier": {"parties": lambda v: _count(v, 1)},
}
# options a create record may also carry: every object may have a name (name=...)
_CREATE_OPTIONAL: dict[str, dict[str, Any]] = {
    kind: {"name": lambda v: type(v) is str and 1 <= len(v) <= 100 and v.isprintable()}
    for kind in _CREATE_EXTRAS
}
_CREATE_OPTIONAL["semaphore"]["bounded"] = lambda v: v is True  # cp.BoundedSemaphore


def _check_plain(value: Any, what: str, depth: int = 0) -> None:
    """Raise ValueError unless ``value`` is plain data a record can hold."""
    cls = type(value)
    if cls is str or cls is int or cls is bool or value is None:
        if cls is int and not -_INT_LIMIT < value < _INT_LIMIT:
            raise ValueError(f"{what} has an int of more than {MAX_INT_DIGITS:,} digits")
        return
    if cls is float:
        if not math.isfinite(value):
            raise ValueError(f"{what} has a float {value!r}; records hold finite floats")
        return
    if cls is not list and cls is not dict:
        raise ValueError(f"{what} has a {cls.__name__}, which is not plain data")
    if depth >= MAX_VALUE_DEPTH:
        raise ValueError(f"{what} is nested more than {MAX_VALUE_DEPTH} levels deep")
    if cls is list:
        for item in value:
            _check_plain(item, what, depth + 1)
    else:
        for key, item in value.items():
            if type(key) is not str:
                raise ValueError(f"{what} has a dict key {key!r}; keys are strs")
            _check_plain(item, what, depth + 1)


def _check_wire(value: Any, what: str) -> None:
    """Raise ValueError unless ``value`` is the canonical wire form of plain data."""
    from ._plaindata import decode, encode

    _check_plain(value, what)
    try:
        canonical = encode(decode(value)) == value
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as error:
        raise ValueError(f"{what} is not a wire form of plain data ({error})") from None
    if not canonical:
        raise ValueError(f"{what} is not in the canonical wire form of plain data")


def _is_str_pair(b: Any) -> bool:
    return type(b) in _SEQUENCES and len(b) == 2 and type(b[0]) is str and type(b[1]) is str


def _check_slot(kind: int, a: int, b: Any, tick: int) -> None:
    """Raise ValueError unless id ``a`` and value slot ``b`` are what a VM writes for a
    record of ``kind`` at ``tick`` (``kind`` is a known code, ``a`` a packable id)."""
    if a and kind in _NO_ID:
        raise ValueError(f"a {KIND_NAMES[kind]} record names no object, but has id {a}")
    if not _HAS_VALUE[kind]:
        return
    if kind in (SEND, RECV, DONE):
        _check_plain(b, "its value")
    elif kind in (SPAWN, CANCEL, CELL):
        if type(b) is not str:
            raise ValueError(f"its {'reason' if kind == CANCEL else 'name'} must be a str")
    elif kind == SLEEP:
        if type(b) is not int or not tick <= b <= INT64_MAX:
            raise ValueError(f"it sleeps until tick {b!r}, at tick {tick}")
    elif kind == FAIL:
        if not _is_str_pair(b):
            raise ValueError("its error and message must be strs")
    elif kind == SELECT:
        if type(b) not in _SEQUENCES or len(b) != 2 or type(b[1]) is not str:
            raise ValueError("it needs an index and a tag")
        if type(b[0]) is not int or b[0] < -1:
            raise ValueError(f"its index must be an int >= -1, not {b[0]!r}")
    elif kind in (ACQUIRE, RELEASE):
        if b != "lock" and b != "semaphore":
            raise ValueError(f"it is about a lock or a semaphore, not {b!r}")
    elif kind in (SET, CLEAR):
        if b != "event":
            raise ValueError(f"it is about an event, not {b!r}")
    elif kind == NOTIFY:
        if type(b) is not int or b < 0:
            raise ValueError(f"the number woken must be an int >= 0, not {b!r}")
    elif kind == BLOCK:
        _check_block(a, b)
    elif kind == CREATE:
        _check_create(b)
    elif kind == SCOPE:
        _check_scope(b)
    elif kind == QUEUE:
        if not _is_str_pair(b):
            raise ValueError("it needs a name and a payload digest (strs)")
    elif kind == START:
        if type(b) not in _SEQUENCES or len(b) != 4 or not _is_str_pair(b[:2]):
            raise ValueError("it needs a name, a payload digest, a cost and a due tick")
        cost, due = b[2], b[3]
        if type(cost) is not int or type(due) is not int or cost < 1 or due != tick + cost:
            raise ValueError(f"cost {cost!r} and due tick {due!r} do not fit tick {tick}")
        if due > INT64_MAX:
            raise ValueError(f"due tick {due} is past {INT64_MAX}")
    elif kind == RECEIPT:
        _check_receipt(b)
    elif kind == EVENT:
        if type(b) not in _SEQUENCES or len(b) != 2 or type(b[0]) is not str:
            raise ValueError("it needs a source (a str) and a payload")
        _check_wire(b[1], "its payload")
    elif kind == CHOOSE:
        if a < 1 or type(b) is not int or not 0 <= b < a:
            raise ValueError(f"index {b!r} does not pick one of {a} options")
    elif kind == CELL_DONE:
        if type(b) not in _SEQUENCES or not b or any(type(part) is not str for part in b):
            raise ValueError("its outcome must be strs")
        if (b[0] == "ok") != (len(b) == 1) or len(b) not in (1, 3):
            raise ValueError("an ok cell has no error; another has an error and a message")
    else:
        raise ValueError(f"unknown record kind {kind}")


def _check_block(a: int, b: Any) -> None:
    if type(b) not in _SEQUENCES or len(b) not in (2, 3):
        raise ValueError("it needs an op and what it waits on")
    op, key = b[0], b[1]
    if type(op) is not str or type(key) is not str or not _NAME.match(op):
        raise ValueError(f"op {op!r} is not a name")
    if not _NAME.match(key) or key == "op":
        raise ValueError(f"{key!r} is not a name of what a task waits on")
    if len(b) == 3:
        items = b[2]
        if a or type(items) is not list:
            raise ValueError("a wait on several things lists them, and names no one id")
        if op == "select" and key == "cases":
            if not all(type(case) is str and _CASE.match(case) for case in items):
                raise ValueError("select cases are 'channel N' or 'task N'")
        elif op == "wait_any" and key == "workers":
            if not all(type(h) is int and 0 <= h <= MAX_OBJECT_ID for h in items):
                raise ValueError("wait_any waits on worker handles (ints)")
        else:
            raise ValueError(f"{op!r} does not wait on a list of {key!r}")
    elif key == "cases" or key == "workers" or op == "select" or op == "wait_any":
        raise ValueError(f"{op!r} on {key!r} waits on a list")
    elif key == "channel" and (op == "send" or op == "recv"):
        raise ValueError("a channel send/recv block has a row kind of its own")


def _check_create(b: Any) -> None:
    if type(b) not in _SEQUENCES or len(b) != 2 or type(b[1]) is not dict:
        raise ValueError("it needs an object kind and its options")
    object_kind, extra = b
    checks = _CREATE_EXTRAS.get(object_kind) if type(object_kind) is str else None
    if checks is None:
        raise ValueError(f"unknown object kind {object_kind!r}")
    optional = _CREATE_OPTIONAL.get(object_kind, {})
    if not set(checks) <= set(extra) <= set(checks) | set(optional):
        raise ValueError(f"a {object_kind} is created with {sorted(checks)}, not {sorted(extra)}")
    for key, value in extra.items():
        if not (checks.get(key) or optional[key])(value):
            raise ValueError(f"a {object_kind}'s {key} cannot be {value!r}")


def _check_scope(b: Any) -> None:
    if type(b) not in _SEQUENCES or len(b) != 2 or type(b[1]) is not dict:
        raise ValueError("it needs an event and its details")
    event, details = b
    if event == "open":
        for key, value in details.items():
            check = _SCOPE_OPTIONS.get(key)
            if check is None or not check(value):
                raise ValueError(f"a scope opens with no option {key!r} = {value!r}")
    elif event == "close":
        if list(details) != ["outcome"] or type(details["outcome"]) is not str:
            raise ValueError("a scope closes with an outcome (a str)")
    else:
        raise ValueError(f"a scope has no event {event!r}")


def _check_receipt(b: Any) -> None:
    if type(b) not in _SEQUENCES or len(b) != 4:
        raise ValueError("it needs a status, a result, its digest and an error")
    status, result, result_digest, error = b
    if status == 1 and type(status) is int:
        if type(result_digest) is not str or error != "":
            raise ValueError("a completed worker has a result digest and no error")
        _check_wire(result, "its result")
    elif status in (-1, -2) and type(status) is int:
        if result is not None or result_digest is not None or type(error) is not str:
            raise ValueError("a worker that did not complete has an error and no result")
        if status == -2 and error:
            raise ValueError("a cancelled worker has no error")
    else:
        raise ValueError(f"a worker's status is 1, -1 or -2, not {status!r}")


def _encode_data(kind: int, a: int, b: Any, tick: int) -> str:
    """Canonical JSON of a record's data; equal to ``_dumps(_decode(...))``."""
    if kind in (STEP, TIMER, CANCELLED):
        return "{}"
    if kind == BLOCK_RECV:
        return '{"channel":%d,"op":"recv"}' % a
    if kind == BLOCK_SEND:
        return '{"channel":%d,"op":"send"}' % a
    if kind in (SEND, RECV):
        return '{"channel":%d,"value":%s}' % (a, _jv(b))
    if kind == BLOCK and len(b) == 2:
        # keys sorted: the object kind ("channel", "lock", ...) against "op"
        if b[1] < "op":
            return '{"%s":%d,"op":"%s"}' % (b[1], a, b[0])
        return '{"op":"%s","%s":%d}' % (b[0], b[1], a)
    if kind == WAKE:
        return '{"by":%d}' % a
    if kind == SLEEP:
        return '{"ticks":%s,"until":%s}' % (_int_text(b - tick), _int_text(b))
    if kind == DONE:
        return '{"value":%s}' % _jv(b)
    return _jv(_decode(kind, a, b, tick))


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
        vals = self._vals
        start, end = self._sealed, len(vals)
        if start == end:
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
        self._sealed = end

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
        """Append one record read from a file (packed by ``_pack``), after checking it."""
        if type(tick) is not int or not 0 <= tick <= INT64_MAX:
            raise ValueError(f"tick {tick!r} is not an int from 0 to {INT64_MAX}")
        kind = row & _KIND_MASK
        _check_slot(kind, row >> A_SHIFT, value, tick)
        self._mark(len(self._rows), tick)
        self._rows.append(row)
        if _HAS_VALUE[kind]:
            self._vals.append(value)
        self._sealed = len(self._vals)  # (values read from JSON are bounded)

    def _extend_loaded(self, rows: list[int], values: list, marks: list) -> None:
        """Append a chunk read from a file, after checking that it hangs together and
        that every record is one a VM could have written (see :func:`_check_slot`)."""
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
        has_value, names, no_id, count = _HAS_VALUE, KIND_NAMES, _NO_ID, len(values)
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
                _check_slot(kind, row >> A_SHIFT, value, tick)
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
        while len(offsets) <= block:  # extend the index up to this block
            start = (len(offsets) - 1) * _BLOCK_SIZE
            count = offsets[-1]
            for row in rows[start : start + _BLOCK_SIZE]:
                count += _HAS_VALUE[row & _KIND_MASK]
            offsets.append(count)
        offset = offsets[block]
        for row in rows[block * _BLOCK_SIZE : index]:
            offset += _HAS_VALUE[row & _KIND_MASK]
        return offset

    def _record(self, index: int, tick: int) -> Record:
        if self._sealed != len(self._vals):
            self._seal()
        row = self._rows[index]
        kind = row & _KIND_MASK
        value = self._vals[self._value_offset(index)] if _HAS_VALUE[kind] else None
        data = _decode(kind, row >> A_SHIFT, value, tick)
        return Record(index + 1, tick, 0, (row >> TASK_SHIFT) & _TASK_MASK, KIND_NAMES[kind], data)

    def _iter_raw(self, start: int = 0, stop: int | None = None):
        """Yield (index, tick, task, kind, a, value) for records start..stop-1."""
        if self._sealed != len(self._vals):
            self._seal()
        rows, vals, has_value = self._rows, self._vals, _HAS_VALUE
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
        expected = sum(_HAS_VALUE[row & _KIND_MASK] for row in self._rows)
        assert expected == len(self._vals), (expected, len(self._vals))

    def __iter__(self) -> Iterator[Record]:
        for index, tick, task, kind, a, b in self._iter_raw():
            yield Record(index + 1, tick, 0, task, KIND_NAMES[kind], _decode(kind, a, b, tick))

    def __getitem__(self, item: int | slice) -> Record | list[Record]:
        if isinstance(item, slice):
            return [self[i] for i in range(*item.indices(len(self._rows)))]
        index = item.__index__()
        if index < 0:
            index += len(self._rows)
        if not 0 <= index < len(self._rows):
            raise IndexError(
                f"journal index {item} out of range: the journal has {len(self._rows)} records"
            )
        return self._record(index, self._tick_at(index))

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
                data = _decode(rkind, a, b, tick)
                out.append(Record(index + 1, tick, 0, rtask, name, data))
        return out

    def iter_lines(self, start: int = 0) -> Iterator[str]:
        """The canonical JSON line of each record from index ``start`` (no newline)."""
        for index, tick, task, kind, a, b in self._iter_raw(start):
            yield _line(index + 1, tick, task, kind, _encode_data(kind, a, b, tick))

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
        from ._display import records_table

        total = len(self._rows)
        shown = self[max(0, total - last) :]
        caption = f"journal: {total} records" + (f", the last {len(shown)}" if total > last else "")
        return records_table(shown, caption)
