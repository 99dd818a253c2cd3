"""Time travel: ``journal.state_at(event_id)`` derives the state of a run at any event
from its records alone (issue 4, "Time travel").

The oracle: drive a VM one step at a time from the host and, after every step, compare
``state_at(len(journal))`` with the live VM (its tasks, channels, locks, semaphores,
events, workers and clock).  The other tests pin down single facts, the independence of
the answer from snapshots and caches, loaded journals, and plain-data output.

The oracle also compares what a picture is drawn from (issue 10): the ready queue in
order, pending timers, the waiters of every lock, semaphore, event, condition and barrier,
the open scopes, and each wait as data and as words -- the same words, since the live VM
and the model both word a wait with ``_names.wait_words``.

Where the model and the live VM legitimately differ, the oracle normalizes:

* "running": between host steps no task runs, so the live view never says "running";
  the journal has no record for "the step ended", so the model keeps the task of the
  last ``step`` record "running" while it has neither blocked nor finished.  The oracle
  reads the model's "running" as "ready" and checks that it is that task only.
* timers: a select's timeout is not in its block record, so the oracle leaves select
  timers out of the live list (worker dues are in ``workers``).
"""

from __future__ import annotations

import importlib.util
import json
import random
from pathlib import Path

import pytest

import counterpoint as cp
from counterpoint import _timetravel
from counterpoint._channel import Channel
from counterpoint._names import Wait
from counterpoint._scope import Scope
from counterpoint._sync import Barrier, BoundedSemaphore, Condition, Event, Lock, Semaphore
from counterpoint._task import BLOCKED, Task, wait_of

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@cp.worker.task(name="time_travel_square")
def time_travel_square(n):
    """A worker task (a name of its own: the registry is shared by the whole process)."""
    if n < 0:
        raise ValueError(f"negative: {n}")
    return n * n


# ---------------------------------------------------------------------------
# The oracle


@pytest.fixture
def made(monkeypatch):
    """Every Task, Channel, Lock, Semaphore, Event, Condition, Barrier and Scope created
    during the test, in order (so the oracle can compare with objects that the programs
    keep to themselves)."""
    objects: list = []

    def recording(original):
        def __init__(self, *args, **kwargs):
            original(self, *args, **kwargs)
            objects.append(self)

        return __init__

    for cls in (Task, Channel, Lock, Semaphore, BoundedSemaphore, Event, Condition, Barrier, Scope):
        monkeypatch.setattr(cls, "__init__", recording(cls.__init__))
    return objects


def ending(task: Task) -> str:
    if task.cancelled():
        return "cancelled"
    return "done" if task.exception() is None else "failed"


def last_step_task(journal: cp.Journal) -> int | None:
    for index in range(len(journal) - 1, -1, -1):
        record = journal[index]
        if record.kind == "step":
            return record.task
    return None


def assert_matches_live(vm: cp.VM, made: list) -> None:
    """``state_at(len(journal))`` agrees with the live VM in every respect it models."""
    journal = vm.journal
    state = journal.state_at(len(journal))
    where = f"at event {len(journal)}"
    assert state.event_id == len(journal)
    assert state.tick == vm.now, where

    tasks = [obj for obj in made if type(obj) is Task]
    assert list(state.tasks) == [task.id for task in tasks], where  # all spawned so far
    live_ids = [info.id for info in vm.tasks()]
    assert live_ids == [task.id for task in tasks if not task.done()], where
    running = [t.id for t in state.tasks.values() if t.state == "running"]
    assert running in ([], [last_step_task(journal)]), where
    for task in tasks:
        model = state.tasks[task.id]
        if task.done():
            assert (model.name, model.state, model.waiting_on) == (task.name, ending(task), None)
            continue
        info = task.info()
        assert info.state in ("ready", "blocked", "sleeping"), where
        model_state = "ready" if model.state == "running" else model.state
        assert (model.name, model_state, model.waiting_on) == (
            info.name,
            info.state,
            info.waiting_on,
        ), f"task {task.id} {where}"
        live_wait = wait_of(task._waiting) if task._state == BLOCKED else None
        assert state.waits.get(task.id) == live_wait, f"task {task.id} {where}"
    assert sorted(state.waits) == [t.id for t in tasks if t._state == BLOCKED], where
    assert state.ready == [task.id for task in vm._ready], where
    assert state.timers == live_timers(vm), where

    # every object made so far, and no other
    for kinds, table in (
        ((Channel,), state.channels),
        ((Lock,), state.locks),
        ((Semaphore, BoundedSemaphore), state.semaphores),
        ((Event,), state.events),
        ((Condition,), state.conditions),
        ((Barrier,), state.barriers),
    ):
        assert list(table) == [obj.id for obj in made if type(obj) in kinds], where
    assert list(state.lock_states) == list(state.locks), where
    assert list(state.semaphore_states) == list(state.semaphores), where
    assert list(state.event_states) == list(state.events), where
    open_scopes = [obj for obj in made if type(obj) is Scope and obj._state == "open"]
    assert list(state.scopes) == [scope.id for scope in open_scopes], where
    for scope in open_scopes:
        assert state.scopes[scope.id] == live_scope(scope, state.scopes[scope.id].due), where
    # the live wait queues are private: the oracle reads them to check order exactly
    for obj in made:
        if type(obj) is Channel:
            channel = state.channels[obj.id]
            receivers = [getattr(waiter, "task", waiter).id for waiter in obj._recvq]
            assert channel == (
                obj.id,
                obj.capacity,
                list(obj._buf),
                receivers,
                [sender.id for sender in obj._sendq],
                obj.closed,
                obj.name,
            ), f"channel {obj.id} {where}"
            assert len(channel.contents) == len(obj)
        elif type(obj) is Lock:
            owner = None if obj.owner is None else obj.owner.id
            assert state.locks[obj.id] == owner, f"lock {obj.id} {where}"
            assert state.lock_states[obj.id] == (obj.id, obj.name, owner, waiters(obj)), where
        elif type(obj) in (Semaphore, BoundedSemaphore):
            assert state.semaphores[obj.id] == obj.value, f"semaphore {obj.id} {where}"
            assert state.semaphore_states[obj.id] == (obj.id, obj.name, obj.value, waiters(obj))
        elif type(obj) is Event:
            assert state.events[obj.id] == obj.is_set(), f"event {obj.id} {where}"
            assert state.event_states[obj.id] == (obj.id, obj.name, obj.is_set(), waiters(obj))
        elif type(obj) is Condition:
            expected = (obj.id, obj.name, obj.lock.id, waiters(obj))
            assert state.conditions[obj.id] == expected, f"condition {obj.id} {where}"
        elif type(obj) is Barrier:
            expected = (obj.id, obj.name, obj.parties, waiters(obj))
            assert state.barriers[obj.id] == expected, f"barrier {obj.id} {where}"
    jobs = vm._workers._jobs  # the worker table (cp.worker.poll works only inside tasks)
    assert sorted(state.workers) == sorted(jobs), where
    for handle, job in jobs.items():
        assert state.workers[handle] == (handle, job.name, job.status, job.due), where


def waiters(obj) -> list[int]:
    """The tasks queued on a lock, semaphore, event, condition or barrier, in order."""
    return [task.id for task in obj._waiters]


def live_timers(vm: cp.VM) -> list:
    """The live VM's pending sleeps and scope timeouts, as ``state_at(...).timers``."""
    timers = []
    for due, bucket in vm._timers.items():
        for target in bucket:
            if type(target) is Task:
                timers.append((due, "task", target.id))
            elif type(target) is Scope:
                timers.append((due, "scope", target.id))
    return sorted(timers)


def live_scope(scope: Scope, due: int | None) -> tuple:
    """An open live scope, as a ``ScopeState`` (the due tick checked by ``live_timers``)."""
    owner = scope._owner_task
    parent = scope._parent.id if type(scope._parent) is Scope else None
    exiting = owner._state == BLOCKED and owner._waiting == ("children", scope)
    children = [child.id for child in scope._children.values()] if scope._par else None
    return (scope.id, owner.id, parent, scope._par, due, exiting, children)


def run_with_oracle(made, program, host=None, **vm_options) -> cp.VM:
    """Spawn ``program`` from the host, step until nothing can run, and check the state
    after every step (and after every host action: ``host(vm, steps)``)."""
    vm = cp.VM(**vm_options)
    assert_matches_live(vm, made)
    vm.spawn(program)
    assert_matches_live(vm, made)
    steps = 0
    while vm.step():
        steps += 1
        assert_matches_live(vm, made)
        if host is not None and host(vm, steps):
            assert_matches_live(vm, made)
    return vm


def load_example(name: str):
    spec = importlib.util.spec_from_file_location(f"time_travel_example_{name}", EXAMPLES / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def recv_or_closed(ch):
    try:
        return await ch.recv()
    except cp.ChannelClosed:
        return "closed"


async def select_program():
    a, b = cp.channel(), cp.channel(1)

    async def feed(ch, delay, value):
        await cp.sleep(delay)
        await ch.send(value)

    async def slow():
        await cp.sleep(7)
        return "slow"

    feeder = cp.spawn(feed(a, 2, "a"), name="feed-a")
    cp.spawn(feed(b, 4, "b"), name="feed-b")
    slow_task = cp.spawn(slow(), name="slow")
    out = [await cp.select(a, b, slow_task), await cp.select(a, b, slow_task)]
    out.append(await cp.select(a, slow_task, timeout=1))  # times out
    out.append(await cp.select(a, slow_task, policy="round_robin"))  # the task finishes
    b.close()
    out.append(await cp.select(b))
    await feeder
    return [(choice.index, choice.tag.name) for choice in out]


async def sync_program():
    lock, pool, go, barrier = cp.Lock(), cp.Semaphore(2), cp.Event(), cp.Barrier(3)

    async def user(i):
        await go.wait()
        async with pool:
            async with lock:
                await cp.sleep(1 + i)
            await cp.checkpoint()
        return await barrier.wait()

    async def starter():
        await cp.sleep(2)
        go.set()
        go.clear()
        go.set()

    return await cp.par(user(0), user(1), user(2), starter())


async def scope_timeout_program():
    ch, lock = cp.channel(), cp.Lock()

    async def holder():
        async with lock:
            await cp.sleep(100)

    async def waiter():
        async with lock:
            pass

    async def sender():
        await ch.send(1)
        await ch.send(2)

    try:
        async with cp.scope(timeout=5) as s:
            s.spawn(holder(), name="holder")
            s.spawn(waiter(), name="waiter")
            s.spawn(ch.recv(), name="receiver")
            s.spawn(cp.sleep(50), name="sleeper")
            async with cp.scope() as inner:
                inner.spawn(cp.sleep(60), name="inner-sleeper")
                inner.spawn(cp.select(ch, timeout=40), name="selector")
    except TimeoutError:
        pass
    try:
        async with cp.scope(timeout=3) as s:
            s.spawn(sender(), name="sender")
            await cp.sleep(10)
    except TimeoutError:
        pass
    return cp.now()


async def cancel_program():
    ch, lock, flag = cp.channel(), cp.Lock(), cp.Event()

    async def hold():
        async with lock:
            await cp.sleep(10)

    async def wait_lock():
        async with lock:
            pass

    async def join(task):
        return await task

    victims = [
        cp.spawn(ch.recv(), name="receiver"),
        cp.spawn(ch.send(9), name="sender"),
        cp.spawn(hold(), name="holder"),
        cp.spawn(wait_lock(), name="lock-waiter"),
        cp.spawn(cp.sleep(30), name="napper"),
        cp.spawn(flag.wait(), name="flag-waiter"),
        cp.spawn(cp.events.next(), name="event-waiter"),
    ]
    joiner = cp.spawn(join(victims[4]), name="joiner")
    selector = cp.spawn(cp.select(ch, victims[0]), name="selector")
    await cp.sleep(1)
    for task in victims[:2] + victims[3:]:
        task.cancel()
        await cp.checkpoint()
    selector.cancel()
    await cp.sleep(20)
    for task in [*victims, joiner, selector]:
        try:
            await task
        except cp.Cancelled:
            pass
    return cp.now()


async def worker_program():
    specs = ((2, 3), (3, 1), (-1, 2), (4, 5), (5, 2))
    handles = [cp.worker.start("time_travel_square", n, cost=cost) for n, cost in specs]
    doomed = cp.worker.start("time_travel_square", 6, cost=9)
    first = await cp.worker.wait_any(handles)
    cp.worker.cancel(doomed)
    statuses = [await cp.worker.wait(handle) for handle in handles]

    async def waiter(handle):
        return await cp.worker.wait(handle)

    later = cp.worker.start("time_travel_square", 7, cost=4)
    cancelled = cp.worker.start("time_travel_square", 8, cost=4)
    waiting = cp.spawn(waiter(cancelled), name="waiter")
    await cp.checkpoint()
    cp.worker.cancel(cancelled)
    statuses += [await waiting, await cp.worker.wait(later)]
    return first, statuses


async def failure_program():
    async def ok():
        await cp.sleep(1)
        return 1

    async def boom():
        await cp.sleep(2)
        raise ValueError("boom")

    async def slow():
        await cp.sleep(10)

    try:
        await cp.par(ok(), boom(), slow())
    except ValueError:
        pass
    try:
        async with cp.scope() as s:
            s.spawn(boom(), name="scoped-boom")
            s.spawn(slow(), name="scoped-slow")
    except ExceptionGroup:
        pass
    return cp.now()


async def host_program():
    inbox = cp.channel(1)

    async def listen():
        return [await cp.events.next(), await cp.events.next()]

    listener = cp.spawn(listen(), name="listener")
    sleeper = cp.spawn(cp.sleep(100), name="sleeper")
    got = [await inbox.recv(), await inbox.recv()]
    await cp.sleep(3)
    drained = cp.events.drain(10)
    try:
        await sleeper
    except cp.Cancelled:
        pass
    return got, len(drained), len(await listener)


def host_actions(made: list):
    """The host's part of ``host_program``: queue events, send into the program's inbox
    (channel 1) whenever it has room, and cancel the sleeper."""
    sent = []

    def act(vm: cp.VM, steps: int) -> bool:
        if steps == 1:
            vm.events.enqueue("keys", "a")
            vm.events.enqueue("mouse", [1, 2])
            vm.events.enqueue("keys", "b")
            return True
        if steps == 8:
            sleeper = next(obj for obj in made if type(obj) is Task and obj.name == "sleeper")
            return sleeper.cancel()
        inbox = next(obj for obj in made if type(obj) is Channel)
        if len(sent) < 2 and inbox.try_send(f"m{len(sent)}") == cp.SendStatus.SENT:
            sent.append(steps)
            return True
        return False

    return act


async def crowd(n):
    """``n`` tasks at once: a gate, staggered sleeps, a lock, one results channel."""
    results, gate, lock = cp.channel(16), cp.Event(), cp.Lock()

    async def member(i):
        if i % 3 == 0:
            await gate.wait()
        await cp.sleep(i % 5)
        if i % 4 == 0:
            async with lock:
                await cp.checkpoint()
        await results.send(i)

    for i in range(n):
        cp.spawn(member(i), name=f"member-{i}")
    await cp.sleep(2)
    gate.set()
    total = 0
    for _ in range(n):
        total += await results.recv()
    return total


async def notified_condition():
    """Producers and consumers over a Condition (like examples/bounded_buffer.py)."""
    cond, box = cp.Condition(), []

    async def waiter():
        async with cond:
            await cond.wait_for(lambda: box)
            return box.pop()

    tasks = [cp.spawn(waiter(), name=f"waiter-{i}") for i in range(2)]
    await cp.sleep(1)
    async with cond:
        box.extend("xy")
        cond.notify_all()
        await cp.sleep(1)  # still holding the lock: the waiters now wait for it
    return [await task for task in tasks]


async def cancelled_in_wait_all():
    async def victim():
        async with cp.scope() as s:
            s.spawn(cp.sleep(10), name="kid")
            await s.wait_all()

    task = cp.spawn(victim(), name="victim")
    await cp.sleep(1)
    task.cancel()
    try:
        await task
    except cp.Cancelled:
        pass


async def finished_lock_holder():
    lock = cp.Lock()

    async def grab():
        await lock.acquire()  # and finish without releasing

    await cp.spawn(grab(), name="grabber")
    waiter = cp.spawn(lock.acquire(), name="wanter")
    await cp.sleep(1)
    waiter.cancel()


def example(name: str):
    return lambda: load_example(f"{name}.py").main()


ORACLE_CASES = [
    pytest.param(
        example("bounded_buffer"),
        {},
        id="example-bounded_buffer",
    ),
    pytest.param(example("fan_in"), {}, id="example-fan_in"),
    pytest.param(example("philosophers"), {}, id="example-philosophers"),
    pytest.param(example("philosophers_deadlock"), {}, id="example-philosophers_deadlock"),
    pytest.param(example("pipeline"), {}, id="example-pipeline"),
    pytest.param(example("race"), {}, id="example-race"),
    pytest.param(example("race"), {"policy": "random", "seed": 16}, id="example-race-random"),
    pytest.param(example("timeouts"), {}, id="example-timeouts"),
    pytest.param(select_program, {}, id="select"),
    pytest.param(sync_program, {}, id="lock-semaphore-event-barrier"),
    pytest.param(sync_program, {"policy": "random", "seed": 5}, id="sync-random"),
    pytest.param(scope_timeout_program, {}, id="scope-timeouts"),
    pytest.param(cancel_program, {}, id="cancellation"),
    pytest.param(failure_program, {}, id="failures"),
    pytest.param(worker_program, {}, id="workers"),
    pytest.param(worker_program, {"max_workers": 2}, id="workers-max_workers"),
    pytest.param(lambda: crowd(40), {}, id="crowd-40"),
    pytest.param(
        notified_condition,
        {},
        id="condition-notify",
    ),
    pytest.param(
        cancelled_in_wait_all,
        {},
        id="cancelled-wait_all",
    ),
    pytest.param(
        finished_lock_holder,
        {},
        id="finished-lock-holder",
    ),
]


@pytest.mark.parametrize(("program", "options"), ORACLE_CASES)
def test_state_at_the_latest_event_matches_the_live_vm_after_every_step(
    made, request, program, options
):
    vm = run_with_oracle(made, program(), **options)
    assert len(vm.journal) > 10
    if request.node.callspec.id.endswith("deadlock"):
        assert {info.state for info in vm.tasks()} == {"blocked"}
    else:
        assert made[0].done() and vm.tasks() == []


def test_every_example_is_covered_by_the_oracle():
    covered = {case.id.removeprefix("example-").removesuffix("-random") for case in ORACLE_CASES}
    assert {path.stem for path in EXAMPLES.glob("*.py")} <= covered


def test_state_at_matches_the_live_vm_with_host_events_and_a_host_cancel(made):
    vm = run_with_oracle(made, host_program(), host_actions(made))
    final = vm.journal.state_at(len(vm.journal))
    assert made[0].result() == (["m0", "m1"], 1, 2)
    assert final.host_events_taken == 3
    assert [t.state for t in final.tasks.values()] == ["done", "done", "cancelled"]
    assert [r.task for r in vm.journal.filter(kind="send")] == [0, 0]
    assert any(r.kind == "cancel" and r.data["by"] == 0 for r in vm.journal)


def test_state_at_matches_the_live_vm_with_several_task_buckets(made):
    """300 tasks (more than one copy-on-write bucket of tasks), checked after every step."""
    vm = run_with_oracle(made, crowd(300))
    assert len(vm.journal.state_at(len(vm.journal)).tasks) == 301


# ---------------------------------------------------------------------------
# Snapshots and caches do not change the answer


def rich_program():
    """Channels, select, locks, semaphores, events, barriers, scopes, workers, host events."""

    async def main():
        mixed = await cp.par(select_program(), sync_program(), worker_program())
        await scope_timeout_program()
        events = [await cp.events.next(), *cp.events.drain(5)]
        return mixed, len(events)

    return main()


def run_rich(**options) -> cp.VM:
    vm = cp.VM(**options)
    for payload in ("a", "b", "c"):
        vm.events.enqueue("keys", payload)
    vm.run(rich_program())
    return vm


def test_state_at_is_the_same_from_snapshots_a_fresh_load_or_a_second_ask(monkeypatch, tmp_path):
    monkeypatch.setattr(_timetravel, "SNAPSHOT_EVERY", 7)
    vm = cp.VM()
    for payload in ("a", "b", "c"):
        vm.events.enqueue("keys", payload)
    vm.spawn(rich_program())
    while vm.step():  # snapshots made while the live journal grows
        vm.journal.state_at(len(vm.journal))
    total = len(vm.journal)
    assert total > 20 * 7
    assert len(vm.journal._timetravel.snapshots) > 20  # (the premise: many snapshots)
    path = vm.journal.export_jsonl(tmp_path / "run.jsonl")

    order = list(range(total + 1))
    random.Random(0).shuffle(order)
    reloaded = cp.Journal.load(path)
    live, loaded, fresh = {}, {}, {}
    for i in order:
        live[i] = vm.journal.state_at(i).to_dict()
        loaded[i] = reloaded.state_at(i).to_dict()
        fresh[i] = cp.Journal.load(path).state_at(i).to_dict()  # nothing cached at all
        assert live[i] == loaded[i] == fresh[i], f"event {i}"
        assert vm.journal.state_at(i).to_dict() == live[i]  # asking twice
    for i in random.Random(1).sample(order, 40):
        assert reloaded.state_at(i).to_dict() == loaded[i]

    # and all of them equal a replay of every record from the start (no snapshots)
    monkeypatch.setattr(_timetravel, "SNAPSHOT_EVERY", 10**9)
    plain = cp.Journal.load(path)
    for i in range(total + 1):
        assert plain.state_at(i).to_dict() == live[i], f"event {i}"


def test_changing_an_answer_does_not_change_the_next_one(vm):
    vm.run(channel_scene())
    event = last_event_before_tick(vm.journal, 1)
    first = vm.journal.state_at(event)
    expected = json.loads(json.dumps(first.to_dict()))  # a deep copy
    first.channels[1].contents.append("x")
    first.channels[1].senders.clear()
    first.locks[99] = 1
    first.to_dict()["tasks"]["1"]["state"] = "changed"
    assert vm.journal.state_at(event).to_dict() == expected


def test_state_at_works_on_a_loaded_sqlite_journal_without_running_anything(tmp_path):
    vm = run_rich()
    path = vm.journal.save(tmp_path / "run.db")
    loaded = cp.Journal.load(path)
    assert len(loaded) == len(vm.journal)
    order = list(range(len(loaded) + 1))
    random.Random(0).shuffle(order)
    for i in order:
        assert loaded.state_at(i).to_dict() == vm.journal.state_at(i).to_dict(), f"event {i}"


def test_state_at_on_a_journal_streamed_to_a_file_equals_the_live_one(tmp_path):
    path = tmp_path / "streamed.db"
    with cp.VM(journal=path) as vm:
        for payload in ("a", "b", "c"):
            vm.events.enqueue("keys", payload)
        vm.run(rich_program())
    loaded = cp.Journal.load(path)
    for i in range(0, len(loaded) + 1, 7):
        assert loaded.state_at(i).to_dict() == vm.journal.state_at(i).to_dict(), f"event {i}"


def test_to_dict_is_plain_json_data_with_string_keys():
    vm = run_rich()

    def assert_plain(value, path="state"):
        if isinstance(value, dict):
            for key, item in value.items():
                assert type(key) is str, f"{path}: key {key!r}"
                assert_plain(item, f"{path}.{key}")
        elif isinstance(value, list):
            for index, item in enumerate(value):
                assert_plain(item, f"{path}[{index}]")
        else:
            assert type(value) in (str, int, bool, float, type(None)), f"{path}: {value!r}"

    keys = {
        "event_id",
        "tick",
        "tasks",
        "channels",
        "locks",
        "semaphores",
        "events",
        "workers",
        "host_events_taken",
        "ready",
        "timers",
        "waits",
        "parents",
        "scopes",
        "lock_states",
        "semaphore_states",
        "event_states",
        "conditions",
        "barriers",
        "countdowns",
    }
    for i in range(len(vm.journal) + 1):
        data = vm.journal.state_at(i).to_dict()
        assert set(data) == keys
        assert_plain(data)
        assert json.loads(json.dumps(data)) == data
    final = vm.journal.state_at(len(vm.journal)).to_dict()
    assert final["tasks"]["1"] == {"id": 1, "name": "main", "state": "done", "waiting_on": None}
    assert set(final["channels"]["1"]) == {
        "id",
        "capacity",
        "contents",
        "receivers",
        "senders",
        "closed",
        "name",
    }
    assert set(final["workers"]["1"]) == {"handle", "name", "status", "due"}
    assert final["host_events_taken"] == 3


# ---------------------------------------------------------------------------
# Specific facts


def last_event_before_tick(journal: cp.Journal, tick: int) -> int:
    """The id of the last record before virtual time reaches ``tick``."""
    return max(record.event_id for record in journal if record.tick < tick)


def event_of(journal: cp.Journal, kind: str, nth: int = 0, **data) -> int:
    found = [
        r for r in journal.filter(kind=kind) if all(r.data.get(k) == v for k, v in data.items())
    ]
    return found[nth].event_id


def test_state_at_zero_is_the_empty_start_at_tick_zero(vm):
    assert vm.journal.state_at(0).to_dict() == {
        "event_id": 0,
        "tick": 0,
        "tasks": {},
        "channels": {},
        "locks": {},
        "semaphores": {},
        "events": {},
        "workers": {},
        "host_events_taken": 0,
        "ready": [],
        "timers": [],
        "waits": {},
        "parents": {},
        "scopes": {},
        "lock_states": {},
        "semaphore_states": {},
        "event_states": {},
        "conditions": {},
        "barriers": {},
        "countdowns": {},
    }
    vm.run(failure_program())
    start = vm.journal.state_at(0)
    assert (start.event_id, start.tick, len(start.tasks), start.channels) == (0, 0, 0, {})


def test_state_at_after_the_run_has_every_task_finished_as_it_ended(vm):
    vm.run(failure_program())
    final = vm.journal.state_at(len(vm.journal))
    assert final.tick == vm.now == 4
    assert [(t.id, t.name, t.state, t.waiting_on) for t in final.tasks.values()] == [
        (1, "failure_program", "done", None),
        (2, "ok", "done", None),
        (3, "boom", "failed", None),
        (4, "slow", "cancelled", None),
        (5, "scoped-boom", "failed", None),
        (6, "scoped-slow", "cancelled", None),
    ]


def test_tasks_spawned_after_the_event_do_not_appear(vm):
    vm.run(failure_program())
    journal = vm.journal
    for child in range(2, 7):
        spawned = event_of(journal, "spawn", child=child)
        before, at = journal.state_at(spawned - 1), journal.state_at(spawned)
        assert child not in before.tasks and before.tasks.get(child) is None
        assert all(task < child for task in before.tasks)
        with pytest.raises(KeyError):
            before.tasks[child]
        assert at.tasks[child].state == "ready" and at.tasks[child].waiting_on is None
        assert len(at.tasks) == len(before.tasks) + 1 == child


async def channel_scene():
    buffered, rendezvous = cp.channel(2), cp.channel()  # channels 1 and 2
    await buffered.send("a")
    await buffered.send("b")
    cp.spawn(buffered.send("c"), name="s1")  # task 2
    cp.spawn(buffered.send("d"), name="s2")  # task 3
    for i in range(3):
        cp.spawn(recv_or_closed(rendezvous), name=f"r{i}")  # tasks 4, 5, 6
    await cp.sleep(1)
    assert await buffered.recv() == "a"
    await cp.sleep(1)
    rendezvous.close()
    await cp.sleep(1)
    return [await buffered.recv() for _ in range(3)]


def test_channel_contents_waiters_fifo_and_closed_flag(vm):
    assert vm.run(channel_scene()) == ["b", "c", "d"]
    journal = vm.journal
    first_send = event_of(journal, "send", value="a")
    assert journal.state_at(first_send - 1).channels[1].contents == []
    assert journal.state_at(first_send).channels[1].contents == ["a"]

    phase1 = journal.state_at(last_event_before_tick(journal, 1))
    assert phase1.channels == {
        1: (1, 2, ["a", "b"], [], [2, 3], False, None),
        2: (2, 0, [], [4, 5, 6], [], False, None),
    }
    assert phase1.tasks[2] == (2, "s1", "blocked", "to send on channel 1")
    assert phase1.tasks[5] == (5, "r1", "blocked", "to receive on channel 2")
    assert phase1.tasks[1] == (1, "channel_scene", "sleeping", "until tick 1")

    phase2 = journal.state_at(last_event_before_tick(journal, 2))
    assert phase2.channels[1] == (1, 2, ["b", "c"], [], [3], False, None)
    assert phase2.tasks[2].state == "done" and phase2.tasks[3].state == "blocked"

    closed_at = event_of(journal, "close", channel=2)
    assert journal.state_at(closed_at - 1).channels[2].closed is False
    assert journal.state_at(closed_at).channels[2].closed is True
    phase3 = journal.state_at(last_event_before_tick(journal, 3))
    assert phase3.channels[2] == (2, 0, [], [], [], True, None)
    assert [phase3.tasks[i].state for i in (4, 5, 6)] == ["done"] * 3
    assert journal.state_at(len(journal)).channels[1] == (1, 2, [], [], [], False, None)


async def lock_scene():
    lock = cp.Lock()  # lock 1

    async def holder():
        async with lock:
            await cp.sleep(5)

    async def waiter():
        async with lock:
            await cp.sleep(1)

    cp.spawn(holder(), name="holder")  # task 2
    cp.spawn(waiter(), name="waiter")  # task 3
    cp.spawn(waiter(), name="second")  # task 4
    await cp.sleep(1)


def test_lock_owner_and_the_waiting_on_text_naming_the_holder(vm):
    vm.run(lock_scene())
    vm.step(100)
    journal = vm.journal
    assert journal.state_at(event_of(journal, "create", lock=1)).locks == {1: None}
    held = journal.state_at(last_event_before_tick(journal, 1))
    assert held.locks == {1: 2}
    assert held.tasks[3] == (3, "waiter", "blocked", "to acquire lock 1 (held by task 2 'holder')")
    assert held.tasks[4].waiting_on == "to acquire lock 1 (held by task 2 'holder')"
    handed = journal.state_at(last_event_before_tick(journal, 6))
    assert handed.locks == {1: 3}
    assert handed.tasks[4].waiting_on == "to acquire lock 1 (held by task 3 'waiter')"
    assert journal.state_at(len(journal)).locks == {1: None}


def test_semaphore_values_follow_acquire_hand_over_and_release(vm):
    async def scene():
        pool = cp.Semaphore(2)

        async def user():
            async with pool:
                await cp.sleep(2)

        await cp.par(user(), user(), user())

    vm.run(scene())
    journal = vm.journal
    values = [journal.state_at(i).semaphores.get(1) for i in range(len(journal) + 1)]
    changes = [v for i, v in enumerate(values) if i == 0 or v != values[i - 1]]
    # 2 at creation, two acquires, a release handed over to the third user (0 -> 1 -> 0),
    # then the releases
    assert changes == [None, 2, 1, 0, 1, 0, 1, 2]
    blocked = journal.state_at(event_of(journal, "block", semaphore=1))
    assert blocked.tasks[4] == (4, "user", "blocked", "to acquire semaphore 1")


def test_event_flags_follow_set_and_clear(vm):
    async def scene():
        flag = cp.Event()
        waiter = cp.spawn(flag.wait(), name="waiter")
        await cp.sleep(1)
        flag.set()
        flag.clear()
        flag.set()
        await waiter

    vm.run(scene())
    journal = vm.journal
    assert journal.state_at(event_of(journal, "create", event=1)).events == {1: False}
    before = journal.state_at(last_event_before_tick(journal, 1))
    assert before.events == {1: False}
    assert before.tasks[2] == (2, "waiter", "blocked", "for event 1")
    assert journal.state_at(event_of(journal, "set", event=1)).events == {1: True}
    assert journal.state_at(event_of(journal, "clear", event=1)).events == {1: False}
    assert journal.state_at(event_of(journal, "set", 1, event=1)).events == {1: True}


def test_worker_statuses_go_from_pending_to_completed_failed_or_cancelled_with_due_ticks(vm):
    async def scene():
        ok = cp.worker.start("time_travel_square", 3, cost=2)  # due at tick 2
        bad = cp.worker.start("time_travel_square", -1, cost=3)  # due at tick 3
        doomed = cp.worker.start("time_travel_square", 4, cost=9)  # due at tick 9
        await cp.sleep(1)
        cp.worker.cancel(doomed)
        return [await cp.worker.wait(handle) for handle in (ok, bad, doomed)]

    assert vm.run(scene()) == [1, -1, -2]
    journal = vm.journal
    history: dict[int, list] = {1: [], 2: [], 3: []}
    for i in range(len(journal) + 1):
        for handle, worker in journal.state_at(i).workers.items():
            seen = (worker.status, worker.due)
            if not history[handle] or history[handle][-1] != seen:
                history[handle].append(seen)
            assert worker.name == "time_travel_square"
    assert history == {1: [(0, 2), (1, 2)], 2: [(0, 3), (-1, 3)], 3: [(0, 9), (-2, 9)]}
    for handle, status in ((1, 1), (2, -1), (3, -2)):
        receipt = event_of(journal, "receipt", worker=handle)
        assert journal.state_at(receipt - 1).workers[handle].status == 0
        assert journal.state_at(receipt).workers[handle].status == status
    assert journal.state_at(event_of(journal, "receipt", worker=3)).tick == 1
    blocked = journal.state_at(event_of(journal, "block", worker=1))
    assert blocked.tasks[1].waiting_on == "for worker 1"


def test_a_queued_worker_has_no_due_tick_until_it_starts():
    vm = cp.VM(max_workers=1)

    async def scene():
        first = cp.worker.start("time_travel_square", 3, cost=2)
        second = cp.worker.start("time_travel_square", 4, cost=3)  # queued behind the first
        return [await cp.worker.wait(first), await cp.worker.wait(second)]

    assert vm.run(scene()) == [1, 1]
    journal = vm.journal
    queued = journal.state_at(event_of(journal, "queue", worker=2)).workers
    assert queued[1] == (1, "time_travel_square", 0, 2)
    assert queued[2] == (2, "time_travel_square", 0, None)
    started = journal.state_at(event_of(journal, "start", worker=2))
    assert started.tick == 2
    assert started.workers[2] == (2, "time_travel_square", 0, 5)
    assert journal.state_at(len(journal)).workers[2].status == 1


def test_host_events_taken_counts_the_event_records():
    vm = cp.VM()

    async def scene():
        first = await cp.events.next()  # waits: nothing is queued yet
        return first, cp.events.drain(10)

    vm.spawn(scene())
    vm.step(10)
    waiting = vm.journal.state_at(len(vm.journal))
    assert waiting.tasks[1].waiting_on == (
        "for host events (none are queued: enqueue with vm.events.enqueue)"
    )
    for payload in "abc":
        vm.events.enqueue("keys", payload)
    vm.step(10)
    journal = vm.journal
    taken = [journal.state_at(r.event_id).host_events_taken for r in journal.filter(kind="event")]
    assert taken == [1, 2, 3]
    first = event_of(journal, "event")
    assert journal.state_at(first - 1).host_events_taken == 0
    assert journal.state_at(len(journal)).host_events_taken == 3
    assert journal.state_at(len(journal)).tasks[1].state == "done"


def test_sleeping_tasks_wake_at_their_timer_with_the_clock(vm):
    async def scene():
        await cp.sleep(3)
        await cp.sleep(0)  # a checkpoint: no wait
        return cp.now()

    assert vm.run(scene()) == 3
    journal = vm.journal
    slept = journal.state_at(event_of(journal, "sleep", until=3))
    assert (slept.tick, slept.tasks[1].state, slept.tasks[1].waiting_on) == (
        0,
        "sleeping",
        "until tick 3",
    )
    timer = journal.state_at(event_of(journal, "timer"))
    assert (timer.tick, timer.tasks[1].state) == (3, "ready")
    nap = journal.state_at(event_of(journal, "sleep", until=3, ticks=0))
    assert nap.tasks[1].state == "running" and nap.tasks[1].waiting_on is None


def test_state_at_rejects_event_ids_out_of_range_and_non_ints(vm):
    with pytest.raises(IndexError):
        vm.journal.state_at(1)  # nothing recorded yet
    vm.run(lock_scene())
    total = len(vm.journal)
    vm.journal.state_at(total)
    for bad in (-1, total + 1, 10**9):
        with pytest.raises(IndexError, match=r"state_at"):
            vm.journal.state_at(bad)
    for bad in (1.0, "3", None, True, [1]):
        with pytest.raises(TypeError, match=r"state_at"):
            vm.journal.state_at(bad)


def test_the_task_table_is_a_read_only_mapping_in_ascending_id(vm):
    vm.run(channel_scene())
    state = vm.journal.state_at(last_event_before_tick(vm.journal, 1))
    assert list(state.tasks) == state.tasks.keys() == [1, 2, 3, 4, 5, 6]
    assert len(state.tasks) == 6
    assert dict(state.tasks.items()) == {task.id: task for task in state.tasks.values()}
    assert state.tasks == dict(state.tasks.items())
    assert "1" not in state.tasks and 7 not in state.tasks
    assert state.tasks.get(7, "absent") == "absent"
    assert not hasattr(state.tasks, "__setitem__")


# ---------------------------------------------------------------------------
# Bugs found by the oracle, as minimal repros


def test_a_notified_condition_waiter_waits_for_the_lock(vm):
    vm.run(notified_condition())
    journal = vm.journal
    notified = journal.state_at(last_event_before_tick(journal, 2))
    assert notified.tasks[2].waiting_on == "to acquire lock 1 (held by task 1 'notified_condition')"


def test_a_task_cancelled_in_wait_all_is_ready(vm):
    vm.run(cancelled_in_wait_all())
    journal = vm.journal
    cancelled = journal.state_at(event_of(journal, "cancel"))
    assert journal[cancelled.event_id - 1].task == 2
    assert cancelled.tasks[2] == (2, "victim", "ready", None)


def test_a_task_cancelled_in_its_scope_exit_stays_blocked(vm):
    """(The counterpart that works: the wait at the end of `async with cp.scope()` cannot
    be interrupted; cancelling the task cancels its children instead.)"""

    async def scene():
        async def parent():
            async with cp.scope() as s:
                s.spawn(cp.sleep(10), name="kid")

        task = cp.spawn(parent(), name="parent")
        await cp.sleep(1)
        task.cancel()
        try:
            await task
        except cp.Cancelled:
            pass

    vm.run(scene())
    journal = vm.journal
    cancelled = journal.state_at(event_of(journal, "cancel"))
    assert cancelled.tasks[2] == (2, "parent", "blocked", "for the children of scope 1 to finish")


def test_a_finished_lock_holder_is_still_named(vm):
    vm.run(finished_lock_holder())
    journal = vm.journal
    waiting = journal.state_at(event_of(journal, "block", lock=1))
    assert waiting.locks == {1: 2} and waiting.tasks[2].state == "done"
    assert waiting.tasks[3].waiting_on == "to acquire lock 1 (held by task 2 'grabber')"


# ---------------------------------------------------------------------------
# Many tasks


def test_many_tasks_give_the_live_states_at_random_events(made):
    """3,000 tasks spawned at once: the live state at random steps, recorded while stepping,
    equals ``state_at`` asked afterwards, in random order.  (The same program is checked
    after every step on 300 tasks above.)"""
    vm = cp.VM()
    vm.spawn(crowd(3000))
    vm.step()  # main makes the channel, the event and the lock
    results, gate, lock = (next(o for o in made if type(o) is k) for k in (Channel, Event, Lock))
    rng = random.Random(0)
    seen = []
    steps = 0
    while ran := vm.step(rng.randrange(1, 1200)):
        steps += ran
        live = {info.id: (info.name, info.state, info.waiting_on) for info in vm.tasks()}
        owner = None if lock.owner is None else lock.owner.id
        objects = (list(results._buf), gate.is_set(), owner)
        seen.append((len(vm.journal), vm.now, live, objects))
    assert steps > 10_000 and len(seen) > 15
    journal = vm.journal
    rng.shuffle(seen)
    for event_id, now, live, (contents, flag, owner) in seen:
        state = journal.state_at(event_id)
        assert state.tick == now
        assert len(state.tasks) == 3001
        for task, model in state.tasks.items():
            if task in live:
                got = "ready" if model.state == "running" else model.state
                assert (model.name, got, model.waiting_on) == live[task], task
            else:
                assert model.state == "done", task
        assert state.channels[1].contents == contents
        assert (state.events[1], state.locks[1]) == (flag, owner)
    final = journal.state_at(len(journal))
    assert {task.state for task in final.tasks.values()} == {"done"}


# ---------------------------------------------------------------------------
# A picture from state_at alone (issue 10): the queue, timers, waiters, scopes, waits


def test_ready_lists_the_tasks_in_the_order_fifo_would_run_them():
    async def noop():
        await cp.checkpoint()

    async def main():
        for name in ("a", "b", "c"):
            cp.spawn(noop(), name=name)
        await cp.checkpoint()

    vm = cp.VM()
    vm.spawn(main())
    vm.step(2)  # main spawned a, b, c and yielded (behind them); a took its first step
    state = vm.journal.state_at(len(vm.journal))
    assert state.ready == [task.id for task in vm._ready] == [3, 4, 1, 2]
    assert [state.tasks[i].name for i in state.ready] == ["b", "c", "main", "a"]
    while vm.step():  # (finish them all)
        pass


def test_timers_list_sleeps_and_scope_timeouts_by_due_tick(vm):
    async def main():
        cp.spawn(cp.sleep(9), name="late")
        async with cp.scope(timeout=5):
            await cp.sleep(3)

    vm.run(main())
    during = vm.journal.state_at(event_of(vm.journal, "sleep", nth=1))
    assert during.timers == [(3, "task", 1), (5, "scope", 1), (9, "task", 2)]
    assert during.waits[1] == Wait("sleep", until=3)
    after = vm.journal.state_at(last_event_before_tick(vm.journal, 9))
    assert after.timers == [(9, "task", 2)]  # the scope closed: its timeout is gone


def test_parents_say_which_task_spawned_each_task(vm):
    async def grandchild():
        await cp.checkpoint()

    async def child():
        await cp.spawn(grandchild(), name="grandchild")

    async def main():
        await cp.par(child(), cp.sleep(1))

    vm.run(main())
    final = vm.journal.state_at(len(vm.journal))
    assert final.parents == {1: None, 2: 1, 3: 1, 4: 2}  # main came from the host


def test_scopes_form_a_tree_with_the_branches_of_a_par(vm):
    async def branch(ticks):
        await cp.sleep(ticks)

    async def main():
        async with cp.scope(timeout=50) as outer:
            outer.spawn(branch(10))
            async with cp.scope():
                await cp.par(branch(1), branch(2))

    vm.run(main())
    one_branch_left = vm.journal.state_at(last_event_before_tick(vm.journal, 2))
    assert one_branch_left.scopes == {
        1: (1, 1, None, False, 50, False, None),  # other scopes: children are not journaled
        2: (2, 1, 1, False, None, False, None),
        3: (3, 1, 2, True, None, True, [4]),  # the par: main waits for branch 4
    }
    assert one_branch_left.waits[1] == Wait("par", "scope", 3, tasks=(4,))
    assert one_branch_left.tasks[1].waiting_on == "for its cp.par() branches (tasks 4) to finish"
    leaving = vm.journal.state_at(last_event_before_tick(vm.journal, 10))
    assert list(leaving.scopes) == [1]
    assert leaving.scopes[1].exiting
    assert leaving.tasks[1].waiting_on == "for the children of scope 1 to finish"


def test_lock_waiters_are_listed_in_the_order_they_get_the_lock(vm):
    async def user(lock):
        async with lock:
            await cp.sleep(1)

    async def main():
        lock = cp.Lock(name="door")
        await cp.par(user(lock), user(lock), user(lock))

    vm.run(main())
    state = vm.journal.state_at(last_event_before_tick(vm.journal, 1))
    assert state.lock_states[1] == (1, "door", 2, [3, 4])
    assert state.locks == {1: 2}
    assert state.waits[4] == Wait("acquire", "lock", 1, "door", 2, "user")
    assert state.tasks[4].waiting_on == "to acquire lock 'door' (held by task 2 'user')"


def test_every_record_kind_has_a_state_handler_or_is_declared_to_change_nothing():
    """Adding a record kind fails here until time travel knows what it changes."""
    from counterpoint import _timetravel, lowlevel

    for code, kind in lowlevel.KINDS.items():
        handled = _timetravel._APPLY[code] is not None
        assert handled != (code in _timetravel.NO_STATE), kind.name
