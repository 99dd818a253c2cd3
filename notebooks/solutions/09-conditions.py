"""Solutions to the exercises of the notebook of the same name: after each line
`# exercise: NAME`, the solved exercise cell (tests/test_course_solutions.py puts
it in place of the cell tagged exercise:NAME and runs the notebook)."""

import counterpoint as cp


# exercise: lost
async def customer(shelf, cond):
    async with cond:
        while not shelf:                  # look at the shelf under the lock
            await cond.wait()
        return shelf.pop()

async def baker(shelf, cond):
    async with cond:
        shelf.append("rye")
        cond.notify()

async def one_loaf():
    shelf = []
    cond = cp.Condition(name="shelf")
    loaf, _ = await cp.par(customer(shelf, cond), baker(shelf, cond))
    return loaf

print("customer is defined; run the check")


# exercise: overflow
shelf = cp.shared([], name="shelf")

def fits():
    return len(shelf) <= 1

async def baker(cond, loaf):
    async with cond:
        while len(shelf) == 1:            # full: wait for room
            await cond.wait()
        shelf.append(loaf)
        cond.notify_all()

async def customer(cond):
    bought = []
    for _ in range(3):
        async with cond:
            while not shelf:
                await cond.wait()
            bought.append(shelf.pop())
            cond.notify_all()
    return sorted(bought)

async def small_shop():
    shelf[:] = ["white"]
    cond = cp.Condition(name="shelf")
    bought, _, _ = await cp.par(customer(cond), baker(cond, "rye"), baker(cond, "spelt"))
    return bought

print("baker is defined; run the check")
