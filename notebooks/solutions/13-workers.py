"""Solutions to the exercises of the notebook of the same name: after each line
`# exercise: NAME`, the solved exercise cell (tests/test_course_solutions.py puts
it in place of the cell tagged exercise:NAME and runs the notebook)."""

import counterpoint as cp


# exercise: serve
async def serve(ovens):
    """ovens: {handle: name}. Returns [(tick served, name), ...] in the order served."""
    served = []
    pending = dict(ovens)
    while pending:
        for handle in await cp.worker.wait_any(list(pending)):
            served.append((cp.now(), pending.pop(handle)))
    return served


# ---- the program the check runs (you need not change it) ----
async def counter():
    menu = [("bread", 3), ("cake", 1), ("pie", 2)]
    ovens = {cp.worker.start("bake", [name, minutes], cost=minutes): name for name, minutes in menu}
    return await serve(ovens)


# exercise: burnt
async def collect(ovens):
    """ovens: a list of handles. Returns one text per oven, in order."""
    results = []
    for oven in ovens:
        if await cp.worker.wait(oven) == 1:
            results.append(cp.worker.result(oven))
        else:
            results.append("sorry: " + cp.worker.error(oven))
    return results


# ---- the program the check runs (you need not change it) ----
async def orders():
    menu = [("bread", 2), ("cake", -1), ("pie", 1)]
    ovens = [cp.worker.start("bake", [name, minutes], cost=abs(minutes)) for name, minutes in menu]
    return await collect(ovens)
