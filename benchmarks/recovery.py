"""Recovery: what recovering and finishing a killed run costs (bar: <= 1.5x the
uninterrupted run).

    python -m benchmarks.recovery                  # a few minutes
    python -m benchmarks.recovery --update-readme  # also rewrite README.md's table

The run is ``ping_pong`` of 111,112 round trips (1,000,012 records) streamed to an
SQLite file (``VM(journal=path)``).  Each round, interleaved:

* uninterrupted: ``VM(journal=path).run(main())`` and ``vm.close()``;
* recovered: a file holding the first half of the run (a copy of the file of a run
  driven ``vm.step`` by ``vm.step`` to 500,000 records, as a killed run leaves it: the
  records of its last committed chunk) is recovered -- ``VM.recover(path)``,
  ``vm.run(main())`` (re-executing and checking the first half, then the second half
  live, appended) and ``vm.close()``.

Both are CPU time of this process (4 agents share the 2 cores: CPU time is what the
run costs, wall time is what the others leave); the ratio is the median of the
rounds' ratios.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import counterpoint as cp

from . import write_json, write_marked
from .run import _ping_pong

ROUND_TRIPS = 111_112  # 1,000,012 records


def half_file(path: Path, round_trips: int = ROUND_TRIPS) -> int:
    """Write about the first half of the run to ``path``, as a run killed half way leaves
    it (the records of its last committed chunk: a copy of the file, with its -wal, taken
    while the run stands there); return how many records it holds."""
    with tempfile.TemporaryDirectory() as folder:
        running = Path(folder) / "running.db"
        vm = cp.VM(journal=running)
        vm.spawn(_ping_pong(round_trips))
        while len(vm.journal) < 9 * round_trips // 2:  # (ping_pong: 9 records a round trip)
            vm.step(10_000)
        for suffix in ("", "-wal"):
            if Path(f"{running}{suffix}").exists():
                shutil.copy(f"{running}{suffix}", f"{path}{suffix}")
        vm.close()
    return len(cp.Journal.load(path))


def uninterrupted(path: Path, round_trips: int = ROUND_TRIPS) -> tuple[float, str]:
    start = time.process_time()
    vm = cp.VM(journal=path)
    vm.run(_ping_pong(round_trips))
    vm.close()
    return time.process_time() - start, vm.journal.digest()


def recovered(path: Path, round_trips: int = ROUND_TRIPS) -> tuple[float, str]:
    start = time.process_time()
    vm = cp.VM.recover(path)
    vm.run(_ping_pong(round_trips))
    vm.close()
    return time.process_time() - start, vm.journal.digest()


def measure(rounds: int, round_trips: int = ROUND_TRIPS) -> dict:
    whole, recovering, ratios = [], [], []
    with tempfile.TemporaryDirectory() as folder:
        half = Path(folder) / "half.db"
        half_records = half_file(half, round_trips)
        for number in range(rounds):
            whole_path = Path(folder) / f"whole{number}.db"
            seconds, digest = uninterrupted(whole_path, round_trips)
            records = len(cp.Journal.load(whole_path))
            copy = Path(folder) / f"recovered{number}.db"
            for suffix in ("", "-wal"):
                if Path(f"{half}{suffix}").exists():
                    shutil.copy(f"{half}{suffix}", f"{copy}{suffix}")
            recover_seconds, recovered_digest = recovered(copy, round_trips)
            if recovered_digest != digest:
                raise AssertionError("the recovered run's digest is not the uninterrupted run's")
            whole.append(seconds)
            recovering.append(recover_seconds)
            ratios.append(recover_seconds / seconds)
            print(f"round {number + 1}: {seconds:.2f} s vs {recover_seconds:.2f} s", flush=True)
    return {
        "records": records,
        "file_records": half_records,
        "uninterrupted_cpu_s": statistics.median(whole),
        "recovered_cpu_s": statistics.median(recovering),
        "ratio": statistics.median(ratios),
        "rounds": rounds,
    }


def table(results: dict) -> str:
    return "\n".join(
        [
            "| recovery (CPU time, median) | measured |",
            "|---|---|",
            f"| `ping_pong` streamed to a file, uninterrupted ({results['records']:,} records) "
            f"| {results['uninterrupted_cpu_s']:.2f} s |",
            f"| recovered from a file of its first {results['file_records']:,} records, "
            f"then finished | {results['recovered_cpu_s']:.2f} s |",
            f"| ratio (bar: at most 1.5x) | **{results['ratio']:.2f}x** |",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--update-readme", action="store_true")
    parser.add_argument("--json", default="benchmarks/results/recovery.json")
    args = parser.parse_args(argv)
    results = measure(args.rounds)
    markdown = table(results)
    print(markdown)
    if args.update_readme:
        intro = (
            f"Measured on this project's 2-core machine, shared (Python "
            f"{platform.python_version()}), {results['rounds']} interleaved rounds:\n\n"
        )
        write_marked(Path("README.md"), "recovery-table", intro + markdown)
    write_json(results, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
