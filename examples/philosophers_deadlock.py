"""Three dining philosophers who each take the left fork first: a deadlock.

`vm.run(main())` raises `cp.Deadlock`, naming every philosopher and the fork
(lock) it waits for, and who holds it.  The run is the same on every machine.
"""

import counterpoint as cp

SEATS = 3


async def philosopher(seat: int, forks: list[cp.Lock]) -> None:
    left, right = forks[seat], forks[(seat + 1) % SEATS]
    async with left:
        await cp.sleep(1)  # everyone now holds their left fork ...
        async with right:  # ... and waits for the right one forever
            await cp.sleep(1)


async def main() -> None:
    forks = [cp.Lock() for _ in range(SEATS)]
    async with cp.scope() as table:
        for seat in range(SEATS):
            table.spawn(philosopher(seat, forks), name=f"philosopher-{seat}")
