"""``TimeTravel(source)``: a scrubber over a journal's event ids showing
``journal.state_at(event)`` -- a debugger's variables pane crossed with a video player.

The kernel computes the view of one event (plain JSON: every value already text, every
object named as the VM's messages name it); the JavaScript only draws it and moves
``event``.  The browser never has more than one request in flight: while the learner
drags or plays, positions in between are dropped and the latest one is asked for next.
See ``docs/widgets.md``, "TimeTravel".
"""

from __future__ import annotations

import re
from html import escape
from importlib import resources
from typing import Any

import ipywidgets
import traitlets

import counterpoint as cp
from counterpoint import lowlevel

from ._base import CSS, StaticPicture, Widget, bundle
from ._sources import journal_of
from .static import svg
from .timeline import Timeline

# A journal of at most this many records opens at its last event (where a run failed or
# deadlocked); a bigger one opens at event 0, so that the first picture costs no full pass
# over the journal (``state_at``'s first call reads every record up to the event).
QUICK_START = 200_000
# records that one "warm" request builds time travel's snapshots over (about 5 ms: a
# scrub that comes meanwhile waits at most that long)
WARM_CHUNK = 8_192
MAX_ROWS = 200  # rows of one table in a view (the rest are counted, not shipped)
MAX_ITEMS = 20  # values of one channel's buffer shown
MAX_TEXT = 120  # characters of one value's text

WORKER_STATUS = {0: "pending", 1: "completed", -1: "failed", -2: "cancelled", -3: "unknown"}


def _short(text: str, limit: int = MAX_TEXT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class TimeTravel(StaticPicture, ipywidgets.VBox):
    """A scrubber over the events of ``source`` (a ``cp.VM``, a ``cp.Journal`` or the path
    of a saved journal) showing the run's state just after the event, under a
    :class:`Timeline` whose cursor follows the event (clicking a mark there moves it).

    ``event`` (int): the event shown, ``0`` (before the first record) to
    ``len(journal)``; assigning another value raises ``ValueError``.  ``state``: the
    :class:`JournalState` at ``event`` (``journal.state_at(event)``).  ``pane`` is the
    scrubber and state pane (an anywidget whose synced ``event`` this one follows),
    ``timeline`` the Timeline (None with ``timeline=False``).

    >>> import counterpoint as cp
    >>> async def main():
    ...     box = cp.channel(2, name="box")
    ...     await box.send("a")
    ...     await box.send("b")
    ...     await box.recv()
    >>> vm = cp.VM()
    >>> vm.run(main())
    >>> travel = cp.widgets.TimeTravel(vm)
    >>> travel.event == len(vm.journal)     # a small journal opens at its end
    True
    >>> travel.event = 6
    >>> travel.state.channels[1].contents
    ['a', 'b']
    >>> travel
    TimeTravel(event 6 of 10, tick 0)
    """

    event = traitlets.Int(0)
    pane: Any = None  # (class defaults: close() runs even when __init__ raised)
    timeline: Any = None

    def __init__(self, source: Any, *, event: int | None = None, timeline: bool = True) -> None:
        if not isinstance(timeline, bool):
            raise TypeError(f"TimeTravel(timeline=...) is True or False, not {timeline!r}")
        journal = journal_of(source, "TimeTravel()")
        live = source if isinstance(source, cp.VM) else journal  # (a path: loaded once)
        pane = TimeTravelPane(live, event=event)
        self.pane = pane
        self.timeline = Timeline(live) if timeline else None
        children = [pane] if self.timeline is None else [self.timeline, pane]
        super().__init__(children=children)
        self.event = pane.event
        pane.observe(self._on_pane_event, "event")
        if self.timeline is not None:
            self.timeline.cursor = self.event
            self.timeline.observe(self._on_picked, "picked")

    @traitlets.validate("event")
    def _valid_event(self, proposal: Any) -> int:
        return self.pane._check(proposal["value"])

    @traitlets.observe("event")
    def _on_event(self, change: Any) -> None:
        self.pane.event = change["new"]
        if self.timeline is not None:
            self.timeline.cursor = change["new"]

    def _on_pane_event(self, change: Any) -> None:  # the browser moved the scrubber
        self.event = change["new"]

    def _on_picked(self, change: Any) -> None:  # a mark clicked on the timeline
        if change["new"]:
            self.event = change["new"]

    @property
    def state(self) -> Any:
        """The run's state just after ``event``: ``journal.state_at(event)``."""
        return self.pane.state

    @property
    def journal(self) -> cp.Journal:
        """The journal shown."""
        return self.pane.journal

    @property
    def view(self) -> dict[str, Any]:
        """What the pane shows (plain JSON: a heading and tables of text)."""
        return self.pane.view

    def next_effect(self, task: int | None = None) -> int | None:
        """Move ``event`` to the next record after it that is an effect (not a ``step``)
        of ``task`` (None: of any task); return the new event, or None (not moved) if
        there is none."""
        return self.pane.next_effect(task)

    def previous_effect(self, task: int | None = None) -> int | None:
        """Move ``event`` to the last record before it that is an effect of ``task``
        (None: of any task); return the new event, or None (not moved) if there is none."""
        return self.pane.previous_effect(task)

    def close(self) -> None:
        for child in (self.timeline, self.pane):
            if child is not None:
                child.close()
        super().close()

    def _picture(self) -> str:
        """The timeline up to the event (its last records) and the state as HTML tables:
        no script, the same bytes on every run and machine."""
        return self.pane._picture(timeline=True)

    def _describe(self) -> str:
        return self.pane._describe()


class TimeTravelPane(Widget):
    """The scrubber and the state pane of :class:`TimeTravel` (an anywidget): ``event``
    (synced, validated as ``TimeTravel.event``), ``total`` and ``view`` (what the pane
    draws, computed here whenever ``event`` changes)."""

    _esm = bundle("timetravel.js")
    _css = CSS + resources.files(__package__).joinpath("js/timetravel.css").read_text("utf-8")
    event = traitlets.Int(0).tag(sync=True)
    total = traitlets.Int(0).tag(sync=True)  # len(journal) when the view was made
    view = traitlets.Dict().tag(sync=True)  # what the pane shows (see _view)

    def __init__(self, source: Any, *, event: int | None = None) -> None:
        self._journal = journal_of(source, "TimeTravel()")
        self._vm = source if isinstance(source, cp.VM) else None
        self._warmed = 0  # time travel's snapshots are built up to here (at least)
        total = len(self._journal)
        if event is None:
            event = total if total <= QUICK_START else 0
        super().__init__(total=total)
        with self.hold_sync():
            if event == self.event:
                self._check(event)
                self._show()
            else:
                self.event = event  # (validated; the observer makes the view)

    # -- traits ----------------------------------------------------------------------------

    def _check(self, event: Any) -> int:
        total = len(self._journal)
        if isinstance(event, bool) or not isinstance(event, int):
            raise TypeError(f"TimeTravel.event is an event id (an int), not {event!r}")
        if not 0 <= event <= total:
            raise ValueError(
                f"TimeTravel.event must be 0..{total:,} (0: before the first record, "
                f"{total:,}: the journal's last event), got {event:,}"
            )
        return event

    @traitlets.validate("event")
    def _valid_event(self, proposal: Any) -> int:
        return self._check(proposal["value"])

    @traitlets.observe("event")
    def _on_event(self, _change: Any) -> None:
        self._show()

    def _show(self) -> None:
        try:
            view = self._view(self.event)
        except Exception as error:  # (the browser shows it; the kernel goes on)
            self.error = f"event {self.event}: {type(error).__name__}: {error}"
            return
        self._warmed = max(self._warmed, self.event)
        with self.hold_sync():
            self.total = view["total"]
            self.view = view
            self.error = ""

    @property
    def state(self) -> Any:
        """The run's state just after ``event``: ``journal.state_at(event)``."""
        return self._journal.state_at(self.event)

    @property
    def journal(self) -> cp.Journal:
        """The journal shown."""
        return self._journal

    # -- moving ----------------------------------------------------------------------------

    def next_effect(self, task: int | None = None) -> int | None:
        """Move ``event`` to the next record after it that is an effect (not a ``step``)
        of ``task`` (None: of any task); return the new event, or None (not moved) if
        there is none."""
        self._check_task(task)
        index = lowlevel.next_effect(self._journal, self.event, task)
        if index is None:
            return None
        self.event = index + 1
        return self.event

    def previous_effect(self, task: int | None = None) -> int | None:
        """Move ``event`` to the last record before it that is an effect of ``task``
        (None: of any task); return the new event, or None (not moved) if there is none."""
        self._check_task(task)
        if self.event < 2:
            return None
        index = lowlevel.next_effect(self._journal, self.event - 2, task, backward=True)
        if index is None:
            return None
        self.event = index + 1
        return self.event

    @staticmethod
    def _check_task(task: Any) -> None:
        if task is not None and (isinstance(task, bool) or not isinstance(task, int)):
            raise TypeError(f"a task id is an int (or None: any task), not {task!r}")
        if task is not None and task < 0:
            raise ValueError(f"task ids are 0 (the host) or more, got {task}")

    # -- requests from the browser ------------------------------------------------------------

    def _answer_jump(self, content: dict) -> tuple[dict, list]:
        """``{"task": id or None, "direction": "next" | "previous"}``: move ``event`` to
        that task's next or previous effect (the view follows through the trait)."""
        direction, task = content.get("direction"), content.get("task")
        if direction not in ("next", "previous"):
            raise ValueError(f'a jump goes "next" or "previous", not {direction!r}')
        moved = self.next_effect(task) if direction == "next" else self.previous_effect(task)
        return {"event": moved}, []

    def _answer_warm(self, _content: dict) -> tuple[dict, list]:
        """Build time travel's snapshots over the next ``WARM_CHUNK`` records (the
        browser asks while nothing else is pending), so that a later jump anywhere costs
        milliseconds instead of one pass over the journal."""
        total = len(self._journal)
        if self._warmed < total:
            self._warmed = min(total, self._warmed + WARM_CHUNK)
            self._journal.state_at(self._warmed)
        return {"warmed": self._warmed, "total": total}, []

    # -- the view ----------------------------------------------------------------------------

    def _view(self, event: int) -> dict[str, Any]:
        """The pane at ``event`` as plain JSON: a heading and tables of text."""
        journal = self._journal
        total = len(journal)
        state = journal.state_at(event)
        record = journal.records(event, event + 1)[0] if event else None
        tasks = state.tasks
        names = {}

        def who(task: int) -> str:  # "ping (2)", as the timeline's lanes say
            if task not in names:
                found = tasks.get(task)
                names[task] = "host" if task == 0 else f"{found.name if found else 'task'} ({task})"
            return names[task]

        def waiters(ids: list[int]) -> str:  # (a queue of thousands: the first few)
            named = ", ".join(who(task) for task in ids[:MAX_ITEMS])
            more = len(ids) - MAX_ITEMS
            return named + (f", … {more:,} more" if more > 0 else "")

        sections = [self._tasks(state, total, None if record is None else record.task)]
        channels = []
        for channel in state.channels.values():
            items = [_short(lowlevel.display.value_text(v)) for v in channel.contents[:MAX_ITEMS]]
            if len(channel.contents) > MAX_ITEMS:
                items.append(f"… {len(channel.contents) - MAX_ITEMS:,} more")
            channels.append(
                [
                    lowlevel.label("channel", channel.id, channel.name),
                    str(channel.capacity),
                    ", ".join(items),
                    waiters(channel.receivers),
                    waiters(channel.senders),
                    "closed" if channel.closed else "open",
                ]
            )
        heads = ["channel", "capacity", "buffer (oldest first)", "receivers", "senders", "state"]
        sections.append(_section("channels", heads, channels))
        locks = [
            [
                lowlevel.label("lock", lock.id, lock.name),
                "free" if lock.holder is None else who(lock.holder),
                waiters(lock.waiters),
            ]
            for lock in state.lock_states.values()
        ]
        sections.append(_section("locks", ["lock", "held by", "waiting (in turn)"], locks))
        semaphores = [
            [lowlevel.label("semaphore", sem.id, sem.name), str(sem.value), waiters(sem.waiters)]
            for sem in state.semaphore_states.values()
        ]
        heads = ["semaphore", "free units", "waiting (in turn)"]
        sections.append(_section("semaphores", heads, semaphores))
        events = [
            [
                lowlevel.label("event", ev.id, ev.name),
                "set" if ev.set else "not set",
                waiters(ev.waiters),
            ]
            for ev in state.event_states.values()
        ]
        sections.append(_section("events", ["event", "", "waiting"], events))
        conditions = [
            [
                lowlevel.label("condition", cond.id, cond.name),
                lowlevel.label("lock", cond.lock, _lock_name(state, cond.lock)),
                waiters(cond.waiters),
            ]
            for cond in state.conditions.values()
        ]
        sections.append(_section("conditions", ["condition", "lock", "waiting"], conditions))
        barriers = [
            [
                lowlevel.label("barrier", bar.id, bar.name),
                str(bar.parties),
                f"{len(bar.waiters)} of {bar.parties}: {waiters(bar.waiters)}"
                if bar.waiters
                else f"0 of {bar.parties}",
            ]
            for bar in state.barriers.values()
        ]
        sections.append(_section("barriers", ["barrier", "parties", "arrived"], barriers))
        workers = [
            [
                f"worker {w.handle}",
                w.name,
                WORKER_STATUS.get(w.status, str(w.status)),
                "" if w.due is None else f"tick {w.due}",
            ]
            for w in state.workers.values()
        ]
        sections.append(_section("workers", ["worker", "name", "status", "due"], workers))
        return {
            "event": event,
            "total": total,
            "tick": state.tick,
            "record": (
                _one_line(lowlevel.display.record_text(record))
                if record
                else "(before the first record)"
            ),
            "actor": None if record is None else record.task,
            "ready": waiters(state.ready),
            "sections": [s for s in sections if s["rows"] or s["title"] == "tasks"],
        }

    def _tasks(self, state: Any, total: int, actor: int | None) -> dict[str, Any]:
        """The tasks table.  When there are too many to ship them all: the ready, waiting
        and running ones first (found without reading every task's row), then the others,
        by id."""
        tasks = state.tasks
        ids = tasks.keys()
        if len(ids) > MAX_ROWS:
            live = {*state.ready, *state.waits, actor}
            first = [task for task in ids if task in live][:MAX_ROWS]
            chosen = set(first)
            rest = [task for task in ids if task not in chosen][: MAX_ROWS - len(first)]
            shown = [tasks[task] for task in sorted(first + rest)]
        else:
            shown = tasks.values()
        where = self._where(state, total)
        table = []
        for task in shown:
            row = [str(task.id), task.name, task.state, task.waiting_on or ""]
            if where is not None:
                row.append(where.get(task.id, ""))
            table.append(row)
        heads = ["task", "name", "state", "waiting on"] + (["at"] if where is not None else [])
        section = _section("tasks", heads, table, hidden=len(ids) - len(table))
        section["ids"] = [task.id for task in shown]
        return section

    def _where(self, state: Any, total: int) -> dict[int, str] | None:
        """Each live task's source line -- known only for a live VM at its last event (the
        journal records no source lines): ``vm.tasks()`` says where each task is paused."""
        vm = self._vm
        if vm is None or state.event_id != total or vm.journal is not self._journal:
            return None
        where = {
            info.id: f"{info.where}  {info.code}" if info.code else info.where
            for info in vm.tasks()
            if info.where
        }
        return where or None

    # -- what a notebook stores ---------------------------------------------------------------

    def _picture(self, timeline: bool = False) -> str:
        """The state as HTML tables (and with ``timeline``, the static timeline of the
        records up to the event): no script, the same bytes on every run and machine."""
        view = self.view
        event = view["event"]
        head = (
            f'<div class="cp-timetravel" data-event="{event}">'
            f'<p style="margin:2px 0 4px 0;font-family:monospace"><b>TimeTravel at event '
            f"{event:,} of {view['total']:,}</b> &middot; tick {view['tick']} &middot; "
            f"{escape(view['record'])}</p>"
        )
        drawn = svg(lowlevel.prefix(self._journal, event)) if event and timeline else ""
        tables = []
        for section in view["sections"]:
            caption, shown = section["title"], len(section["rows"])
            if section["hidden"]:
                caption += f" ({shown:,} shown of {shown + section['hidden']:,})"
            rows = [[_number(cell) for cell in row] for row in section["rows"]]
            tables.append(lowlevel.display.table(section["headers"], rows, caption))
        return head + drawn + "".join(tables) + "</div>"

    def _describe(self) -> str:
        view = self.view
        return f"event {view['event']:,} of {view['total']:,}, tick {view['tick']}"


def _one_line(text: str) -> str:
    """A record's text on one line (continuation lines of a multi-line value joined)."""
    return _short(" ".join(line.strip() for line in text.split("\n")), 2 * MAX_TEXT)


def _section(title: str, headers: list[str], rows: list[list[str]], hidden: int = 0) -> dict:
    if len(rows) > MAX_ROWS:
        rows, hidden = rows[:MAX_ROWS], hidden + len(rows) - MAX_ROWS
    return {"title": title, "headers": headers, "rows": rows, "hidden": hidden}


def _lock_name(state: Any, lock: int) -> str | None:
    found = state.lock_states.get(lock)
    return None if found is None else found.name


_DIGITS = re.compile("[0-9]+")


def _number(cell: Any) -> Any:
    """A cell of digits as the int it shows (tables right-align numbers)."""
    return int(cell) if isinstance(cell, str) and _DIGITS.fullmatch(cell) else cell
