"""Workers: real parallel speed-up, and the cost of one worker round trip.

    python -m benchmarks.workers                  # about two minutes
    python -m benchmarks.workers --update-readme  # also rewrite README.md's table

* speed-up: 2 and 4 CPU-bound jobs (calibrated to about 0.5 s each on this
  machine) run one after the other in this process, then as workers on a
  ``ProcessBackend`` with one process per core.  Each round times the two back to
  back, and the speed-up is the median over rounds of sequential / parallel, so a
  machine whose speed drifts (a shared VM) cannot skew it.  The pool is warmed up
  first (process start-up is paid once per pool, not per job).  The standard
  library's ``ProcessPoolExecutor`` runs the same jobs in the same rounds (the two
  pools take turns at going first), as a reference for what this machine allows.
* overhead: a trivial worker started and awaited 200 times in a row on each
  backend; the figure is wall time per start -> observed round trip.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import counterpoint as cp

from . import write_json, write_marked


@cp.worker.task
def burn(iterations: int) -> int:
    """CPU-bound work: pure-Python arithmetic (holds the GIL, so threads would not help)."""
    total = 0
    for i in range(iterations):
        total = (total + i * i) % 1_000_003
    return total


@cp.worker.task
def echo(payload):
    return payload


def calibrate(seconds: float = 0.5) -> int:
    """Iterations of ``burn`` that take about ``seconds`` here."""
    iterations = 200_000
    while True:
        start = time.perf_counter()
        burn(iterations)
        elapsed = time.perf_counter() - start
        if elapsed > 0.1:
            return int(iterations * seconds / elapsed)
        iterations *= 2


def run_parallel(backend, jobs: int, iterations: int) -> float:
    async def main():
        handles = [cp.worker.start("burn", iterations) for _ in range(jobs)]
        return [await cp.worker.wait(h) for h in handles]

    vm = cp.VM(workers=backend)
    start = time.perf_counter()
    statuses = vm.run(main())
    elapsed = time.perf_counter() - start
    assert statuses == [1] * jobs, statuses
    return elapsed


def run_stdlib(pool, jobs: int, iterations: int) -> float:
    start = time.perf_counter()
    list(pool.map(burn, [iterations] * jobs))
    return time.perf_counter() - start


def run_sequential(jobs: int, iterations: int) -> float:
    start = time.perf_counter()
    for _ in range(jobs):
        burn(iterations)
    return time.perf_counter() - start


def round_trip(backend, count: int) -> float:
    async def main():
        for i in range(count):
            handle = cp.worker.start("echo", i)
            assert await cp.worker.wait(handle) == 1

    vm = cp.VM(workers=backend)
    start = time.perf_counter()
    vm.run(main())
    return (time.perf_counter() - start) / count


def measure(rounds: int, round_trips: int) -> dict:
    iterations = calibrate()
    processes = os.cpu_count() or 2
    pool = cp.worker.ProcessBackend(processes=processes)
    threads = cp.worker.ThreadBackend()
    stdlib = ProcessPoolExecutor(processes)
    try:
        run_parallel(pool, processes, 1000)  # start the processes before timing
        run_stdlib(stdlib, processes, 1000)
        speedup = {}
        for jobs in (2, 4):
            rows = []
            for number in range(rounds):  # the two pools take turns at going first
                sequential = run_sequential(jobs, iterations)
                if number % 2:
                    reference = run_stdlib(stdlib, jobs, iterations)
                    ours = run_parallel(pool, jobs, iterations)
                else:
                    ours = run_parallel(pool, jobs, iterations)
                    reference = run_stdlib(stdlib, jobs, iterations)
                rows.append((sequential, ours, reference))
            speedup[jobs] = {
                "sequential_s": statistics.median(row[0] for row in rows),
                "parallel_s": statistics.median(row[1] for row in rows),
                "speedup": statistics.median(row[0] / row[1] for row in rows),
                "stdlib_s": statistics.median(row[2] for row in rows),
                "stdlib_speedup": statistics.median(row[0] / row[2] for row in rows),
            }
        overhead = {}
        for name, backend in (("inline", "inline"), ("thread", threads), ("process", pool)):
            round_trip(backend, 20)  # warm up
            overhead[name] = statistics.median(
                round_trip(backend, round_trips) for _ in range(rounds)
            )
    finally:
        pool.close()
        threads.close()
        stdlib.shutdown()
    return {
        "processes": processes,
        "job_iterations": iterations,
        "speedup": speedup,
        "overhead_s": overhead,
    }


def table(results: dict) -> str:
    lines = [
        "| CPU-bound jobs (~0.5 s each) | one after the other | cp.worker, process backend "
        "| speed-up | stdlib ProcessPoolExecutor (reference) |",
        "|---|---|---|---|---|",
    ]
    for jobs, row in results["speedup"].items():
        lines.append(
            f"| {jobs} | {row['sequential_s']:.2f} s | {row['parallel_s']:.2f} s "
            f"| **{row['speedup']:.2f}x** | {row['stdlib_s']:.2f} s "
            f"({row['stdlib_speedup']:.2f}x) |"
        )
    lines += ["", "| backend | start -> observed, per worker |", "|---|---|"]
    for name, seconds in results["overhead_s"].items():
        lines.append(f"| {name} | {seconds * 1e6:.0f} µs |")
    return "\n".join(lines)


def update_readme(readme: Path, markdown: str, results: dict, rounds: int) -> None:
    """Rewrite README.md's worker table between its two markers."""
    intro = (
        f"Measured on this project's {results['processes']}-core machine "
        f"(Python {platform.python_version()}), median of {rounds} rounds:\n\n"
    )
    write_marked(readme, "workers-table", intro + markdown)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--round-trips", type=int, default=200)
    parser.add_argument("--update-readme", action="store_true")
    parser.add_argument("--json", default="benchmarks/results/workers.json")
    args = parser.parse_args(argv)
    results = measure(args.rounds, args.round_trips)
    markdown = table(results)
    print(markdown)
    if args.update_readme:
        update_readme(Path("README.md"), markdown, results, args.rounds)
    write_json({"rounds": args.rounds, **results}, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
