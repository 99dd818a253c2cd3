"""Programs for tests/test_widgets_scheduler.py: the lost update, two locks taken in
opposite orders, and sleepers (a module pytest does not rewrite, so an assertion's message
is the same here and in a subprocess)."""

from __future__ import annotations

import counterpoint as cp

box: dict[str, int] = {}


async def add():
    seen = box["n"]
    await cp.checkpoint()
    box["n"] = seen + 1


async def lost_update():
    """Two tasks read a shared counter, checkpoint, write it back; the root asserts 2."""
    box["n"] = 0
    await cp.par(add(), add())
    assert box["n"] == 2, f"an update was lost: n is {box['n']}"
    return "ok"


def watch_box():
    return {"n": box.get("n")}


async def two_locks():
    """Each task takes one lock, checkpoints, then wants the other's: a deadlock if both
    take their first lock before either takes its second."""
    a, b = cp.Lock(name="a"), cp.Lock(name="b")

    async def one():
        async with a:
            await cp.checkpoint()
            async with b:
                pass

    async def two():
        async with b:
            await cp.checkpoint()
            async with a:
                pass

    await cp.par(one(), two())
    return "no deadlock"


async def nappers():
    """Two tasks sleep different times; nothing is ready while both sleep."""

    async def nap(ticks):
        await cp.sleep(ticks)
        return ticks

    return await cp.par(nap(3), nap(1))


# the lost update: main starts (spawns 2, 3), 2 reads, 3 reads, 2 writes, 3 writes, main ends
LOSE = (1, 2, 3, 2, 3, 1)
# each takes its first lock (acquiring a free lock is a step, too), then wants the other
DEADLOCK = (1, 2, 3, 2, 3, 2, 3)
# serial: 2 reads and writes before 3 reads
SERIAL = (1, 2, 2, 3, 3, 1)
