"""Exploration throughput: dfs schedules per second on three programs.

``python -m benchmarks.explore_throughput [--rounds N]`` explores each program (dfs,
exhaustive) repeatedly for about a second per round, in rotating order, and prints the
median schedules/s over the rounds, with CPU time (the machine may be shared: CPU time
is the steadier number).

* ``lost3``: the 3-task lost update (90 schedules);
* ``lost4``: the 4-task lost update (2,520 schedules);
* ``pipeline``: a 3-stage pipeline over unbuffered channels (producer -> doubler ->
  consumer, 3 items): every step is a channel operation;
* ``lost3_checked``: the 3-task lost update raising when an update is lost (84 of its
  90 schedules fail): a search that finds problems.
"""

from __future__ import annotations

import argparse
import statistics
import time

import counterpoint as cp


def lost_update(tasks: int):
    async def main():
        box = {"n": 0}

        async def add():
            seen = box["n"]
            await cp.checkpoint()
            box["n"] = seen + 1

        await cp.par(*[add() for _ in range(tasks)])
        return box["n"]

    return main


async def pipeline():
    first, second = cp.channel(), cp.channel()

    async def produce():
        for i in range(3):
            await first.send(i)
        first.close()

    async def double():
        async for item in first:
            await second.send(item * 2)
        second.close()

    async def consume():
        return [item async for item in second]

    _, _, out = await cp.par(produce(), double(), consume())
    return out


def checked(program):
    async def main():
        if await program() != 3:
            raise AssertionError("an update was lost")

    return main


PROGRAMS = {
    "lost3": lost_update(3),
    "lost4": lost_update(4),
    "pipeline": pipeline,
    "lost3_checked": checked(lost_update(3)),
}


def measure(program, budget: float) -> tuple[float, float, int]:
    """(schedules per wall second, per CPU second, schedules per explore) over about
    ``budget`` seconds of repeated explores."""
    schedules = 0
    wall0, cpu0 = time.perf_counter(), time.process_time()
    per = 0
    while True:
        report = cp.explore(program, max_schedules=1_000_000, progress=False)
        assert report.exhaustive
        per = report.schedules
        schedules += per
        wall = time.perf_counter() - wall0
        if wall >= budget:
            break
    cpu = max(time.process_time() - cpu0, 1e-9)
    return schedules / wall, schedules / cpu, per


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--budget", type=float, default=1.0, help="seconds per measurement")
    parser.add_argument("programs", nargs="*", default=list(PROGRAMS))
    args = parser.parse_args(argv)
    names = args.programs
    walls: dict[str, list[float]] = {name: [] for name in names}
    cpus: dict[str, list[float]] = {name: [] for name in names}
    sizes = {}
    for r in range(args.rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            wall, cpu, sizes[name] = measure(PROGRAMS[name], args.budget)
            walls[name].append(wall)
            cpus[name].append(cpu)
    for name in names:
        print(
            f"{name:10} {sizes[name]:6} schedules/explore  "
            f"{statistics.median(walls[name]):9,.0f} schedules/s (wall)  "
            f"{statistics.median(cpus[name]):9,.0f} schedules/s (CPU)"
        )


if __name__ == "__main__":
    main()
