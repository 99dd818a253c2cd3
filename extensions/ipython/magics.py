"""The magics of a Counterpoint session: ``%vm``, ``%tasks``, ``%journal``,
``%replay`` and ``%%explore`` (see ``docs/kernel.md``)."""

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
from counterpoint._traps import this_task
from counterpoint._vm import POLICIES


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
    """``%journal``: the last records of the session journal."""

    def __init__(self, journal: cp.Journal, last: int) -> None:
        total = len(journal)
        self.total = total
        self.records = journal[max(0, total - last) :]
        self.digest = journal.digest()

    def __repr__(self) -> str:
        lines = [f"journal: {self.total} records, digest {self.digest[:16]}"]
        for r in self.records:
            data = ", ".join(f"{k}={v!r}" for k, v in r.data.items())
            lines.append(f"  #{r.event_id:<5} t={r.tick:<4} task {r.task:<3} {r.kind:<9} {data}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        from counterpoint._display import records_table

        caption = f"journal: {self.total} records, digest {self.digest[:16]}"
        return records_table(self.records, caption)


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


@magics_class
class CounterpointMagics(Magics):
    def __init__(self, shell: Any, session: Any) -> None:
        super().__init__(shell)
        self.session = session

    # -- %vm ---------------------------------------------------------------------------

    @magic_arguments()
    @argument("action", nargs="?", choices=["status", "reset"], default="status")
    @argument("--seed", type=int, default=_UNSET, help="the new VM's seed (reset)")
    @argument(
        "--policy", choices=POLICIES, default=_UNSET, help="the new VM's scheduling policy (reset)"
    )
    @argument(
        "--max-steps",
        type=_steps,
        default=_UNSET,
        help="the new VM's max_steps per cell, or none (reset)",
    )
    @argument(
        "--workers",
        default=_UNSET,
        help="where worker functions run: inline, thread, process, dask or a Dask "
        "scheduler address (reset)",
    )
    @argument("--max-workers", type=int, default=_UNSET, help="how many workers at once (reset)")
    @argument(
        "--journal",
        metavar="PATH",
        default=_UNSET,
        help="stream the new VM's journal to this SQLite file as it runs (reset)",
    )
    @line_magic
    def vm(self, line: str) -> Text:
        """``%vm``: the session VM's status.  ``%vm reset [--seed N] [--policy P]
        [--max-steps N|none] [--workers W] [--max-workers N] [--journal PATH]``: a fresh
        VM (and journal) bound to ``vm``; tasks and time start over.  Options not
        given keep their values, except ``--journal`` (one file per VM)."""
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
            ["journal", f"{len(vm.journal)} records, digest {vm.journal.digest()[:16]}"],
        ]
        if self.session.journal_path is not None:
            rows.append(["streamed to", str(self.session.journal_path)])
        from counterpoint._display import table

        text = "\n".join(f"{key + ':':<16} {value}" for key, value in rows)
        return Text(text, table(["session VM", ""], rows))

    # -- %tasks ------------------------------------------------------------------------

    @line_magic
    def tasks(self, line: str) -> Any:
        """``%tasks``: every live task of the session VM and what it waits on."""
        if line.strip():
            raise UsageError("%tasks takes no arguments")
        tasks = self.session.vm.tasks()
        if not tasks:
            return Text("no live tasks")
        width = max(len(repr(info.name)) for info in tasks) + 2
        lines = [f"{'task':>4}  {'name':<{width}}{'state':<9} waiting on"]
        for info in tasks:
            name = repr(info.name)
            lines.append(f"{info.id:>4}  {name:<{width}}{info.state:<9} {info.waiting_on or '-'}")
        from counterpoint._display import tasks_table

        return Text("\n".join(lines), tasks_table(tasks))

    # -- %journal ----------------------------------------------------------------------

    @magic_arguments()
    @argument("--last", type=int, default=20, help="how many records to show (default 20)")
    @argument("--save", metavar="PATH", help="save the journal (SQLite, or .jsonl)")
    @line_magic
    def journal(self, line: str) -> Any:
        """``%journal [--last N] [--save PATH]``: the last records of the session
        journal; ``--save`` writes it to a file (``counterpoint replay PATH`` replays
        the session)."""
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
            return Text(f"saved {len(journal)} records to {path} (digest {journal.digest()[:16]})")
        return JournalTail(journal, args.last)

    # -- %replay -----------------------------------------------------------------------

    @line_magic
    def replay(self, line: str) -> Text:
        """``%replay``: re-run this session's cells (before this one) on a fresh VM in a
        fresh process, and check that the journal comes out the same."""
        if line.strip():
            raise UsageError("%replay takes no arguments")
        if self.session.replaying:
            return Text("(%replay is skipped while replaying)")
        from .replay import plan

        journal = self.session.vm.journal
        covered = plan(journal, _start_of_current_cell(journal))
        if not covered.cells:
            return Text("nothing to replay yet: no cell ran on this VM before this one")
        expected = journal._prefix(covered.end)  # (the part that replay checks)
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

    # -- %%explore -----------------------------------------------------------------------

    @magic_arguments()
    @argument("--max", type=int, default=1000, help="max_schedules (default 1000)")
    @argument("--strategy", choices=["dfs", "random", "pct"], default="dfs")
    @argument("--seed", type=int, default=0)
    @argument("--preemption-bound", type=int, default=None)
    @argument("--max-steps", type=int, default=100_000)
    @argument("--name", default="explored", help="bind the program to this name")
    @cell_magic
    def explore(self, line: str, cell: str) -> Any:
        """``%%explore [--max N] [--strategy S] [--seed N] [--preemption-bound K]``: run
        the cell's code as a program under many schedules (``cp.explore``); its last
        expression is the outcome.  The program is bound to ``explored`` (``--name``),
        so a finding's replay line runs in the next cell."""
        args = parse_argstring(self.explore, line)
        if not args.name.isidentifier():
            raise UsageError(f"--name needs a Python name, got {args.name!r}")
        program = program_from_cell(cell, self.shell.user_ns, args.name)
        self.shell.user_ns[args.name] = program
        return cp.explore(
            program,
            strategy=args.strategy,
            max_schedules=args.max,
            seed=args.seed,
            preemption_bound=args.preemption_bound,
            max_steps=args.max_steps,
        )


def _start_of_current_cell(journal: cp.Journal) -> int:
    """The number of records before the last ``cell`` record (the running cell's)."""
    from counterpoint._journal import _KIND_MASK, CELL

    rows = journal._rows
    for index in range(len(rows) - 1, -1, -1):
        if rows[index] & _KIND_MASK == CELL:
            return index
    return len(rows)


def _child_env() -> dict[str, str]:
    import os

    env = dict(os.environ)
    env.setdefault("PYTHONHASHSEED", "0")
    return env
