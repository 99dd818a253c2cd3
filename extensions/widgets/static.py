"""The static timeline picture: a journal as one inline ``<svg>`` element.

:func:`svg` draws one lane per task, a mark per step and per effect, shaded blocked and
sleeping spans, an arrow per value passed over a channel, failures, cancellations and a
deadlock, for the last records of a journal (at most :data:`MAX_RECORDS` unless
``last=`` says otherwise).  The output is a pure function of the journal's records:
coordinates are ints (arrowheads ``%.1f``), every text is XML-escaped, nothing depends on
hash order, ``id()`` or the clock, so the same journal gives the same bytes on every run
and machine (nbval compares stored outputs; GitHub and nbviewer show them).  See
``docs/widgets.md``.
"""

from __future__ import annotations

import math
import re
from html import escape
from typing import Any, NamedTuple

import counterpoint as cp
from counterpoint import lowlevel

from ._sources import journal_of

MAX_RECORDS = 400  # records drawn when ``last`` is not given (the end of the run)
MAX_LAST = 4000  # the most ``last=`` may ask for: a picture stays small

# Okabe-Ito, a palette readable by colour-blind readers; mid-tones that show on light and
# dark backgrounds.  Every mark also carries a letter, so colour is never alone.
ORANGE, SKY, GREEN, YELLOW = "#E69F00", "#56B4E9", "#009E73", "#F0E442"
BLUE, VERMILLION, PURPLE, GREY = "#0072B2", "#D55E00", "#CC79A7", "#999999"


class Symbol(NamedTuple):
    letter: str  # drawn inside the mark (1 or 2 characters)
    fill: str
    ink: str  # the letter's colour, readable on ``fill``
    shape: str  # circle (channels), square (waiting, sync), triangle (new), diamond (endings)
    words: str  # the legend's text


# kind name -> its mark (kinds not listed get a grey "?" circle); the legend's order
SYMBOLS: dict[str, Symbol] = {
    "send": Symbol("S", BLUE, "#fff", "circle", "send"),
    "recv": Symbol("R", SKY, "#000", "circle", "recv"),
    "select": Symbol("Se", SKY, "#000", "circle", "select"),
    "close": Symbol("Cl", SKY, "#000", "circle", "close"),
    "block": Symbol("B", ORANGE, "#000", "square", "block"),
    "wake": Symbol("W", GREEN, "#fff", "square", "wake"),
    "sleep": Symbol("Z", PURPLE, "#000", "square", "sleep"),
    "timer": Symbol("T", GREEN, "#fff", "square", "timer"),
    "acquire": Symbol("A", YELLOW, "#000", "square", "acquire"),
    "release": Symbol("U", YELLOW, "#000", "square", "release"),
    "set": Symbol("E+", YELLOW, "#000", "square", "event set"),
    "clear": Symbol("E-", YELLOW, "#000", "square", "event clear"),
    "notify": Symbol("N", YELLOW, "#000", "square", "notify"),
    "signal": Symbol("C-", YELLOW, "#000", "square", "countdown signal"),
    "add_count": Symbol("C+", YELLOW, "#000", "square", "countdown add"),
    "spawn": Symbol("+", GREY, "#000", "triangle", "spawn"),
    "create": Symbol("O", GREY, "#000", "triangle", "create"),
    "scope": Symbol("Sc", GREY, "#000", "triangle", "scope"),
    "timeout": Symbol("TO", VERMILLION, "#fff", "diamond", "timeout"),
    "queue": Symbol("Q", GREY, "#000", "triangle", "worker queued"),
    "start": Symbol("Go", GREY, "#000", "triangle", "worker start"),
    "receipt": Symbol("Rc", GREY, "#000", "triangle", "worker receipt"),
    "event": Symbol("Ev", GREY, "#000", "triangle", "host event"),
    "choose": Symbol("?", GREY, "#000", "triangle", "choose"),
    "suspend": Symbol("||", GREY, "#000", "square", "suspend"),
    "resume": Symbol(">", GREY, "#000", "square", "resume"),
    "cell": Symbol("C", GREY, "#000", "triangle", "cell"),
    "cell_done": Symbol("Cd", GREY, "#000", "triangle", "cell done"),
    "done": Symbol("D", GREEN, "#fff", "diamond", "done"),
    "cancel": Symbol("C", VERMILLION, "#fff", "diamond", "cancel"),
    "cancelled": Symbol("X", VERMILLION, "#fff", "diamond", "cancelled"),
    "fail": Symbol("F", VERMILLION, "#fff", "diamond", "fail"),
}
UNKNOWN = Symbol("?", GREY, "#000", "circle", "other")
DEADLOCK_REASON = "vm.run() found a deadlock"

# layout, in px
_DX = 12  # one event's column (x="event")
_TICK_WIDTH = 800  # the plot's width at most (x="tick")
_LANE = 30
_TOP = 44
_PAD = 8
_CHAR = 7  # a monospace character at font-size 11, about
_LABEL_CHARS = 28
_TITLE_CHARS = 240

_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _esc(text: str) -> str:
    """XML text (also good in attributes): characters XML cannot hold become U+FFFD."""
    return escape(_NOT_XML.sub("\ufffd", text), quote=True)


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def check_options(x: Any, last: Any) -> None:
    if not isinstance(x, str):
        raise TypeError(f'widgets.svg(x=...) is "event" or "tick", not {type(x).__name__}')
    if x not in ("event", "tick"):
        raise ValueError(
            f'widgets.svg(x={x!r}): the x axis is "event" (event ids) or "tick" (virtual time)'
        )
    if last is None:
        return
    if not isinstance(last, int) or isinstance(last, bool):
        raise TypeError(f"widgets.svg(last=...) is a number of records, not {last!r}")
    if not 1 <= last <= MAX_LAST:
        raise ValueError(
            f"widgets.svg(last={last}): draw between 1 and {MAX_LAST} records "
            "(a picture stays small; journal.records() or %journal read the rest)"
        )


def _names(journal: cp.Journal, window: list, first: int, wanted: set[int]) -> dict[int, str]:
    """Task id -> name, from spawn records (those before the window only as needed)."""
    names: dict[int, str] = {}
    for record in window:
        if record.kind == "spawn":
            names[record.data["child"]] = record.data["name"]
    missing = {task for task in wanted if task not in names and task}
    if missing:
        for index in reversed(lowlevel.find(journal, lowlevel.SPAWN)):
            if index >= first - 1:
                continue
            raw = next(lowlevel.raw_records(journal, index, index + 1))
            if raw.a in missing:
                names[raw.a] = raw.value
                missing.discard(raw.a)
                if not missing:
                    break
    return names


def lanes(window: list) -> tuple[bool, list[int]]:
    """``(host_acts, order)``: the task ids with a lane, in order -- the tasks that act
    in the records (and the children they spawn), and the host (0, first) only if it
    does more than spawn roots (a root's spawn is drawn on the root's lane)."""
    host_acts = any(r.task == 0 and r.kind != "spawn" for r in window)
    tasks: set[int] = set()
    for record in window:
        if record.task:
            tasks.add(record.task)
        if record.kind == "spawn":
            tasks.add(record.data["child"])
    return host_acts, ([0] if host_acts else []) + sorted(tasks)


def deadlocked(window: list) -> list:
    """The cancel records that end the window when vm.run() found a deadlock."""
    found = []
    for record in reversed(window):
        if record.kind != "cancel" or record.data.get("reason") != DEADLOCK_REASON:
            break
        found.append(record)
    return found[::-1]


def _nice_step(least: float) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50 ... that is at least ``least``."""
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= least:
                return step * factor
        step *= 10


def _mark(symbol: Symbol, x: int, y: int, big: bool = False) -> str:
    r = 7 if big else 6
    fill = f'fill="{symbol.fill}" stroke="currentColor" stroke-width="0.5"'
    if symbol.shape == "circle":
        shape = f'<circle cx="{x}" cy="{y}" r="{r}" {fill}/>'
    elif symbol.shape == "square":
        side = 2 * r - 2
        shape = f'<rect x="{x - r + 1}" y="{y - r + 1}" width="{side}" height="{side}" {fill}/>'
    elif symbol.shape == "triangle":
        shape = f'<path d="M{x} {y - r}L{x + r} {y + r - 1}L{x - r} {y + r - 1}Z" {fill}/>'
    else:
        shape = (
            f'<path d="M{x} {y - r - 1}L{x + r + 1} {y}L{x} {y + r + 1}L{x - r - 1} {y}Z" {fill}/>'
        )
    size = 7 if len(symbol.letter) == 2 else 9
    letter = (
        f'<text x="{x}" y="{y + 3}" text-anchor="middle" font-size="{size}" '
        f'fill="{symbol.ink}">{_esc(symbol.letter)}</text>'
    )
    return shape + letter


def svg(source: Any, *, x: str = "event", last: int | None = None) -> str:
    """A journal as a timeline picture: one ``<svg>`` element (inline SVG, no script,
    no external reference), the same bytes for the same journal on every machine.

    ``source``: a ``cp.VM``, a ``cp.Journal`` or the path of a saved journal.  ``x``:
    ``"event"`` (event ids, one column per record) or ``"tick"`` (virtual time).
    ``last``: draw the last ``last`` records (1..MAX_LAST); by default the last
    :data:`MAX_RECORDS`.  A caption says what is shown.

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
    >>> picture = cp.widgets.svg(vm)
    >>> picture.startswith("<svg"), picture.count('class="message"')
    (True, 1)
    """
    check_options(x, last)
    journal = journal_of(source, "widgets.svg()")
    total = len(journal)
    count = min(total, MAX_RECORDS if last is None else last)
    first = total - count + 1  # the first event id drawn
    window = journal.records(first) if count else []

    host_acts, order = lanes(window)
    names = _names(journal, window, first, set(order) - {0})
    labels = {}
    for task in order:
        if task == 0:
            labels[task] = "host"
        else:
            labels[task] = f"{names.get(task, 'task')} ({task})"
    lane_of = {task: i for i, task in enumerate(order)}

    def lane(record) -> int:
        if record.task == 0 and not host_acts:  # a root's spawn: on the root's lane
            return lane_of[record.data["child"]]
        return lane_of[record.task]

    # -- geometry
    left = _PAD + _CHAR * min(_LABEL_CHARS, max([len(t) for t in labels.values()] + [4])) + 12
    if x == "event":
        plot = max(1, count) * _DX

        def xpos(record) -> int:
            return left + (record.event_id - first) * _DX + _DX // 2

    else:
        t0 = window[0].tick if window else 0
        t1 = window[-1].tick if window else 0
        span = t1 - t0
        scale = min(40.0, _TICK_WIDTH / span) if span else 0.0
        plot = int(span * scale) + 2 * _DX

        def xpos(record) -> int:
            return left + _DX + int((record.tick - t0) * scale)

    width = left + plot + 2 * _PAD
    lanes_bottom = _TOP + _LANE * len(order)

    def ypos(index: int) -> int:
        return _TOP + _LANE * index + _LANE // 2

    body: list[str] = []
    # lane lines and labels
    for i, task in enumerate(order):
        y = ypos(i)
        body.append(
            f'<g class="lane"><title>{_esc(labels[task])}</title>'
            f'<line x1="{left}" y1="{y}" x2="{left + plot}" y2="{y}" stroke="currentColor" '
            f'stroke-opacity="0.3"/><text x="{left - 8}" y="{y + 4}" text-anchor="end" '
            f'fill="currentColor">{_esc(_short(labels[task], _LABEL_CHARS))}</text></g>'
        )

    # blocked and sleeping spans: from the block/sleep record to the task's next step
    spans: list[str] = []
    open_spans: dict[int, Any] = {}

    def close_span(task: int, end: int) -> None:
        start = open_spans.pop(task)
        y = ypos(lane(start))
        x1 = xpos(start)
        what = "blocked" if start.kind == "block" else "sleeping"
        fill = ORANGE if start.kind == "block" else PURPLE
        waits = lowlevel.display.data_text(start.data)
        spans.append(
            f'<g class="span {what}"><title>{what} from #{start.event_id}: '
            f"{_esc(_short(waits, _TITLE_CHARS))}</title>"
            f'<rect x="{x1}" y="{y - 9}" width="{max(1, end - x1)}" height="18" '
            f'fill="{fill}" fill-opacity="0.3"/></g>'
        )

    for record in window:
        task = record.task
        if task in open_spans and record.kind in ("step", "done", "fail", "cancelled"):
            close_span(task, xpos(record))
        if record.kind in ("block", "sleep") and task:
            if task in open_spans:
                close_span(task, xpos(record))
            open_spans[task] = record
    for task in sorted(open_spans):
        close_span(task, left + plot)
    body.extend(spans)

    # arrows: a value passed over a channel, from its send to its recv
    positions = {r.event_id: (xpos(r), ypos(lane(r))) for r in window if r.kind in ("send", "recv")}
    arrows = 0
    for message in lowlevel.messages(journal, first):
        if message.received is None or message.received not in positions:
            continue
        if message.sent not in positions:
            continue
        (x1, y1), (x2, y2) = positions[message.sent], positions[message.received]
        arrows += 1
        text = (
            f"channel {message.channel}: {lowlevel.display.value_text(message.value)} "
            f"(sent #{message.sent} by task {message.sender}, "
            f"received #{message.received} by task {message.receiver})"
        )
        head = ""
        dx, dy = x2 - x1, y2 - y1
        length = math.sqrt(dx * dx + dy * dy)
        if length >= 14:
            ux, uy = dx / length, dy / length
            tx, ty = x2 - ux * 7, y2 - uy * 7
            bx, by = tx - ux * 6, ty - uy * 6
            head = (
                f'<path d="M{tx:.1f} {ty:.1f}L{bx - uy * 3:.1f} {by + ux * 3:.1f}'
                f'L{bx + uy * 3:.1f} {by - ux * 3:.1f}Z" fill="{BLUE}"/>'
            )
        body.append(
            f'<g class="message"><title>{_esc(_short(text, _TITLE_CHARS))}</title>'
            f'<line x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" stroke="{BLUE}" '
            f'stroke-width="1.5"/>{head}</g>'
        )

    # marks: steps small, effects with their symbol; failures and cancellations labelled
    shown: set[str] = set()
    for record in window:
        px, py = xpos(record), ypos(lane(record))
        title = _esc(_short(lowlevel.display.record_text(record), _TITLE_CHARS))
        if record.kind == "step":
            body.append(
                f'<g class="step"><title>{title}</title><line x1="{px}" y1="{py - 4}" '
                f'x2="{px}" y2="{py + 4}" stroke="currentColor" stroke-opacity="0.6"/></g>'
            )
            continue
        symbol = SYMBOLS.get(record.kind, UNKNOWN)
        shown.add(record.kind if record.kind in SYMBOLS else "")
        ending = record.kind in ("fail", "cancelled", "cancel", "timeout")
        note = ""
        if record.kind == "fail":
            note = f"fails: {record.data['error']}"
        elif record.kind == "cancelled":
            note = "cancelled"
        if note:
            note = (
                f'<text x="{px + 9}" y="{py - 8}" font-size="9" fill="currentColor">'
                f"{_esc(_short(note, 40))}</text>"
            )
        body.append(
            f'<g class="effect {_esc(record.kind)}"><title>{title}</title>'
            f"{_mark(symbol, px, py, big=ending)}{note}</g>"
        )

    # a deadlock: the run ended with vm.run() cancelling the tasks it found stuck
    stuck = deadlocked(window)
    if stuck:
        dx_ = xpos(stuck[0]) - _DX // 2
        who = ", ".join(f"{r.task} {names.get(r.task, '')!r}" for r in stuck)
        body.append(
            f'<g class="deadlock"><title>{_esc(DEADLOCK_REASON)}: tasks {_esc(who)} '
            f'cancelled</title><line x1="{dx_}" y1="{_TOP - 4}" x2="{dx_}" '
            f'y2="{lanes_bottom}" stroke="{VERMILLION}" stroke-width="2" '
            f'stroke-dasharray="4 3"/><text x="{dx_ - 4}" y="{_TOP - 8}" text-anchor="end" '
            f'font-weight="bold" fill="{VERMILLION}">deadlock</text></g>'
        )

    # the axis
    axis_y = lanes_bottom + 6
    ticks: list[str] = [
        f'<line x1="{left}" y1="{axis_y}" x2="{left + plot}" y2="{axis_y}" '
        f'stroke="currentColor" stroke-opacity="0.6"/>'
    ]
    if x == "event":
        step = _nice_step(60 / _DX)
        values = range(-(-first // step) * step, first + count, step) if count else range(0)

        def at(v: int) -> int:
            return left + (v - first) * _DX + _DX // 2

    else:
        step = _nice_step(40 / scale) if scale else 1
        end = window[-1].tick if window else 0
        values = range(-(-t0 // step) * step, end + 1, step)

        def at(v: int) -> int:
            return left + _DX + int((v - t0) * scale)

    for v in values:
        ticks.append(
            f'<line x1="{at(v)}" y1="{axis_y}" x2="{at(v)}" y2="{axis_y + 4}" '
            f'stroke="currentColor"/><text x="{at(v)}" y="{axis_y + 15}" text-anchor="middle" '
            f'font-size="9" fill="currentColor">{"" if x == "event" else "t="}{v}</text>'
        )
    ticks.append(
        f'<text x="{left - 8}" y="{axis_y + 15}" text-anchor="end" font-size="9" '
        f'fill="currentColor">{"event" if x == "event" else "tick"}</text>'
    )
    body.append(f'<g class="axis">{"".join(ticks)}</g>')

    # the legend: each mark drawn, with its words
    legend: list[str] = []
    lx, ly = left, axis_y + 34
    items = [(k, s) for k, s in SYMBOLS.items() if k in shown]
    if "" in shown:
        items.append(("", UNKNOWN))
    if any(r.kind == "step" for r in window):
        items.insert(0, ("step", Symbol("", "", "", "step", "step")))
    for kind, symbol in items:
        size = 22 + _CHAR * len(symbol.words) + 10
        if lx + size > left + max(plot, 300) and lx > left:
            lx, ly = left, ly + 20
        if kind == "step":
            legend.append(
                f'<line x1="{lx + 6}" y1="{ly - 4}" x2="{lx + 6}" y2="{ly + 4}" '
                f'stroke="currentColor" stroke-opacity="0.6"/>'
            )
        else:
            legend.append(_mark(symbol, lx + 6, ly))
        legend.append(
            f'<text x="{lx + 16}" y="{ly + 4}" fill="currentColor">{_esc(symbol.words)}</text>'
        )
        lx += size
    legend.append(
        f'<line x1="{lx}" y1="{ly}" x2="{lx + 18}" y2="{ly}" stroke="{BLUE}" stroke-width="1.5"/>'
        f'<text x="{lx + 24}" y="{ly + 4}" fill="currentColor">value over a channel</text>'
    )
    body.append(f'<g class="legend">{"".join(legend)}</g>')
    height = ly + 16
    width = max(width, lx + 24 + _CHAR * 20 + _PAD, left + 300)

    # the caption: what is shown
    axis_words = "x: event ids" if x == "event" else "x: virtual time (ticks)"
    if count == 0:
        caption = "an empty journal: no records to draw"
    else:
        caption = (
            f"journal of {total:,} record{'' if total == 1 else 's'}: "
            f"events #{first:,}\u2013#{total:,} shown"
        )
        if count < total:
            how = "last=N draws another count" if last is None else f"last={last}"
            caption += f" (the last {count:,}; {how})"
        caption += f"; {len(order)} lane{'' if len(order) == 1 else 's'}; {axis_words}"
        if arrows:
            caption += f"; {arrows} message{'' if arrows == 1 else 's'}"
        if stuck:
            caption += "; ended in a deadlock"
    width = max(width, 2 * _PAD + (_CHAR + 1) * len(caption))  # (bold: a bit wider)
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="counterpoint-timeline" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'font-family="monospace" font-size="11" role="img">'
        f"<title>{_esc(caption)}</title>"
        f'<text x="{_PAD}" y="18" font-weight="bold" fill="currentColor">{_esc(caption)}</text>'
    )
    return head + "".join(body) + "</svg>"
