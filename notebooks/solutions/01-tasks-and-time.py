"""Solutions to the exercises of 01-tasks-and-time.ipynb (each replaces its exercise cell)."""


# exercise: together
async def breakfast():
    await cp.par(cp.sleep(3), cp.sleep(2))  # the kettle and the toast at once
    return cp.now()


# exercise: menu-order
async def service():
    async def prepare(dish, minutes):
        await cp.sleep(minutes)
        return dish

    return list(await cp.par(prepare("soup", 30), prepare("rice", 15)))
