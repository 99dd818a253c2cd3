"""An interrupt while the VM waits physically for a worker leaves the VM consistent."""

from __future__ import annotations

import os
import signal
import threading
import time
from concurrent.futures import Future

import pytest

import counterpoint as cp


class InterruptOnce(Future):
    """A finished future whose first result() call is interrupted (like Ctrl-C)."""

    def __init__(self, outcome):
        super().__init__()
        self.set_result(outcome)
        self.interrupted = False

    def result(self, timeout=None):
        if not self.interrupted:
            self.interrupted = True
            raise KeyboardInterrupt
        return super().result(timeout)


class InterruptingBackend(cp.worker.Backend):
    def submit(self, function, payload):
        return InterruptOnce((1, function(payload), ""))


@cp.worker.task
def triple(n):
    return 3 * n


def test_an_interrupted_physical_wait_is_retried_at_the_same_tick():
    vm = cp.VM(workers=InterruptingBackend())
    handles = []

    async def start():
        handles.append(cp.worker.start("triple", 7, cost=4))

    async def collect():
        status = await cp.worker.wait(handles[0])
        return status, cp.worker.result(handles[0]), cp.now()

    vm.run(start())
    with pytest.raises(KeyboardInterrupt):
        vm.run(collect())  # time reaches tick 4, and the wait for the host is interrupted
    assert vm.now == 4
    assert [r.kind for r in vm.journal].count("receipt") == 0
    assert vm.run(collect()) == (1, 21, 4)  # observed at the same tick, exactly once
    assert [r.kind for r in vm.journal].count("receipt") == 1


@cp.worker.task
def sends_ctrl_c(_payload):
    """A real SIGINT reaches this process while the worker runs (inline: on the VM's
    thread), then the worker carries on to its end."""
    os.kill(os.getpid(), signal.SIGINT)
    deadline = time.monotonic() + 0.2
    while time.monotonic() < deadline:  # Python code: the handler runs in this frame
        pass
    return "finished"


@pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(), reason="SIGINT goes to main"
)
def test_a_real_ctrl_c_during_an_inline_worker_still_interrupts_the_run():
    # Unlike a KeyboardInterrupt the function raises itself (a failed worker), a real
    # Ctrl-C is the user's: the run stops at the scheduler's next step, the VM stays
    # consistent, and the worker's outcome is observed at its due tick as usual.
    vm = cp.VM(workers="inline")
    handles = []

    async def main():
        handles.append(cp.worker.start("sends_ctrl_c", None, cost=3))
        await cp.sleep(10)
        return "not interrupted"

    with pytest.raises(KeyboardInterrupt):
        vm.run(main())
    assert [r.kind for r in vm.journal].count("receipt") == 0

    async def later():
        return await cp.worker.wait(handles[0]), cp.worker.result(handles[0]), cp.now()

    assert vm.run(later()) == (1, "finished", 3)
