"""Running notebook cells on a VM (counterpoint.ipython.cells.run_cell): a cell's task is
never abandoned; deadlocks, step limits and interrupts are raised inside it, at its
await, and the VM is consistent for the next cell."""

from __future__ import annotations

import os
import signal
import threading

import pytest

import counterpoint as cp
from counterpoint.ipython.cells import run_cell


async def like_ipython(body):
    """What IPython's run_cell_async does with a cell: run it, catch everything."""
    try:
        return ("ok", await body)
    except BaseException as error:  # IPython's bare `except:` in run_code
        return ("shown", type(error).__name__, str(error).splitlines()[0] if str(error) else "")


def cell(vm, body, name="cell 1"):
    return run_cell(vm, like_ipython(body), name)


async def settled():
    await cp.sleep(1)
    return "next cell"


def test_a_cell_runs_as_a_task_and_returns_its_value():
    vm = cp.VM()

    async def body():
        await cp.sleep(3)
        return cp.now()

    run = cell(vm, body())
    assert run.result == ("ok", 3) and run.problem is None
    assert vm.journal[0].kind == "spawn" and vm.journal[0].data["name"] == "cell 1"


def test_a_deadlocked_cell_gets_the_deadlock_at_its_await():
    vm = cp.VM()

    async def body():
        ch = cp.channel()
        await ch.recv()

    run = cell(vm, body())
    assert run.result[:2] == ("shown", "Deadlock")
    assert "task 1 'cell 1' (the notebook cell) waits" in run.result[2]
    assert isinstance(run.problem, cp.Deadlock) and run.problem.__traceback__ is not None
    assert vm.run(settled()) == "next cell"


def test_a_deadlock_cancels_the_tasks_the_cell_started_but_not_earlier_ones():
    vm = cp.VM()
    waiting = vm.channel()

    async def earlier():
        await waiting.recv()

    async def first_cell():
        cp.spawn(earlier(), name="earlier")  # blocked, but the cell ends normally
        await cp.sleep(1)

    assert cell(vm, first_cell()).result == ("ok", None)

    async def second_cell():
        ch = cp.channel()

        async def stuck():
            await ch.recv()

        async with cp.scope() as s:
            s.spawn(stuck(), name="stuck")

    run = cell(vm, second_cell(), "cell 2")
    assert run.result[:2] == ("shown", "Deadlock")
    assert [(t.name, t.state) for t in vm.tasks()] == [("earlier", "blocked")]
    cancels = [r for r in vm.journal if r.kind == "cancel"]
    assert {r.data["reason"] for r in cancels} == {"the cell deadlocked"}
    names = {r.data["child"]: r.data["name"] for r in vm.journal if r.kind == "spawn"}
    assert {names[r.task] for r in cancels} == {"cell 2", "stuck"}


def test_a_cell_past_max_steps_gets_step_limit_exceeded():
    vm = cp.VM(max_steps=200)

    async def spinner():
        while True:
            await cp.checkpoint()

    async def body():
        cp.spawn(spinner(), name="spinner")
        await cp.sleep(5)

    run = cell(vm, body())
    assert run.result[:2] == ("shown", "StepLimitExceeded")
    assert "in the cell 'cell 1'" in run.result[2]
    # the spinner is cancelled; it unwinds at its next step (every await is a step)
    assert [(t.name, t.state) for t in vm.tasks()] == [("spinner", "ready")]
    assert vm.run(settled()) == "next cell"
    assert vm.tasks() == []


def test_a_deadlock_while_the_cell_waits_at_a_scope_exit_is_raised_there():
    vm = cp.VM()

    async def body():
        ch = cp.channel()

        async def stuck():
            await ch.recv()

        async with cp.scope() as s:
            s.spawn(stuck())
        return "after the scope"

    run = cell(vm, body())
    assert run.result[:2] == ("shown", "Deadlock")
    assert vm.tasks() == []


def test_a_cell_catching_the_deadlock_goes_on_and_every_later_await_raises_it_again():
    vm = cp.VM()

    async def body():
        ch = cp.channel()
        try:
            await ch.recv()
        except cp.Deadlock:
            pass
        try:
            await cp.sleep(1)
        except cp.Deadlock as again:
            return "raised again: " + type(again).__name__

    assert cell(vm, body()).result == ("ok", "raised again: Deadlock")


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="signals")
def test_an_interrupted_task_is_cancelled_and_the_cell_gets_keyboard_interrupt():
    vm = cp.VM()

    async def stuck():
        while True:
            pass

    async def body():
        await cp.spawn(stuck(), name="stuck")

    timer = threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        run = cell(vm, body())
    finally:
        timer.join()
    assert run.result[:2] == ("shown", "KeyboardInterrupt")
    assert "while task 2 'stuck' ran" in run.result[2]
    assert isinstance(run.problem.__cause__, KeyboardInterrupt)
    reasons = [(r.task, r.data["reason"]) for r in vm.journal if r.kind == "cancel"]
    assert (2, "interrupted by KeyboardInterrupt") in reasons
    assert (1, "the cell was interrupted") in reasons
    assert vm.run(settled()) == "next cell"


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="signals")
def test_an_interrupt_in_the_cells_own_code_ends_just_the_cell():
    vm = cp.VM()

    async def body():
        await cp.sleep(1)
        while True:
            pass

    timer = threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        run = cell(vm, body())
    finally:
        timer.join()
    assert run.result[:2] == ("shown", "KeyboardInterrupt")
    assert run.problem is None  # IPython caught it in the cell's code: nothing to deliver
    assert vm.run(settled()) == "next cell"


def test_a_cell_is_refused_while_the_vm_runs():
    vm = cp.VM()

    async def body():
        return run_cell(vm, like_ipython(cp.sleep(1)), "inner")

    with pytest.raises(RuntimeError, match="inside a running task"):
        vm.run(body())


def test_cells_are_deterministic():
    def session():
        vm = cp.VM(seed=3, policy="random")

        async def body():
            async def worker(i):
                await cp.sleep(i % 3)
                return i

            return await cp.par(*[worker(i) for i in range(6)])

        cell(vm, body())

        async def deadlocked():
            await cp.channel().recv()

        cell(vm, deadlocked(), "cell 2")
        return vm.journal.digest()

    assert session() == session()
