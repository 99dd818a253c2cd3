"""Small programs and checks that several test files share."""

from __future__ import annotations

import counterpoint as cp


async def sleeps(ticks):
    """Sleep ``ticks`` and return them."""
    await cp.sleep(ticks)
    return ticks


async def long(name, log):
    """Sleep for a long time; log ``(name, now)`` when it ends, however it ends."""
    try:
        await cp.sleep(1000)
    finally:
        log.append((name, cp.now()))


async def fail_after(ticks, error):
    """Sleep ``ticks``, then raise ``error``."""
    await cp.sleep(ticks)
    raise error


async def spin():
    """A livelock: checkpoints forever."""
    while True:
        await cp.checkpoint()


def state_of(vm: cp.VM, task: cp.Task) -> cp.TaskInfo:
    """The snapshot of ``task`` in ``vm.tasks()``."""
    return next(info for info in vm.tasks() if info.id == task.id)


def assert_vm_usable(vm: cp.VM) -> None:
    """A fresh small program (par of sleeps over a channel) runs correctly on ``vm``."""
    start = vm.now

    async def worker(ch, ticks):
        await cp.sleep(ticks)
        await ch.send(ticks)
        return ticks * 10

    async def program():
        ch = cp.channel(2)
        results = await cp.par(worker(ch, 2), worker(ch, 1))
        return results, [await ch.recv(), await ch.recv()]

    assert vm.run(program()) == ([20, 10], [1, 2])
    assert vm.now == start + 2
