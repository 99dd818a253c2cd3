# exercise: lock-order
async def transfer(locks, accounts, source, target, amount):
    first, second = sorted([source, target])    # one order for every lock
    async with locks[first]:
        await cp.checkpoint()               # check the source's balance
        async with locks[second]:
            accounts[source] -= amount
            accounts[target] += amount

async def transfers():
    accounts = {"alice": 100, "bob": 100}
    locks = {name: cp.Lock(name=name) for name in accounts}
    await cp.par(transfer(locks, accounts, "alice", "bob", 30),
                 transfer(locks, accounts, "bob", "alice", 10))
    return accounts

print("transfer is defined; run the check")
# exercise: philosophers
async def dinner():
    forks = [cp.Lock(name=f"fork {i}") for i in range(3)]
    meals = cp.shared([0, 0, 0], name="meals")

    async def philosopher(i):
        left, right = forks[i], forks[(i + 1) % 3]
        if i == 2:                          # the lower-numbered fork first: fork 0
            left, right = right, left
        async with left:
            await cp.checkpoint()           # reach for the other fork
            async with right:
                meals[i] += 1               # eat

    await cp.par(*(philosopher(i) for i in range(3)))
    return list(meals)

print("dinner is defined; run the check")
