"""The programs of ``benchmarks/explore_programs.py`` for frontrun 0.7 (a Python DPOR tool on
real threads), measured with its default DPOR search and no preemption bound.

Run by ``benchmarks/explore.py`` in a child process (frontrun patches ``threading``'s locks
for the whole process):

    python -m benchmarks.explore_frontrun --max-executions 5000 --rounds 3

prints one JSON object: ``{"threads": {program name: the same columns as Counterpoint's},
"asyncio": {...}}`` (frontrun's asyncio mode, for the racy programs it can express as
coroutines), or ``{"missing": "frontrun not installed"}``.  frontrun is not a dependency
of the package.  Each program is the thread version of the Counterpoint one: the same
shared state, the same steps (frontrun preempts between bytecodes, so it needs no
``await``), the same assertion as the invariant.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import threading
import time
from typing import Any


class Box:
    """Shared state as attributes (what frontrun tracks best: ``Counter.value``)."""

    def __init__(self, **fields: Any) -> None:
        self.__dict__.update(fields)


def lost_update(tasks: int) -> tuple:
    def increment(box: Box) -> None:
        seen = box.value
        box.value = seen + 1

    return (lambda: Box(value=0), [increment] * tasks, lambda box: box.value == tasks)


def check_then_act() -> tuple:
    def withdraw(box: Box) -> None:
        if box.balance >= 60:
            box.balance -= 60

    return (lambda: Box(balance=100), [withdraw, withdraw], lambda box: box.balance >= 0)


def lock_order_deadlock() -> tuple:
    def setup() -> Box:
        return Box(first=threading.Lock(), second=threading.Lock())

    def forward(box: Box) -> None:
        with box.first, box.second:
            pass

    def backward(box: Box) -> None:
        with box.second, box.first:
            pass

    return (setup, [forward, backward], lambda box: True)


def bank_transfer(locked: bool) -> tuple:
    def setup() -> Box:
        return Box(a=100, b=100, c=100, lock=threading.Lock())

    def mover(source: str, target: str, amount: int) -> Any:
        def move(box: Box) -> None:
            if locked:
                box.lock.acquire()
            setattr(box, source, getattr(box, source) - amount)
            setattr(box, target, getattr(box, target) + amount)
            if locked:
                box.lock.release()

        return move

    workers = [mover("a", "b", 10), mover("b", "c", 20)]
    return (setup, workers, lambda box: box.a + box.b + box.c == 300)


def bounded_buffer() -> tuple:
    def setup() -> Box:
        return Box(items=[], ready=threading.Condition())

    def producer(item: int) -> Any:
        def produce(box: Box) -> None:
            with box.ready:
                box.items.append(item)
                if len(box.items) == 1:  # BUG: a second item wakes nobody
                    box.ready.notify()

        return produce

    def consume(box: Box) -> None:
        with box.ready:
            while not box.items:
                box.ready.wait()
            box.items.pop(0)

    return (setup, [consume, consume, producer(1), producer(2)], lambda box: not box.items)


def lazy_init() -> tuple:
    def get(box: Box) -> None:
        if box.instance is None:
            box.created += 1
            box.instance = object()

    return (lambda: Box(instance=None, created=0), [get, get], lambda box: box.created == 1)


def locked_counter() -> tuple:
    def setup() -> Box:
        return Box(value=0, lock=threading.Lock())

    def increment(box: Box) -> None:
        with box.lock:
            seen = box.value
            box.value = seen + 1

    return (setup, [increment] * 3, lambda box: box.value == 3)


def independent() -> tuple:
    def counter(index: int) -> Any:
        def count(box: Box) -> None:
            own = box.boxes[index]
            for step in range(4):
                own.value = step + 1

        return count

    def setup() -> Box:
        return Box(boxes=[Box(value=0) for _ in range(4)])

    return (
        setup,
        [counter(i) for i in range(4)],
        lambda box: all(b.value == 4 for b in box.boxes),
    )


PROGRAMS = {
    "lost update, 2 tasks": lambda: lost_update(2),
    "lost update, 3 tasks": lambda: lost_update(3),
    "lost update, 4 tasks": lambda: lost_update(4),
    "check-then-act": check_then_act,
    "lock-order deadlock": lock_order_deadlock,
    "bank transfer, racy": lambda: bank_transfer(False),
    "bank transfer, locked": lambda: bank_transfer(True),
    "bounded buffer, missing notify": bounded_buffer,
    "lazy init": lazy_init,
    "locked counter": locked_counter,
    "independent tasks, 4 x 4": independent,
}


# frontrun's asyncio mode: the racy programs as coroutines, with an ``await`` where the
# Counterpoint program has its ``cp.checkpoint()`` (asyncio tasks switch only there)


def async_lost_update(tasks: int) -> tuple:
    async def increment(box: Box) -> None:
        seen = box.value
        await asyncio.sleep(0)
        box.value = seen + 1

    return (lambda: Box(value=0), [increment] * tasks, lambda box: box.value == tasks)


def async_check_then_act() -> tuple:
    async def withdraw(box: Box) -> None:
        if box.balance >= 60:
            await asyncio.sleep(0)
            box.balance -= 60

    return (lambda: Box(balance=100), [withdraw, withdraw], lambda box: box.balance >= 0)


def async_lazy_init() -> tuple:
    async def get(box: Box) -> None:
        if box.instance is None:
            await asyncio.sleep(0)
            box.created += 1
            box.instance = object()

    return (lambda: Box(instance=None, created=0), [get, get], lambda box: box.created == 1)


ASYNC_PROGRAMS = {
    "lost update, 2 tasks": lambda: async_lost_update(2),
    "lost update, 3 tasks": lambda: async_lost_update(3),
    "lost update, 4 tasks": lambda: async_lost_update(4),
    "check-then-act": async_check_then_act,
    "lazy init": async_lazy_init,
}


def measure(name: str, max_executions: int, rounds: int, mode: str = "threads") -> dict:
    import frontrun

    programs = ASYNC_PROGRAMS if mode == "asyncio" else PROGRAMS
    setup, workers, invariant = programs[name]()

    def search(stop_on_first: bool) -> tuple[Any, float]:
        started = time.perf_counter()
        result = frontrun.explore(
            setup=setup,
            workers=workers,
            invariant=invariant,
            stop_on_first=stop_on_first,
            preemption_bound=None,
            max_executions=max_executions,
            reproduce_on_failure=0,
        )
        if mode == "asyncio":  # (async workers: explore returns a coroutine)
            result = asyncio.run(result)
        return result, time.perf_counter() - started

    first = [search(True) for _ in range(rounds)]
    full = [search(False) for _ in range(rounds)]
    result = full[0][0]
    found = first[0][0]
    seconds = statistics.median(s for _, s in full)
    explored = result.num_explored
    conclusive = result.property_holds is not None and found.property_holds is not None
    return {
        "verdict": {True: "pass", False: "fail", None: "inconclusive"}[found.property_holds],
        "bug_found": found.property_holds is False,
        "first_bug": found.num_explored if found.property_holds is False else None,
        "first_bug_seconds": statistics.median(s for _, s in first)
        if found.property_holds is False
        else None,
        "schedules": explored,
        # frontrun 0.7 leaves ``exhausted`` None on threads: a search that stopped under
        # its max_executions ran out of interleavings
        # (an inconclusive search -- a run that timed out -- is not exhaustive)
        "exhaustive": result.exhausted
        if result.exhausted is not None
        else conclusive and explored < max_executions,
        "seconds": seconds,
        "schedules_per_second": explored / seconds if seconds else None,
        "explanation": (found.explanation or "").strip().splitlines()[:1],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-executions", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--programs", nargs="*", default=list(PROGRAMS))
    args = parser.parse_args(argv)
    try:
        import frontrun  # noqa: F401
        from frontrun._cooperative import patch_locks
    except ImportError:
        print(json.dumps({"missing": "frontrun not installed"}))
        return 0
    patch_locks()  # what the `frontrun` command line does before running a test
    results: dict[str, dict] = {"threads": {}, "asyncio": {}}
    for mode, programs in (("threads", PROGRAMS), ("asyncio", ASYNC_PROGRAMS)):
        for name in args.programs:
            if name not in programs:
                continue
            try:
                results[mode][name] = measure(name, args.max_executions, args.rounds, mode)
            except Exception as error:  # a program frontrun cannot run: say so in the table
                results[mode][name] = {"error": f"{type(error).__name__}: {error}"[:200]}
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
