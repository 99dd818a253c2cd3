"""Ctrl-C (SIGINT) while a VM runs: the interrupt surfaces as KeyboardInterrupt, the
interrupted task is journaled as cancelled, and the VM stays consistent, whatever
the moment the signal lands (docs/design.md, "Errors and misuse")."""

from __future__ import annotations

import os
import signal
import sys
import threading

import pytest

import counterpoint as cp
from counterpoint._explore import Chooser
from counterpoint._interrupts import _in_user_code

pytestmark = pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(),
    reason="signals are delivered to the main thread",
)


def interrupt_after(seconds: float) -> threading.Timer:
    timer = threading.Timer(seconds, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    return timer


async def spinners(count: int = 3):
    """A livelock: tasks that checkpoint forever (most of the time goes to the VM)."""

    async def spinner():
        while True:
            await cp.checkpoint()

    async with cp.scope() as s:
        for _ in range(count):
            s.spawn(spinner())


async def busy_loop():
    """A task stuck in its own code: it never reaches an await."""

    async def stuck():
        while True:
            pass

    await cp.spawn(stuck(), name="stuck")


async def settled():
    await cp.sleep(1)
    return "the VM still works"


def assert_consistent_after_interrupt(vm: cp.VM) -> None:
    """Every task the interrupted run started ends (cancelled) at the next run, and
    nothing is left half-scheduled."""
    assert vm.run(settled()) == "the VM still works"
    assert vm.tasks() == []
    assert vm.step(10) == 0


@pytest.mark.parametrize("delay", [0.001 * n for n in range(1, 25)])
def test_ctrl_c_at_any_moment_of_a_livelock_leaves_a_consistent_vm(delay):
    vm = cp.VM()
    timer = interrupt_after(delay)
    try:
        with pytest.raises(KeyboardInterrupt):
            vm.run(spinners())
    finally:
        timer.join()
    assert_consistent_after_interrupt(vm)


def test_ctrl_c_in_a_task_stuck_in_its_own_loop_cancels_that_task_in_the_journal():
    vm = cp.VM()
    timer = interrupt_after(0.05)
    try:
        with pytest.raises(KeyboardInterrupt):
            vm.run(busy_loop())
    finally:
        timer.join()
    stuck = next(
        r.data["child"] for r in vm.journal if r.kind == "spawn" and r.data["name"] == "stuck"
    )
    cancels = [r for r in vm.journal if r.kind == "cancel" and r.task == stuck]
    assert cancels[0].data["reason"] == "interrupted by KeyboardInterrupt"
    assert any(r.kind == "cancelled" and r.task == stuck for r in vm.journal)
    assert_consistent_after_interrupt(vm)


def test_ctrl_c_while_stepping_leaves_a_consistent_vm():
    vm = cp.VM()
    vm.spawn(spinners())
    timer = interrupt_after(0.02)
    try:
        with pytest.raises(KeyboardInterrupt):
            while True:
                vm.step(1000)
    finally:
        timer.join()
    # vm.step abandons nothing: the only task that may be gone is one the signal
    # caught in its own code, and that one is journaled as cancelled by it
    alive = {t.id for t in vm.tasks()}
    gone = {r.data["child"] for r in vm.journal if r.kind == "spawn"} - alive
    assert len(gone) <= 1
    for task in gone:
        reasons = [r.data["reason"] for r in vm.journal if r.kind == "cancel" and r.task == task]
        assert reasons == ["interrupted by KeyboardInterrupt"]
    # and the others still run
    assert vm.step(100) == 100
    assert {t.id for t in vm.tasks()} == alive


def test_a_program_with_its_own_sigint_handler_keeps_it():
    seen = []

    def handler(signum, frame):
        seen.append(signum)

    previous = signal.signal(signal.SIGINT, handler)
    try:

        async def main():
            os.kill(os.getpid(), signal.SIGINT)
            await cp.sleep(1)
            return "ran to the end"

        assert cp.VM().run(main()) == "ran to the end"
        assert signal.getsignal(signal.SIGINT) is handler
        assert seen == [signal.SIGINT]
    finally:
        signal.signal(signal.SIGINT, previous)


def test_the_default_handler_is_back_after_a_run():
    cp.VM().run(settled())
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_frame_of_task_code_is_user_code():
    async def main():
        return _in_user_code(sys._getframe())

    assert cp.VM().run(main()) is True


def test_a_frame_of_the_scheduler_is_not_user_code():
    verdicts = []

    class Spy(Chooser):
        def pick(self, vm, candidates, front):
            # the caller is VM._pick_chosen: the scheduler's bookkeeping
            verdicts.append(_in_user_code(sys._getframe().f_back))
            return super().pick(vm, candidates, front)

    async def main():
        await cp.par(cp.checkpoint(), cp.checkpoint())

    vm = cp.VM()
    vm._chooser = Spy()
    vm.run(main())
    assert verdicts and not any(verdicts)


def test_an_interrupt_noted_in_the_scheduler_is_raised_at_its_next_step():
    class Interrupting(Chooser):
        def pick(self, vm, candidates, front):
            os.kill(os.getpid(), signal.SIGINT)  # lands here, in the scheduler: noted
            return super().pick(vm, candidates, front)

    log = []

    async def main():
        async def worker(name):
            for i in range(3):
                log.append((name, i))
                await cp.checkpoint()

        await cp.par(worker("a"), worker("b"))

    vm = cp.VM()
    vm._chooser = Interrupting()
    with pytest.raises(KeyboardInterrupt):
        vm.run(main())
    assert len(log) <= 2  # raised before the next step ran
    vm._chooser = None
    assert_consistent_after_interrupt(vm)
