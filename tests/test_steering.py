"""Steering and inspecting a VM from the host (Contract v2): ``vm.ready()``,
``vm.step(task=ID)``, ``vm.schedule``, ``vm.watch``, ``TaskInfo.where``/``.code``,
``task.suspend()``/``resume()`` and ``journal.records()``."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import textwrap

import pytest
from fuzz.properties import Subject, check  # generated programs: every primitive

import counterpoint as cp
from counterpoint._steering import schedule_of


async def worker(ch, i):
    await cp.sleep(i % 2)
    await ch.send(i)


async def fan_in(n: int = 4):
    ch = cp.channel()
    for i in range(n):
        cp.spawn(worker(ch, i), name=f"w{i}")
    return sorted([await ch.recv() for _ in range(n)])


# -- vm.ready() and vm.step(task=...) --------------------------------------------------------


def test_ready_lists_the_ready_tasks_in_fifo_order_without_changing_anything(new_vm):
    vm = new_vm()
    vm.spawn(fan_in())
    assert [t.id for t in vm.ready()] == [1]
    vm.step()
    before = len(vm.journal)
    assert [(t.id, t.name, t.state) for t in vm.ready()] == [
        (2, "w0", "ready"),
        (3, "w1", "ready"),
        (4, "w2", "ready"),
        (5, "w3", "ready"),
    ]
    assert len(vm.journal) == before


def test_step_task_runs_exactly_one_step_of_the_chosen_task(new_vm):
    vm = new_vm()
    vm.spawn(fan_in())
    vm.step(task=1)
    assert vm.step(task=4) == 1
    steps = [r.task for r in vm.journal if r.kind == "step"]
    assert steps == [1, 4]
    assert [t.id for t in vm.ready()] == [2, 3, 5, 4]  # (task 4 slept 0: ready again)


def test_step_task_refuses_a_task_that_is_not_ready_naming_the_ready_ones(new_vm):
    vm = new_vm()
    vm.spawn(fan_in())
    vm.step(task=1)
    before = len(vm.journal)
    with pytest.raises(cp.InvalidStateError) as caught:
        vm.step(task=1)
    message = str(caught.value)
    assert "task 1 'fan_in' is not ready" in message
    assert "to receive on channel 1" in message
    assert "2 'w0', 3 'w1', 4 'w2', 5 'w3'" in message
    with pytest.raises(cp.InvalidStateError, match="this VM has no task 99"):
        vm.step(task=99)
    with pytest.raises(TypeError, match="task id"):
        vm.step(task="w0")
    assert len(vm.journal) == before  # nothing changed
    assert vm.step(task=2) == 1  # and the VM goes on


def test_step_task_accepts_a_task_or_its_info(new_vm):
    vm = new_vm()
    root = vm.spawn(fan_in())
    vm.step(task=root)
    info = vm.ready()[-1]
    vm.step(task=info)
    assert [r.task for r in vm.journal if r.kind == "step"] == [1, 5]


def test_step_task_lets_time_pass_when_nothing_is_ready(new_vm):
    async def sleeper():
        await cp.sleep(3)
        return cp.now()

    vm = new_vm()
    task = vm.spawn(sleeper())
    vm.step(task=task.id)
    assert vm.ready() == []
    vm.step(task=task.id)  # time advances to the timer first: not a choice
    assert vm.now == 3 and task.result() == 3


def test_a_host_driven_run_has_a_schedule_that_reproduces_it(new_vm):
    vm = new_vm()
    root = vm.spawn(fan_in())
    vm.step(task=1)
    for choice in (5, 3, 2, 4):
        vm.step(task=choice)
    while not root.done():
        ready = vm.ready()
        if ready:
            vm.step(task=ready[-1].id)  # always the newest ready task
        else:
            vm.step()  # (time passes, and fifo picks)
        assert vm.schedule == schedule_of(vm.journal)  # (read on from where it was)
    again = cp.VM(schedule=vm.schedule)
    assert again.run(fan_in()) == root.result()
    assert list(again.journal) == list(vm.journal)


# -- vm.schedule ------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(60))
def test_the_schedule_of_any_generated_program_reproduces_its_journal(seed):
    check(Subject.from_seed(seed), "schedule")


def test_cp_choose_is_part_of_the_schedule():
    async def main():
        return [cp.choose("abc") for _ in range(4)]

    vm = cp.VM(policy="random", seed=7)
    picked = vm.run(main())
    assert cp.VM(schedule=vm.schedule).run(main()) == picked


def test_a_schedule_under_the_random_policy_is_no_longer_an_attribute_error():
    # (was: AttributeError: 'list' object has no attribute 'popleft')
    vm = cp.VM(policy="random", seed=3, schedule="cp1:11")
    assert vm.run(fan_in()) == [0, 1, 2, 3]


def test_schedule_needs_a_journal():
    vm = cp.VM(journal=False)
    vm.run(fan_in())
    with pytest.raises(cp.JournalError, match="journal=False"):
        vm.schedule  # noqa: B018


FAN_IN = textwrap.dedent(
    """
    import counterpoint as cp

    async def worker(ch, i):
        await cp.sleep(i % 2)
        await ch.send(i)

    async def fan_in(n):
        ch = cp.channel()
        for i in range(n):
            cp.spawn(worker(ch, i), name=f"w{i}")
        return sorted([await ch.recv() for _ in range(n)])

    vm = cp.VM(policy="random", seed=11)
    vm.run(fan_in(6))
    print(vm.schedule)
    """
)


def test_the_schedule_is_the_same_in_another_process():
    outputs = set()
    for hashseed in ("1", "2"):
        done = subprocess.run(
            [sys.executable, "-c", FAN_IN],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": hashseed},
        )
        outputs.add(done.stdout)
    vm = cp.VM(policy="random", seed=11)
    vm.run(fan_in(6))
    assert outputs == {vm.schedule + "\n"}


# -- vm.watch ---------------------------------------------------------------------------------


async def busy(n: int):
    for _ in range(n):
        await cp.checkpoint()


def test_watch_reports_every_record_once_in_batches_of_at_most_1000_steps():
    vm = cp.VM()
    calls = []
    vm.watch(lambda v, first, last: calls.append((first, last)))
    vm.run(busy(5000))
    assert calls[0][0] == 1 and calls[-1][1] == len(vm.journal)
    assert all(b[0] == a[1] + 1 for a, b in itertools.pairwise(calls))
    steps_per_call = [
        sum(1 for r in vm.journal.records(first, last + 1) if r.kind == "step")
        for first, last in calls
    ]
    assert max(steps_per_call) <= 1000 and len(calls) >= 5


def test_watch_is_called_after_host_calls_and_unwatch_stops_it(new_vm):
    vm = new_vm()
    calls = []
    unwatch = vm.watch(lambda v, first, last: calls.append((first, last)))
    vm.spawn(busy(1))
    assert calls == [(1, 1)]
    unwatch()
    vm.step(3)
    assert calls == [(1, 1)]
    unwatch()  # twice: nothing more


def test_a_watcher_cannot_change_the_vm():
    vm = cp.VM()
    errors = []

    def meddle(v, first, last):
        try:
            v.spawn(busy(1))
        except cp.VMBusyError as error:
            errors.append(error)

    vm.watch(meddle)
    vm.run(busy(3))
    assert errors and all("while this VM is running" in str(e) for e in errors)


def test_watch_refuses_a_non_callable_and_a_vm_without_journal():
    with pytest.raises(TypeError):
        cp.VM().watch(42)
    with pytest.raises(cp.JournalError):
        cp.VM(journal=False).watch(print)


# -- TaskInfo.where / .code --------------------------------------------------------------------


async def napper(ch):
    await cp.sleep(5)
    await ch.send(1)


async def where_main():
    ch = cp.channel()
    cp.spawn(napper(ch), name="napper")
    cp.spawn(ch.recv(), name="raw")
    await ch.recv()


def test_where_and_code_name_the_line_a_task_is_paused_at(new_vm):
    vm = new_vm()
    root = vm.spawn(where_main())
    vm.step(3)
    infos = {info.name: info for info in vm.tasks()}
    assert infos["napper"].where == f"test_steering.py:{napper.__code__.co_firstlineno + 1}"
    assert infos["napper"].code == "await cp.sleep(5)"
    assert infos["where_main"].code == "await ch.recv()"
    assert infos["raw"].where is None  # all Counterpoint's own: no user frame
    assert root.info().where.startswith("test_steering.py:")


def test_where_is_none_for_a_task_not_started(new_vm):
    vm = new_vm()
    task = vm.spawn(where_main())
    assert task.info().where is None and task.info().code is None


# -- task.suspend() / task.resume() -------------------------------------------------------------


async def ticker(log, name):
    for i in range(3):
        log.append((cp.now(), name, i))
        await cp.sleep(1)


def test_a_suspended_task_is_not_scheduled_until_resumed():
    log: list = []

    async def main():
        a = cp.spawn(ticker(log, "a"), name="a")
        b = cp.spawn(ticker(log, "b"), name="b")
        await cp.sleep(1)
        assert a.suspend() is True and a.suspend() is False
        await cp.sleep(3)
        assert a.resume() is True and a.resume() is False
        await a
        await b

    vm = cp.VM()
    vm.run(main())
    assert [entry for entry in log if entry[1] == "a"] == [(0, "a", 0), (4, "a", 1), (5, "a", 2)]
    kinds = [(r.kind, r.task, r.data) for r in vm.journal if r.kind in ("suspend", "resume")]
    assert kinds == [("suspend", 2, {"by": 1}), ("resume", 2, {"by": 1})]


def test_suspended_tasks_show_as_suspended_and_in_a_deadlock(new_vm):
    async def main():
        child = cp.spawn(cp.sleep(1), name="sleeper")
        child.suspend()
        await child

    with pytest.raises(cp.Deadlock, match="nothing can run: task 2 'sleeper' is suspended"):
        new_vm().run(main())

    vm = new_vm()
    task = vm.spawn(ticker([], "h"))
    task.suspend()
    assert vm.ready() == [] and vm.tasks()[0].state == "suspended"
    assert vm.step(5) == 0
    task.resume()
    assert vm.step(10) > 0 and task.done()


def test_a_suspended_task_is_never_offered_as_a_choice(new_vm):
    vm = new_vm()
    vm.spawn(fan_in())
    vm.step(task=1)
    vm._live[3].suspend()
    with pytest.raises(cp.InvalidStateError, match="suspended"):
        vm.step(task=3)
    assert [t.id for t in vm.ready()] == [2, 4, 5]


# -- journal.records() ------------------------------------------------------------------------


def test_records_returns_the_records_of_an_event_range():
    vm = cp.VM()
    vm.run(fan_in())
    journal = vm.journal
    assert journal.records() == list(journal)
    assert journal.records(3, 7) == [journal[i] for i in range(2, 6)]
    assert journal.records(5) == list(journal)[4:]
    assert journal.records(len(journal) + 1) == []
    assert journal.records(4, 2) == []
    with pytest.raises(ValueError, match="start"):
        journal.records(0)
    with pytest.raises(TypeError):
        journal.records("1")


def test_state_at_agrees_with_the_live_vm_about_suspended_tasks(new_vm):
    for policy in ("fifo", "random"):
        vm = new_vm(policy=policy, seed=3)
        vm.spawn(fan_in(6))
        vm.step(task=1)
        vm._live[4].suspend()
        vm.step(2)
        view = vm.journal.state_at(len(vm.journal))
        live = {info.id: info for info in vm.tasks()}
        assert view.ready == [info.id for info in vm.ready()] or policy == "random"
        assert sorted(view.ready) == sorted(info.id for info in vm.ready())
        assert view.tasks[4].state == live[4].state == "suspended"
        assert view.tasks[4].waiting_on == live[4].waiting_on
        vm._live[4].resume()
        view = vm.journal.state_at(len(vm.journal))
        assert 4 in view.ready and view.tasks[4].state == "ready"
