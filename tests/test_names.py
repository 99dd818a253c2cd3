"""Names (issue 10, Contract v2 "Steering and inspecting"): ``name=`` on every primitive.

A name is in the object's ``create`` record, its repr, every message that mentions the
object, the ``Deadlock`` report and ``journal.state_at``: ``lock 'fork 1'``; an unnamed
object stays ``lock 2``, and a run without names journals exactly what it did before
names existed (the same digest).
"""

from __future__ import annotations

import pytest

import counterpoint as cp

# ---------------------------------------------------------------------------
# Unnamed runs are unchanged


async def every_primitive():
    """Every kind of object, unnamed, used once each way (no names anywhere)."""
    ch, done = cp.channel(1), cp.channel()
    lock, sem, bounded = cp.Lock(), cp.Semaphore(2), cp.BoundedSemaphore(1)
    event, cond, barrier = cp.Event(), cp.Condition(), cp.Barrier(2)

    async def producer():
        for i in range(3):
            await ch.send(i)
        ch.close()

    async def waiter():
        await event.wait()
        async with cond:
            await cond.wait()
        return await barrier.wait()

    async def setter():
        async with lock, sem, bounded:
            await cp.sleep(2)
        event.set()
        await cp.sleep(1)
        async with cond:
            cond.notify_all()
        await done.send("bye")
        return await barrier.wait()

    cp.spawn(producer(), name="producer")
    got = [value async for value in ch]
    async with cp.scope(timeout=50) as scope:
        scope.spawn(waiter())
        scope.spawn(setter())
        picked = await cp.select(done, timeout=10)
    return got, picked.value, await cp.par(cp.sleep(1), cp.sleep(2))


# computed with the base commit of issue 10 (a576893), before names existed:
#   PYTHONPATH=<that commit's vm/ as counterpoint> python -c "...VM(seed=...).run(...)"
UNNAMED_DIGESTS = {
    ("fifo", 0): "0cf41d314bca873aada40f87cc3c2e96f0fdf748c0f9a06b1b9ed5819482c702",
    ("random", 7): "e280dd2cf0b07eb32c290ddb4c99aad37d8f196ba19589ec1279034fea2906a6",
    ("random", 12345): "1c7fc926b3e1f1368b43b659070ec27e9dc0605b293f4ec0849106b04378533d",
}


def digest_of(policy: str, seed: int) -> str:
    vm = cp.VM(policy=policy, seed=seed)
    vm.run(every_primitive())
    return vm.journal.digest()


@pytest.mark.parametrize(("policy", "seed"), sorted(UNNAMED_DIGESTS))
def test_a_run_without_names_has_the_digest_it_had_before_names(policy, seed):
    assert digest_of(policy, seed) == UNNAMED_DIGESTS[policy, seed]


def test_an_unnamed_object_journals_no_name_key():
    vm = cp.VM()
    vm.run(every_primitive())
    creates = [record.data for record in vm.journal.filter(kind="create")]
    assert len(creates) == 9  # 2 channels, lock, 2 semaphores, event, cond + its lock, barrier
    assert all("name" not in data for data in creates)


# ---------------------------------------------------------------------------
# The create record


def make_all_named():
    return [
        cp.channel(2, name="jobs"),
        cp.Lock(name="fork 1"),
        cp.Semaphore(3, name="pool"),
        cp.BoundedSemaphore(1, name="slot"),
        cp.Event(name="go"),
        cp.Condition(name="ready"),
        cp.Barrier(2, name="meet"),
    ]


def test_every_primitive_journals_its_name_in_its_create_record():
    async def main():
        return make_all_named()

    vm = cp.VM()
    vm.run(main())
    creates = [record.data for record in vm.journal.filter(kind="create")]
    assert creates == [
        {"channel": 1, "capacity": 2, "name": "jobs"},
        {"lock": 1, "name": "fork 1"},
        {"semaphore": 1, "value": 3, "name": "pool"},
        {"semaphore": 2, "value": 1, "bounded": True, "name": "slot"},
        {"event": 1, "name": "go"},
        {"lock": 2},  # the condition's own lock has no name of its own
        {"condition": 1, "lock": 2, "name": "ready"},
        {"barrier": 1, "parties": 2, "name": "meet"},
    ]


def test_a_host_channel_takes_a_name_too():
    vm = cp.VM()
    ch = vm.channel(1, name="inbox")
    assert (ch.name, repr(ch)) == ("inbox", "<Channel 1 'inbox' capacity=1 buffered=0>")
    assert vm.journal[0].data == {"channel": 1, "capacity": 1, "name": "inbox"}


def test_names_survive_a_journal_file_and_its_digest(tmp_path):
    async def main():
        ch = cp.channel(1, name="jobs")
        await ch.send("x")
        return make_all_named()

    vm = cp.VM()
    vm.run(main())
    for path in (
        vm.journal.save(tmp_path / "run.cpj"),
        vm.journal.export_jsonl(tmp_path / "r.jsonl"),
    ):
        loaded = cp.Journal.load(path)
        assert loaded.digest() == vm.journal.digest()
        assert loaded.state_at(len(loaded)).channels[1].name == "jobs"
        assert [r.data.get("name") for r in loaded.filter(kind="create")] == [
            r.data.get("name") for r in vm.journal.filter(kind="create")
        ]


def test_a_named_run_and_an_unnamed_run_differ_only_in_the_create_records():
    async def run(named: bool):
        ch = cp.channel(1, name="jobs" if named else None)
        await ch.send(1)
        return await ch.recv()

    plain, named = cp.VM(), cp.VM()
    plain.run(run(False))
    named.run(run(True))
    differing = [
        (a.kind, a.data, b.data)
        for a, b in zip(plain.journal, named.journal, strict=True)
        if a != b
    ]
    assert differing == [
        ("create", {"channel": 1, "capacity": 1}, {"channel": 1, "capacity": 1, "name": "jobs"})
    ]


@pytest.mark.parametrize(
    ("name", "error", "words"),
    [
        (7, TypeError, "name must be a str (or None), got int"),
        (b"jobs", TypeError, "got bytes"),
        ("", ValueError, "1 to 100 characters, got 0"),
        ("x" * 101, ValueError, "1 to 100 characters, got 101"),
        ("line\nbreak", ValueError, "control character"),
        ("tab\there", ValueError, "control character"),
    ],
)
@pytest.mark.parametrize(
    "make",
    [
        lambda name: cp.channel(name=name),
        lambda name: cp.Lock(name=name),
        lambda name: cp.Semaphore(name=name),
        lambda name: cp.BoundedSemaphore(name=name),
        lambda name: cp.Event(name=name),
        lambda name: cp.Condition(name=name),
        lambda name: cp.Barrier(2, name=name),
    ],
    ids=["channel", "lock", "semaphore", "bounded", "event", "condition", "barrier"],
)
def test_a_bad_name_is_refused_before_anything_is_made(make, name, error, words):
    async def main():
        with pytest.raises(error, match=words.replace("(", r"\(").replace(")", r"\)")):
            make(name)
        return cp.Lock(name="x" * 100)  # the VM goes on; 100 characters are fine

    vm = cp.VM()
    assert vm.run(main()).name == "x" * 100
    assert [r.data for r in vm.journal.filter(kind="create")] == [{"lock": 1, "name": "x" * 100}]


def test_a_name_is_keyword_only():
    async def main():
        with pytest.raises(TypeError):
            cp.Lock("fork")
        with pytest.raises(TypeError):
            cp.Event("go")

    cp.VM().run(main())


def test_a_loaded_journal_with_a_bad_name_is_refused(tmp_path):
    vm = cp.VM()
    vm.channel(name="jobs")
    path = vm.journal.export_jsonl(tmp_path / "run.jsonl")
    text = path.read_text()
    assert '"jobs"' in text
    path.write_text(text.replace('"jobs"', '""'))
    with pytest.raises(cp.JournalError, match="name"):
        cp.Journal.load(path)


# ---------------------------------------------------------------------------
# Reprs and messages


def test_reprs_show_the_name_after_the_number():
    async def main():
        return [repr(obj) for obj in make_all_named()] + [repr(cp.Lock())]

    assert cp.VM().run(main()) == [
        "<Channel 1 'jobs' capacity=2 buffered=0>",
        "<Lock 1 'fork 1' waiters=0>",
        "<Semaphore 1 'pool' waiters=0>",
        "<BoundedSemaphore 2 'slot' waiters=0>",
        "<Event 1 'go' waiters=0>",
        "<Condition 1 'ready' waiters=0>",
        "<Barrier 1 'meet' waiters=0>",
        "<Lock 3 waiters=0>",
    ]


def test_error_messages_spell_a_named_object_by_its_name():
    async def main():
        lock, bounded, cond = (
            cp.Lock(name="fork 1"),
            cp.BoundedSemaphore(name="slot"),
            cp.Condition(name="ready"),
        )
        ch = cp.channel(1, name="jobs")
        messages = []
        async with lock:
            try:
                await lock.acquire()
            except cp.LockError as error:
                messages.append(str(error))
        try:
            lock.release()
        except cp.LockError as error:
            messages.append(str(error))
        try:
            bounded.release()
        except ValueError as error:
            messages.append(str(error))
        try:
            cond.notify()
        except cp.LockError as error:
            messages.append(str(error))
        ch.close()
        try:
            await ch.send(1)
        except cp.ChannelClosed as error:
            messages.append(str(error))
        try:
            await ch.recv()
        except cp.ChannelClosed as error:
            messages.append(str(error))
        return messages

    messages = cp.VM().run(main())
    assert [message.split(";")[0].split(":")[0] for message in messages] == [
        "task 1 'main' already holds lock 'fork 1'",
        "task 1 'main' released lock 'fork 1', which is held by nobody",
        "semaphore 'slot' released too many times",
        "condition 'ready'.notify() needs the condition's lock, which task 1 'main' does not hold",
        "send on closed channel 'jobs'",
        "receive on closed channel 'jobs'",
    ]


def test_an_object_of_another_vm_is_named_in_the_error():
    other = cp.VM()
    foreign = other.channel(name="theirs")

    async def main():
        await foreign.send(1)

    with pytest.raises(cp.WrongVMError, match="channel 'theirs' belongs to another VM"):
        cp.VM().run(main())


def test_a_forgotten_await_names_the_channel():
    async def main():
        ch = cp.channel(1, name="jobs")
        ch.send(1)  # never awaited
        await cp.sleep(1)

    with pytest.raises(cp.ForgottenAwaitError, match=r"channel 'jobs'\.send\(1\)"):
        cp.VM().run(main())


# ---------------------------------------------------------------------------
# The Deadlock report and state_at


async def philosophers():
    forks = [cp.Lock(name=f"fork {i}") for i in range(2)]

    async def philosopher(i):
        async with forks[i]:
            await cp.sleep(1)
            async with forks[(i + 1) % 2]:
                pass

    await cp.par(*(philosopher(i) for i in range(2)))


def test_the_deadlock_report_names_the_objects():
    vm = cp.VM()
    with pytest.raises(cp.Deadlock) as info:
        vm.run(philosophers())
    lines = str(info.value).splitlines()[1:]
    assert lines == [
        "  task 1 'philosophers' waits for its cp.par() branches (tasks 2, 3) to finish",
        "  task 2 'philosopher' waits to acquire lock 'fork 1' (held by task 3 'philosopher')",
        "  task 3 'philosopher' waits to acquire lock 'fork 0' (held by task 2 'philosopher')",
    ]
    assert [words for _, _, words in info.value.blocked] == [
        line.split(" waits ")[1] for line in lines
    ]


async def every_wait():
    jobs, idle, quiet = cp.channel(name="jobs"), cp.channel(), cp.channel()
    go, meet, ready = cp.Event(name="go"), cp.Barrier(3, name="meet"), cp.Condition(name="ready")
    pool = cp.Semaphore(0, name="pool")

    async def on_condition():
        async with ready:
            await ready.wait()

    cp.spawn(jobs.recv(), name="receiver")
    cp.spawn(idle.send(1), name="sender")
    cp.spawn(go.wait(), name="event")
    cp.spawn(meet.wait(), name="barrier")
    cp.spawn(on_condition(), name="condition")
    cp.spawn(pool.acquire(), name="semaphore")
    cp.spawn(cp.select(jobs, quiet), name="select")
    await cp.sleep(1)
    await meet.wait()


def test_every_wait_names_its_object_in_the_report_and_in_state_at():
    vm = cp.VM()
    with pytest.raises(cp.Deadlock) as info:
        vm.run(every_wait())
    words = {task_id: words for task_id, _, words in info.value.blocked}
    assert words == {
        1: "at barrier 'meet'",
        2: "to receive on channel 'jobs'",
        3: "to send on channel 2",
        4: "for event 'go'",
        5: "at barrier 'meet'",
        6: "for condition 'ready'",
        7: "to acquire semaphore 'pool'",
        8: "in select on channel 'jobs', channel 3",
    }
    first_cancel = next(r.event_id for r in vm.journal if r.kind == "cancel")
    state = vm.journal.state_at(first_cancel - 1)  # the deadlock, before vm.run cancels it all
    assert {i: task.waiting_on for i, task in state.tasks.items() if task.waiting_on} == words
    assert state.waits[2].plain() == {
        "op": "recv",
        "object": "channel",
        "id": 1,
        "name": "jobs",
        "holder": None,
        "holder_name": None,
        "until": None,
        "tasks": [],
        "cases": [],
        "count": None,
    }
    assert state.waits[8].cases == (("channel", 1, "jobs"), ("channel", 3, None))
    assert state.to_dict()["waits"]["6"]["name"] == "ready"
    assert (state.barriers[1].name, state.barriers[1].waiters) == ("meet", [5, 1])
    assert (state.conditions[1].name, state.conditions[1].waiters) == ("ready", [6])
    assert (state.event_states[1].name, state.event_states[1].waiters) == ("go", [4])
    assert state.semaphore_states[1] == (1, "pool", 0, [7])
    assert state.channels[1].name == "jobs" and state.channels[2].name is None
