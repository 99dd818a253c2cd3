"""A lost-update race: two tasks increment a shared counter with a checkpoint
between the read and the write.

Under the "fifo" policy the tasks alternate strictly, so every other update is
lost and the result is 5 of 10.  Under "random" the outcome depends on the
seed, and each seed gives the same outcome on every run and every machine:

    counterpoint run examples/race.py --policy random --seed 0    # 5
    counterpoint run examples/race.py --policy random --seed 16   # 9
"""

import counterpoint as cp

ROUNDS = 5


async def main() -> int:
    counter = {"value": 0}

    async def increment() -> None:
        for _ in range(ROUNDS):
            seen = counter["value"]  # read
            await cp.checkpoint()  # another task may run here
            counter["value"] = seen + 1  # write back: may overwrite its update

    await cp.par(increment(), increment())
    return counter["value"]  # 10 without the race; less when updates are lost
