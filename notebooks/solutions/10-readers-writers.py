"""Solutions to the exercises of the notebook of the same name: after each line
`# exercise: NAME`, the solved exercise cell (tests/test_course_solutions.py puts
it in place of the cell tagged exercise:NAME and runs the notebook)."""

import counterpoint as cp


# exercise: lightswitch
class RewrittenSwitch:
    """First in locks `room`, last out unlocks it (rewritten by a colleague)."""

    def __init__(self):
        self.inside = 0
        self.mutex = cp.Lock(name="switch")

    async def enter(self, room):
        async with self.mutex:
            self.inside += 1
            if self.inside == 1:          # first in: light on
                await room.acquire()

    async def leave(self, room):
        async with self.mutex:
            self.inside -= 1
            if self.inside == 0:          # last out: light off
                room.release()


async def rewritten_library():
    room.update(reading=0, writing=0)
    room_empty = cp.Semaphore(1, name="room empty")
    switch = RewrittenSwitch()
    await cp.par(reader(switch, room_empty), reader(switch, room_empty), writer(room_empty))

print("RewrittenSwitch is defined; run the check")


# exercise: writer
async def fair_day():
    room_empty = cp.Semaphore(1, name="room empty")
    turnstile = cp.Semaphore(1, name="turnstile")
    switch = Lightswitch()
    catalogue = {"edition": 1}
    seen = []

    async def reader(arrives, turnstile):
        await cp.sleep(arrives)
        async with turnstile:             # pass through the turnstile
            pass
        await switch.enter(room_empty)
        await cp.sleep(3)                 # read
        seen.append(catalogue["edition"])
        await switch.leave(room_empty)

    async def librarian(arrives, turnstile):
        await cp.sleep(arrives)
        async with turnstile, room_empty: # hold the turnstile: nobody new gets in
            await cp.sleep(2)             # write the new edition
            catalogue["edition"] = 2

    await cp.par(*(reader(2 * i, turnstile) for i in range(4)), librarian(1, turnstile))
    return seen

print("fair_day is defined; run the check")
