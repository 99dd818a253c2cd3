"""Fan-in with select: three sensors report at different rates; a collector
takes readings with round-robin fairness until every sensor is done."""

import counterpoint as cp


async def sensor(name: str, period: int, readings: int, out: cp.Channel) -> None:
    for i in range(readings):
        await cp.sleep(period)
        await out.send(f"{name}:{i}")
    out.close()


async def main() -> list[str]:
    channels = [cp.channel(2) for _ in range(3)]
    for (name, period), channel in zip((("a", 1), ("b", 2), ("c", 3)), channels, strict=True):
        cp.spawn(sensor(name, period, 4, channel), name=f"sensor-{name}")
    received, open_channels = [], list(channels)
    while open_channels:
        choice = await cp.select(*open_channels, policy="round_robin")
        if choice.tag == cp.SelectTag.CLOSED:
            open_channels.pop(choice.index)
        else:
            received.append(choice.value)
    return received
