"""Scheduling: every await is a schedule point; fifo and seeded random policies; cp.rng()."""

from __future__ import annotations

import pytest

import counterpoint as cp

# -- every await is a schedule point ----------------------------------------------------------


async def _noop():
    return None


async def _finished_task():
    task = cp.spawn(_noop())
    await task
    return task


async def _buffered_channel_with_room():
    return cp.channel(1)


async def _buffered_channel_with_a_value():
    ch = cp.channel(1)
    ch.try_send("v")
    return ch


async def _set_event():
    event = cp.Event()
    event.set()
    return event


async def _free_lock():
    return cp.Lock()


async def _empty_scope_wait_all():
    return None


# (setup coroutine, the operation to await once the setup's result is known)
IMMEDIATE_OPERATIONS = {
    "checkpoint": (_noop, lambda _: cp.checkpoint()),
    "sleep(0)": (_noop, lambda _: cp.sleep(0)),
    "send with room": (_buffered_channel_with_room, lambda ch: ch.send(1)),
    "recv with a value": (_buffered_channel_with_a_value, lambda ch: ch.recv()),
    "await a finished task": (_finished_task, lambda task: task),
    "par() with no branches": (_noop, lambda _: cp.par()),
    "wait on a set event": (_set_event, lambda event: event.wait()),
    "acquire a free lock": (_free_lock, lambda lock: lock.acquire()),
}


@pytest.mark.parametrize("name", list(IMMEDIATE_OPERATIONS))
def test_every_await_is_a_schedule_point_even_when_it_could_complete_at_once(vm, name):
    setup, operation = IMMEDIATE_OPERATIONS[name]
    log = []

    async def other():
        log.append("other ran")

    async def main():
        target = await setup()
        cp.spawn(other())
        await operation(target)
        log.append("main resumed")

    vm.run(main())
    assert log == ["other ran", "main resumed"]


def test_wait_all_on_a_scope_without_children_is_a_schedule_point(vm):
    log = []

    async def other():
        log.append("other ran")

    async def main():
        async with cp.scope() as s:
            cp.spawn(other())
            await s.wait_all()
            log.append("main resumed")

    vm.run(main())
    assert log == ["other ran", "main resumed"]


def test_two_senders_on_a_buffered_channel_with_room_interleave_under_fifo(vm):
    async def sender(ch, name):
        for i in range(3):
            await ch.send(f"{name}{i}")

    async def main():
        ch = cp.channel(10)
        a = cp.spawn(sender(ch, "a"))
        b = cp.spawn(sender(ch, "b"))
        await a
        await b
        values = []
        while True:
            status, value = ch.try_recv()
            if status != cp.RecvStatus.OK:
                return values
            values.append(value)

    assert vm.run(main()) == ["a0", "b0", "a1", "b1", "a2", "b2"]


def test_code_between_awaits_runs_without_interruption(vm):
    log = []

    async def worker(name):
        for i in range(3):
            log.append((name, i, "start"))
            log.append((name, i, "end"))  # no await in between: nothing else runs
            await cp.checkpoint()

    async def main():
        a = cp.spawn(worker("a"))
        b = cp.spawn(worker("b"))
        await a
        await b

    vm.run(main())
    for start, end in zip(log[::2], log[1::2], strict=True):
        assert start[:2] == end[:2]
        assert (start[2], end[2]) == ("start", "end")


# -- fifo -----------------------------------------------------------------------------------


def test_fifo_runs_ready_tasks_in_spawn_order(vm):
    log = []

    async def worker(name):
        log.append(name)
        await cp.checkpoint()
        log.append(name)

    async def main():
        tasks = [cp.spawn(worker(name)) for name in "abcd"]
        for task in tasks:
            await task

    vm.run(main())
    assert log == list("abcdabcd")


def test_fifo_resumes_tasks_in_the_order_they_became_ready_not_by_id(vm):
    log = []

    async def receiver(name, delay_steps, ch):
        for _ in range(delay_steps):
            await cp.checkpoint()
        value = await ch.recv()
        log.append((name, value))

    async def main():
        ch = cp.channel()
        tasks = [
            cp.spawn(receiver("x", 2, ch)),
            cp.spawn(receiver("y", 0, ch)),
            cp.spawn(receiver("z", 1, ch)),
        ]
        for _ in range(4):
            await cp.checkpoint()  # everyone is blocked on recv now: y, z, x
        for value in range(3):
            assert ch.try_send(value) == cp.SendStatus.SENT
        for task in tasks:
            await task

    vm.run(main())
    assert log == [("y", 0), ("z", 1), ("x", 2)]


def test_every_resumption_is_one_step_record_of_the_resumed_task(vm):
    async def worker():
        await cp.checkpoint()
        await cp.checkpoint()

    async def main():
        await cp.spawn(worker())

    vm.run(main())
    steps = [r.task for r in vm.journal if r.kind == "step"]
    assert steps == [1, 2, 2, 2, 1]


# -- random policy ------------------------------------------------------------------------------


async def racy():
    """Three tasks each append their name three times; the interleaving is the outcome."""
    log = []

    async def worker(name):
        for _ in range(3):
            log.append(name)
            await cp.checkpoint()

    tasks = [cp.spawn(worker(name)) for name in "abc"]
    for task in tasks:
        await task
    return "".join(log)


def run_random(seed):
    vm = cp.VM(seed=seed, policy="random")
    result = vm.run(racy())
    vm.journal._check()
    return result, vm.journal.digest()


def test_random_policy_with_the_same_seed_gives_the_same_journal_digest():
    for seed in range(5):
        assert run_random(seed) == run_random(seed)


def test_random_policy_with_different_seeds_gives_different_interleavings():
    results = {seed: run_random(seed) for seed in range(8)}
    interleavings = {result for result, _ in results.values()}
    digests = {digest for _, digest in results.values()}
    assert len(interleavings) >= 2
    assert len(digests) >= 2


def test_random_policy_still_runs_every_task_to_completion():
    for seed in range(8):
        result, _ = run_random(seed)
        assert sorted(result) == sorted("aaabbbccc")


def test_random_policy_without_a_choice_to_make_does_not_depend_on_the_seed():
    async def chain():
        for _ in range(5):
            await cp.sleep(1)
        return cp.now()

    digests = set()
    for seed in range(4):
        vm = cp.VM(seed=seed, policy="random")
        assert vm.run(chain()) == 5
        digests.add(vm.journal.digest())
    assert len(digests) == 1


def test_fifo_ignores_the_seed():
    digests = set()
    for seed in range(4):
        vm = cp.VM(seed=seed)
        assert vm.run(racy()) == "abcabcabc"
        digests.add(vm.journal.digest())
    assert len(digests) == 1


def test_an_unknown_policy_is_a_value_error():
    with pytest.raises(ValueError, match="policy"):
        cp.VM(policy="lifo")


# -- cp.rng() ---------------------------------------------------------------------------------


async def draws():
    """Tasks 2 and 3 each draw three numbers from their own cp.rng()."""

    async def draw():
        return [cp.rng().random() for _ in range(3)]

    a = cp.spawn(draw())
    b = cp.spawn(draw())
    return await a, await b


def test_rng_is_the_same_for_the_same_seed_and_task():
    assert cp.VM(seed=11).run(draws()) == cp.VM(seed=11).run(draws())


def test_rng_differs_between_tasks_of_one_run():
    first, second = cp.VM(seed=11).run(draws())
    assert first != second


def test_rng_differs_between_seeds():
    assert cp.VM(seed=1).run(draws()) != cp.VM(seed=2).run(draws())


def test_rng_of_a_task_does_not_depend_on_what_other_tasks_draw():
    async def draw_after(steps, extra_draws):
        for _ in range(steps):
            await cp.checkpoint()
        for _ in range(extra_draws):
            cp.rng().random()
        return cp.rng().random()

    async def program(noisy):
        a = cp.spawn(draw_after(2, 0))  # task 2 draws once, late
        b = cp.spawn(draw_after(0, 50 if noisy else 0))  # task 3 draws first
        return await a, await b

    quiet_a, _ = cp.VM(seed=3).run(program(noisy=False))
    noisy_a, _ = cp.VM(seed=3).run(program(noisy=True))
    assert quiet_a == noisy_a


def test_rng_returns_the_same_generator_within_a_task(vm):
    async def main():
        return cp.rng() is cp.rng()

    assert vm.run(main()) is True


def test_rng_does_not_disturb_the_random_policy():
    async def program(use_rng):
        log = []

        async def worker(name):
            for _ in range(3):
                if use_rng:
                    cp.rng().random()
                log.append(name)
                await cp.checkpoint()

        tasks = [cp.spawn(worker(n)) for n in "abc"]
        for task in tasks:
            await task
        return "".join(log)

    for seed in range(4):
        plain = cp.VM(seed=seed, policy="random").run(program(False))
        with_rng = cp.VM(seed=seed, policy="random").run(program(True))
        assert plain == with_rng
