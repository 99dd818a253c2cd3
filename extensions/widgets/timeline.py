"""``Timeline``: the interactive picture of a run, one lane per task, time left to right.

The browser shows a window of the journal (at most :data:`MAX_WINDOW` records) and asks
the kernel for the window it pans or zooms to; the kernel answers with the window's
records as int32 columns (lane, kind, tick) plus the blocked and sleeping spans, the
message arrows, the lanes' names and the marks' hover text -- everything the picture
needs, computed here, so the JavaScript holds no rule of the VM.  Following a running
VM, the kernel pushes the newest window itself (a busy kernel cannot answer requests), at
most :data:`MAX_UPDATES_PER_SECOND` times a second.  See ``docs/widgets.md``.
"""

from __future__ import annotations

import array
import asyncio
import sys
import time
import weakref
from typing import Any

import traitlets

import counterpoint as cp
from counterpoint import lowlevel

from . import static
from ._base import Widget, bundle
from ._index import JournalIndex
from ._sources import journal_of

MAX_WINDOW = 4000  # records drawn at once, at most
MAX_UPDATES_PER_SECOND = 30  # a live timeline's pushes, at most
MAX_NOW = 200  # lanes of a window told where their task is paused now, at most
# a live timeline spends at most about 1/BUDGET of the run's time on its pushes
BUDGET = 50
# records a push indexes, at most (a fraction of a millisecond); arrows of records not indexed
# yet are drawn when the cell ends
PUSH_ROWS = 5_000
_ENDINGS = ("step", "done", "fail", "cancelled")


def _column(typecode: str, values: list) -> memoryview:
    """``values`` as a little-endian binary column (what the browser reads): ``"i"``
    int32, ``"d"`` float64."""
    column = array.array(typecode, values)
    if sys.byteorder == "big":
        column.byteswap()
    return memoryview(column.tobytes())


def window(
    journal: cp.Journal, index: JournalIndex, start: int, count: int, names: Any = None
) -> tuple[dict, list]:
    """The picture of records ``start .. start+count-1`` (clipped to the journal) as a
    reply: ``(meta, buffers)``; buffers are int32 ``lanes`` and ``kinds`` (one per record),
    float64 ``ticks``, int32 ``spans`` (lane, first event, end event, 0 blocked / 1
    sleeping; the end is the window's end + 1 for a wait still open) and int32
    ``messages`` (send event, receive event; either may lie outside the window) -- the
    pairs ``index`` knows (all of them once it is up to date).  ``names``: task id ->
    name, for tasks whose spawn is neither in the window nor indexed yet."""
    total = len(journal)
    count = max(1, min(MAX_WINDOW, count))
    start = max(1, min(start, total - count + 1))
    stop = min(total + 1, start + count)
    records = journal.records(start, stop) if total else []

    host_acts, order = static.lanes(records)
    lane_of = {task: i for i, task in enumerate(order)}
    spawned = {r.data["child"]: r.data["name"] for r in records if r.kind == "spawn"}
    lanes = []
    for task in order:
        if task == 0:
            name = "host"
        else:  # (names first: a live VM's, when the index is behind, is cheaper)
            name = spawned.get(task) or (names or {}).get(task) or index.name(task) or "task"
        lanes.append({"task": task, "label": name if task == 0 else f"{name} ({task})"})

    def lane(record: Any) -> int:
        if record.task == 0 and not host_acts:  # a root's spawn: on the root's lane
            return lane_of[record.data["child"]]
        return lane_of[record.task]

    kinds: list[str] = []
    kind_index: dict[str, int] = {}
    lane_col, kind_col, tick_col = [], [], []
    texts: dict[str, str] = {}
    notes: dict[str, str] = {}
    spans: list[int] = []
    waits: dict[str, str] = {}
    open_spans: dict[int, Any] = {}
    for record in records:
        k = kind_index.get(record.kind)
        if k is None:
            k = kind_index[record.kind] = len(kinds)
            kinds.append(record.kind)
        lane_col.append(lane(record))
        kind_col.append(k)
        tick_col.append(float(record.tick))
        if record.kind != "step":
            texts[str(record.event_id)] = lowlevel.display.record_text(record)
        if record.kind == "fail":
            notes[str(record.event_id)] = f"fails: {record.data['error']}"
        elif record.kind == "cancelled":
            notes[str(record.event_id)] = "cancelled"
        task = record.task
        if task in open_spans and record.kind in _ENDINGS:
            began = open_spans.pop(task)
            spans += [lane(began), began.event_id, record.event_id, began.kind == "sleep"]
        if record.kind in ("block", "sleep") and task:
            if task in open_spans:
                began = open_spans.pop(task)
                spans += [lane(began), began.event_id, record.event_id, began.kind == "sleep"]
            open_spans[task] = record
            waits[str(record.event_id)] = lowlevel.display.data_text(record.data)
    for task in sorted(open_spans):
        began = open_spans[task]
        spans += [lane(began), began.event_id, stop, began.kind == "sleep"]

    messages: list[int] = []
    for record in records:
        if record.kind == "send" and record.event_id in index.received:
            messages += [record.event_id, index.received[record.event_id]]
        elif record.kind == "recv" and index.sent.get(record.event_id, start) < start:
            messages += [index.sent[record.event_id], record.event_id]  # (sent before)

    deadlock = None
    if stop == total + 1:
        stuck = static.deadlocked(records)
        if stuck:
            who = ", ".join(
                f"{r.task} {lanes[lane_of[r.task]]['label'] if r.task in lane_of else ''}"
                for r in stuck
            )
            deadlock = {
                "event": stuck[0].event_id,
                "text": f"{static.DEADLOCK_REASON}: tasks {who} cancelled",
                "tasks": [r.task for r in stuck],
            }

    meta = {
        "start": start,
        "stop": stop,
        "total": total,
        "lanes": lanes,
        "kinds": kinds,
        "texts": texts,
        "notes": notes,
        "waits": waits,
        "deadlock": deadlock,
    }
    buffers = [
        _column("i", lane_col),
        _column("i", kind_col),
        _column("d", tick_col),
        _column("i", spans),
        _column("i", messages),
    ]
    return meta, buffers


def _symbols() -> dict[str, dict[str, str]]:
    table = {kind: symbol._asdict() for kind, symbol in static.SYMBOLS.items()}
    table[""] = static.UNKNOWN._asdict()
    return table


class Timeline(Widget):
    """A run as lanes of marks, in the browser: pan, zoom, hover, follow a live VM.

    ``source``: a ``cp.VM`` (followed live: the picture grows as the VM runs), a
    ``cp.Journal``, or the path of a saved journal.  ``x``: ``"event"`` (event ids) or
    ``"tick"`` (virtual time).  ``last``: how many records the view starts with (the
    last ones; 1..MAX_WINDOW); by default as many as fit at 12 px each.

    Synced traits: ``start`` and ``count`` (set them to move the view; ``shown`` is
    the window last sent, ``(first event, stop)``),
    ``cursor`` (an event id drawn as a vertical line, 0: none -- the view moves to show
    it), ``picked`` (the event id of the mark last clicked), ``total`` (records in the
    journal), ``live`` (following a VM).
    """

    _esm = bundle("timeline.js")

    x = traitlets.Unicode("event").tag(sync=True)
    total = traitlets.Int(0).tag(sync=True)
    # set from Python to move the view (the browser never sets them)
    start = traitlets.Int(0).tag(sync=True)  # 0: the end
    count = traitlets.Int(0).tag(sync=True)  # 0: as many as fit
    cursor = traitlets.Int(0).tag(sync=True)
    picked = traitlets.Int(0).tag(sync=True)
    live = traitlets.Bool(False).tag(sync=True)
    symbols = traitlets.Dict().tag(sync=True)
    updates = 0  # pushes sent while following a VM
    _unwatch: Any = None  # (class defaults: close() runs even when __init__ raised)
    _trailing: Any = None  # the pending push of what the throttle held back
    _loop: Any = None  # the event loop the timeline was made on (None: a script)

    def __init__(self, source: Any, *, x: str = "event", last: int | None = None) -> None:
        static.check_options(x, None)
        if last is not None:
            if not isinstance(last, int) or isinstance(last, bool):
                raise TypeError(f"Timeline(last=...) is a number of records, not {last!r}")
            if not 1 <= last <= MAX_WINDOW:
                raise ValueError(
                    f"Timeline(last={last}): show between 1 and {MAX_WINDOW} records at once "
                    "(pan and zoom to see the rest)"
                )
        journal = journal_of(source, "Timeline()")
        self._journal = journal
        self._vm = source if isinstance(source, cp.VM) else None
        self._index = JournalIndex(journal)
        self._last = last
        self._unwatch = None
        self._next_push = 0.0
        self._last_seen = 0.0
        self._dirty = False
        self.shown = (0, 0)
        self._asked_count = 0
        total = self._index.update()
        count = last or 0
        super().__init__(
            x=x,
            total=total,
            count=count,
            start=max(1, total - count + 1) if count else 0,
            symbols=_symbols(),
        )
        if isinstance(source, cp.VM):
            self._follow(source)

    # -- what the browser asks for
    def _answer_window(self, content: dict) -> tuple[dict, list]:
        start, count = content.get("start"), content.get("count")
        if not isinstance(start, int) or not isinstance(count, int):
            raise ValueError("a window request needs int start and count")
        self._index.update()
        meta, buffers = window(self._journal, self._index, start, count)
        if self._vm is not None:  # where the live tasks are paused now (the kernel is idle)
            for lane in meta["lanes"][:MAX_NOW]:
                source = lowlevel.source_of(self._vm, lane["task"]) if lane["task"] else None
                if source is not None:
                    index = source.line - source.first
                    code = source.lines[index].strip() if 0 <= index < len(source.lines) else ""
                    lane["now"] = f"{source.where}  {code}".rstrip()
        self.shown = (meta["start"], meta["stop"])
        self._asked_count = count  # (pushes send as many)
        self.total = meta["total"]
        return meta, buffers

    # -- following a live VM
    def _follow(self, vm: cp.VM) -> None:
        me = weakref.ref(self)

        def on_records(vm: cp.VM, first: int, last: int) -> None:
            timeline = me()
            if timeline is None:
                unwatch()
                return
            try:
                timeline._on_records()
            except Exception as error:  # a picture must never break the run it follows
                timeline.error = f"following the VM: {type(error).__name__}: {error}"

        unwatch = vm.watch(on_records)
        self._unwatch = unwatch
        self.live = True
        try:  # the kernel's loop: pushes held back go out when it runs again
            self._loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None

    def _on_records(self) -> None:
        now = time.monotonic()
        last_seen, self._last_seen = self._last_seen, now
        if now - last_seen > 0.5:
            # the first records after a pause (a cell starts, a host step): wait a
            # little; a short run is pushed once, when it ends
            self._next_push = max(self._next_push, now + 1.0 / MAX_UPDATES_PER_SECOND)
        if now < self._next_push:
            self._dirty = True
            self._push_later(self._next_push - now)
            return
        self._push()
        spent = time.monotonic() - now
        self._next_push = now + max(1.0 / MAX_UPDATES_PER_SECOND, BUDGET * spent)

    def _push_later(self, delay: float) -> None:
        """Push what the throttle held back once the kernel's event loop runs again:
        ``delay`` seconds from now, or when the cell (or the message handler that
        stepped the VM) ends, whichever is later.  A VM running on another thread asks
        the loop the timeline was made on.  Without an event loop (a script) nothing is
        shown, and :meth:`flush` does it by hand."""
        if self._trailing is not None:
            return
        try:
            here = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        if here is not None:
            self._trailing = here.call_later(delay, self._trail)
        elif self._loop is not None and not self._loop.is_closed():
            self._trailing = True  # (a handle comes from the loop's thread)
            self._loop.call_soon_threadsafe(self._trail_later, delay)

    def _trail_later(self, delay: float) -> None:
        self._trailing = asyncio.get_running_loop().call_later(delay, self._trail)

    def _trail(self) -> None:
        self._trailing = None
        if self._dirty and self._unwatch is not None:
            try:
                self.flush()
            except Exception as error:  # (a VM on another thread may be writing)
                self.error = f"following the VM: {type(error).__name__}: {error}"

    def _push(self) -> None:
        """Send the newest window (the view follows the end) and the new total."""
        self._dirty = False
        total = self._index.update(PUSH_ROWS)  # (the rest when the cell ends: flush)
        if self.comm is None:
            return
        count = self._asked_count or self.count or self._last or 100
        names = None
        if self._index.scanned < total and self._vm is not None:
            names = {info.id: info.name for info in self._vm.tasks()}
        meta, buffers = window(self._journal, self._index, total - count + 1, count, names)
        self.send({"type": "push", **meta}, buffers)  # (one message: the total is in it)
        self.shown = (meta["start"], meta["stop"])
        self.updates += 1

    def flush(self) -> None:
        """Push what the throttle held back, with every arrow, and sync ``total`` (done
        by the kernel's event loop when the cell that ran the VM ends)."""
        total = len(self._journal)
        if self._dirty or self.shown[1] != total + 1 or self._index.scanned < total:
            self._index.update()
            self._push()
        self.total = total

    def close(self) -> None:
        if self._unwatch is not None:
            self._unwatch()
            self._unwatch = None
        if self._trailing is not None:
            if self._trailing is not True:
                self._trailing.cancel()
            self._trailing = None
        super().close()

    # -- the static picture and the repr
    def _picture(self) -> str:
        return static.svg(self._journal, x=self.x, last=self._last)

    def _describe(self) -> str:
        total = len(self._journal)
        what = "following a VM, " if self.live else ""
        return f"{what}journal of {total:,} record{'' if total == 1 else 's'}, x={self.x!r}"
