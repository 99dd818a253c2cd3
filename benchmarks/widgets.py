"""The widgets' kernel side: how fast a timeline opens and pans on a million records, and
what following a running VM costs it.

    python -m benchmarks.widgets

* a 1,000,000-record journal (``ping_pong`` of 111,112 round trips): ``Timeline(journal)``
  (indexes task names and message pairs), its first window (100 records at the end),
  then windows of 100 and of 4,000 records at random places (medians and worst).
* live: a run of two tasks switching 200,000 times, plain and with a ``Timeline(vm)``
  following it (its pushes captured as the comm would send them), paired rounds,
  interleaved, in CPU time; the median ratio (bar: slows the run by at most 10 %) and
  pushes per second (bar: at most 30).

The browser's side (first picture and scrub latency in Chromium) is
``python -m benchmarks.widgets_browser``.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import counterpoint as cp

from . import write_json
from .run import _ping_pong


def _ask(widget, start: int, count: int) -> float:
    began = time.perf_counter()
    widget._on_message(
        None, {"type": "request", "id": 1, "what": "window", "start": start, "count": count}, []
    )
    return time.perf_counter() - began


def million(samples: int) -> dict:
    from counterpoint.widgets import Timeline

    vm = cp.VM()
    vm.run(_ping_pong(111_112))
    journal = vm.journal
    began = time.perf_counter()
    timeline = Timeline(journal)
    opened = time.perf_counter() - began
    timeline.send = lambda content, buffers=None: None
    first = _ask(timeline, len(journal) - 99, 100)
    rng = random.Random(0)
    small = [_ask(timeline, rng.randrange(1, len(journal)), 100) for _ in range(samples)]
    large = [_ask(timeline, rng.randrange(1, len(journal)), 4000) for _ in range(samples)]
    return {
        "records": len(journal),
        "open_s": opened,
        "first_window_s": first,
        "window_100_median_ms": statistics.median(small) * 1000,
        "window_100_worst_ms": max(small) * 1000,
        "window_4000_median_ms": statistics.median(large) * 1000,
        "window_4000_worst_ms": max(large) * 1000,
    }


async def _busy() -> None:
    async def spin() -> None:
        for _ in range(100_000):
            await cp.sleep(0)

    await cp.par(spin(), spin())


def live(rounds: int) -> dict:
    from counterpoint.widgets import Timeline

    ratios, plain_s, live_s, rates = [], [], [], []
    for _ in range(rounds):
        vm = cp.VM()
        began = time.process_time()  # (CPU time: the machine's other load does not count)
        vm.run(_busy())
        plain = time.process_time() - began
        vm = cp.VM()
        timeline = Timeline(vm)
        pushes = []
        timeline.send = lambda content, buffers=None, pushes=pushes: pushes.append(content)
        began = time.process_time()
        vm.run(_busy())
        followed = time.process_time() - began
        timeline.close()
        plain_s.append(plain)
        live_s.append(followed)
        ratios.append(followed / plain)
        rates.append(len(pushes) / followed)
    return {
        "steps": 200_000,
        "plain_s": statistics.median(plain_s),
        "live_s": statistics.median(live_s),
        "ratio": statistics.median(ratios),
        "pushes_per_s": max(rates),
    }


def table(results: dict) -> str:
    big, follow = results["million"], results["live"]
    return "\n".join(
        [
            "| widgets, kernel side | measured |",
            "|---|---|",
            f"| `Timeline` of a {big['records']:,}-record journal: open / first window | "
            f"{big['open_s'] * 1000:.0f} ms / {big['first_window_s'] * 1000:.0f} ms |",
            f"| a window anywhere, 100 / 4,000 records (median, worst) | "
            f"{big['window_100_median_ms']:.1f} ms ({big['window_100_worst_ms']:.1f}) / "
            f"{big['window_4000_median_ms']:.0f} ms ({big['window_4000_worst_ms']:.0f}) |",
            f"| a live `Timeline` following {follow['steps']:,} steps: run time | "
            f"{follow['plain_s'] * 1000:.0f} ms -> {follow['live_s'] * 1000:.0f} ms "
            f"(**{follow['ratio']:.2f}x**), at most {follow['pushes_per_s']:.0f} pushes/s |",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=11, help="live rounds")
    parser.add_argument("--samples", type=int, default=50, help="windows per size")
    parser.add_argument("--json", default="benchmarks/results/widgets.json")
    args = parser.parse_args(argv)
    results = {"million": million(args.samples), "live": live(args.rounds)}
    print(table(results))
    write_json(results, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
