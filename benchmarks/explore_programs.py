"""The programs a peer exploration tool would run, as Counterpoint programs (and, in
``benchmarks/explore_frontrun.py``, the same programs for frontrun).

Each entry of :data:`PROGRAMS` is a :class:`Case`: ``case.program(share)`` returns a
zero-argument callable for ``cp.explore``.  ``share`` wraps the plain Python state the
tasks share: the identity by default, ``cp.shared`` for ``explore(..., shared_only=True)``
(the only line that changes between the two).  ``case.bug`` is the outcome the search must
find (an exception name) or ``None`` for a correct program.

    >>> import counterpoint as cp
    >>> from benchmarks.explore_programs import PROGRAMS
    >>> report = cp.explore(PROGRAMS["lost update, 2 tasks"].program())
    >>> sorted(map(str, report.outcomes)), report.exhaustive
    (['AssertionError', 'None'], True)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import counterpoint as cp


def plain(obj: Any) -> Any:
    """Share ``obj`` as it is (the VM does not see it)."""
    return obj


Share = Callable[[Any], Any]
Program = Callable[[], Any]


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[Share], Program]
    bug: str | None  # the outcome that shows the bug; None: a correct program
    tasks: int

    def program(self, share: Share = plain) -> Program:
        return self.build(share)


def lost_update(tasks: int) -> Callable[[Share], Program]:
    """``tasks`` tasks each read a counter, yield, and write it back plus one."""

    def build(share: Share) -> Program:
        async def lost_update() -> None:
            counter = share({"value": 0})

            async def increment() -> None:
                seen = counter["value"]
                await cp.checkpoint()
                counter["value"] = seen + 1

            await cp.par(*[increment() for _ in range(tasks)])
            assert counter["value"] == tasks, f"{tasks - counter['value']} update(s) lost"

        return lost_update

    return build


def check_then_act(share: Share) -> Program:
    """Two withdrawals of 60 from 100, each checks the balance, yields, then subtracts."""

    async def check_then_act() -> None:
        account = share({"balance": 100})

        async def withdraw(amount: int) -> None:
            if account["balance"] >= amount:
                await cp.checkpoint()
                account["balance"] -= amount

        await cp.par(withdraw(60), withdraw(60))
        assert account["balance"] >= 0, f"overdrawn: {account['balance']}"

    return check_then_act


def lock_order_deadlock(share: Share) -> Program:
    """Two tasks take two locks in opposite orders."""

    async def lock_order_deadlock() -> None:
        first, second = cp.Lock(name="first"), cp.Lock(name="second")

        async def take(a: cp.Lock, b: cp.Lock) -> None:
            async with a:
                await cp.checkpoint()
                async with b:
                    pass

        await cp.par(take(first, second), take(second, first))

    return lock_order_deadlock


def bank_transfer(locked: bool) -> Callable[[Share], Program]:
    """Two transfers over three accounts (a -> b, b -> c); the total must stay 300.  Racy:
    each balance is read, then written after a yield; locked: one lock around each."""

    def build(share: Share) -> Program:
        async def bank_transfer() -> None:
            accounts = share({"a": 100, "b": 100, "c": 100})
            lock = cp.Lock(name="bank")

            async def move(source: str, target: str, amount: int) -> None:
                if locked:
                    await lock.acquire()
                from_balance = accounts[source]
                await cp.checkpoint()
                accounts[source] = from_balance - amount
                to_balance = accounts[target]
                await cp.checkpoint()
                accounts[target] = to_balance + amount
                if locked:
                    lock.release()

            await cp.par(move("a", "b", 10), move("b", "c", 20))
            total = sum(accounts.values())
            assert total == 300, f"money appeared or vanished: total {total}"

        return bank_transfer

    return build


def bounded_buffer(share: Share) -> Program:
    """Two producers and two consumers on a buffer (capacity 2) guarded by one
    ``cp.Condition``; a producer notifies only when the buffer was empty, so the second
    waiting consumer can miss its wake-up (a lost wake-up: a deadlock)."""

    async def bounded_buffer() -> None:
        items: list[int] = share([])
        ready = cp.Condition(name="ready")

        async def produce(item: int) -> None:
            async with ready:
                items.append(item)
                if len(items) == 1:  # BUG: a second item wakes nobody
                    ready.notify()

        async def consume() -> None:
            async with ready:
                while not items:
                    await ready.wait()
                items.pop(0)

        await cp.par(consume(), consume(), produce(1), produce(2))

    return bounded_buffer


def lazy_init(share: Share) -> Program:
    """Two tasks get a lazily created singleton: check, yield (building it), then set."""

    async def lazy_init() -> None:
        holder = share({"instance": None, "created": 0})

        async def get() -> Any:
            if holder["instance"] is None:
                await cp.checkpoint()  # the constructor's work
                holder["created"] += 1
                holder["instance"] = object()
            return holder["instance"]

        await cp.par(get(), get())
        assert holder["created"] == 1, f"initialised {holder['created']} times"

    return lazy_init


def locked_counter(share: Share) -> Program:
    """Three tasks increment a counter under a ``cp.Lock`` (correct)."""

    async def locked_counter() -> None:
        counter = share({"value": 0})
        lock = cp.Lock(name="counter")

        async def increment() -> None:
            async with lock:
                seen = counter["value"]
                await cp.checkpoint()
                counter["value"] = seen + 1

        await cp.par(*[increment() for _ in range(3)])
        assert counter["value"] == 3

    return locked_counter


def independent(share: Share) -> Program:
    """Four tasks of four steps, each on its own object (correct; one trace)."""

    async def independent() -> None:
        boxes = [share({"value": 0}) for _ in range(4)]

        async def count(box: dict) -> None:
            for step in range(4):
                box["value"] = step + 1
                await cp.checkpoint()

        await cp.par(*[count(box) for box in boxes])
        assert all(box["value"] == 4 for box in boxes)

    return independent


PROGRAMS: dict[str, Case] = {
    case.name: case
    for case in [
        Case("lost update, 2 tasks", lost_update(2), "AssertionError", 2),
        Case("lost update, 3 tasks", lost_update(3), "AssertionError", 3),
        Case("lost update, 4 tasks", lost_update(4), "AssertionError", 4),
        Case("check-then-act", check_then_act, "AssertionError", 2),
        Case("lock-order deadlock", lock_order_deadlock, "Deadlock", 2),
        Case("bank transfer, racy", bank_transfer(False), "AssertionError", 2),
        Case("bank transfer, locked", bank_transfer(True), None, 2),
        Case("bounded buffer, missing notify", bounded_buffer, "Deadlock", 4),
        Case("lazy init", lazy_init, "AssertionError", 2),
        Case("locked counter", locked_counter, None, 3),
        Case("independent tasks, 4 x 4", independent, None, 4),
    ]
}
