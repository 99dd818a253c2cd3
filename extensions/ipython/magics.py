"""The magics of a Counterpoint session: ``%vm``, ``%tasks``, ``%journal``,
``%timeline``, ``%timetravel``, ``%replay``, ``%recover`` and ``%%explore`` (see
``docs/kernel.md``).

Their docstrings are what ``%name?`` prints, so they are plain text: no reST marks.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

import counterpoint as cp
from counterpoint import lowlevel
from counterpoint.lowlevel import POLICIES, display, this_task


class Text:
    """Output with a fixed text form (and an optional HTML one)."""

    def __init__(self, text: str, html: str | None = None) -> None:
        self.text = text
        self.html = html

    def __repr__(self) -> str:
        return self.text

    def _repr_html_(self) -> str | None:
        return self.html


class JournalTail:
    """``%journal``: the last records of the session journal (steps hidden unless ``steps``)."""

    def __init__(self, journal: cp.Journal, last: int, steps: bool = False) -> None:

        self.records, hidden = display.last_records(journal, last, steps=steps)
        self.caption = display.journal_caption(
            len(journal), journal.digest(), len(self.records), hidden, "%journal --all"
        )

    def __repr__(self) -> str:

        return display.records_text(self.records, self.caption)

    def _repr_html_(self) -> str:

        return display.records_table(self.records, self.caption)


def program_from_cell(source: str, namespace: dict, name: str) -> Any:
    """The cell's code as ``async def <name>()``: its last expression is the outcome."""
    tree = ast.parse(source)
    body = tree.body or [ast.Pass()]
    if isinstance(body[-1], ast.Expr):
        body[-1] = ast.Return(value=body[-1].value)
    function = ast.AsyncFunctionDef(
        name=name,
        args=ast.arguments(posonlyargs=[], args=[], kwonlyargs=[], kw_defaults=[], defaults=[]),
        body=body,
        decorator_list=[],
        returns=None,
        type_params=[],
    )
    module = ast.fix_missing_locations(ast.Module(body=[function], type_ignores=[]))
    made: dict[str, Any] = {}
    exec(compile(module, f"<%%explore {name}>", "exec"), namespace, made)
    return made[name]


_UNSET = object()


def _workers_text(options: dict[str, Any]) -> str:
    workers = options.get("workers", "inline")
    text = workers if isinstance(workers, str) else type(workers).__name__
    if options.get("max_workers") is not None:
        text += f" (at most {options['max_workers']} at once)"
    return text


def _steps(text: str) -> int | None:
    """``--max-steps``: a whole number, or ``none`` for no limit."""
    if text.lower() == "none":
        return None
    return int(text)


def _plain_help(magic: Any) -> Any:
    """Make a magic's ``?`` text plain: IPython's magic_arguments starts it with a reST
    literal-block mark (``::``) and names a cell magic with a single ``%``."""
    doc = magic.__doc__ or ""
    if doc.startswith("::"):
        usage, _, rest = doc[2:].strip("\n").partition("\n\n")
        first, *more = (line.strip() for line in usage.splitlines())
        if getattr(magic, "_cell_magic", False):
            first = "%" + first
        indent = " " * (len(first.split(" ", 1)[0]) + 1)  # under the first option
        usage = "\n".join([first, *(indent + line for line in more)])
        doc = f"{usage}\n\n{rest}"
    magic.__doc__ = doc.rstrip() + "\n"
    return magic


def _cell(magic: Any) -> Any:
    magic._cell_magic = True
    return magic


@magics_class
class CounterpointMagics(Magics):
    def __init__(self, shell: Any, session: Any) -> None:
        super().__init__(shell)
        self.session = session

    # -- %vm ---------------------------------------------------------------------------

    @_plain_help
    @magic_arguments()
    @argument("action", nargs="?", choices=["status", "reset"], default="status")
    @argument("--seed", type=int, default=_UNSET, metavar="N", help="the new VM's seed (reset)")
    @argument(
        "--policy", choices=POLICIES, default=_UNSET, help="the new VM's scheduling policy (reset)"
    )
    @argument(
        "--max-steps",
        type=_steps,
        default=_UNSET,
        metavar="N",
        help="the new VM's max_steps per cell, or none (reset)",
    )
    @argument(
        "--workers",
        default=_UNSET,
        metavar="W",
        help="where worker functions run: inline, thread, process, dask or a Dask "
        "scheduler address (reset)",
    )
    @argument(
        "--max-workers",
        type=int,
        default=_UNSET,
        metavar="N",
        help="how many workers at once (reset)",
    )
    @argument(
        "--journal",
        metavar="PATH",
        default=_UNSET,
        help="stream the new VM's journal to this SQLite file as it runs (reset)",
    )
    @line_magic
    def vm(self, line: str) -> Text:
        """Show the session VM: policy, seed, max_steps, workers, virtual time, live
        tasks, cells journaled, and the journal's size and digest.

        %vm reset [options] replaces the session VM (and its journal) with a fresh
        one, bound to vm; tasks and time start over. Options not given keep their
        values, except --journal (one file per VM).
        """
        args = parse_argstring(self.vm, line)
        changes = {
            key: value
            for key, value in vars(args).items()
            if key != "action" and value is not _UNSET
        }
        if args.action == "reset":
            if this_task() is not None:
                raise UsageError(
                    "`%vm reset` cannot run inside a cell that awaits (that cell is a task "
                    "on the VM being replaced): put it in a cell of its own"
                )
            self.session.reset(**changes)
        elif changes:
            raise UsageError(
                f"{', '.join('--' + key.replace('_', '-') for key in changes)}: options go with "
                f"`%vm reset`"
            )
        return self._status()

    def _status(self) -> Text:
        vm = self.session.vm
        tasks = vm.tasks()
        states: dict[str, int] = {}
        for info in tasks:
            states[info.state] = states.get(info.state, 0) + 1
        live = ", ".join(f"{n} {state}" for state, n in sorted(states.items())) or "none"
        rows = [
            ["policy", vm.policy],
            ["seed", vm.seed],
            ["max_steps", self.session.options.get("max_steps")],
            ["workers", _workers_text(self.session.options)],
            ["virtual time", vm.now],
            ["live tasks", live],
            ["cells journaled", self.session.cells],
            ["journal", f"{len(vm.journal)} records, digest {vm.journal.digest()}"],
        ]
        if self.session.journal_path is not None:
            rows.append(["streamed to", str(self.session.journal_path)])

        text = "\n".join(f"{key + ':':<16} {value}" for key, value in rows)
        return Text(text, display.table(["session VM", ""], rows))

    # -- %tasks ------------------------------------------------------------------------

    @_plain_help
    @line_magic
    def tasks(self, line: str) -> Any:
        """%tasks

        Show every live task of the session VM: its number, name, state, what it
        waits on, and the line of your code it is paused at.
        """
        if line.strip():
            raise UsageError("%tasks takes no arguments")
        tasks = self.session.vm.tasks()
        if not tasks:
            return Text("no live tasks")
        width = max(len(repr(info.name)) for info in tasks) + 2
        waits = max(len("waiting on"), *(len(info.waiting_on or "-") for info in tasks))
        at = any(info.where for info in tasks)  # the line of the user's code, if any
        lines = [f"{'task':>4}  {'name':<{width}}{'state':<9} {'waiting on':<{waits}}  at"]
        for info in tasks:
            waiting = info.waiting_on or "-"
            row = f"{info.id:>4}  {info.name!r:<{width}}{info.state:<9} {waiting:<{waits}}"
            where = f"{info.where}  {info.code}" if info.where else "-"
            lines.append(f"{row}  {where}" if at else row.rstrip())
        if not at:
            lines[0] = lines[0][: -len("  at")].rstrip()

        return Text("\n".join(lines), display.tasks_table(tasks))

    # -- %journal ----------------------------------------------------------------------

    @_plain_help
    @magic_arguments()
    @argument(
        "--last", type=int, default=20, metavar="N", help="how many records to show (default 20)"
    )
    @argument("--all", action="store_true", help="show step records too")
    @argument("--save", metavar="PATH", help="save the journal (SQLite, or .jsonl)")
    @line_magic
    def journal(self, line: str) -> Any:
        """Show the last records of the session journal and its digest (the same 64
        hex digits as vm.journal.digest()). Step records (which task ran next) are
        hidden unless --all is given; the caption says how many were.

        --save PATH writes the whole journal to a file: SQLite, or JSON lines if PATH
        ends in .jsonl. "counterpoint replay PATH --trust" replays the session.
        """
        args = parse_argstring(self.journal, line)
        if args.last < 0:
            raise UsageError("--last needs a number of records >= 0")
        journal = self.session.vm.journal
        if args.save:
            if self.session.replaying:
                return Text(f"(not saved to {args.save} while replaying)")
            path = Path(args.save).expanduser()
            if path.suffix == ".jsonl":
                journal.export_jsonl(path)
            else:
                journal.save(path)
            return Text(f"saved {len(journal)} records to {path} (digest {journal.digest()})")
        return JournalTail(journal, args.last, steps=args.all)

    # -- %timeline ---------------------------------------------------------------------

    @_plain_help
    @magic_arguments()
    @argument(
        "--x", choices=["event", "tick"], default="event", help="the x axis: event ids or ticks"
    )
    @argument(
        "--last", type=int, default=None, metavar="N", help="start with the last N records shown"
    )
    @line_magic
    def timeline(self, line: str) -> Any:
        """Show the session VM's run as a timeline: a lane per task, a mark per step and
        effect, blocked and sleeping spans, an arrow per value passed over a channel
        (cp.widgets.Timeline). It follows the VM: later cells' records appear as they
        run. Without the widgets' JavaScript (an exported notebook, nbval) its output
        is the static picture of the last records.
        """
        args = parse_argstring(self.timeline, line)
        from counterpoint.widgets import Timeline

        try:
            return Timeline(self.session.vm, x=args.x, last=args.last)
        except ValueError as error:
            raise UsageError(str(error)) from None

    # -- %timetravel -------------------------------------------------------------------

    @_plain_help
    @magic_arguments()
    @argument(
        "event",
        nargs="?",
        type=int,
        default=None,
        help="the event to show first (default: the end of a small journal)",
    )
    @line_magic
    def timetravel(self, line: str) -> Any:
        """Scrub through the session VM's journal: a slider over event ids, play, step
        and jump to a task's next effect, showing the state at that event (tasks,
        channels, locks, semaphores, events, conditions, barriers, workers) with the
        timeline's cursor there (cp.widgets.TimeTravel). Without the widgets' JavaScript
        its output is the static picture: the timeline up to the event and the tables.
        """
        args = parse_argstring(self.timetravel, line)
        from counterpoint.widgets import TimeTravel

        try:
            return TimeTravel(self.session.vm, event=args.event)
        except ValueError as error:
            raise UsageError(str(error)) from None

    # -- %replay -----------------------------------------------------------------------

    @_plain_help
    @line_magic
    def replay(self, line: str) -> Text:
        """%replay

        Re-run this session's cells (the ones before this cell) on a fresh VM in a
        fresh process, and check that the journal comes out the same, record by
        record.
        """
        if line.strip():
            raise UsageError("%replay takes no arguments")
        if sys.platform == "emscripten":  # (JupyterLite: docs/jupyterlite.md)
            raise UsageError(
                "%replay re-runs the session in a fresh process, and the browser has no "
                "processes: save the journal (vm.journal.save('session.db')), download it, "
                "and run `counterpoint replay session.db --trust` where Counterpoint is "
                "installed"
            )
        if self.session.replaying:
            return Text("(%replay is skipped while replaying)")
        from .replay import plan

        journal = self.session.vm.journal
        covered = plan(journal, _start_of_current_cell(journal))
        if not covered.cells:
            return Text("nothing to replay yet: no cell ran on this VM before this one")
        expected = lowlevel.prefix(journal, covered.end)  # (the part that replay checks)
        if not covered.replayed:
            return Text(covered.report(0, expected.digest()))
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "session.db"
            expected.save(path)
            done = subprocess.run(
                # this session's own cells, saved just now: trusted
                [sys.executable, "-m", "counterpoint", "replay", str(path), "--trust"],
                capture_output=True,
                text=True,
                env=_child_env(),
            )
        if done.returncode != 0:
            raise cp.NondeterminismError((done.stdout + done.stderr).strip())
        return Text(covered.report(len(expected), expected.digest()))

    # -- %recover ----------------------------------------------------------------------

    @_plain_help
    @magic_arguments()
    @argument("path", help="the session journal file (%%vm reset --journal PATH wrote it)")
    @argument(
        "--workers",
        default=_UNSET,
        metavar="W",
        help="where workers the file has no outcome for run: inline, thread, process, dask",
    )
    @line_magic
    def recover(self, line: str) -> Text:
        """%recover PATH [--workers W]

        Bring a session back from its journal file (written by %vm reset --journal
        PATH) in a fresh kernel: re-run the file's cells, in order, checking every
        record (worker outcomes and host events come from the file), so that every
        variable, task, channel and lock is back; then new cells append to PATH.
        An interrupted cell cannot be re-run: the cells before it are restored and
        the session goes on in memory, the file left as it was.
        """
        args = parse_argstring(self.recover, line)
        if self.session.replaying:
            return Text("(%recover is skipped while replaying)")
        if this_task() is not None:
            raise UsageError(
                "`%recover` cannot run inside a cell that awaits (that cell is a task on the "
                "VM being replaced): put it in a cell of its own"
            )
        from .recover import recover_session

        options = {} if args.workers is _UNSET else {"workers": args.workers}
        try:
            report = recover_session(self.session, Path(args.path).expanduser(), **options)
        except (cp.JournalError, ValueError, TypeError) as error:
            raise UsageError(f"%recover: {error}") from None
        return Text(report)

    # -- %%explore -----------------------------------------------------------------------

    @_plain_help
    @magic_arguments()
    @argument("--max", type=int, default=1000, metavar="N", help="max_schedules (default 1000)")
    @argument("--strategy", choices=["dfs", "random", "pct"], default="dfs")
    @argument("--seed", type=int, default=0, metavar="N", help="(default 0)")
    @argument("--preemption-bound", type=int, default=None, metavar="K", help="(default: no bound)")
    @argument("--max-steps", type=int, default=100_000, metavar="N", help="(default 100000)")
    @argument("--name", default="explored", help="bind the program to this name")
    @argument(
        "--shared-only",
        action="store_true",
        help="tasks share state only through VM objects and cp.shared() (reads commute)",
    )
    @argument(
        "--invariant",
        default=None,
        metavar="NAME",
        help="a function in the namespace, checked after every step",
    )
    @_cell
    @cell_magic
    def explore(self, line: str, cell: str) -> Any:
        """Run the cell's code as a program under many schedules (cp.explore) and show
        what it found: an ExploreView (outcome bars, findings; click one to see its
        run), whose text form is the report. The cell's last expression is the
        outcome. The program is bound to the name explored (or --name NAME), so a
        finding's replay line runs in the next cell, and the report to explored_report
        (NAME_report).
        """
        args = parse_argstring(self.explore, line)
        if not args.name.isidentifier():
            raise UsageError(f"--name needs a Python name, got {args.name!r}")
        invariant = None
        if args.invariant is not None:
            invariant = self.shell.user_ns.get(args.invariant)
            if not callable(invariant):
                raise UsageError(
                    f"--invariant names a function defined in an earlier cell; "
                    f"{args.invariant!r} is {'not defined' if invariant is None else 'not one'}"
                )
        program = program_from_cell(cell, self.shell.user_ns, args.name)
        self.shell.user_ns[args.name] = program
        report = cp.explore(
            program,
            strategy=args.strategy,
            max_schedules=args.max,
            seed=args.seed,
            preemption_bound=args.preemption_bound,
            max_steps=args.max_steps,
            shared_only=args.shared_only,
            invariant=invariant,
        )
        self.shell.user_ns[f"{args.name}_report"] = report
        return report.show()


def _start_of_current_cell(journal: cp.Journal) -> int:
    """The number of records before the last ``cell`` record (the running cell's)."""
    cells = lowlevel.find(journal, lowlevel.CELL)
    return cells[-1] if cells else len(journal)


def _child_env() -> dict[str, str]:
    import os

    env = dict(os.environ)
    env.setdefault("PYTHONHASHSEED", "0")
    return env
