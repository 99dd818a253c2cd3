"""The ``counterpoint`` command line.

    counterpoint run PROGRAM.py [--seed N] [--policy fifo|random] [--max-steps N]
                                [--journal-tail N]

``run`` loads the file, calls its ``async def main()`` on a fresh VM and prints
the result, the virtual time, the number of steps and the journal digest.  The
exit status is 0 when ``main`` returned and 1 when it raised.
"""

from __future__ import annotations

import argparse
import inspect
import runpy
import sys
import traceback
from pathlib import Path

from ._journal import _KIND_MASK, STEP
from ._vm import POLICIES, VM, user_traceback


def _load_main(path: Path):
    if not path.is_file():
        raise SystemExit(f"counterpoint run: no such file: {path}")
    namespace = runpy.run_path(str(path), run_name="__counterpoint__")
    main = namespace.get("main")
    if main is None:
        raise SystemExit(
            f"counterpoint run: {path} defines no `main`; write `async def main(): ...` "
            f"(its return value is printed)"
        )
    if not inspect.iscoroutinefunction(main):
        raise SystemExit(f"counterpoint run: `main` in {path} must be an `async def` function")
    return main


def run_program(
    path: Path, *, seed: int, policy: str, max_steps: int | None, journal_tail: int
) -> int:
    main = _load_main(path)
    vm = VM(seed=seed, policy=policy, max_steps=max_steps)
    status = 0
    try:
        result = vm.run(main())
        outcome = f"result:       {result!r}"
    except Exception as error:  # the program's failure is part of the report
        status = 1
        user_traceback(error)  # the program's frames only, not the VM's or this file's
        if error.__traceback__ is not None:
            text = "".join(traceback.format_exception(error)).rstrip()
        else:
            text = "".join(traceback.format_exception_only(error)).rstrip()
        outcome = "error:        " + text.replace("\n", "\n              ")
    steps = sum(1 for row in vm.journal._rows if row & _KIND_MASK == STEP)
    print(f"program:      {path}  (policy {policy}, seed {seed})")
    print(outcome)
    print(f"virtual time: {vm.now} tick{'' if vm.now == 1 else 's'}")
    print(f"steps:        {steps}")
    print(f"journal:      {len(vm.journal)} records, digest {vm.journal.digest()}")
    if journal_tail:
        print(f"last {min(journal_tail, len(vm.journal))} records:")
        for record in vm.journal[-journal_tail:]:
            print(
                f"  #{record.event_id:<6} t={record.tick:<5} task {record.task:<4} "
                f"{record.kind:<9} {record.data}"
            )
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="counterpoint", description="Counterpoint: a deterministic concurrency VM."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run a program's `async def main()` on the VM")
    run.add_argument("program", type=Path, help="a Python file defining `async def main()`")
    run.add_argument("--seed", type=int, default=0, help="VM seed (default 0)")
    run.add_argument("--policy", choices=POLICIES, default="fifo", help="scheduling policy")
    run.add_argument("--max-steps", type=int, default=None, help="step limit for the run")
    run.add_argument(
        "--journal-tail", type=int, default=0, metavar="N", help="also print the last N records"
    )
    args = parser.parse_args(argv)
    if args.command == "run":
        return run_program(
            args.program,
            seed=args.seed,
            policy=args.policy,
            max_steps=args.max_steps,
            journal_tail=args.journal_tail,
        )
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":
    sys.exit(main())
