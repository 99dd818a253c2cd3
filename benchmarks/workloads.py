"""The four PRODUCT.md workloads, written idiomatically for each runtime.

Every implementation returns the same checksum for the same sizes, which the
harness (and ``tests/test_benchmarks.py``) checks, so that the runtimes are
compared on the same work.

Sizes (PRODUCT.md): spawn_join 50,000 tasks; ping_pong 50,000 round trips over
two capacity-1 channels; timers 1,000 tasks x 50 sleeps of
``(i*7919 + j*104729) % 10 + 1`` ticks; pipeline producer -> 4 workers ->
consumer over capacity-16 channels, 50,000 items, each doubled.
"""

from __future__ import annotations

import asyncio
import selectors
from dataclasses import dataclass


@dataclass(frozen=True)
class Sizes:
    spawn_join: int = 50_000
    ping_pong: int = 50_000
    timer_tasks: int = 1_000
    timer_sleeps: int = 50
    pipeline: int = 50_000
    pipeline_workers: int = 4
    pipeline_capacity: int = 16


FULL = Sizes()
QUICK = Sizes(500, 500, 20, 10, 500)


def delay(i: int, j: int) -> int:
    return (i * 7919 + j * 104729) % 10 + 1


def expected(sizes: Sizes) -> dict[str, int]:
    """The checksum every implementation must return."""
    n = sizes.pipeline
    return {
        "spawn_join": sum(range(sizes.spawn_join)),
        "ping_pong": sum(range(sizes.ping_pong)),
        "timers": max(
            sum(delay(i, j) for j in range(sizes.timer_sleeps)) for i in range(sizes.timer_tasks)
        ),
        "pipeline": 2 * (n * (n - 1) // 2),
    }


# --------------------------------------------------------------------------- Counterpoint


def counterpoint(journal: bool):
    import counterpoint as cp

    def make_vm():
        return cp.VM(journal=None if journal else False)

    async def spawn_join(n):
        async def child(i):
            return i

        tasks = [cp.spawn(child(i)) for i in range(n)]
        total = 0
        for task in tasks:
            total += await task
        return total

    async def ping_pong(n):
        ping, pong = cp.channel(1), cp.channel(1)

        async def pinger():
            total = 0
            for i in range(n):
                await ping.send(i)
                total += await pong.recv()
            return total

        async def ponger():
            for _ in range(n):
                await pong.send(await ping.recv())

        total, _ = await cp.par(pinger(), ponger())
        return total

    async def timers(tasks, sleeps):
        async def sleeper(i):
            for j in range(sleeps):
                await cp.sleep(delay(i, j))

        async with cp.scope() as s:
            for i in range(tasks):
                s.start_soon(sleeper(i))
        return cp.now()

    async def pipeline(n, workers, capacity):
        source, sink = cp.channel(capacity), cp.channel(capacity)

        async def producer():
            for i in range(n):
                await source.send(i)
            source.close()

        async def worker():
            async for item in source:
                await sink.send(item * 2)

        async def workforce():
            await cp.par(*[worker() for _ in range(workers)])
            sink.close()

        async def consumer():
            total = 0
            async for item in sink:
                total += item
            return total

        results = await cp.par(producer(), workforce(), consumer())
        return results[2]

    def run(sizes: Sizes):
        return {
            "spawn_join": lambda: make_vm().run(spawn_join(sizes.spawn_join)),
            "ping_pong": lambda: make_vm().run(ping_pong(sizes.ping_pong)),
            "timers": lambda: make_vm().run(timers(sizes.timer_tasks, sizes.timer_sleeps)),
            "pipeline": lambda: make_vm().run(
                pipeline(sizes.pipeline, sizes.pipeline_workers, sizes.pipeline_capacity)
            ),
        }

    return run


# --------------------------------------------------------------------------- asyncio


class _JumpSelector(selectors.DefaultSelector):
    """A selector that, instead of waiting, moves its loop's virtual clock forward."""

    def __init__(self) -> None:
        super().__init__()
        self.loop: VirtualTimeLoop | None = None

    def select(self, timeout=None):
        if timeout is not None and timeout > 0 and self.loop is not None:
            self.loop.virtual_now += timeout
        return super().select(0)


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """asyncio's own event loop with a virtual clock that jumps to the next timer."""

    def __init__(self) -> None:
        selector = _JumpSelector()
        super().__init__(selector)
        selector.loop = self
        self.virtual_now = 0.0

    def time(self) -> float:
        return self.virtual_now


def _asyncio_run(coro, virtual_time: bool = False):
    if not virtual_time:
        return asyncio.run(coro)
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


def asyncio_impl():
    async def spawn_join(n):
        async def child(i):
            return i

        tasks = [asyncio.ensure_future(child(i)) for i in range(n)]
        total = 0
        for task in tasks:
            total += await task
        return total

    async def ping_pong(n):
        ping, pong = asyncio.Queue(1), asyncio.Queue(1)

        async def pinger():
            total = 0
            for i in range(n):
                await ping.put(i)
                total += await pong.get()
            return total

        async def ponger():
            for _ in range(n):
                await pong.put(await ping.get())

        total, _ = await asyncio.gather(pinger(), ponger())
        return total

    async def timers(tasks, sleeps):
        loop = asyncio.get_running_loop()

        async def sleeper(i):
            for j in range(sleeps):
                await asyncio.sleep(delay(i, j))

        await asyncio.gather(*[sleeper(i) for i in range(tasks)])
        return round(loop.time())

    async def pipeline(n, workers, capacity):
        source, sink = asyncio.Queue(capacity), asyncio.Queue(capacity)
        done = object()

        async def producer():
            for i in range(n):
                await source.put(i)
            for _ in range(workers):
                await source.put(done)

        async def worker():
            while (item := await source.get()) is not done:
                await sink.put(item * 2)
            await sink.put(done)

        async def consumer():
            total, finished = 0, 0
            while finished < workers:
                item = await sink.get()
                if item is done:
                    finished += 1
                else:
                    total += item
            return total

        results = await asyncio.gather(producer(), *[worker() for _ in range(workers)], consumer())
        return results[-1]

    def run(sizes: Sizes):
        return {
            "spawn_join": lambda: _asyncio_run(spawn_join(sizes.spawn_join)),
            "ping_pong": lambda: _asyncio_run(ping_pong(sizes.ping_pong)),
            "timers": lambda: _asyncio_run(
                timers(sizes.timer_tasks, sizes.timer_sleeps), virtual_time=True
            ),
            "pipeline": lambda: _asyncio_run(
                pipeline(sizes.pipeline, sizes.pipeline_workers, sizes.pipeline_capacity)
            ),
        }

    return run


# --------------------------------------------------------------------------- trio


def trio_impl():
    import trio
    import trio.testing

    async def spawn_join(n):
        results = [0] * n

        async def child(i):
            results[i] = i

        async with trio.open_nursery() as nursery:
            for i in range(n):
                nursery.start_soon(child, i)
        return sum(results)

    async def ping_pong(n):
        ping_send, ping_recv = trio.open_memory_channel(1)
        pong_send, pong_recv = trio.open_memory_channel(1)
        total = [0]

        async def pinger():
            for i in range(n):
                await ping_send.send(i)
                total[0] += await pong_recv.receive()

        async def ponger():
            for _ in range(n):
                await pong_send.send(await ping_recv.receive())

        async with trio.open_nursery() as nursery:
            nursery.start_soon(pinger)
            nursery.start_soon(ponger)
        return total[0]

    async def timers(tasks, sleeps):
        async def sleeper(i):
            for j in range(sleeps):
                await trio.sleep(delay(i, j))

        async with trio.open_nursery() as nursery:
            for i in range(tasks):
                nursery.start_soon(sleeper, i)
        return round(trio.current_time())

    async def pipeline(n, workers, capacity):
        source_send, source_recv = trio.open_memory_channel(capacity)
        sink_send, sink_recv = trio.open_memory_channel(capacity)
        total = [0]

        async def producer():
            async with source_send:
                for i in range(n):
                    await source_send.send(i)

        async def worker(source, sink):
            async with sink:
                async for item in source:
                    await sink.send(item * 2)

        async def consumer():
            async with sink_recv:
                async for item in sink_recv:
                    total[0] += item

        async with trio.open_nursery() as nursery:
            nursery.start_soon(producer)
            async with sink_send, source_recv:
                for _ in range(workers):
                    nursery.start_soon(worker, source_recv.clone(), sink_send.clone())
            nursery.start_soon(consumer)
        return total[0]

    def run(sizes: Sizes):
        return {
            "spawn_join": lambda: trio.run(spawn_join, sizes.spawn_join),
            "ping_pong": lambda: trio.run(ping_pong, sizes.ping_pong),
            "timers": lambda: trio.run(
                timers,
                sizes.timer_tasks,
                sizes.timer_sleeps,
                clock=trio.testing.MockClock(autojump_threshold=0),
            ),
            "pipeline": lambda: trio.run(
                pipeline, sizes.pipeline, sizes.pipeline_workers, sizes.pipeline_capacity
            ),
        }

    return run


# --------------------------------------------------------------------------- SimPy


def simpy_impl():
    import simpy

    def spawn_join(n):
        env = simpy.Environment()

        def child(i):
            return i
            yield  # pragma: no cover - makes this a SimPy process

        def main():
            processes = [env.process(child(i)) for i in range(n)]
            total = 0
            for process in processes:
                total += yield process
            return total

        return env.run(env.process(main()))

    def ping_pong(n):
        env = simpy.Environment()
        ping, pong = simpy.Store(env, 1), simpy.Store(env, 1)

        def pinger():
            total = 0
            for i in range(n):
                yield ping.put(i)
                total += yield pong.get()
            return total

        def ponger():
            for _ in range(n):
                item = yield ping.get()
                yield pong.put(item)

        result = env.process(pinger())
        env.process(ponger())
        return env.run(result)

    def timers(tasks, sleeps):
        env = simpy.Environment()

        def sleeper(i):
            for j in range(sleeps):
                yield env.timeout(delay(i, j))

        for i in range(tasks):
            env.process(sleeper(i))
        env.run()
        return int(env.now)

    def pipeline(n, workers, capacity):
        env = simpy.Environment()
        source, sink = simpy.Store(env, capacity), simpy.Store(env, capacity)
        done = object()

        def producer():
            for i in range(n):
                yield source.put(i)
            for _ in range(workers):
                yield source.put(done)

        def worker():
            while (item := (yield source.get())) is not done:
                yield sink.put(item * 2)
            yield sink.put(done)

        def consumer():
            total, finished = 0, 0
            while finished < workers:
                item = yield sink.get()
                if item is done:
                    finished += 1
                else:
                    total += item
            return total

        env.process(producer())
        for _ in range(workers):
            env.process(worker())
        return env.run(env.process(consumer()))

    def run(sizes: Sizes):
        return {
            "spawn_join": lambda: spawn_join(sizes.spawn_join),
            "ping_pong": lambda: ping_pong(sizes.ping_pong),
            "timers": lambda: timers(sizes.timer_tasks, sizes.timer_sleeps),
            "pipeline": lambda: pipeline(
                sizes.pipeline, sizes.pipeline_workers, sizes.pipeline_capacity
            ),
        }

    return run


RUNTIMES = {
    "counterpoint": lambda: counterpoint(journal=True),
    "counterpoint (journal off)": lambda: counterpoint(journal=False),
    "asyncio": asyncio_impl,
    "trio": trio_impl,
    "simpy": simpy_impl,
}
PEERS = ("asyncio", "trio", "simpy")
WORKLOADS = ("spawn_join", "ping_pong", "timers", "pipeline")
