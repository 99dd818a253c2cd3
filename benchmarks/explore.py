"""Exploration side by side: the programs a peer tool would run (``explore_programs.py``),
searched by ``cp.explore(strategy="dfs")`` and, when it is installed, by frontrun 0.7.

    python -m benchmarks.explore                  # about a minute
    python -m benchmarks.explore --quick          # a smoke test (small cap, one round)
    python -m benchmarks.explore --update-readme  # also rewrite README.md's table

For each program: the schedule (execution) at which the first bug was found, the schedules
run to exhaustion (or to the cap, ``--max-schedules``), whether the search was exhaustive,
the seconds and schedules per second (medians of ``--rounds`` rounds).  With ``cp.shared``
available (``explore(..., shared_only=True)``), every program runs a second time with its
plain shared state wrapped by ``cp.shared`` (the lock-order deadlock has none: it shares
only VM objects).  Then the Contract v2 throughput line: dfs
schedules per second on the 3-task lost update (bar: >= 10,000/s).

frontrun runs in a child process (``benchmarks/explore_frontrun.py``: it patches
``threading`` for its whole process); if it is not installed its columns say so.
"""

from __future__ import annotations

import argparse
import inspect
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import counterpoint as cp

from . import write_json, write_marked
from .explore_programs import PROGRAMS, Case

ROOT = Path(__file__).resolve().parent.parent
THROUGHPUT_PROGRAM = "lost update, 3 tasks"
THROUGHPUT_BAR = 10_000


def shared_only_available() -> bool:
    """``cp.shared`` and ``explore(..., shared_only=True)`` are in this version."""
    return hasattr(cp, "shared") and "shared_only" in inspect.signature(cp.explore).parameters


def measure(case: Case, max_schedules: int, rounds: int, shared: bool = False) -> dict:
    """Explore ``case`` with dfs ``rounds`` times: the columns of the table (medians)."""
    keywords: dict[str, Any] = {"max_schedules": max_schedules, "progress": False}
    if shared:
        keywords["shared_only"] = True
    reports = []
    for _ in range(rounds):
        program = case.program(cp.shared) if shared else case.program()
        reports.append(cp.explore(program, **keywords))
    report = reports[0]
    outcomes = sorted({str(outcome) for outcome in report.outcomes})
    seconds = statistics.median(r.seconds for r in reports)
    first_seconds = [r.first_finding_seconds for r in reports if r.first_finding is not None]
    return {
        "bug": case.bug,
        "bug_found": case.bug in outcomes,
        "outcomes": outcomes,
        "first_bug": report.first_finding,
        "first_bug_seconds": statistics.median(first_seconds) if first_seconds else None,
        "schedules": report.schedules,
        "exhaustive": report.exhaustive,
        "seconds": seconds,
        "schedules_per_second": report.schedules / seconds if seconds else None,
    }


def throughput(rounds: int, minimum_seconds: float = 0.5) -> dict:
    """dfs schedules per second on the 3-task lost update: each round explores it again
    and again for at least ``minimum_seconds``; the median of the rounds."""
    program = PROGRAMS[THROUGHPUT_PROGRAM].program()
    rates, cpu_rates = [], []
    schedules = 0
    for _ in range(rounds):
        done, started, cpu_started = 0, time.perf_counter(), time.process_time()
        while True:
            report = cp.explore(program, progress=False)
            done += report.schedules
            elapsed = time.perf_counter() - started
            if elapsed >= minimum_seconds:
                break
        schedules = report.schedules
        rates.append(done / elapsed)
        cpu_rates.append(done / max(time.process_time() - cpu_started, 1e-9))
    rate = statistics.median(rates)
    return {
        "program": THROUGHPUT_PROGRAM,
        "schedules_per_search": schedules,
        "schedules_per_second": rate,
        # per second of this process's CPU time: what a loaded machine's wall clock hides
        "schedules_per_cpu_second": statistics.median(cpu_rates),
        "bar": THROUGHPUT_BAR,
        "meets_bar": rate >= THROUGHPUT_BAR,
    }


def frontrun(max_schedules: int, rounds: int, programs: list[str]) -> dict:
    """frontrun's columns, measured in a child process; ``{"missing": why}`` without it."""
    command = [sys.executable, "-m", "benchmarks.explore_frontrun"]
    command += ["--max-executions", str(max_schedules), "--rounds", str(rounds)]
    command += ["--programs", *programs]
    try:
        done = subprocess.run(
            command, cwd=ROOT, capture_output=True, text=True, timeout=1800, check=True
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
        return {"missing": f"frontrun failed: {type(error).__name__}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- the table -------------------------------------------------------------------------


def _first(row: dict) -> str:
    if row.get("error"):
        return "error"
    if row.get("verdict") == "inconclusive":
        return "inconclusive"
    if not row["bug_found"]:
        return "none"
    return f"#{row['first_bug']}"


def _count(row: dict) -> str:
    if row.get("error"):
        return row["error"].split(":")[0]
    schedules = f"{row['schedules']:,}"
    return schedules if row["exhaustive"] else f"{schedules} (not exhaustive)"


def _rate(row: dict) -> str:
    if row.get("error") or not row.get("schedules_per_second"):
        return ""
    return f"{row['seconds']:.3f} s, {row['schedules_per_second']:,.0f}/s"


def table(results: dict) -> str:
    shared = results.get("shared_only")
    peer = results.get("frontrun", {})
    head = ["program", "bug", "dfs: first bug", "dfs: schedules", "dfs: time, rate"]
    if shared is not None:
        head += ["shared_only: first bug", "shared_only: schedules"]
    head += ["frontrun: first bug", "frontrun: schedules", "frontrun: time, rate"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, row in results["counterpoint"].items():
        cells = [name, row["bug"] or "none (correct)", _first(row), _count(row), _rate(row)]
        if shared is not None:
            cells += [_first(shared[name]), _count(shared[name])]
        if "missing" in peer:
            cells += [peer["missing"], "", ""]
        elif name in peer:
            cells += [_first(peer[name]), _count(peer[name]), _rate(peer[name])]
        else:
            cells += ["not run", "", ""]
        lines.append("| " + " | ".join(cells) + " |")
    if results.get("frontrun_asyncio"):
        lines += ["", *asyncio_table(results)]
    rate = results["throughput"]
    lines += [
        "",
        f"Throughput (Contract v2 bar): dfs on the {rate['program']} "
        f"({rate['schedules_per_search']} schedules per search): "
        f"**{rate['schedules_per_second']:,.0f} schedules/s** "
        f"({rate['schedules_per_cpu_second']:,.0f} per CPU second; "
        f"bar: >= {rate['bar']:,}/s: {'met' if rate['meets_bar'] else 'not met'}).",
    ]
    if shared is None:
        lines.append(
            "shared_only columns: `cp.shared` / `explore(..., shared_only=True)` are not in "
            "this version."
        )
    return "\n".join(lines)


def asyncio_table(results: dict) -> list[str]:
    """frontrun's asyncio mode beside Counterpoint's dfs on the programs it can express."""
    lines = [
        "| program (frontrun's asyncio mode) | dfs: schedules | frontrun asyncio: first bug "
        "| frontrun asyncio: schedules | frontrun asyncio: time, rate |",
        "|---|---|---|---|---|",
    ]
    for name, row in results["frontrun_asyncio"].items():
        ours = _count(results["counterpoint"][name])
        lines.append(f"| {name} | {ours} | {_first(row)} | {_count(row)} | {_rate(row)} |")
    return lines


def update_readme(readme: Path, markdown: str, rounds: int, max_schedules: int) -> None:
    intro = (
        f"Measured on this project's 2-core machine (Python {platform.python_version()}; "
        f"medians of {rounds} rounds; at most {max_schedules:,} schedules; frontrun 0.7 on "
        "threads, DPOR, no preemption bound). The machine is shared, so rates by the wall "
        "clock swing from run to run; the throughput line gives CPU time too:\n\n"
    )
    write_marked(readme, "explore-table", intro + markdown)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke test: small cap, 1 round")
    parser.add_argument("--max-schedules", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-frontrun", action="store_true", help="skip frontrun's columns")
    parser.add_argument("--update-readme", action="store_true")
    parser.add_argument("--json", default="benchmarks/results/explore.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.max_schedules, args.rounds = 200, 1
    names = list(PROGRAMS)
    results: dict[str, Any] = {
        "counterpoint": {
            name: measure(PROGRAMS[name], args.max_schedules, args.rounds) for name in names
        }
    }
    if shared_only_available():
        results["shared_only"] = {
            name: measure(PROGRAMS[name], args.max_schedules, args.rounds, shared=True)
            for name in names
        }
    results["throughput"] = throughput(args.rounds, 0.1 if args.quick else 0.5)
    if args.no_frontrun:
        results["frontrun"] = {"missing": "frontrun not run (--no-frontrun)"}
    else:
        peer = frontrun(args.max_schedules, args.rounds, names)
        results["frontrun"] = peer.get("threads", peer)
        if "asyncio" in peer:
            results["frontrun_asyncio"] = peer["asyncio"]
    markdown = table(results)
    print(markdown)
    if args.update_readme:
        update_readme(ROOT / "README.md", markdown, args.rounds, args.max_schedules)
    write_json(results, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
