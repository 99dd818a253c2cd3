"""Timeouts and cancellation: a slow fetch is cut off, and its cleanup still runs."""

import counterpoint as cp


async def fetch(name: str, ticks: int, log: list[str]) -> str:
    try:
        await cp.sleep(ticks)
        log.append(f"{name} finished at {cp.now()}")
        return name
    finally:
        if cp.current_task().cancelled() or ticks > 5:
            log.append(f"{name} cleaned up at {cp.now()}")


async def main() -> list[str]:
    log: list[str] = []
    try:
        async with cp.scope(timeout=5) as s:
            s.spawn(fetch("fast", 2, log))
            s.spawn(fetch("slow", 20, log))
    except TimeoutError as error:
        log.append(f"timeout: {error}")

    inbox = cp.channel()
    choice = await cp.select(inbox, timeout=3)
    log.append(f"select gave {choice.tag.name} at {cp.now()}")
    return log
