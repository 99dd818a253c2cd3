"""A bounded buffer built from a Condition: producers wait while it is full,
consumers while it is empty; notify_all wakes waiters first come, first served."""

import counterpoint as cp

CAPACITY = 2


async def main() -> list[tuple[str, int]]:
    buffer: list[int] = []
    changed = cp.Condition()
    taken: list[tuple[str, int]] = []

    async def produce(start: int) -> None:
        for item in range(start, start + 4):
            async with changed:
                await changed.wait_for(lambda: len(buffer) < CAPACITY)
                buffer.append(item)
                changed.notify_all()

    async def consume(name: str) -> None:
        for _ in range(4):
            async with changed:
                await changed.wait_for(lambda: buffer)
                taken.append((name, buffer.pop(0)))
                changed.notify_all()
            await cp.sleep(1)

    await cp.par(produce(0), produce(100), consume("x"), consume("y"))
    return taken
