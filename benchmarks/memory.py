"""Memory over repeated runs: the bytes each run leaves behind (the slope).

    python -m benchmarks.memory                   # 200,000 runs of each program (minutes)
    python -m benchmarks.memory --runs 1000000    # the issue's million runs
    python -m benchmarks.memory --quick           # a smoke test (seconds)
    python -m benchmarks.memory --json benchmarks/results/memory.json

Each program runs again and again on one VM with the journal off
(``journal=False``), as a long-lived service or notebook would:

* ``worker``: start an inline worker and wait for it;
* ``scope``: ``async with cp.scope(timeout=10**6)`` exited early (after a one-tick
  sleep, so every run's timeout has a deadline of its own);
* ``spawn``: spawn a task and join it.

Two measures per program, both after a warm-up longer than the 10,000 settled worker
outcomes a VM keeps (``docs/workers.md``):

* RSS slope: the resident set size sampled 20 times over ``--runs`` runs, and the
  least-squares slope in bytes per run.  The allocator keeps freed memory for reuse,
  so RSS grows only when something is retained;
* traced: tracemalloc on from before the warm-up, bytes still allocated after
  ``--traced`` more runs, per run (exact, whatever the allocator does).

A program is ``flat`` when it retains less than 8 bytes per run by tracemalloc.
(Time is not measured here: see ``benchmarks/run.py``.)
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import time
import tracemalloc
from pathlib import Path

import counterpoint as cp
from counterpoint import _workers

FLAT = 8.0  # bytes per run


@cp.worker.task(name="memory_echo")
def memory_echo(payload):
    return payload


async def _worker():
    handle = cp.worker.start("memory_echo", 1)
    return await cp.worker.wait(handle)


async def _scope():
    async with cp.scope(timeout=10**6):
        await cp.sleep(1)


async def _child():
    return 1


async def _spawn():
    return await cp.spawn(_child())


PROGRAMS = {"worker": _worker, "scope": _scope, "spawn": _spawn}


def rss() -> int:
    """The resident set size of this process in bytes (peak size where /proc is absent)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


def slope(points: list[tuple[int, int]]) -> float:
    """Least-squares slope of ``(runs, bytes)`` points, in bytes per run."""
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    var = sum((x - mean_x) ** 2 for x, _ in points)
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / var if var else 0.0


def rss_slope(program, runs: int, warm_up: int, samples: int = 20) -> dict:
    vm = cp.VM(journal=False)
    for _ in range(warm_up):
        vm.run(program())
    gc.collect()
    points = [(0, rss())]
    step = max(1, runs // samples)
    start = time.perf_counter()
    done = 0
    while done < runs:
        for _ in range(min(step, runs - done)):
            vm.run(program())
        done += min(step, runs - done)
        points.append((done, rss()))
    elapsed = time.perf_counter() - start
    vm.close()
    return {
        "runs": runs,
        "rss_start_mb": points[0][1] / 2**20,
        "rss_end_mb": points[-1][1] / 2**20,
        "rss_bytes_per_run": slope(points),
        "seconds": elapsed,
    }


def traced_per_run(program, runs: int, warm_up: int) -> float:
    vm = cp.VM(journal=False)
    gc.collect()
    tracemalloc.start()
    try:
        for _ in range(warm_up):
            vm.run(program())
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(runs):
            vm.run(program())
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
        vm.close()
    return (after - before) / runs


def measure(runs: int, traced: int, warm_up: int) -> dict[str, dict]:
    results = {}
    for name, program in PROGRAMS.items():
        row = rss_slope(program, runs, warm_up)
        row["traced_runs"] = traced
        row["traced_bytes_per_run"] = traced_per_run(program, traced, warm_up)
        row["flat"] = row["traced_bytes_per_run"] < FLAT
        results[name] = row
        print(f"  {name} done", file=sys.stderr)
    return results


def table(results: dict[str, dict]) -> str:
    lines = [
        "| program | runs | RSS start MB | RSS end MB | RSS slope bytes/run "
        "| traced runs | traced bytes/run | flat |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, row in results.items():
        lines.append(
            f"| {name} | {row['runs']:,} | {row['rss_start_mb']:.1f} | {row['rss_end_mb']:.1f} "
            f"| {row['rss_bytes_per_run']:.2f} | {row['traced_runs']:,} "
            f"| {row['traced_bytes_per_run']:.2f} | {'yes' if row['flat'] else 'NO'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=200_000, help="runs per program (RSS)")
    parser.add_argument("--traced", type=int, default=20_000, help="runs under tracemalloc")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke test")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    kept = _workers.KEPT_OUTCOMES
    try:
        if args.quick:  # keep fewer outcomes so that a short warm-up gets past them
            _workers.KEPT_OUTCOMES = 200
            args.runs, args.traced = 2_000, 1_000
        warm_up = _workers.KEPT_OUTCOMES + 1_000
        results = measure(args.runs, args.traced, warm_up)
    finally:
        _workers.KEPT_OUTCOMES = kept
    print(table(results))
    note = " (quick: a VM kept 200 worker outcomes, not 10,000)" if args.quick else ""
    print(
        f"\nwarm-up {warm_up:,} runs per program; flat = under {FLAT:g} bytes/run "
        f"retained (tracemalloc){note}; Python {platform.python_version()}"
    )
    if args.json:
        args.json.write_text(json.dumps({"results": results, "warm_up": warm_up}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
