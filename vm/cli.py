"""The ``counterpoint`` command line.

    counterpoint lab [DIR] [--no-browser] [--port N]   JupyterLab with the kernel
    counterpoint install [--user | --sys-prefix | --prefix P]   the kernelspec
    counterpoint run PROGRAM.py [--seed N] [--policy P] [--max-steps N]
                                [--journal OUT | --recover FILE]
                                [--journal-tail N [--journal-steps]]
    counterpoint nbrun NOTEBOOK.ipynb [--output OUT] [--timeout S]
    counterpoint replay JOURNAL [PROGRAM.py] [--trust]
    counterpoint lite build [--output DIR] [--notebooks DIR] [--cache DIR]

``run`` loads the file, calls its ``async def main()`` on a fresh VM and prints
the result, the virtual time, the number of steps and the journal digest (exit
status 0 when ``main`` returned, 1 when it raised); ``--journal OUT`` streams the
journal to OUT as it runs, and ``--recover FILE`` recovers the run such a file was
left by when it was killed (``cp.VM.recover``: docs/recovery.md).  ``replay`` re-runs what a
journal file recorded -- a notebook session's cells, or the program that
``run --journal`` ran -- and checks that the journal comes out the same (exit
status 0 if it does, 1 if not).  Since that runs code named by the file, it
refuses (exit status 3, after showing what it would run) unless ``--trust`` is
given or the program is named on the command line.  This module imports Jupyter only for the
commands that need it.

A journal written by ``run --journal`` names its program by a path relative to the
working directory (when the program is under it), so the journal and the program
replay from another clone or folder: ``replay`` looks the name up in the working
directory, then next to the journal file.
"""

from __future__ import annotations

import argparse
import inspect
import runpy
import sys
import traceback
from pathlib import Path

from ._display import journal_caption, last_records, records_text
from ._errors import JournalError, NondeterminismError
from ._journal import _KIND_MASK, CELL, STEP, Journal, _jv
from ._vm import POLICIES, VM, user_traceback


def _load_main(path: Path, command: str = "run"):
    if not path.is_file():
        raise SystemExit(f"counterpoint {command}: no such file: {path}")
    namespace = runpy.run_path(str(path), run_name="__counterpoint__")
    main = namespace.get("main")
    if main is None:
        raise SystemExit(
            f"counterpoint {command}: {path} defines no `main`; write `async def main(): ...` "
            f"(its return value is printed)"
        )
    if not inspect.iscoroutinefunction(main):
        raise SystemExit(
            f"counterpoint {command}: `main` in {path} must be an `async def` function"
        )
    return main


def _error_text(error: BaseException) -> str:
    user_traceback(error)  # the program's frames only, not the VM's or this file's
    if error.__traceback__ is not None:
        return "".join(traceback.format_exception(error)).rstrip()
    return "".join(traceback.format_exception_only(error)).rstrip()


def program_name(path: Path) -> str:
    """How a journal names its program: relative to the working directory (in POSIX
    form) when the program is under it, so the journal stays valid in another clone;
    else the absolute path, the only name that finds it again."""
    absolute = path.resolve()
    try:
        return absolute.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(absolute)


def recorded_program(name: str, journal_path: Path) -> Path:
    """The file a journal's recorded program name means: absolute as it is; relative
    in the working directory, else next to the journal file."""
    recorded = Path(name)
    if recorded.is_absolute() or recorded.is_file():
        return recorded
    beside = journal_path.parent / recorded
    return beside if beside.is_file() else recorded


def run_program(
    path: Path,
    *,
    seed: int,
    policy: str,
    max_steps: int | None,
    journal_tail: int,
    journal: Path | None = None,
    journal_steps: bool = False,
    recover: Path | None = None,
) -> int:
    main = _load_main(path)
    if recover is not None:
        vm = _recovering_vm(recover, path, seed=seed, policy=policy, max_steps=max_steps)
        if vm is None:
            return 2
        seed, policy = vm.seed, vm.policy
    else:
        seed = 0 if seed is None else seed
        policy = policy or "fifo"
        vm = VM(seed=seed, policy=policy, max_steps=max_steps, journal=journal)
        vm.journal.meta["program"] = program_name(path)
        if journal is not None:  # (streamed from the start: a killed run can be recovered)
            vm._stream._set_meta({"program": _jv(vm.journal.meta["program"])})
    status = 0
    try:
        result = vm.run(main())
        outcome = f"result:       {result!r}"
    except NondeterminismError as error:
        if recover is None:
            raise
        vm.close()  # (the file is left as it was)
        print(
            f"counterpoint run --recover: {path} does not re-execute {recover}, which was left "
            f"as it was: {error}",
            file=sys.stderr,
        )
        return 1
    except Exception as error:  # the program's failure is part of the report
        status = 1
        outcome = "error:        " + _error_text(error).replace("\n", "\n              ")
    steps = sum(1 for row in vm.journal._rows if row & _KIND_MASK == STEP)
    print(f"program:      {path}  (policy {policy}, seed {seed})")
    if recover is not None:
        print(f"recovered:    {_recovered_text(vm)}")
    print(outcome)
    print(f"virtual time: {vm.now} tick{'' if vm.now == 1 else 's'}")
    print(f"steps:        {steps}")
    print(f"journal:      {len(vm.journal)} records, digest {vm.journal.digest()}")
    vm.close()
    saved = journal if journal is not None else recover
    if saved is not None:
        print(f"saved to:     {saved}  (counterpoint replay {saved} {path})")
    if journal_tail > 0:
        records, hidden = last_records(vm.journal, journal_tail, steps=journal_steps)
        caption = journal_caption(len(vm.journal), None, len(records), hidden, "--journal-steps")
        print(records_text(records, caption))
    return status


def _recovering_vm(file: Path, path: Path, **options) -> VM | None:
    """``VM.recover(file)`` with the options given on the command line (None: not
    given), or None after saying on stderr why it cannot be recovered."""
    given = {key: value for key, value in options.items() if value is not None}
    try:
        return VM.recover(file, **given)
    except (JournalError, ValueError) as error:
        print(f"counterpoint run --recover: cannot recover {file}: {error}", file=sys.stderr)
        return None


def _recovered_text(vm: VM) -> str:
    recovery = vm.recovery
    done = "the file was complete" if recovery.complete else f"then {recovery.appended:,} live"
    return (
        f"{recovery.path}: {recovery.records:,} records re-executed and checked, {done}"
        if recovery.live
        else f"{recovery.path}: stopped after {recovery.checked:,} of its {recovery.records:,} "
        f"records (the program ended before the file did); the file is left as it was"
    )


REFUSED = 3  # the exit status of a replay that would run code the user did not vouch for


def _what_it_runs(journal: Journal, path: Path) -> str:
    """What replaying ``journal`` would execute, for the user to read before trusting it."""
    from .ipython.replay import cells_of

    cells = cells_of(journal)
    if cells:
        lines = [f"{path} holds {len(cells)} notebook cell(s); replaying it runs their code:"]
        for _, number, source, _ in cells:
            text = source if isinstance(source, str) else repr(source)
            shown = text.splitlines()
            body = [f"    | {line}" for line in shown[:20]] or ["    | "]
            if len(shown) > 20:
                body.append(f"    | ... ({len(shown) - 20} more lines)")
            lines.append(f"  cell {number}:\n" + "\n".join(body))
        return "\n".join(lines)
    program = journal.meta.get("program")
    return f"{path} was written by the program {program!r}; replaying it imports and runs that file"


def replay_file(path: Path, program: Path | None = None, *, trust: bool = False) -> int:
    """``counterpoint replay JOURNAL [PROGRAM.py] [--trust]``: a session's cells, or the
    program that ``run --journal`` ran.

    A journal is data, but replaying it runs code: the cells it recorded, or the
    program its metadata names.  A file from someone else could name anything, so
    replay shows what it would run and refuses (exit status 3) unless ``--trust``
    says the file is trusted, or the program is named on the command line (then that
    file runs, whatever the journal says)."""
    try:
        journal = Journal.load(path)
    except JournalError as error:
        print(f"counterpoint replay: {error}", file=sys.stderr)
        return 2
    has_cells = any(row & _KIND_MASK == CELL for row in journal._rows)
    if has_cells and program is not None:
        print(
            f"counterpoint replay: {path} is a notebook session (its code is its cells); "
            f"a PROGRAM cannot replace them. Read them and use --trust",
            file=sys.stderr,
        )
        return 2
    recorded = journal.meta.get("program")
    if not has_cells and program is None and not isinstance(recorded, str):
        print(
            f"counterpoint replay: {path} holds neither notebook cells nor the name of the "
            f"program that wrote it (`counterpoint run PROGRAM --journal OUT` records it); "
            f"name the program: `counterpoint replay {path} PROGRAM.py`, or from Python use "
            f"cp.replay(main, cp.Journal.load({str(path)!r}))",
            file=sys.stderr,
        )
        return 2
    if not trust and program is None:
        print(_what_it_runs(journal, path), file=sys.stderr)
        print(
            f"counterpoint replay: refused: replaying a journal runs code, and this one "
            f"names the code itself. If you trust where {path} came from, run it again with "
            f"--trust; to replay it against a program you choose, name it: "
            f"`counterpoint replay {path} PROGRAM.py`",
            file=sys.stderr,
        )
        return REFUSED
    if has_cells:
        from .ipython.replay import replay_session

        try:
            print(replay_session(journal))
        except NondeterminismError as error:
            print(f"counterpoint replay: the session did not replay: {error}", file=sys.stderr)
            return 1
        return 0
    from ._replay import replay

    source = program if program is not None else recorded_program(recorded, path)
    if program is None and not source.is_file():
        print(
            f"counterpoint replay: {path} names the program {recorded!r}, which is neither "
            f"under the working directory ({Path.cwd()}) nor next to {path}; name it: "
            f"`counterpoint replay {path} PROGRAM.py`",
            file=sys.stderr,
        )
        return 2
    main = _load_main(source, "replay")
    try:
        result = replay(main, journal)
        outcome = f"result {result!r}"
    except NondeterminismError as error:
        print(f"counterpoint replay: {source} did not replay: {error}", file=sys.stderr)
        return 1
    except Exception as error:  # the program failed, as it did when it was recorded
        first = str(error).splitlines()[0] if str(error) else ""
        outcome = f"error {type(error).__name__}: {first}"
    print(
        f"replayed {source}: the same {len(journal)} records, digest {journal.digest()} ({outcome})"
    )
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="counterpoint",
        description="Counterpoint: a deterministic concurrency VM, in Jupyter and on its own.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    lab = commands.add_parser("lab", help="open JupyterLab on the notebooks, with the kernel")
    lab.add_argument("directory", nargs="?", type=Path, help="default: ./notebooks, else .")
    lab.add_argument("--no-browser", action="store_true", help="do not open a browser")
    lab.add_argument("--port", type=int, default=None, help="the server's port")

    install = commands.add_parser("install", help="install the `counterpoint` kernelspec")
    where = install.add_mutually_exclusive_group()
    where.add_argument("--user", action="store_true", help="for this user")
    where.add_argument("--sys-prefix", action="store_true", help="in this environment (default)")
    where.add_argument("--prefix", help="under PREFIX/share/jupyter/kernels")

    run = commands.add_parser("run", help="run a program's `async def main()` on the VM")
    run.add_argument("program", type=Path, help="a Python file defining `async def main()`")
    run.add_argument("--seed", type=int, default=None, help="VM seed (default 0)")
    run.add_argument("--policy", choices=POLICIES, default=None, help="scheduling policy")
    run.add_argument("--max-steps", type=int, default=None, help="step limit for the run")
    saving = run.add_mutually_exclusive_group()
    saving.add_argument(
        "--journal", type=Path, metavar="OUT", help="stream the journal to OUT (SQLite)"
    )
    saving.add_argument(
        "--recover",
        type=Path,
        metavar="FILE",
        help="recover the run a killed `run --journal FILE` left: re-execute the program "
        "against FILE, then go on, appending to it",
    )
    run.add_argument(
        "--journal-tail",
        type=int,
        default=0,
        metavar="N",
        help="also print the last N records, step records left out",
    )
    run.add_argument(
        "--journal-steps", action="store_true", help="--journal-tail shows step records too"
    )

    nbrun = commands.add_parser("nbrun", help="execute a notebook headless, saving its outputs")
    nbrun.add_argument("notebook", type=Path)
    nbrun.add_argument("--output", type=Path, help="write here instead of in place")
    nbrun.add_argument("--timeout", type=int, default=600, help="seconds per cell (default 600)")
    nbrun.add_argument("--kernel", default=None, help="kernel name (default: the notebook's)")

    replay = commands.add_parser(
        "replay",
        help="re-run a journal file and check it matches",
        description="Re-run what a journal recorded and check that the journal comes out the "
        "same. Replaying runs code (the cells or the program the file names), so a file "
        "is replayed only with --trust, or against a PROGRAM named here.",
    )
    replay.add_argument("journal", type=Path)
    replay.add_argument(
        "program", type=Path, nargs="?", help="the program to replay it against (your choice)"
    )
    replay.add_argument(
        "--trust",
        action="store_true",
        help="run the code the journal names (its cells, or its recorded program)",
    )
    lite = commands.add_parser(
        "lite",
        help="the course as a static JupyterLite site (Python in the browser)",
        description="Build the course as a static JupyterLite site: JupyterLab and the "
        "Pyodide kernel with Counterpoint preinstalled, made from the package registries "
        "only; any static host serves it (docs/jupyterlite.md).",
    )
    lite_commands = lite.add_subparsers(dest="lite_command", required=True)
    lite_build = lite_commands.add_parser("build", help="build the site")
    lite_build.add_argument(
        "--output", type=Path, default=Path("_site"), help="the site's folder (default: _site)"
    )
    lite_build.add_argument(
        "--notebooks", type=Path, default=None, help="the notebooks (default: the course's)"
    )
    lite_build.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="downloads are kept here (default: ~/.cache/counterpoint/lite)",
    )
    return parser


def lite_build(output: Path, notebooks: Path | None, cache: Path | None) -> int:
    from . import lite

    try:
        built = lite.build(output, notebooks=notebooks, cache=cache)
    except lite.LiteBuildError as error:
        print(f"counterpoint lite build: {error}", file=sys.stderr)
        return 1
    print(
        f"built {built['output']}: {built['bytes'] / 1e6:.1f} MB, {built['notebooks']} "
        f"notebooks, Pyodide {built['pyodide']} (Python {built['python']}), "
        f"{len(built['packages'])} packages, in {built['seconds']} s"
    )
    print(f"serve it with any static host, e.g.  python -m http.server -d {built['output']}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "run":
        return run_program(
            args.program,
            seed=args.seed,
            policy=args.policy,
            max_steps=args.max_steps,
            journal_tail=args.journal_tail,
            journal=args.journal,
            journal_steps=args.journal_steps,
            recover=args.recover,
        )
    if args.command == "replay":
        return replay_file(args.journal, args.program, trust=args.trust)
    if args.command == "lite":
        return lite_build(args.output, args.notebooks, args.cache)
    from .kernel import commands

    if args.command == "install":
        return commands.install_command(user=args.user, prefix=args.prefix)
    if args.command == "lab":
        return commands.lab(args.directory, no_browser=args.no_browser, port=args.port)
    if args.command == "nbrun":
        return commands.nbrun(
            args.notebook, output=args.output, timeout=args.timeout, kernel=args.kernel
        )
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":
    sys.exit(main())
