"""Solutions to the exercises of the notebook of the same name: after each line
`# exercise: NAME`, the solved exercise cell (tests/test_course_solutions.py puts
it in place of the cell tagged exercise:NAME and runs the notebook)."""

import counterpoint as cp


# exercise: raffle
def draw():
    return cp.rng().randint(1, 9)  # the task's own generator, seeded by the VM


# ---- the program the check runs (you need not change it) ----
async def raffle():
    async def volunteer(name):
        wait = draw()
        await cp.sleep(wait)
        return f"{name} calls at tick {cp.now()}"

    return await cp.par(volunteer("Ada"), volunteer("Bo"), volunteer("Cy"))


# exercise: tickets
async def bakery():
    dispenser = itertools.count(1)  # a fresh dispenser for every run

    async def customer(name):
        ticket = next(dispenser)
        await cp.sleep(ticket)
        return f"{name} #{ticket}"

    return await cp.par(customer("Ada"), customer("Bo"))
