# Solutions of notebooks/15-challenges.ipynb: each exercise cell, solved.
# A break exercise may have other answers (any schedule that breaks the program wins).

# exercise: level-1-break
schedule = "cp1:0112"    # both visitors read 0 before either writes

# exercise: level-1-fix
async def visitor():
    counter["visits"] += 1              # read and write in one step
    await cp.checkpoint()               # the turnstile turns

async def museum():
    counter["visits"] = 0
    await cp.par(visitor(), visitor())
    assert counter["visits"] == 2, f"2 visitors, the counter says {counter['visits']}"
    return counter["visits"]

# exercise: level-2-break
schedule = "cp1:011202"    # both look before either raises a flag

# exercise: level-2-fix
async def try_on(me, other):
    room[me] = True                     # raise my flag first
    await cp.checkpoint()               # walk to the curtain
    if room[other]:                     # then look at the other one's
        room[me] = False
        return f"{me} comes back later"
    room["inside"].append(me)
    await cp.checkpoint()               # try the coat on
    assert room["inside"] == [me], f"together in the fitting room: {room['inside']}"
    room["inside"].remove(me)
    room[me] = False                    # lower my flag
    return f"{me} tried it on"

async def shop():
    room.update(Ana=False, Ben=False, inside=[])
    return await cp.par(try_on("Ana", "Ben"), try_on("Ben", "Ana"))

# exercise: level-3-break
schedule = "cp1:0212"    # both check before either takes the till

# exercise: level-3-fix
async def buy(name):
    await cp.checkpoint()               # walk to the till
    async with stock["till"]:           # the lock protects the check and the sale
        if stock["pairs"] > 0:
            stock["pairs"] -= 1
            stock["buyers"].append(name)

async def sale():
    stock.update(pairs=1, buyers=[], till=cp.Lock(name="till"))
    await cp.par(buy("Ana"), buy("Ben"))
    assert stock["pairs"] >= 0, f"one pair left, sold to {stock['buyers']}"
    return len(stock["buyers"])

# exercise: level-4-break
schedule = "cp1:2202"    # the manager signals and goes before the clerks count up

# exercise: level-4-fix
async def office():
    done = cp.CountdownEvent(3, name="done")   # two reports and the manager, up front
    reports = []

    async def clerk(name):
        await cp.checkpoint()           # walk to the desk
        await cp.checkpoint()           # write the report
        reports.append(name)
        done.signal()

    async def manager():
        done.signal()                   # everybody is sent off
        await done.wait()
        assert len(reports) == 2, f"lights off with {len(reports)} of 2 reports in"
        return "lights off"

    *_, result = await cp.par(clerk("Ana"), clerk("Ben"), manager())
    return result

# exercise: level-5-break
schedule = "cp1:"    # the default: Ana reads leg 1 and writes leg 2 before Ben reads

# exercise: level-5-fix
async def hike():
    board = {"Ana": 0, "Ben": 0}
    marker = cp.Barrier(2, name="marker")

    async def hiker(me, other):
        for leg in (1, 2):
            await cp.checkpoint()       # walk the leg
            board[me] = leg             # write where I am
            await marker.wait()         # wait for the other one
            assert board[other] == leg, f"{me} on leg {leg} reads {other} on leg {board[other]}"
            await marker.wait()         # both have read: on to the next leg
        return leg

    return await cp.par(hiker("Ana", "Ben"), hiker("Ben", "Ana"))

# exercise: level-6-break
schedule = "cp1:02"    # the waiter hears the bell before the soup is on the hatch

# exercise: level-6-fix
async def diner():
    hatch = []
    bell = cp.Semaphore(0, name="bell")

    async def cook():
        for dish in ("soup", "pie"):
            hatch.append(dish)          # the dish first
            bell.release()              # then ring
            await cp.checkpoint()       # turn round to the stove

    async def waiter():
        served = []
        for _ in range(2):
            await bell.acquire()        # wait for a ring
            served.append(hatch.pop(0))
        return served

    served, _ = await cp.par(waiter(), cook())
    return served

# exercise: level-7-break
schedule = "cp1:1401"    # both wait; one woken takes the books, the other finds the box empty

# exercise: level-7-fix
async def parcels():
    box = []
    doorbell = cp.Condition(name="doorbell")

    async def courier():
        for parcel in ("books", "shoes"):
            async with doorbell:
                box.append(parcel)
                doorbell.notify_all()   # ring for everybody
            await cp.checkpoint()       # back to the van

    async def neighbour():
        async with doorbell:
            while not box:              # woken up: look again
                await doorbell.wait()
            return box.pop()

    _, a, b = await cp.par(courier(), neighbour(), neighbour())
    return sorted([a, b])
