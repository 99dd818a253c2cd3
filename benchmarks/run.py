"""Run the PRODUCT.md workloads on Counterpoint and its peers, side by side.

    python -m benchmarks.run                # full sizes, 7 rounds (a few minutes)
    python -m benchmarks.run --quick        # tiny sizes, for a smoke test
    python -m benchmarks.run --rounds 11 --json benchmarks/results/latest.json
    python -m benchmarks.run --update-readme    # also rewrite README.md's table

Each round runs every (workload, runtime) pair once, in a rotating order, so
that slow drifts of the machine hit every runtime alike; the table shows the
median of the rounds.  ``ratio`` is the median time divided by the fastest
peer's (asyncio, trio, SimPy) median on that workload: <= 1.0 means Counterpoint
is at least as fast.  ``on/off`` compares the journal on and off.

The journal's memory cost is measured on ``ping_pong`` with tracemalloc: bytes
retained by the journal divided by its number of records.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

from . import workloads, write_marked
from .workloads import FULL, PEERS, QUICK, RUNTIMES, WORKLOADS, Sizes


def measure(sizes: Sizes, rounds: int, runtimes: list[str]) -> dict[str, dict[str, list[float]]]:
    expected = workloads.expected(sizes)
    jobs = {name: RUNTIMES[name]()(sizes) for name in runtimes}
    times: dict[str, dict[str, list[float]]] = {w: {r: [] for r in runtimes} for w in WORKLOADS}
    for round_index in range(rounds):
        for workload in WORKLOADS:
            order = (
                runtimes[round_index % len(runtimes) :] + runtimes[: round_index % len(runtimes)]
            )
            for runtime in order:
                gc.collect()
                start = time.perf_counter()
                result = jobs[runtime][workload]()
                elapsed = time.perf_counter() - start
                if result != expected[workload]:
                    raise SystemExit(
                        f"{runtime} computed {result!r} for {workload}, expected "
                        f"{expected[workload]!r}: the implementations disagree"
                    )
                times[workload][runtime].append(elapsed)
        print(f"  round {round_index + 1}/{rounds} done", file=sys.stderr)
    return times


def journal_memory(sizes: Sizes) -> dict[str, float]:
    """Bytes per record of the journal of ``ping_pong`` (tracemalloc).

    Everything else the run allocated is gone when it returns (the tasks are
    done), so the memory still traced is the journal's: its rows, its values
    (the ints that were sent, which the journal keeps alive) and its index.
    """
    import counterpoint as cp

    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    vm = cp.VM()
    vm.run(_ping_pong(sizes.ping_pong))
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    records = len(vm.journal)
    return {
        "records": records,
        "bytes": after - before,
        "bytes_per_record": (after - before) / records,
    }


def _ping_pong(n):
    import counterpoint as cp

    async def main():
        ping, pong = cp.channel(1), cp.channel(1)

        async def pinger():
            for i in range(n):
                await ping.send(i)
                await pong.recv()

        async def ponger():
            for _ in range(n):
                await pong.send(await ping.recv())

        await cp.par(pinger(), ponger())

    return main()


def summarize(times: dict[str, dict[str, list[float]]], runtimes: list[str]) -> dict:
    summary = {}
    for workload, per_runtime in times.items():
        medians = {r: statistics.median(per_runtime[r]) for r in runtimes}
        peers = {r: medians[r] for r in PEERS if r in medians}
        fastest = min(peers, key=peers.get) if peers else None
        row = {"median_s": medians, "fastest_peer": fastest}
        if fastest is not None:
            row["ratio_to_fastest_peer"] = {r: medians[r] / peers[fastest] for r in runtimes}
        if "counterpoint" in medians and "counterpoint (journal off)" in medians:
            row["journal_on_over_off"] = (
                medians["counterpoint"] / medians["counterpoint (journal off)"]
            )
        summary[workload] = row
    return summary


def table(summary: dict, runtimes: list[str]) -> str:
    """A markdown table: one row per workload, one column per runtime."""
    head = "| workload | " + " | ".join(runtimes) + " | journal on/off |"
    rule = "|---|" + "---|" * len(runtimes) + "---|"
    lines = [head, rule]
    for workload, row in summary.items():
        cells = []
        for runtime in runtimes:
            cell = f"{row['median_s'][runtime] * 1000:.0f} ms"
            if "ratio_to_fastest_peer" in row:
                cell += f" ({row['ratio_to_fastest_peer'][runtime]:.2f})"
            cells.append(cell)
        on_off = row.get("journal_on_over_off")
        lines.append(
            f"| {workload} | " + " | ".join(cells) + f" | {on_off:.2f} |"
            if on_off is not None
            else f"| {workload} | " + " | ".join(cells) + " | - |"
        )
    return "\n".join(lines)


def update_readme(readme: Path, markdown: str, memory: dict | None, rounds: int) -> None:
    """Rewrite README.md's benchmark section between its two markers."""
    lines = [
        f"Measured on this project's 2-core machine (Python {platform.python_version()}), "
        f"median of {rounds} rounds:",
        "",
        markdown,
    ]
    if memory is not None:
        lines += [
            "",
            f"Journal memory on `ping_pong`: {memory['bytes_per_record']:.1f} bytes per record "
            f"({memory['records']:,} records, values included).",
        ]
    write_marked(readme, "benchmark-table", "\n".join(lines))
    print(f"updated the table in {readme}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test)")
    parser.add_argument("--rounds", type=int, default=7, help="rounds (median over them)")
    parser.add_argument(
        "--only", nargs="*", choices=list(RUNTIMES), help="runtimes to run (default: all)"
    )
    parser.add_argument(
        "--update-readme",
        action="store_true",
        help="replace the table after <!-- benchmark-table --> in README.md",
    )
    parser.add_argument(
        "--json",
        default="benchmarks/results/latest.json",
        help="where to write the results as JSON ('' to skip)",
    )
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    runtimes = list(args.only) if args.only else list(RUNTIMES)
    print(f"Counterpoint benchmarks: {args.rounds} rounds, sizes {sizes}", file=sys.stderr)
    times = measure(sizes, args.rounds, runtimes)
    summary = summarize(times, runtimes)
    memory = journal_memory(sizes) if "counterpoint" in runtimes else None
    print()
    print("Median wall time per run (ratio to the fastest peer; <= 1.00 is at least as fast):")
    print()
    print(table(summary, runtimes))
    if memory is not None:
        print()
        print(
            f"Journal memory on ping_pong: {memory['bytes_per_record']:.1f} bytes/record "
            f"({memory['records']} records, {memory['bytes'] / 1e6:.1f} MB)"
        )
    if args.update_readme:
        update_readme(Path("README.md"), table(summary, runtimes), memory, args.rounds)
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(
            json.dumps(
                {
                    "sizes": sizes.__dict__,
                    "rounds": args.rounds,
                    "python": sys.version,
                    "machine": platform.platform(),
                    "times_s": times,
                    "summary": summary,
                    "journal_memory": memory,
                },
                indent=2,
            )
        )
        print(f"\nwrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
