"""Solutions to the exercises of 11-proving.ipynb (each replaces its exercise cell)."""


# exercise: prove-counter
async def three_increments():
    box = {"n": 0}
    lock = cp.Lock(name="box")

    async def add():
        async with lock:
            seen = box["n"]
            await cp.checkpoint()
            box["n"] = seen + 1

    await cp.par(add(), add(), add())
    return box["n"]


# exercise: no-money-missing
bank = cp.shared({}, name="bank")


async def two_moves():
    bank.clear()
    bank.update(a=10, b=0)

    async def move(amount):
        bank["a"] -= amount
        bank["b"] += amount  # both in one step: no await in between
        await cp.checkpoint()

    await cp.par(move(3), move(4))
    return bank["a"], bank["b"]


def total_is_ten():
    return bank["a"] + bank["b"] == 10
