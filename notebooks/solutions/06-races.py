# exercise: oversell
oversell = "cp1:0111"  # Ana's clerk checks, then Ben's clerk checks: both saw a free seat
oversell
# exercise: last-seat
async def sell(customer):
    if office["seats"] > 0:             # check
        office["seats"] -= 1            # act, in the same step as the check
        office["sold"].append(customer)
        await cp.checkpoint()           # look up the seat map afterwards

async def ticket_office():
    office.update(seats=1, sold=[])
    await cp.par(sell("Ana"), sell("Ben"))
    assert office["seats"] >= 0, f"oversold: {office['sold']} both got the last seat"
    return len(office["sold"])

cp.VM(policy="random", seed=0).run(ticket_office())   # day 0 was a good day
