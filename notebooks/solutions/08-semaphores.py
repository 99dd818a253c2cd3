# exercise: rendezvous
async def ana(ana_here, ben_here):
    cinema["arrived"] += 1
    ana_here.release()                # tell Ben: I am here
    await ben_here.acquire()          # wait for Ben
    await cp.checkpoint()             # buy popcorn
    cinema["inside"] += 1

async def ben(ana_here, ben_here):
    cinema["arrived"] += 1
    ben_here.release()                # tell Ana: I am here
    await ana_here.acquire()          # wait for Ana
    cinema["inside"] += 1

async def meeting():
    cinema.update(arrived=0, inside=0)
    ana_here = cp.Semaphore(0, name="ana here")
    ben_here = cp.Semaphore(0, name="ben here")
    await cp.par(ben(ana_here, ben_here), ana(ana_here, ben_here))
    return cinema["inside"]

print("ana and ben are defined; run the check")
# exercise: barrier
async def trailhead():
    trail.update(arrived=0, walking=0)
    mutex = cp.Semaphore(1, name="mutex")
    gate = cp.Semaphore(0, name="gate")

    async def hiker():
        async with mutex:
            trail["arrived"] += 1
        if trail["arrived"] == 3:
            gate.release()                # only the last one opens the gate
        await gate.acquire()              # go through
        gate.release()                    # and let the next one through
        trail["walking"] += 1

    await cp.par(hiker(), hiker(), hiker())
    return trail["walking"]

cp.VM().run(trailhead())
