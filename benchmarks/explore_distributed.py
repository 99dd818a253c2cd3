"""Distributed exploration: ``cp.explore(..., processes=N)`` against one process.

    python -m benchmarks.explore_distributed                  # a few minutes
    python -m benchmarks.explore_distributed --update-readme  # also rewrite README.md's curve

The search: a dfs of the 4-task lost update after three binary ``cp.choose`` calls,
20,160 schedules, exhaustive (no cap, so no work is speculative).  Each round runs it
in this process, with ``processes=1`` and with ``processes=2`` (the order rotates from
round to round), checks that the three reports are equal but for the seconds, and the
curve gives medians over rounds (the speed-up is the median of the per-round ratios),
so a shared machine whose speed drifts cannot skew it.  The clusters are started
before timing (``processes=N`` keeps one per process).  The machine's load average
is printed with the results: other work on the 2 cores shows there.

Where the CPU goes, also printed (medians over rounds; steadier than wall seconds on a
shared machine): one process's CPU seconds; with ``processes=2``, the jobs' (on the
workers), the master process's (its search thread and Dask's client and scheduler,
which share its process), and of that the search thread's alone per run (folding the
jobs' results, choosing at the frames above them, sending jobs).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import counterpoint as cp
from counterpoint import _distributed

from . import write_json, write_marked

CHOICES = 3
TASKS = 4


async def lost_update():
    """``TASKS`` tasks each read a shared counter, checkpoint, and write it back plus one,
    after ``CHOICES`` binary data choices (which multiply the tree)."""
    picked = [cp.choose(range(2)) for _ in range(CHOICES)]
    box = {"n": 0}

    async def add():
        seen = box["n"]
        await cp.checkpoint()
        box["n"] = seen + 1

    await cp.par(*[add() for _ in range(TASKS)])
    return (sum(picked), box["n"])


def same(report: cp.ExploreReport) -> tuple:
    """A report but for its seconds."""
    return (
        report.schedules,
        list(report.outcomes.items()),
        report.failures,
        report.deadlocks,
        report.first_finding,
        report.exhaustive,
        report.assumptions,
        report.pruned,
    )


def timed(processes: int | None, max_schedules: int) -> tuple[float, float, cp.ExploreReport]:
    """Wall seconds, this process's CPU seconds, and the report."""
    options = {} if processes is None else {"processes": processes}
    start, cpu = time.perf_counter(), time.process_time()
    report = cp.explore(lost_update, max_schedules=max_schedules, progress=False, **options)
    return time.perf_counter() - start, time.process_time() - cpu, report


def measure(rounds: int, max_schedules: int) -> dict:
    setups = (None, 1, 2)
    for processes in (1, 2):  # start the clusters (and their workers' imports) untimed
        timed(processes, 10)
    seconds: dict = {setup: [] for setup in setups}
    cpu: dict = {name: [] for name in ("one process", "jobs", "master process", "master thread")}
    schedules = None
    loads = []
    for number in range(rounds):
        reports = {}
        for k in range(len(setups)):
            setup = setups[(number + k) % len(setups)]
            elapsed, used, reports[setup] = timed(setup, max_schedules)
            seconds[setup].append(elapsed)
            if setup is None:
                cpu["one process"].append(used)
            elif setup == 2:
                cpu["jobs"].append(_distributed.last_search["job_cpu"])
                cpu["master process"].append(used)
                cpu["master thread"].append(_distributed.last_search["master_cpu"])
        one = same(reports[None])
        assert all(same(report) == one for report in reports.values()), "reports differ"
        schedules = reports[None].schedules
        loads.append(os.getloadavg()[0])
    rows = {}
    for setup in setups:
        median = statistics.median(seconds[setup])
        ratios = [a / b for a, b in zip(seconds[None], seconds[setup], strict=True)]
        rows["1 process" if setup is None else f"processes={setup}"] = {
            "seconds": median,
            "schedules_per_second": schedules / median,
            "speedup": statistics.median(ratios),
        }
    return {
        "schedules": schedules,
        "cores": os.cpu_count(),
        "load_average": statistics.median(loads),
        "rows": rows,
        "cpu_seconds": {name: statistics.median(values) for name, values in cpu.items()},
    }


def cpu_line(results: dict) -> str:
    """Where the CPU went (``processes=2``), in words."""
    cpu = results.get("cpu_seconds")
    if not cpu:
        return ""
    per_run = cpu["master thread"] / results["schedules"] * 1e6
    return (
        f"CPU seconds: one process {cpu['one process']:.2f}; with processes=2 the jobs "
        f"{cpu['jobs']:.2f} and the master process {cpu['master process']:.2f} (Dask's client "
        f"and scheduler share it; its search thread alone {cpu['master thread']:.3f}, "
        f"{per_run:.1f} µs per run)."
    )


def table(results: dict) -> str:
    lines = [
        f"| dfs, {results['schedules']:,} schedules | seconds | schedules/s "
        "| speed-up vs one process |",
        "|---|---|---|---|",
    ]
    for name, row in results["rows"].items():
        lines.append(
            f"| {name} | {row['seconds']:.2f} s | {row['schedules_per_second']:,.0f} "
            f"| **{row['speedup']:.2f}x** |"
        )
    return "\n".join(lines)


def update_readme(readme: Path, markdown: str, results: dict, rounds: int) -> None:
    """Rewrite README.md's distributed-exploration curve between its two markers."""
    intro = (
        f"Measured on this project's {results['cores']}-core machine (Python "
        f"{platform.python_version()}, load average {results['load_average']:.1f} while "
        f"measuring), median of {rounds} rounds:\n\n"
    )
    cpu = cpu_line(results)
    text = intro + markdown + (f"\n\n{cpu}" if cpu else "")
    write_marked(readme, "explore-distributed-table", text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-schedules", type=int, default=100_000)
    parser.add_argument("--update-readme", action="store_true")
    parser.add_argument("--json", default="benchmarks/results/explore_distributed.json")
    args = parser.parse_args(argv)
    results = measure(args.rounds, args.max_schedules)
    markdown = table(results)
    print(markdown)
    print(cpu_line(results))
    print(f"load average while measuring: {results['load_average']:.2f}")
    if args.update_readme:
        update_readme(Path("README.md"), markdown, results, args.rounds)
    write_json({"rounds": args.rounds, **results}, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
