"""Solutions to the exercises of the notebook of the same name: after each line
`# exercise: NAME`, the solved exercise cell (tests/test_course_solutions.py puts
it in place of the cell tagged exercise:NAME and runs the notebook)."""

import counterpoint as cp


# exercise: cleanup
async def print_job(printer, name, pages):
    await printer.acquire()
    try:
        await cp.sleep(pages)  # printing
    finally:
        printer.release()  # runs when the job is cancelled too
    return name


# ---- the program the check runs (you need not change it) ----
async def print_shop():
    printer = cp.Lock(name="printer")
    async with cp.scope() as s:
        poster = s.spawn(print_job(printer, "poster", 50), name="poster")
        await cp.sleep(1)
        flyer = s.spawn(print_job(printer, "flyer", 3), name="flyer")
        cards = s.spawn(print_job(printer, "cards", 2), name="cards")
        await cp.sleep(4)
        poster.cancel()                  # the customer changed their mind
    return sorted([await flyer, await cards]), cp.now()


# exercise: partial
async def print_all(jobs, closing_time):
    done = {}

    async def run(name, pages):
        await cp.sleep(pages)
        done[name] = cp.now()

    try:
        async with cp.scope(timeout=closing_time) as s:
            for name, pages in jobs:
                s.spawn(run(name, pages), name=name)
    except TimeoutError:
        pass  # closing time: the banner was cancelled, the rest is in `done`
    return done


# ---- the program the check runs (you need not change it) ----
async def one_day():
    jobs = [("flyers", 3), ("banner", 40), ("cards", 3), ("posters", 8)]
    return await print_all(jobs, closing_time=10)
