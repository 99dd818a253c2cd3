"""Record kinds, each declared once: its code, name, fields, how it packs into a
journal row, decodes into a record's ``data``, encodes canonically and is checked when
loaded from a file.

A record is one packed int (``kind | task << TASK_SHIFT | a << A_SHIFT``, ``a`` a small
non-negative id) plus, for kinds that carry a value, one slot ``b`` in the journal's
value column.  Everything that reads or writes records (``_journal``, the file stores,
``counterpoint.lowlevel``) goes through :data:`KINDS`; adding a kind is one
:func:`_declare` call here (see ``suspend``/``resume`` at the end).

Operations write rows with the small helpers ``row(kind, task, a)`` (or the VM's
``record`` method); the hot paths inline ``task._k | CODE | a << A_SHIFT``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any, NamedTuple

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

# ---------------------------------------------------------------------------
# Canonical JSON.

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


# ---------------------------------------------------------------------------
# Validation of records read from a file: every record that loads must be one a VM
# could have written, so that every operation on the journal (iteration, digest,
# state_at, save, replay) works on it.  Values read from JSON are already plain,
# with finite floats and bounded ints (``_store._parse_json``).

_SEQUENCES = (list, tuple)
_NAME = re.compile(r"[a-z][a-z_]{0,31}\Z")  # op and object names, written into JSON as is
_CASE = re.compile(r"(channel|task) (0|[1-9][0-9]{0,8})\Z")  # a select case
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
    "countdown": {"count": _count},
}
# options a create record may also carry: every object may have a name (name=...)
_CREATE_OPTIONAL: dict[str, dict[str, Any]] = {
    kind: {"name": lambda v: type(v) is str and 1 <= len(v) <= 100 and v.isprintable()}
    for kind in _CREATE_EXTRAS
}
_CREATE_OPTIONAL["semaphore"]["bounded"] = lambda v: v is True  # cp.BoundedSemaphore
_CREATE_OPTIONAL["lock"]["reentrant"] = lambda v: v is True  # cp.RLock


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


# ---------------------------------------------------------------------------
# The declarations.


class Kind(NamedTuple):
    """One record kind.

    ``decode(a, b, tick)`` -> the record's ``data``; ``pack(data)`` -> ``(code, a, b)``
    (raises KeyError/TypeError/ValueError on data no VM writes); ``check(a, b, tick)``
    raises ValueError unless the slot is one a VM writes (None: any); ``encode(a, b,
    tick)`` -> canonical JSON of the data, a fast path equal to ``_jv(decode(...))``
    (None: that); ``value``: the kind has a value slot; ``has_id``: ``a`` names
    something (else it is 0); ``fields``: the keys of ``data``, for the docs;
    ``touches``: what a record of the kind touches, for exploration's footprints
    (``vm/_reduction.py``): an object kind numbered ``a`` ("channel", "event",
    "condition", "scope"), "task" (the record's task), "waited" (what a block waits
    on), "held" (the lock or semaphore ``b`` numbered ``a``), "spawned", "timer",
    "workers", "host events", or "" (nothing but whom it wakes).
    """

    code: int
    name: str
    fields: tuple[str, ...]
    value: bool
    has_id: bool
    decode: Callable[[int, Any, int], dict[str, Any]]
    pack: Callable[[dict[str, Any]], tuple[int, int, Any]]
    check: Callable[[int, Any, int], None] | None
    encode: Callable[[int, Any, int], str] | None
    touches: str


KINDS: dict[int, Kind] = {}


def _declare(
    code: int,
    name: str,
    fields: tuple[str, ...],
    decode: Callable,
    pack: Callable,
    *,
    value: bool = True,
    has_id: bool = True,
    check: Callable | None = None,
    encode: Callable | None = None,
    touches: str = "",
) -> int:
    assert code not in KINDS and 0 < code <= _KIND_MASK, code
    KINDS[code] = Kind(code, name, fields, value, has_id, decode, pack, check, encode, touches)
    return code


def _empty(a: int, b: Any, tick: int) -> dict[str, Any]:
    return {}


def _no_fields(code: int) -> Callable[[dict[str, Any]], tuple[int, int, Any]]:
    def pack(data: dict[str, Any]) -> tuple[int, int, Any]:
        return code, 0, None

    return pack


def _empty_json(a: int, b: Any, tick: int) -> str:
    return "{}"


def _check_value(a: int, b: Any, tick: int) -> None:
    _check_plain(b, "its value")


def _check_text(what: str) -> Callable[[int, Any, int], None]:
    def check(a: int, b: Any, tick: int) -> None:
        if type(b) is not str:
            raise ValueError(f"its {what} must be a str")

    return check


# -- scheduling --------------------------------------------------------------------------

SPAWN = _declare(
    1,
    "spawn",
    ("child", "name"),
    lambda a, b, tick: {"child": a, "name": b},
    lambda d: (SPAWN, d["child"], d["name"]),
    check=_check_text("name"),
    touches="spawned",
)
STEP = _declare(2, "step", (), _empty, _no_fields(2), value=False, has_id=False, encode=_empty_json)


def _decode_block(a: int, b: Any, tick: int) -> dict[str, Any]:
    if len(b) == 3:  # waits on several things: ("select", "cases", [...]) ...
        return {"op": b[0], b[1]: list(b[2])}
    return {"op": b[0], b[1]: a}


def _pack_block(data: dict[str, Any]) -> tuple[int, int, Any]:
    ((key, target),) = ((k, v) for k, v in data.items() if k != "op")
    if type(target) is list:
        return BLOCK, 0, (data["op"], key, target)
    if key == "channel" and data["op"] in ("send", "recv"):
        return (BLOCK_SEND if data["op"] == "send" else BLOCK_RECV), target, None
    return BLOCK, target, (data["op"], key)


def _encode_block(a: int, b: Any, tick: int) -> str:
    if len(b) == 2:  # keys sorted: the object kind ("channel", "lock", ...) against "op"
        if b[1] < "op":
            return '{"%s":%d,"op":"%s"}' % (b[1], a, b[0])
        return '{"op":"%s","%s":%d}' % (b[0], b[1], a)
    return _jv(_decode_block(a, b, tick))


BLOCK = _declare(
    3,
    "block",
    ("op", "<what it waits on>"),
    _decode_block,
    _pack_block,
    check=lambda a, b, tick: _check_block(a, b),
    encode=_encode_block,
    touches="waited",
)
WAKE = _declare(
    4,
    "wake",
    ("by",),
    lambda a, b, tick: {"by": a},
    lambda d: (WAKE, d["by"], None),
    value=False,
    encode=lambda a, b, tick: '{"by":%d}' % a,
)
# Internal spellings of the commonest blocks, without a value slot: they read as
# ordinary "block" records ({"op": "send"/"recv", "channel": id}).
BLOCK_SEND = _declare(
    27,
    "block",
    ("op", "channel"),
    lambda a, b, tick: {"op": "send", "channel": a},
    _pack_block,
    value=False,
    encode=lambda a, b, tick: '{"channel":%d,"op":"send"}' % a,
    touches="channel",
)
BLOCK_RECV = _declare(
    28,
    "block",
    ("op", "channel"),
    lambda a, b, tick: {"op": "recv", "channel": a},
    _pack_block,
    value=False,
    encode=lambda a, b, tick: '{"channel":%d,"op":"recv"}' % a,
    touches="channel",
)

# -- channels ----------------------------------------------------------------------------


def _encode_transfer(a: int, b: Any, tick: int) -> str:
    return '{"channel":%d,"value":%s}' % (a, _jv(b))


SEND = _declare(
    5,
    "send",
    ("channel", "value"),
    lambda a, b, tick: {"channel": a, "value": b},
    lambda d: (SEND, d["channel"], d["value"]),
    check=_check_value,
    encode=_encode_transfer,
    touches="channel",
)
RECV = _declare(
    6,
    "recv",
    ("channel", "value"),
    lambda a, b, tick: {"channel": a, "value": b},
    lambda d: (RECV, d["channel"], d["value"]),
    check=_check_value,
    encode=_encode_transfer,
    touches="channel",
)
CLOSE = _declare(
    7,
    "close",
    ("channel",),
    lambda a, b, tick: {"channel": a},
    lambda d: (CLOSE, d["channel"], None),
    value=False,
    touches="channel",
)

# -- time ------------------------------------------------------------------------------------


def _check_sleep(a: int, b: Any, tick: int) -> None:
    if type(b) is not int or not tick <= b <= INT64_MAX:
        raise ValueError(f"it sleeps until tick {b!r}, at tick {tick}")


SLEEP = _declare(
    8,
    "sleep",
    ("ticks", "until"),
    lambda a, b, tick: {"ticks": b - tick, "until": b},
    lambda d: (SLEEP, 0, d["until"]),
    has_id=False,
    check=_check_sleep,
    encode=lambda a, b, tick: '{"ticks":%s,"until":%s}' % (_int_text(b - tick), _int_text(b)),
    touches="timer",
)
TIMER = _declare(
    9, "timer", (), _empty, _no_fields(9), value=False, has_id=False, encode=_empty_json
)

# -- endings and cancellation ------------------------------------------------------------------

CANCEL = _declare(
    10,
    "cancel",
    ("by", "reason"),
    lambda a, b, tick: {"by": a, "reason": b},
    lambda d: (CANCEL, d["by"], d["reason"]),
    check=_check_text("reason"),
    touches="task",
)
DONE = _declare(
    11,
    "done",
    ("value",),
    lambda a, b, tick: {"value": b},
    lambda d: (DONE, 0, d["value"]),
    has_id=False,
    check=_check_value,
    encode=lambda a, b, tick: '{"value":%s}' % _jv(b),
    touches="task",
)


def _check_fail(a: int, b: Any, tick: int) -> None:
    if not _is_str_pair(b):
        raise ValueError("its error and message must be strs")


FAIL = _declare(
    12,
    "fail",
    ("error", "message"),
    lambda a, b, tick: {"error": b[0], "message": b[1]},
    lambda d: (FAIL, 0, (d["error"], d["message"])),
    has_id=False,
    check=_check_fail,
    touches="task",
)
CANCELLED = _declare(
    13,
    "cancelled",
    (),
    _empty,
    _no_fields(13),
    value=False,
    has_id=False,
    encode=_empty_json,
    touches="task",
)

# -- select, locks, semaphores, events, conditions ---------------------------------------------


def _check_select(a: int, b: Any, tick: int) -> None:
    if type(b) not in _SEQUENCES or len(b) != 2 or type(b[1]) is not str:
        raise ValueError("it needs an index and a tag")
    if type(b[0]) is not int or b[0] < -1:
        raise ValueError(f"its index must be an int >= -1, not {b[0]!r}")


SELECT = _declare(
    14,
    "select",
    ("index", "tag"),
    lambda a, b, tick: {"index": b[0], "tag": b[1]},
    lambda d: (SELECT, 0, (d["index"], d["tag"])),
    has_id=False,
    check=_check_select,
)


def _held(code: int, objects: tuple[str, ...]) -> tuple[Callable, Callable]:
    """pack and check of a record whose data is ``{object kind: id}``."""

    def pack(data: dict[str, Any]) -> tuple[int, int, Any]:
        ((b, a),) = data.items()
        return code, a, b

    def check(a: int, b: Any, tick: int) -> None:
        if b not in objects:
            raise ValueError(f"it is about {' or '.join(objects)}, not {b!r}")

    return pack, check


def _decode_held(a: int, b: Any, tick: int) -> dict[str, Any]:
    return {b: a}


_LOCKS = ("lock", "semaphore")


def _declare_held(code: int, name: str, objects: tuple[str, ...], touches: str) -> int:
    pack, check = _held(code, objects)
    fields = (" or ".join(objects),)
    return _declare(code, name, fields, _decode_held, pack, check=check, touches=touches)


ACQUIRE = _declare_held(15, "acquire", _LOCKS, "held")
RELEASE = _declare_held(16, "release", _LOCKS, "held")
SET = _declare_held(17, "set", ("event",), "event")
CLEAR = _declare_held(18, "clear", ("event",), "event")


def _check_notify(a: int, b: Any, tick: int) -> None:
    if type(b) is not int or b < 0:
        raise ValueError(f"the number woken must be an int >= 0, not {b!r}")


NOTIFY = _declare(
    19,
    "notify",
    ("condition", "woken"),
    lambda a, b, tick: {"condition": a, "woken": b},
    lambda d: (NOTIFY, d["condition"], d["woken"]),
    check=_check_notify,
    touches="condition",
)


def _check_units(a: int, b: Any, tick: int) -> None:
    if type(b) is not int or b < 1:
        raise ValueError(f"the number of units must be an int >= 1, not {b!r}")


def _declare_countdown(code: int, name: str) -> int:
    """``signal`` / ``add_count`` of a ``cp.CountdownEvent``: ``{"countdown": id, "n": n}``."""
    return _declare(
        code,
        name,
        ("countdown", "n"),
        lambda a, b, tick: {"countdown": a, "n": b},
        lambda d: (code, d["countdown"], d["n"]),
        check=_check_units,
        touches="countdown",
    )


SIGNAL = _declare_countdown(40, "signal")  # (codes 34-39 left free for other kinds)
ADD_COUNT = _declare_countdown(41, "add_count")

# -- objects and scopes ----------------------------------------------------------------------

OBJECT_KINDS = frozenset(
    {"channel", "lock", "semaphore", "event", "condition", "barrier", "countdown"}
)


def _decode_create(a: int, b: Any, tick: int) -> dict[str, Any]:
    data = {b[0]: a}
    data.update(b[1])
    return data


def _pack_create(data: dict[str, Any]) -> tuple[int, int, Any]:
    kinds = [k for k in data if k in OBJECT_KINDS]
    (object_kind,) = ["condition"] if "condition" in kinds else kinds  # (+ its "lock")
    extra = {k: v for k, v in data.items() if k != object_kind}
    return CREATE, data[object_kind], (object_kind, extra)


CREATE = _declare(
    20,
    "create",
    ("<object kind>", "<its options>"),
    _decode_create,
    _pack_create,
    check=lambda a, b, tick: _check_create(b),
)


def _decode_scope(a: int, b: Any, tick: int) -> dict[str, Any]:
    data = {"scope": a, "event": b[0]}
    data.update(b[1])
    return data


def _pack_scope(data: dict[str, Any]) -> tuple[int, int, Any]:
    details = {k: v for k, v in data.items() if k not in ("scope", "event")}
    return SCOPE, data["scope"], (data["event"], details)


SCOPE = _declare(
    21,
    "scope",
    ("scope", "event", "<details>"),
    _decode_scope,
    _pack_scope,
    check=lambda a, b, tick: _check_scope(b),
    touches="scope",
)
TIMEOUT = _declare(
    22,
    "timeout",
    ("scope",),
    lambda a, b, tick: {"scope": a},
    lambda d: (TIMEOUT, d["scope"], None),
    value=False,
    touches="scope",
)

# -- workers and host events -----------------------------------------------------------------


def _check_queue(a: int, b: Any, tick: int) -> None:
    if not _is_str_pair(b):
        raise ValueError("it needs a name and a payload digest (strs)")


QUEUE = _declare(
    23,
    "queue",
    ("worker", "name", "payload"),
    lambda a, b, tick: {"worker": a, "name": b[0], "payload": b[1]},
    lambda d: (QUEUE, d["worker"], (d["name"], d["payload"])),
    check=_check_queue,
    touches="workers",
)


def _check_start(a: int, b: Any, tick: int) -> None:
    if type(b) not in _SEQUENCES or len(b) != 4 or not _is_str_pair(b[:2]):
        raise ValueError("it needs a name, a payload digest, a cost and a due tick")
    cost, due = b[2], b[3]
    if type(cost) is not int or type(due) is not int or cost < 1 or due != tick + cost:
        raise ValueError(f"cost {cost!r} and due tick {due!r} do not fit tick {tick}")
    if due > INT64_MAX:
        raise ValueError(f"due tick {due} is past {INT64_MAX}")


START = _declare(
    24,
    "start",
    ("worker", "name", "payload", "cost", "due"),
    lambda a, b, tick: {"worker": a, "name": b[0], "payload": b[1], "cost": b[2], "due": b[3]},
    lambda d: (START, d["worker"], (d["name"], d["payload"], d["cost"], d["due"])),
    check=_check_start,
    touches="workers",
)


def _decode_receipt(a: int, b: Any, tick: int) -> dict[str, Any]:
    data = {"worker": a, "status": b[0]}
    if b[0] == 1:
        data["result"] = b[1]
        data["result_digest"] = b[2]
    elif b[0] == -1:
        data["error"] = b[3]
    return data


def _pack_receipt(data: dict[str, Any]) -> tuple[int, int, Any]:
    status = data["status"]
    if status == 1:
        return RECEIPT, data["worker"], (status, data["result"], data["result_digest"], "")
    return RECEIPT, data["worker"], (status, None, None, data.get("error", ""))


RECEIPT = _declare(
    25,
    "receipt",
    ("worker", "status", "result", "result_digest", "error"),
    _decode_receipt,
    _pack_receipt,
    check=lambda a, b, tick: _check_receipt(b),
    touches="workers",
)


def _check_event(a: int, b: Any, tick: int) -> None:
    if type(b) not in _SEQUENCES or len(b) != 2 or type(b[0]) is not str:
        raise ValueError("it needs a source (a str) and a payload")
    _check_wire(b[1], "its payload")


EVENT = _declare(
    26,
    "event",
    ("source", "payload"),
    lambda a, b, tick: {"source": b[0], "payload": b[1]},
    lambda d: (EVENT, 0, (d["source"], d["payload"])),
    has_id=False,
    check=_check_event,
    touches="host events",
)


def _check_choose(a: int, b: Any, tick: int) -> None:
    if a < 1 or type(b) is not int or not 0 <= b < a:
        raise ValueError(f"index {b!r} does not pick one of {a} options")


CHOOSE = _declare(
    29,
    "choose",
    ("options", "index"),
    lambda a, b, tick: {"options": a, "index": b},
    lambda d: (CHOOSE, d["options"], d["index"]),
    check=_check_choose,
)

# -- host markers: notebook cells ----------------------------------------------------------------


def _pack_cell(data: dict[str, Any]) -> tuple[int, int, Any]:
    if type(data["source"]) is not str:
        raise TypeError("a cell's source is a str")
    return CELL, data["cell"], data["source"]


CELL = _declare(  # a notebook cell starts: its number in the session and its source
    30,
    "cell",
    ("cell", "source"),
    lambda a, b, tick: {"cell": a, "source": b},
    _pack_cell,
    check=_check_text("source"),
)


def _decode_cell_done(a: int, b: Any, tick: int) -> dict[str, Any]:
    if b[0] == "ok":
        return {"cell": a, "outcome": "ok"}
    return {"cell": a, "outcome": b[0], "error": b[1], "message": b[2]}


def _pack_cell_done(data: dict[str, Any]) -> tuple[int, int, Any]:
    outcome = data["outcome"]
    b = ("ok",) if outcome == "ok" else (outcome, data["error"], data["message"])
    return CELL_DONE, data["cell"], b


def _check_cell_done(a: int, b: Any, tick: int) -> None:
    if type(b) not in _SEQUENCES or not b or any(type(part) is not str for part in b):
        raise ValueError("its outcome must be strs")
    if (b[0] == "ok") != (len(b) == 1) or len(b) not in (1, 3):
        raise ValueError("an ok cell has no error; another has an error and a message")


CELL_DONE = _declare(  # ... and ends: "ok", or the exception it raised
    31,
    "cell_done",
    ("cell", "outcome", "error", "message"),
    _decode_cell_done,
    _pack_cell_done,
    check=_check_cell_done,
)

# -- the execution lifecycle -------------------------------------------------------------------

SUSPEND = _declare(  # a task stops being scheduled (task.suspend()), by task ``by`` (0: host)
    32,
    "suspend",
    ("by",),
    lambda a, b, tick: {"by": a},
    lambda d: (SUSPEND, d["by"], None),
    value=False,
    touches="task",
)
RESUME = _declare(  # ... and is scheduled again (task.resume())
    33,
    "resume",
    ("by",),
    lambda a, b, tick: {"by": a},
    lambda d: (RESUME, d["by"], None),
    value=False,
    touches="task",
)

# ---------------------------------------------------------------------------
# Lookups derived from the declarations (indexed by code, for the hot readers).

KIND_NAMES: dict[int, str] = {code: kind.name for code, kind in KINDS.items()}
KIND_CODES: dict[str, int] = {
    kind.name: code for code, kind in KINDS.items() if code not in (BLOCK_SEND, BLOCK_RECV)
}
# Kinds whose records carry nothing but their ids: they append no value slot,
# which keeps the most frequent record (step) to a single int.
BARE_KINDS = frozenset(code for code, kind in KINDS.items() if not kind.value)
# (an unknown code counts as carrying a value, so that loading meets and refuses it)
HAS_VALUE = tuple(KINDS[code].value if code in KINDS else True for code in range(64))
NO_ID = frozenset(code for code, kind in KINDS.items() if not kind.has_id)
DECODE: tuple = tuple(KINDS[c].decode if c in KINDS else None for c in range(64))
ENCODE: tuple = tuple(KINDS[c].encode if c in KINDS else None for c in range(64))
NAMES: tuple = tuple(KIND_NAMES.get(c) for c in range(64))


def row(kind: int, task: int = 0, a: int = 0) -> int:
    """The packed row of a record of ``kind`` by ``task`` about id ``a``."""
    return kind | task << TASK_SHIFT | a << A_SHIFT


def decode(kind: int, a: int, b: Any, tick: int) -> dict[str, Any]:
    """A record's ``data`` from its id ``a`` and value slot ``b``."""
    return DECODE[kind](a, b, tick)


def encode(kind: int, a: int, b: Any, tick: int) -> str:
    """Canonical JSON of a record's data; equal to ``_jv(decode(...))``."""
    fast = ENCODE[kind]
    return fast(a, b, tick) if fast is not None else _jv(DECODE[kind](a, b, tick))


def pack(kind: int, task: int, data: dict[str, Any]) -> tuple[int, Any]:
    """The inverse of :func:`decode`: a record's packed row and its value slot.

    Used to load journals from files (JSON lines, the SQL ``records`` table).
    Raises KeyError/TypeError/ValueError on data that no VM could have written.
    """
    declared = KINDS.get(kind)
    if declared is None or kind in (BLOCK_SEND, BLOCK_RECV):
        raise ValueError(f"unknown record kind {kind}")
    kind, a, b = declared.pack(data)
    if type(task) is not int or not 0 <= task <= MAX_TASK_ID:
        raise ValueError(f"the task must be an int from 0 to {MAX_TASK_ID:,}, not {task!r}")
    if type(a) is not int or not 0 <= a <= MAX_OBJECT_ID:
        raise ValueError(f"an id must be an int from 0 to {MAX_OBJECT_ID:,}, not {a!r}")
    return kind | task << TASK_SHIFT | a << A_SHIFT, b


def check_slot(kind: int, a: int, b: Any, tick: int) -> None:
    """Raise ValueError unless id ``a`` and value slot ``b`` are what a VM writes for a
    record of ``kind`` at ``tick`` (``kind`` is a known code, ``a`` a packable id)."""
    declared = KINDS.get(kind)
    if declared is None:
        raise ValueError(f"unknown record kind {kind}")
    if a and not declared.has_id:
        raise ValueError(f"a {declared.name} record names no object, but has id {a}")
    if declared.value and declared.check is not None:
        declared.check(a, b, tick)
