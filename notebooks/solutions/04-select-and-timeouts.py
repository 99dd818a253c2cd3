"""Solutions to the exercises of the notebook of the same name: after each line
`# exercise: NAME`, the solved exercise cell (tests/test_course_solutions.py puts
it in place of the cell tagged exercise:NAME and runs the notebook)."""

import counterpoint as cp


# exercise: give_up
async def answer(requests, path):
    reply = cp.channel(1, name="reply")
    await requests.send((path, reply))
    choice = await cp.select(reply, timeout=100)
    if choice.tag == cp.SelectTag.TIMEOUT:
        return "503 Service Unavailable"
    return choice.value


# ---- the program the check runs (you need not change it) ----
async def slow_server():
    requests = cp.channel(name="requests")

    async def backend():
        async for path, reply in requests:
            await cp.sleep(500)
            await reply.send(f"200 OK {path}")

    async with cp.scope() as s:
        s.spawn(backend())
        page = await answer(requests, "/index.html")
        answered_at = cp.now()
        s.cancel()                        # close down the backend for this check
    return page, answered_at


# exercise: starve
async def desk(phone, mail):
    handled = []
    for _ in range(3):
        choice = await cp.select(phone, mail, policy="round_robin")
        handled.append(choice.value)
    return handled


# ---- the program the check runs (you need not change it) ----
async def help_desk():
    phone, mail = cp.channel(name="phone"), cp.channel(name="mail")

    async def callers():
        for i in range(1, 6):
            await phone.send(f"call {i}")

    async def customer():
        await mail.send("mail 1")

    async with cp.scope() as s:
        s.spawn(callers())
        s.spawn(customer())
        await cp.sleep(1)                 # the desk opens at tick 1: both are waiting
        handled = await desk(phone, mail)
        s.cancel()                        # closing time
    return handled
