"""Dining philosophers that cannot deadlock: each takes the lower-numbered fork first.

Compare with `philosophers_deadlock.py`, where everyone takes the left fork first.
"""

import counterpoint as cp

SEATS = 5
MEALS = 3


async def philosopher(seat: int, forks: list[cp.Lock], meals: list[int]) -> None:
    left, right = seat, (seat + 1) % SEATS
    first, second = forks[min(left, right)], forks[max(left, right)]
    for _ in range(MEALS):
        async with first:
            await cp.sleep(1)  # reach for the second fork
            async with second:
                meals[seat] += 1
                await cp.sleep(2)  # eat
        await cp.sleep(1)  # think


async def main() -> list[int]:
    forks = [cp.Lock() for _ in range(SEATS)]
    meals = [0] * SEATS
    async with cp.scope() as table:
        for seat in range(SEATS):
            table.spawn(philosopher(seat, forks, meals), name=f"philosopher-{seat}")
    return meals
