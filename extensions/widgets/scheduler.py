"""``Scheduler(program)``: "you are the scheduler" -- The Deadlock Empire's game in a notebook.

The learner picks which ready task runs its next step; the widget shows every task's
code with the line it is paused at, the values ``watch=`` reads, the ``cp1:`` schedule
so far, and -- once the program returned, failed or deadlocked -- the outcome and the
line that replays it.  Stepping is host-driven: each choice is one
``vm.step(task=ID)`` on a VM the widget owns (a widget's messages are handled while the
kernel is idle, so nothing else runs the VM meanwhile).  Undo is a replay: a fresh VM
and the same choices but the last, which the VM's determinism makes the same state.

Time: when no task is ready but virtual time can pass (tasks sleep, a timeout is due),
the widget lets it pass at once (``lowlevel.pass_time``: what ``vm.step`` itself does
before a step), so the learner always has a ready task to choose, until the outcome.
See ``docs/widgets.md``.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping
from typing import Any

import ipywidgets
import traitlets

import counterpoint as cp
from counterpoint import lowlevel

from ._base import StaticPicture, Widget, bundle
from .static import VERMILLION, _esc, _short, svg
from .timeline import Timeline

DEADLOCK = "Deadlock"
_VALUE_CHARS = 200  # a watched value's repr, at most
_LINE_CHARS = 72  # a source line in the static picture, at most
# a suspended task's column in the static picture: faded, as the browser dashes and fades it
SUSPENDED_LOOK = ' opacity="0.55" font-style="italic"'
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _column(info: cp.TaskInfo, source: lowlevel.Source | None, ready: bool) -> dict:
    """One task's column: plain data for the browser and the static picture."""
    return {
        "id": info.id,
        "name": info.name,
        "state": info.state,
        "waiting": info.waiting_on or "",
        "where": source.where if source else (info.where or ""),
        "function": source.function if source else "",
        "first": source.first if source else 0,
        "lines": list(source.lines) if source else [],
        "line": source.line if source else 0,
        "started": bool(info.where),
        "ready": ready,
    }


class Board(Widget):
    """The game's view (what ``scheduler.js`` draws): the synced ``game`` dict, and the
    learner's clicks as requests, answered by its :class:`Scheduler`, which owns the
    rules."""

    _esm = bundle("scheduler.js")
    game = traitlets.Dict({}).tag(sync=True)  # everything the browser draws (plain data)

    def __init__(self, scheduler: Scheduler) -> None:
        self._scheduler = scheduler
        super().__init__()

    def _answer_choose(self, content: dict) -> tuple[dict, list]:
        self._scheduler.choose(content.get("task"))  # type: ignore[arg-type]
        return {"ok": True}, []

    def _answer_undo(self, content: dict) -> tuple[dict, list]:
        self._scheduler.undo()
        return {"ok": True}, []

    def _answer_reset(self, content: dict) -> tuple[dict, list]:
        self._scheduler.reset()
        return {"ok": True}, []

    def _picture(self) -> str:
        return self._scheduler._picture()

    def _describe(self) -> str:
        return self._scheduler._describe()


class Scheduler(StaticPicture, ipywidgets.VBox):
    """You are the scheduler: choose which ready task of ``program`` runs next.

    ``program``: a zero-argument callable returning a fresh coroutine (an ``async def``
    function without arguments, or a ``lambda: main(3)``); it is called again for each
    ``reset()`` and ``undo()``, so it should build its shared state afresh.  ``watch``:
    a zero-argument callable returning a mapping of names to values, shown (``repr``)
    after every step.  ``invariant``: a zero-argument callable checked after every step;
    a falsy result ends the game as an ``AssertionError``, an exception as itself.
    ``name``: the root task's name (default: the function's name).
    ``timeline=True`` puts a live :class:`Timeline` of the run under the board.

    >>> import counterpoint as cp
    >>> box = {}
    >>> async def add():
    ...     seen = box["n"]
    ...     await cp.checkpoint()
    ...     box["n"] = seen + 1
    >>> async def main():
    ...     box["n"] = 0
    ...     await cp.par(add(), add())
    ...     assert box["n"] == 2, f"n is {box['n']}"
    >>> game = cp.widgets.Scheduler(main, watch=lambda: dict(box))
    >>> game.ready
    [1]
    >>> for task in (1, 2, 3, 2, 3, 1):
    ...     game.choose(task)
    >>> game.outcome, game.schedule
    ('AssertionError', 'cp1:011101')
    >>> game.replay
    "cp.VM(schedule='cp1:011101', seed=0).run(main())"
    """

    _timeline: Timeline | None = None  # (class defaults: close() runs if __init__ raised)
    _vm: cp.VM | None = None
    board: Board | None = None

    def __init__(
        self,
        program: Callable[[], Any],
        *,
        watch: Callable[[], Mapping[str, Any]] | None = None,
        name: str | None = None,
        timeline: bool = True,
        invariant: Callable[[], Any] | None = None,
    ) -> None:
        if inspect.iscoroutine(program):
            program.close()
            raise TypeError(
                "Scheduler(program) takes the function that makes the coroutine, not a "
                "coroutine: write Scheduler(main), not Scheduler(main()) (it calls it again "
                "for each reset and undo)"
            )
        if not callable(program):
            raise TypeError(
                "Scheduler(program) needs a zero-argument callable returning a fresh "
                f"coroutine (an async def function), got {type(program).__name__}"
            )
        if watch is not None and not callable(watch):
            raise TypeError(
                "Scheduler(watch=...) takes a zero-argument callable returning a mapping of "
                f"names to values (e.g. lambda: dict(shared)), got {type(watch).__name__}"
            )
        if invariant is not None and not callable(invariant):
            raise TypeError(
                "Scheduler(invariant=...) takes a zero-argument callable that is true while the "
                f"program is correct (lambda: box['n'] >= 0), got {type(invariant).__name__}"
            )
        self._invariant = invariant
        if name is not None and not isinstance(name, str):
            raise TypeError(f"Scheduler(name=...) takes a str, got {type(name).__name__}")
        if not isinstance(timeline, bool):
            raise TypeError(f"Scheduler(timeline=...) is True or False, not {timeline!r}")
        self._with_timeline = timeline
        self._program = program
        self._watch = watch
        function = getattr(program, "__name__", "")
        self._call = f"{function}()" if _IDENTIFIER.match(function) else "program()"
        self._name = name or (function if _IDENTIFIER.match(function) else "main")
        self._choices: list[int] = []
        coro = self._coroutine()
        self.board = Board(self)
        super().__init__(children=[self.board])
        self._start([], coro)

    @property
    def game(self) -> dict:
        """What the board shows, as plain data (the synced trait of :attr:`board`)."""
        return self.board.game

    @property
    def timeline(self) -> Timeline | None:
        """With ``timeline=True``: the :class:`Timeline` of the current game's VM, under
        the board (a new one for each reset and undo); else None."""
        return self._timeline

    def close(self) -> None:
        """Close the views and the game's VM (its tasks' coroutines are closed)."""
        if self._vm is not None:
            lowlevel.dispose(self._vm)
        if self._timeline is not None:
            self._timeline.close()
        if self.board is not None:
            self.board.close()
        super().close()

    # -- the game -------------------------------------------------------------------------

    @property
    def ready(self) -> list[int]:
        """The ids of the tasks that may run next (ascending); empty once the outcome is
        known."""
        return list(self.game["ready"])

    @property
    def schedule(self) -> str:
        """The ``cp1:`` string of the choices so far: ``cp.VM(schedule=...)`` replays them."""
        return self.game["schedule"]

    @property
    def outcome(self) -> str | None:
        """None while the program runs; then the return value's ``repr``, the exception's
        type name, or ``"Deadlock"``."""
        return self.game["outcome"]

    @property
    def replay(self) -> str | None:
        """Once the outcome is known: the line that replays this run (as a finding's)."""
        return self.game["replay"]

    @property
    def choices(self) -> list[int]:
        """The task ids chosen so far, in order."""
        return list(self._choices)

    @property
    def vm(self) -> cp.VM:
        """The VM of the current game (read it; change it only through the game)."""
        assert self._vm is not None
        return self._vm

    def choose(self, task_id: int) -> None:
        """Run one step of ready task ``task_id`` (``vm.step(task=task_id)``)."""
        if not isinstance(task_id, int) or isinstance(task_id, bool):
            raise TypeError(
                f"Scheduler.choose() takes a task id (an int), got {type(task_id).__name__}"
            )
        if self.outcome is not None:
            raise cp.InvalidStateError(
                f"Scheduler.choose({task_id}): the program has ended ({self.outcome}); "
                "undo() to go back a step or reset() to play again"
            )
        assert self._vm is not None
        self._vm.step(task=task_id)  # refuses a task that is not ready, changing nothing
        self._choices.append(task_id)
        self._settle()
        self._show()
        if self._timeline is not None:  # (a click ends no cell: push what the throttle held)
            self._timeline.flush()

    def undo(self) -> None:
        """Go back one choice: a fresh run of the program with every choice but the last
        (the VM is deterministic, so it is the state before that choice)."""
        if not self._choices:
            raise cp.InvalidStateError("Scheduler.undo(): no step has been chosen yet")
        self._start(self._choices[:-1], self._coroutine())

    def reset(self) -> None:
        """Start over: a fresh VM and a fresh coroutine from ``program``, nothing chosen."""
        self._start([], self._coroutine())

    # -- driving the VM -------------------------------------------------------------------

    def _coroutine(self) -> Any:
        coro = self._program()
        if not inspect.iscoroutine(coro):
            close = getattr(coro, "close", None)
            if callable(close):
                close()
            raise TypeError(
                "Scheduler(program) needs a zero-argument callable returning a fresh "
                f"coroutine; program() returned {type(coro).__name__} (an async def "
                "function returns a coroutine when called)"
            )
        return coro

    def _start(self, choices: list[int], coro: Any) -> None:
        if self._vm is not None:
            lowlevel.dispose(self._vm)
        self._vm = vm = cp.VM()
        self._root = vm.spawn(coro, name=self._name)
        self._choices = []
        self._settle()
        for task_id in choices:
            vm.step(task=task_id)
            self._choices.append(task_id)
            self._settle()
        self._show()
        if self._timeline is not None:  # the old VM's: it follows no more
            self._timeline.close()
            self._timeline = None
        if self._with_timeline:
            self._timeline = Timeline(vm)  # (made after the replay: it starts with one window)
            self.children = (self.board, self._timeline)

    def _settle(self) -> None:
        """After a step: the outcome if the program ended or deadlocked; else, if no task
        is ready, let virtual time pass until one is."""
        vm, root = self._vm, self._root
        assert vm is not None
        self._outcome: str | None = None
        self._broken = False  # failed or deadlocked (a return is an ending, not a break)
        self._failure: lowlevel.Source | None = None  # where the root's error was raised
        self._words = ""
        if self._invariant is not None and self._choices and self._violated():
            return
        if root.done():
            error = root.exception()
            if error is None:
                self._outcome = repr(root.result())
                self._words = f"{self._name}() returned {self._outcome}"
            else:
                self._outcome = type(error).__name__
                self._broken = True
                message = str(error)
                self._words = f"{self._outcome}: {message}" if message else self._outcome
                self._failure = lowlevel.failure_source(error)
                if self._failure is not None:
                    self._words += f"\n(raised at {self._failure.where} in task {root.id})"
            return
        if not vm.ready() and not lowlevel.pass_time(vm):
            self._outcome = DEADLOCK
            self._broken = True
            waits = [
                f"task {t.id} {t.name!r} {t.state}" + (f" {t.waiting_on}" if t.waiting_on else "")
                for t in vm.tasks()
            ]
            self._words = "Deadlock: no task can ever run again.\n" + "\n".join(waits)

    def _violated(self) -> bool:
        """Check ``invariant()`` after a step: falsy is an ``AssertionError``, raising is
        that exception -- the program is broken there (the learner found the bug)."""
        step = len(self._choices)
        who = f"after step {step} (task {self._choices[-1]})"
        try:
            holds = self._invariant()  # type: ignore[misc]
        except Exception as error:
            self._outcome = type(error).__name__
            self._words = f"the invariant raised {self._outcome}: {error} {who}"
        else:
            if holds:
                return False
            self._outcome = "AssertionError"
            self._words = f"the invariant is false {who}: {holds!r}"
        self._broken = True
        return True

    def _show(self) -> None:
        """Compute what the browser draws (plain data) and sync it in one message."""
        vm = self._vm
        assert vm is not None
        ended = self._outcome is not None
        ready = [] if ended else sorted(t.id for t in vm.ready())
        tasks = [
            _column(info, lowlevel.source_of(vm, info.id), info.id in ready) for info in vm.tasks()
        ]
        if self._failure is not None:  # the root failed: its code, the raising line marked
            root = self._root
            info = cp.TaskInfo(root.id, root.name, "failed", None, self._failure.where)
            tasks.insert(0, _column(info, self._failure, False))
        schedule = vm.schedule
        replay = f"cp.VM(schedule={schedule!r}, seed={vm.seed}).run({self._call})"
        self.board.error = ""  # (a failed request's words stay until the game changes)
        self.board.game = {
            "program": self._name,
            "tasks": tasks,
            "ready": ready,
            "schedule": schedule,
            "steps": len(self._choices),
            "tick": vm.now,
            "outcome": self._outcome,
            "broken": self._broken,
            "words": self._words,
            "replay": replay if ended else None,
            "watched": self._watched(),
        }

    def _watched(self) -> list[list[str]]:
        if self._watch is None:
            return []
        try:
            values = self._watch()
            if not isinstance(values, Mapping):
                raise TypeError(f"watch() returned {type(values).__name__}, not a mapping")
            return [[str(k), _short(repr(v), _VALUE_CHARS)] for k, v in values.items()]
        except Exception as error:  # shown in place of the values; the game goes on
            return [["watch()", f"raised {type(error).__name__}: {error}"]]

    # -- static picture and repr ----------------------------------------------------------

    def _describe(self) -> str:
        game = self.game
        steps = game["steps"]
        chosen = f"{steps} step{'' if steps == 1 else 's'} chosen"
        if game["outcome"] is not None:
            return f"{game['program']}: {chosen}, outcome {game['outcome']}"
        return f"{game['program']}: {chosen}, ready {game['ready']}"

    def _picture(self) -> str:
        """The game as it stands (each task's code, the current line marked, the schedule
        and outcome) above the run's timeline: the same bytes for the same choices."""
        game = self.game
        char, row, pad = 7, 15, 8
        columns = []
        for task in game["tasks"]:
            lines = [_short(line, _LINE_CHARS) for line in task["lines"]] or ["(no source)"]
            title = f"{task['name']} ({task['id']}): {task['state']}"
            if task["waiting"]:
                title += f" {task['waiting']}"
            width = char * (max(len(title), *(len(line) + 7 for line in lines)) + 2)
            columns.append((task, title, lines, width))
        plain, broken = "", f' fill="{VERMILLION}"' if game["broken"] else ""
        lines_: list[tuple[str, str]] = [
            (
                f"Scheduler: {game['program']}, {game['steps']} steps chosen, tick {game['tick']}",
                ' font-weight="bold"',
            ),
            (f"schedule: {game['schedule']}", plain),
        ]
        if game["watched"]:
            watched = ", ".join(f"{k} = {v}" for k, v in game["watched"])
            lines_.append((f"watched: {watched}", plain))
        if game["outcome"] is None:
            lines_.append((f"ready: {', '.join(str(i) for i in game['ready'])}", plain))
        else:
            ending = ("Broken: " if game["broken"] else "Ended: ") + game["words"]
            lines_ += [(part, broken) for part in ending.split("\n")]
            lines_.append((f"replay: {game['replay']}", broken))
        head = [text for text, _ in lines_]
        top = pad + row * len(head) + pad
        body = [
            f'<text x="{pad}" y="{pad + row * (i + 1) - 3}"{style}>{_esc(text)}</text>'
            for i, (text, style) in enumerate(lines_)
        ]
        x, tallest = pad, 0
        for task, title, lines, width in columns:
            y = top
            look = SUSPENDED_LOOK if task["state"] == "suspended" else ""
            body.append(f'<g class="task" data-task="{task["id"]}"{look}>')
            body.append(f'<text x="{x}" y="{y + row - 3}" font-weight="bold">{_esc(title)}</text>')
            for i, line in enumerate(lines):
                number = task["first"] + i
                current = task["lines"] and number == task["line"]
                ly = y + row * (i + 2)
                if current:
                    body.append(
                        f'<rect x="{x}" y="{ly - row + 3}" width="{width - pad}" height="{row}" '
                        'fill="#E69F00" fill-opacity="0.35"/>'
                    )
                mark = ">" if current else " "
                label = f"{mark}{number:>4} {line}" if task["lines"] else line
                body.append(f'<text x="{x}" y="{ly}" xml:space="preserve">{_esc(label)}</text>')
            body.append("</g>")
            tallest = max(tallest, row * (len(lines) + 2))
            x += width
        width = max(x + pad, char * max(len(text) for text in head) + 2 * pad)
        height = top + tallest
        timeline = svg(self.vm) if len(self.vm.journal) else ""
        extra = 0
        if timeline:
            match = re.search(r'height="(\d+)"', timeline)
            extra = int(match.group(1)) if match else 0
            wide = re.search(r'width="(\d+)"', timeline)
            width = max(width, int(wide.group(1)) if wide else 0)
            body.append(f'<g transform="translate(0,{height})">{timeline}</g>')
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" class="counterpoint-scheduler" '
            f'width="{width}" height="{height + extra}" viewBox="0 0 {width} {height + extra}" '
            f'font-family="monospace" font-size="11" fill="currentColor" role="img">'
            f"<title>{_esc(head[0])}</title>" + "".join(body) + "</svg>"
        )
