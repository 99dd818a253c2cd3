"""A pipeline: producer -> 3 workers -> consumer over buffered channels.

Closing a channel ends the `async for` loops downstream, so the whole pipeline
shuts down in order.  Run it with `counterpoint run examples/pipeline.py`.
"""

import counterpoint as cp


async def producer(out: cp.Channel, items: int) -> None:
    for i in range(items):
        await out.send(i)
        await cp.sleep(1)  # one item per tick
    out.close()


async def worker(source: cp.Channel, sink: cp.Channel) -> None:
    async for item in source:
        await cp.sleep(3)  # each item takes 3 ticks of work
        await sink.send(item * item)


async def workers(source: cp.Channel, sink: cp.Channel, count: int) -> None:
    await cp.par(*[worker(source, sink) for _ in range(count)])
    sink.close()


async def consumer(source: cp.Channel) -> list[int]:
    return [item async for item in source]


async def main() -> list[int]:
    source, sink = cp.channel(4), cp.channel(4)
    _, _, results = await cp.par(producer(source, 10), workers(source, sink, 3), consumer(sink))
    return results
