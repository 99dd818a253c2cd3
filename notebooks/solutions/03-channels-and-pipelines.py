"""Solutions to the exercises of the notebook of the same name: after each line
`# exercise: NAME`, the solved exercise cell (tests/test_course_solutions.py puts
it in place of the cell tagged exercise:NAME and runs the notebook)."""

import counterpoint as cp


# exercise: close
async def cook(rail, passing):
    async for dish in rail:
        await cp.sleep(2)
        await passing.send(f"plated {dish}")
    passing.close()  # the cook is the only sender on the pass: it closes it when done


# ---- the program the check runs (you need not change it) ----
async def pipeline():
    rail, passing = cp.channel(name="rail"), cp.channel(name="pass")

    async def waiter():
        for dish in ("soup", "stew"):
            await rail.send(dish)
        rail.close()

    async def expediter():
        return [plate async for plate in passing]

    _, _, plates = await cp.par(waiter(), cook(rail, passing), expediter(),
                                names=["waiter", "cook", "expediter"])
    return plates


# exercise: fanin
async def line_cook(rail, passing):
    async for dish in rail:
        await cp.sleep(2)
        await passing.send(dish)


async def line(rail, passing):
    await cp.par(line_cook(rail, passing), line_cook(rail, passing), names=["ana", "ben"])
    passing.close()  # both cooks are done: the last sender closes the shared pass


# ---- the program the check runs (you need not change it) ----
async def two_cooks():
    rail, passing = cp.channel(3, name="rail"), cp.channel(name="pass")
    for dish in ("soup", "salad", "stew"):
        await rail.send(dish)
    rail.close()

    async def expediter():
        return sorted([plate async for plate in passing])

    _, plates = await cp.par(line(rail, passing), expediter(), names=["line", "expediter"])
    return plates
