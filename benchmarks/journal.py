"""Journal files, time travel and exploration: how fast.

    python -m benchmarks.journal                  # about a minute
    python -m benchmarks.journal --update-readme  # also rewrite README.md's table

* streaming: ``ping_pong`` (50,000 round trips, 450,016 records) with the journal
  in memory vs streamed to an SQLite file (``VM(journal=path)``), paired rounds,
  median ratio (bar: within 2x).
* a 1,000,000-record journal (``ping_pong`` of 111,112 round trips): ``save``,
  ``Journal.load`` (bar: seconds, not minutes), and ``state_at``: the first call
  (which builds the snapshots) and then random events (bar: well under 100 ms).
* ``TimeTravel`` on that journal (Python side; the browser's figures are measured by
  the browser benchmark): opening it (at event 0: a journal this big), building the
  snapshots by its "warm" requests, moving ``event`` (median / worst over random events
  after that: the kernel's part of a scrub step, bar well under 50 ms), a jump to a
  task's next effect, and the static picture at the last event.
* exploration: schedules per second for ``dfs``, ``random`` and ``pct`` on a
  lost-update race and on dining philosophers.
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import tempfile
import time
from pathlib import Path

import counterpoint as cp

from . import write_json, write_marked
from .run import _ping_pong


def streaming(rounds: int) -> dict:
    ratios, memory, streamed = [], [], []
    with tempfile.TemporaryDirectory() as folder:
        for number in range(rounds):
            start = time.perf_counter()
            cp.VM().run(_ping_pong(50_000))
            in_memory = time.perf_counter() - start
            vm = cp.VM(journal=Path(folder) / f"pp{number}.db")
            start = time.perf_counter()
            vm.run(_ping_pong(50_000))
            to_file = time.perf_counter() - start
            vm.close()
            memory.append(in_memory)
            streamed.append(to_file)
            ratios.append(to_file / in_memory)
    return {
        "in_memory_s": statistics.median(memory),
        "streamed_s": statistics.median(streamed),
        "ratio": statistics.median(ratios),
    }


def _at_random_events(call, total: int, count: int, seed: int) -> list[float]:
    """Seconds that ``call(event)`` takes for ``count`` random events ``0..total``."""
    rng = random.Random(seed)
    times = []
    for _ in range(count):
        event = rng.randrange(total + 1)
        start = time.perf_counter()
        call(event)
        times.append(time.perf_counter() - start)
    return times


def million(accesses: int) -> dict:
    vm = cp.VM()
    vm.run(_ping_pong(111_112))
    journal = vm.journal
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "million.db"
        start = time.perf_counter()
        journal.save(path)
        saved = time.perf_counter() - start
        start = time.perf_counter()
        loaded = cp.Journal.load(path)
        load_s = time.perf_counter() - start
        assert loaded.digest() == journal.digest()
        size = path.stat().st_size
    start = time.perf_counter()
    loaded.state_at(len(loaded))
    first = time.perf_counter() - start
    times = _at_random_events(loaded.state_at, len(loaded), accesses, seed=0)
    return {
        **timetravel(journal, accesses),
        "records": len(journal),
        "file_mb": size / 1e6,
        "save_s": saved,
        "load_s": load_s,
        "state_at_first_s": first,
        "state_at_median_ms": statistics.median(times) * 1000,
        "state_at_worst_ms": max(times) * 1000,
    }


def timetravel(journal: cp.Journal, accesses: int) -> dict:
    """The widget on a journal whose time travel is still cold (no state_at call yet)."""
    start = time.perf_counter()
    travel = cp.widgets.TimeTravel(journal)
    opened = time.perf_counter() - start
    assert travel.event == 0  # (a journal this big opens at its start)
    start = time.perf_counter()
    requests = 0
    while True:
        reply, _ = travel.pane._answer_warm({})
        requests += 1
        if reply["warmed"] >= reply["total"]:
            break
    warmed = time.perf_counter() - start

    def move(event: int) -> None:
        travel.event = event

    times = _at_random_events(move, len(journal), accesses, seed=1)
    start = time.perf_counter()
    travel.next_effect(task=2)
    jump = time.perf_counter() - start
    travel.event = len(journal)
    start = time.perf_counter()
    travel._repr_mimebundle_()
    picture = time.perf_counter() - start
    travel.close()
    return {
        "timetravel_open_s": opened,
        "timetravel_warm_s": warmed,
        "timetravel_warm_requests": requests,
        "timetravel_event_median_ms": statistics.median(times) * 1000,
        "timetravel_event_worst_ms": max(times) * 1000,
        "timetravel_jump_ms": jump * 1000,
        "timetravel_picture_end_s": picture,
    }


def _race():
    async def main():
        box = {"n": 0}

        async def add():
            for _ in range(3):
                seen = box["n"]
                await cp.checkpoint()
                box["n"] = seen + 1

        await cp.par(add(), add())
        return box["n"]

    return main


def _philosophers(seats: int = 3):
    async def main():
        forks = [cp.Lock() for _ in range(seats)]

        async def philosopher(seat):
            async with forks[seat], forks[(seat + 1) % seats]:
                await cp.sleep(1)

        await cp.par(*[philosopher(seat) for seat in range(seats)])
        return "fed"

    return main


def exploration(max_schedules: int) -> dict:
    out = {}
    for name, program in (("lost update", _race()), ("philosophers", _philosophers())):
        for strategy in ("dfs", "random", "pct"):
            report = cp.explore(
                program, strategy=strategy, max_schedules=max_schedules, progress=False
            )
            out[f"{name} / {strategy}"] = {
                "schedules": report.schedules,
                "exhaustive": report.exhaustive,
                "per_second": report.schedules_per_second,
                "outcomes": sorted(map(str, report.outcomes)),
            }
    return out


def table(results: dict) -> str:
    stream, big = results["streaming"], results["million"]
    lines = [
        "| journal | measured |",
        "|---|---|",
        f"| `ping_pong`, journal in memory / streamed to SQLite | "
        f"{stream['in_memory_s'] * 1000:.0f} ms / {stream['streamed_s'] * 1000:.0f} ms "
        f"(**{stream['ratio']:.2f}x**) |",
        f"| save a {big['records']:,}-record journal ({big['file_mb']:.0f} MB) | "
        f"{big['save_s']:.1f} s |",
        f"| `Journal.load` of it | **{big['load_s']:.1f} s** |",
        f"| `state_at`: first call (builds snapshots) | {big['state_at_first_s']:.1f} s |",
        f"| `state_at`: any event after that, median / worst | "
        f"{big['state_at_median_ms']:.1f} ms / **{big['state_at_worst_ms']:.1f} ms** |",
        f"| `TimeTravel` of it: open (at event 0, with its Timeline) | "
        f"{big['timetravel_open_s']:.2f} s |",
        f"| `TimeTravel`: build the snapshots ({big['timetravel_warm_requests']} warm "
        f"requests, while idle) | {big['timetravel_warm_s']:.2f} s |",
        f"| `TimeTravel`: move `event` (the kernel's part of a scrub step), median / worst | "
        f"{big['timetravel_event_median_ms']:.1f} ms / "
        f"**{big['timetravel_event_worst_ms']:.1f} ms** |",
        f"| `TimeTravel`: jump to a task's next effect | {big['timetravel_jump_ms']:.2f} ms |",
        f"| `TimeTravel`: static picture at the last event | "
        f"{big['timetravel_picture_end_s']:.2f} s |",
        "",
        "| exploration | schedules | exhaustive | outcomes found | schedules/s |",
        "|---|---|---|---|---|",
    ]
    for name, row in results["exploration"].items():
        lines.append(
            f"| {name} | {row['schedules']} | {'yes' if row['exhaustive'] else 'no'} "
            f"| {', '.join(row['outcomes'])} | {row['per_second']:,.0f} |"
        )
    return "\n".join(lines)


def update_readme(readme: Path, markdown: str) -> None:
    intro = f"Measured on this project's 2-core machine (Python {platform.python_version()}):\n\n"
    write_marked(readme, "journal-table", intro + markdown)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7, help="streaming rounds")
    parser.add_argument("--accesses", type=int, default=50, help="random state_at calls")
    parser.add_argument("--schedules", type=int, default=2000, help="max_schedules")
    parser.add_argument("--update-readme", action="store_true")
    parser.add_argument("--json", default="benchmarks/results/journal.json")
    args = parser.parse_args(argv)
    results = {
        "streaming": streaming(args.rounds),
        "million": million(args.accesses),
        "exploration": exploration(args.schedules),
    }
    markdown = table(results)
    print(markdown)
    if args.update_readme:
        update_readme(Path("README.md"), markdown)
    write_json(results, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
