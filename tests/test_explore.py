"""Exploration: cp.explore (dfs with partial-order reduction, random, pct), cp.choose,
cp.require and replayable schedules (``cp.VM(schedule=...)``)."""

from __future__ import annotations

import contextlib
import gc
import html
import inspect
import itertools
import time
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import counterpoint as cp
from counterpoint._explore import decode_schedule, encode_schedule

STRATEGIES = ["dfs", "random", "pct"]


@pytest.fixture(autouse=True)
def _collect_garbage():
    """Collect after each test, so a coroutine left unawaited fails the test that left it."""
    yield
    gc.collect()


# -- programs ---------------------------------------------------------------------------------


async def lost_update():
    """Two tasks read a shared counter, checkpoint, write it back: 1 or 2."""
    box = {"n": 0}

    async def add():
        seen = box["n"]
        await cp.checkpoint()
        box["n"] = seen + 1

    await cp.par(add(), add())
    return box["n"]


async def lost_update_checked():
    """The lost update as a failure (the same message whichever schedule loses it)."""
    if await lost_update() != 2:
        raise AssertionError("an update was lost")
    return "ok"


def racing_increments(rounds, name, doc):
    """Two tasks each increment a shared counter ``rounds`` times, with a checkpoint
    between read and write (the lost update, repeated)."""

    async def main():
        box = {"n": 0}

        async def add():
            for _ in range(rounds):
                seen = box["n"]
                await cp.checkpoint()
                box["n"] = seen + 1

        await cp.par(add(), add())
        return box["n"]

    main.__name__ = main.__qualname__ = name
    main.__doc__ = doc
    return main


lost_update_twice = racing_increments(2, "lost_update_twice", "Each adds twice: 2, 3 or 4.")
racy_rounds = racing_increments(5, "racy_rounds", "examples/race.py: five rounds each (5 .. 10).")


async def dining_philosophers():
    """Three philosophers take the left fork, then (no sleep) the right one: whether
    they deadlock depends on the interleaving."""
    forks = [cp.Lock() for _ in range(3)]

    async def philosopher(seat):
        async with forks[seat], forks[(seat + 1) % 3]:
            pass

    async with cp.scope() as table:
        for seat in range(3):
            table.spawn(philosopher(seat), name=f"philosopher-{seat}")
    return "everyone ate"


async def withdrawal():
    """Withdraw an amount chosen from a few options: only 150 overdraws."""
    account = {"balance": 100}

    async def teller():
        amount = cp.choose([10, 50, 150])
        await cp.checkpoint()
        if amount > account["balance"]:
            raise ValueError(f"overdrawn by {amount - account['balance']}")
        account["balance"] -= amount

    await cp.par(teller())
    return account["balance"]


async def ordered_pair():
    a, b = cp.choose(range(4)), cp.choose(range(4))
    cp.require(a < b)
    return (a, b)


async def drink():
    return cp.choose(["tea", "coffee", "water"])


def own_channels(tasks):
    """Tasks that each talk only to their own channel."""

    async def main():
        async def worker():
            ch = cp.channel(1)
            total = 0
            for value in range(2):
                await ch.send(value)
                total += await ch.recv()
            return total

        return await cp.par(*[worker() for _ in range(tasks)])

    return main


def producer_consumer_pairs(pairs, items, capacity):
    """``pairs`` producer/consumer pairs, each pair on its own channel."""

    async def main():
        async def producer(ch):
            for item in range(items):
                await ch.send(item)
            ch.close()

        async def consumer(ch):
            return [item async for item in ch]

        coros = []
        for _ in range(pairs):
            ch = cp.channel(capacity)
            coros += [producer(ch), consumer(ch)]
        return await cp.par(*coros)

    return main


async def channel_order():
    ch = cp.channel(3)

    async def send(value):
        await ch.send(value)

    await cp.par(send(1), send(2), send(3))
    return [await ch.recv() for _ in range(3)]


async def select_race():
    a, b = cp.channel(1), cp.channel(1)

    async def feed(ch, value):
        await ch.send(value)

    async def pick():
        return (await cp.select(a, b)).value

    return (await cp.par(feed(a, "a"), feed(b, "b"), pick()))[2]


async def select_timeout_zero():
    ch = cp.channel(1)

    async def feed():
        await ch.send("x")

    async def poll():
        return (await cp.select(ch, timeout=0)).index

    return (await cp.par(feed(), poll()))[1]


async def cancel_race():
    async def victim():
        await cp.checkpoint()
        return "finished"

    task = cp.spawn(victim())

    async def killer():
        task.cancel()

    await cp.par(killer())
    try:
        return await task
    except cp.Cancelled:
        return "cancelled"


async def try_recv_race():
    ch = cp.channel(1)

    async def producer():
        await cp.checkpoint()
        await ch.send("x")

    async def poller():
        await cp.checkpoint()
        return ch.try_recv()[0].name

    return (await cp.par(producer(), poller()))[1]


async def is_set_race():
    event = cp.Event()

    async def setter():
        event.set()

    async def checker():
        return event.is_set()

    return (await cp.par(setter(), checker()))[1]


async def closed_race():
    ch = cp.channel(1)

    async def closer():
        ch.close()

    async def checker():
        return ch.closed

    return (await cp.par(closer(), checker()))[1]


async def append_order():
    log = []

    async def append(value):
        log.append(value)

    await cp.par(append(1), append(2))
    return tuple(log)


def run_schedule(program, schedule, seed=0):
    """Run ``program`` under ``schedule``: ("ok", value) or ("raised", exception)."""
    try:
        return "ok", cp.VM(schedule=schedule, seed=seed).run(program())
    except Exception as error:
        return "raised", error


def preemptions_in(journal):
    """Switches away from a task whose step neither blocked nor finished (for programs
    whose only yields are checkpoints and joins)."""
    count, current, went_on = 0, None, False
    for record in journal:
        if record.kind == "step":
            if current is not None and record.task != current and went_on:
                count += 1
            current, went_on = record.task, True
        elif record.task == current and record.kind in ("block", "done", "fail", "cancelled"):
            went_on = False
    return count


def explore(program, **options):
    return cp.explore(program, progress=False, **options)


@contextlib.contextmanager
def never_awaited():
    """Collect the "coroutine ... was never awaited" warnings of coroutines that are
    garbage-collected inside the block (instead of letting them surface, as errors,
    in whichever test happens to run the collector)."""
    found: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield found
        gc.collect()
    found.extend(str(w.message) for w in caught if "never awaited" in str(w.message))


# -- must find -----------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_finds_both_outcomes_of_a_lost_update_race(strategy):
    report = explore(lost_update, strategy=strategy, max_schedules=100)
    assert set(report.outcomes) == {1, 2}
    assert report.failures == [] and report.deadlocks == []


def test_dfs_finds_both_outcomes_of_a_lost_update_race_exhaustively():
    report = explore(lost_update)
    assert set(report.outcomes) == {1, 2}
    assert report.exhaustive


def test_fifo_alone_sees_only_one_outcome_of_the_race():
    assert cp.VM().run(lost_update()) == 1


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_finds_the_dining_philosophers_deadlock(strategy):
    report = explore(dining_philosophers, strategy=strategy, max_schedules=300)
    assert report.deadlocks
    assert "everyone ate" in report.outcomes and "Deadlock" in report.outcomes
    assert [finding.outcome for finding in report.deadlocks] == ["Deadlock"]
    assert report.deadlocks[0].count == report.outcomes["Deadlock"]
    assert report.failures == []


def test_dfs_covers_the_dining_philosophers_exhaustively():
    report = explore(dining_philosophers, max_schedules=1000)
    assert report.exhaustive and report.deadlocks


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_finds_a_bug_that_needs_a_choose(strategy):
    report = explore(withdrawal, strategy=strategy, max_schedules=60)
    assert [(f.outcome, f.message) for f in report.failures] == [("ValueError", "overdrawn by 50")]
    assert set(report.outcomes) == {90, 50, "ValueError"}


def test_a_plain_run_of_the_choose_program_takes_the_first_option_and_misses_the_bug():
    assert cp.VM().run(withdrawal()) == 90


# -- findings replay -----------------------------------------------------------------------------


FINDING_CASES = [
    (dining_philosophers, "dfs"),
    (dining_philosophers, "random"),
    (dining_philosophers, "pct"),
    (withdrawal, "dfs"),
    (withdrawal, "random"),
    (withdrawal, "pct"),
    (lost_update_checked, "dfs"),
    (lost_update_checked, "random"),
    (lost_update_checked, "pct"),
]


@pytest.mark.parametrize(("program", "strategy"), FINDING_CASES)
def test_every_findings_schedule_replays_the_same_exception(program, strategy):
    report = explore(program, strategy=strategy, max_schedules=200, seed=3)
    findings = report.deadlocks + report.failures
    assert findings
    for finding in findings:
        kind, error = run_schedule(program, finding.schedule, seed=3)
        assert kind == "raised"
        assert type(error).__name__ == finding.outcome
        assert str(error) == finding.message
        if finding.outcome == "Deadlock":
            assert isinstance(error, cp.Deadlock)


@pytest.mark.parametrize(("program", "strategy"), FINDING_CASES[:4])
def test_a_findings_replay_is_one_line_of_python_that_reproduces_it(program, strategy):
    report = explore(program, strategy=strategy, max_schedules=200)
    finding = (report.deadlocks + report.failures)[0]
    assert "\n" not in finding.replay
    assert repr(finding.schedule) in finding.replay
    assert program.__name__ in finding.replay
    with pytest.raises((cp.Deadlock, ValueError, AssertionError)) as raised:
        eval(finding.replay, {"cp": cp, program.__name__: program})
    assert type(raised.value).__name__ == finding.outcome
    assert str(raised.value) == finding.message


def test_a_finding_replays_the_same_way_every_time():
    finding = explore(dining_philosophers).deadlocks[0]
    runs = []
    for _ in range(3):
        vm = cp.VM(schedule=finding.schedule)
        with pytest.raises(cp.Deadlock):
            vm.run(dining_philosophers())
        runs.append(vm.journal.digest())
    assert runs[0] == runs[1] == runs[2]


def test_findings_keep_the_schedule_with_the_fewest_preemptions():
    # the lost update needs one preemption: none is not enough
    assert explore(lost_update_checked, por=False, preemption_bound=0).failures == []
    bounded = explore(lost_update_checked, por=False, preemption_bound=1).failures
    unbounded = explore(lost_update_checked, por=False).failures
    assert len(bounded) == len(unbounded) == 1
    # the unbounded search also failed under costlier schedules (2 preemptions) ...
    assert unbounded[0].count > bounded[0].count
    # ... but reports a cheapest one
    assert unbounded[0].preemptions == 1
    vm = cp.VM(schedule=unbounded[0].schedule)
    with pytest.raises(AssertionError):
        vm.run(lost_update_checked())
    assert preemptions_in(vm.journal) == 1


def test_random_search_reports_the_cheapest_failing_schedule_it_saw():
    report = explore(lost_update_checked, strategy="random", max_schedules=200)
    (finding,) = report.failures
    assert finding.preemptions == 1
    assert finding.count == report.outcomes["AssertionError"] > 1
    vm = cp.VM(schedule=finding.schedule)
    with pytest.raises(AssertionError):
        vm.run(lost_update_checked())
    assert preemptions_in(vm.journal) == 1


def test_findings_count_every_schedule_that_showed_them():
    report = explore(lost_update_checked, por=False)
    (finding,) = report.failures
    assert finding.count == report.outcomes["AssertionError"] == 4
    assert report.outcomes["ok"] == 2


# -- partial-order reduction -------------------------------------------------------------------


def test_dfs_collapses_tasks_on_their_own_channels_to_one_schedule():
    report = explore(own_channels(3))
    assert report.schedules == 1 and report.exhaustive
    assert report.outcomes == {"[1, 1, 1]": 1}


def test_without_por_tasks_on_their_own_channels_are_permuted():
    assert explore(own_channels(2), por=False).schedules == 252
    report = explore(own_channels(3), por=False, max_schedules=300)
    assert report.schedules == 300 and not report.exhaustive


@pytest.mark.parametrize(("items", "capacity"), [(1, 0), (2, 0), (2, 1), (3, 2)])
def test_two_independent_producer_consumer_pairs_give_the_square_of_one_pairs_schedules(
    items, capacity
):
    one = explore(producer_consumer_pairs(1, items, capacity), max_schedules=5000)
    two = explore(producer_consumer_pairs(2, items, capacity), max_schedules=5000)
    assert one.exhaustive and two.exhaustive
    assert one.schedules > 1
    assert two.schedules == one.schedules**2


SOUND_PROGRAMS = [
    lost_update,
    lost_update_twice,
    lost_update_checked,
    dining_philosophers,
    withdrawal,
    channel_order,
    select_race,
    select_timeout_zero,
    cancel_race,
    try_recv_race,
    producer_consumer_pairs(1, 2, 1),
]


@pytest.mark.parametrize("program", SOUND_PROGRAMS, ids=lambda p: p.__qualname__.split(".")[0])
def test_por_finds_every_outcome_that_exploring_everything_finds(program):
    full = explore(program, por=False, max_schedules=5000)
    reduced = explore(program, max_schedules=5000)
    assert full.exhaustive and reduced.exhaustive
    assert set(reduced.outcomes) == set(full.outcomes)
    assert reduced.schedules <= full.schedules
    assert {f.outcome for f in reduced.deadlocks + reduced.failures} == {
        f.outcome for f in full.deadlocks + full.failures
    }


@pytest.mark.parametrize("program", [is_set_race, closed_race])
def test_por_sees_reads_of_vm_objects_that_write_no_record(program):
    full = explore(program, por=False)
    reduced = explore(program)
    assert set(full.outcomes) == {True, False}
    assert set(reduced.outcomes) == set(full.outcomes)


async def _touch_own_channel():
    """Make the calling task one that uses VM objects (its steps are not wildcards)."""
    mine = cp.channel(1)
    await mine.send(None)


def read_race(make, write, read, final=None):
    """A writer and a reader task that both use VM objects first; the reader's last step
    reads ``make()``'s state without writing a journal record (``read`` may be an async
    function: then the read is a checkpoint).  The outcome is what the reader returned,
    or ``final(obj)`` once both are done."""

    async def main():
        obj = make()

        async def writer():
            await _touch_own_channel()
            await write(obj)

        async def reader():
            await _touch_own_channel()
            seen = read(obj)
            return await seen if inspect.isawaitable(seen) else seen

        seen = (await cp.par(writer(), reader()))[1]
        return seen if final is None else final(obj)

    return main


async def _set(event):
    event.set()


async def _clear(event):
    event.clear()


async def _close(ch):
    ch.close()


async def _put(ch):
    ch.try_send("x")


async def _take(lock):
    await lock.acquire()


def _set_event():
    event = cp.Event()
    event.set()
    return event


async def _select_now(ch):
    return (await cp.select(ch, timeout=0)).tag.name


async def _send_or_closed(ch):
    try:
        await ch.send("y")
    except cp.ChannelClosed:
        return "closed"
    return "sent"


READ_RACES = {
    "event.is_set": read_race(cp.Event, _set, lambda e: e.is_set()),
    "event.set when set": read_race(_set_event, _clear, lambda e: e.set(), lambda e: e.is_set()),
    "event.clear when clear": read_race(cp.Event, _set, lambda e: e.clear(), lambda e: e.is_set()),
    "channel.closed": read_race(lambda: cp.channel(1), _close, lambda c: c.closed),
    "len(channel)": read_race(lambda: cp.channel(1), _put, len),
    "channel.try_send full": read_race(lambda: cp.channel(1), _put, lambda c: c.try_send("y").name),
    "channel.try_recv empty": read_race(
        lambda: cp.channel(1), _put, lambda c: c.try_recv()[0].name
    ),
    "lock.locked": read_race(cp.Lock, _take, lambda lock: lock.locked()),
    "semaphore.value": read_race(lambda: cp.Semaphore(1), _take, lambda s: s.value),
    "select timeout=0": read_race(lambda: cp.channel(1), _put, _select_now),
    "send on closed": read_race(lambda: cp.channel(1), _close, _send_or_closed),
}


@pytest.mark.parametrize("program", READ_RACES.values(), ids=READ_RACES.keys())
def test_por_orders_record_free_reads_against_the_writes_of_tasks_that_use_vm_objects(program):
    full = explore(program, por=False)
    reduced = explore(program)
    assert len(full.outcomes) == 2, full.outcomes
    assert set(reduced.outcomes) == set(full.outcomes)
    assert reduced.exhaustive


async def task_done_race():
    async def quick():
        await _touch_own_channel()

    async def watcher(other):
        await _touch_own_channel()
        return other.done()

    async with cp.scope() as s:
        other = s.spawn(quick())
        seen = s.spawn(watcher(other))
    return seen.result()


async def barrier_arrivals():
    barrier = cp.Barrier(2)

    async def arrive():
        await _touch_own_channel()
        return await barrier.wait()

    return tuple(await cp.par(arrive(), arrive()))


@pytest.mark.parametrize("program", [task_done_race, barrier_arrivals])
def test_por_sees_task_state_reads_and_the_last_barrier_arrival(program):
    full = explore(program, por=False)
    assert len(full.outcomes) == 2, full.outcomes
    assert set(explore(program).outcomes) == set(full.outcomes)


def test_por_sees_python_state_shared_by_tasks_that_finish_in_one_step():
    full = explore(append_order, por=False)
    assert set(full.outcomes) == {(1, 2), (2, 1)}
    assert set(explore(append_order).outcomes) == set(full.outcomes)


async def append_after_a_vm_operation():
    """Each task appends to a shared list in the same step as it finishes, after using a
    channel: POR assumes such a step touches only VM objects (see docs/explore.md)."""
    log = []

    async def append(value):
        await _touch_own_channel()
        log.append(value)

    await cp.par(append(1), append(2))
    return tuple(log)


def test_por_assumes_a_step_that_uses_vm_objects_touches_no_shared_python_state():
    """The documented assumption, and its two ways out: por=False, or a checkpoint after
    the shared access."""
    assert set(explore(append_after_a_vm_operation).outcomes) == {(1, 2)}
    assert set(explore(append_after_a_vm_operation, por=False).outcomes) == {(1, 2), (2, 1)}

    async def with_a_checkpoint():
        log = []

        async def append(value):
            await _touch_own_channel()
            log.append(value)
            await cp.checkpoint()

        await cp.par(append(1), append(2))
        return tuple(log)

    assert set(explore(with_a_checkpoint).outcomes) == {(1, 2), (2, 1)}


def test_por_explores_fewer_schedules_than_exploring_everything():
    assert explore(channel_order).schedules < explore(channel_order, por=False).schedules
    full = explore(dining_philosophers, por=False, max_schedules=1000)
    reduced = explore(dining_philosophers, max_schedules=1000)
    assert full.exhaustive and reduced.exhaustive
    assert reduced.schedules < full.schedules


# -- exhaustiveness and determinism --------------------------------------------------------------


def test_dfs_is_exhaustive_on_small_programs():
    report = explore(ordered_pair)
    assert report.exhaustive and report.schedules == 16
    report = explore(drink)
    assert report.exhaustive and report.outcomes == {"tea": 1, "coffee": 1, "water": 1}


def test_dfs_is_not_exhaustive_when_max_schedules_cuts_it():
    full = explore(lost_update_twice)
    assert full.exhaustive
    cut = explore(lost_update_twice, max_schedules=full.schedules - 1)
    assert not cut.exhaustive and cut.schedules == full.schedules - 1
    exact = explore(lost_update_twice, max_schedules=full.schedules)
    assert exact.exhaustive and exact.schedules == full.schedules


@pytest.mark.parametrize("strategy", ["random", "pct"])
def test_random_and_pct_are_never_exhaustive(strategy):
    report = explore(drink, strategy=strategy, max_schedules=50)
    assert set(report.outcomes) == {"tea", "coffee", "water"}
    assert report.schedules == 50
    assert not report.exhaustive


def _summary(report):
    return (
        report.schedules,
        report.exhaustive,
        list(report.outcomes.items()),
        report.pruned,
        report.deadlocks,
        report.failures,
    )


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("program", [racy_rounds, dining_philosophers, withdrawal])
def test_exploration_is_deterministic(strategy, program):
    first = explore(program, strategy=strategy, max_schedules=60, seed=7)
    second = explore(program, strategy=strategy, max_schedules=60, seed=7)
    assert _summary(first) == _summary(second)


@pytest.mark.parametrize("strategy", ["random", "pct"])
def test_different_seeds_explore_different_schedules(strategy):
    outcomes = {
        seed: explore(racy_rounds, strategy=strategy, max_schedules=30, seed=seed).outcomes
        for seed in range(3)
    }
    assert len({tuple(sorted(counts.items())) for counts in outcomes.values()}) > 1
    findings = {
        explore(dining_philosophers, strategy=strategy, max_schedules=40, seed=seed)
        .deadlocks[0]
        .schedule
        for seed in range(4)
    }
    assert len(findings) > 1


# -- preemption bound ---------------------------------------------------------------------------


@pytest.mark.parametrize("por", [True, False])
def test_preemption_bound_zero_misses_the_lost_update(por):
    report = explore(lost_update, preemption_bound=0, por=por)
    assert set(report.outcomes) == {2}


@pytest.mark.parametrize("por", [True, False])
def test_preemption_bound_one_finds_the_lost_update(por):
    report = explore(lost_update, preemption_bound=1, por=por)
    assert set(report.outcomes) == {1, 2}


def test_preemption_bound_limits_random_search_too():
    report = explore(lost_update, strategy="random", preemption_bound=0, max_schedules=50)
    assert set(report.outcomes) == {2}


def test_preemption_bound_does_not_limit_data_choices():
    report = explore(drink, preemption_bound=0)
    assert set(report.outcomes) == {"tea", "coffee", "water"}


# -- cp.choose outside explore ----------------------------------------------------------------


def test_choose_under_fifo_takes_the_first_option(vm):
    assert vm.run(drink()) == "tea"


def test_choose_under_the_random_policy_is_seeded():
    def chosen(seed):
        return cp.VM(policy="random", seed=seed).run(drink())

    assert all(chosen(seed) == chosen(seed) for seed in range(10))
    assert len({chosen(seed) for seed in range(30)}) > 1


def test_choose_under_a_schedule_takes_the_schedules_option():
    assert cp.VM(schedule="cp1:11").run(drink()) == "coffee"
    assert cp.VM(schedule="cp1:21").run(drink()) == "water"
    assert cp.VM(schedule=encode_schedule([0])).run(drink()) == "tea"


@pytest.mark.parametrize(
    ("options", "policy"),
    [(None, "fifo"), ("cp1:21", "fifo"), (None, "random")],
)
def test_every_choose_is_a_choose_record(options, policy):
    async def main():
        first = cp.choose("abc")
        second = cp.choose(range(5))
        return first, second

    vm = cp.VM(schedule=options, policy=policy, seed=4)
    first, second = vm.run(main())
    records = [record for record in vm.journal if record.kind == "choose"]
    assert [record.data for record in records] == [
        {"options": 3, "index": "abc".index(first)},
        {"options": 5, "index": second},
    ]
    assert all(record.task == 1 for record in records)
    vm.journal._check()


def test_choose_of_nothing_is_a_value_error(vm):
    async def main():
        cp.choose([])

    with pytest.raises(ValueError, match="at least one option"):
        vm.run(main())


def test_choose_and_require_outside_a_task_are_not_in_task_errors():
    with pytest.raises(cp.NotInTaskError):
        cp.choose([1, 2])
    with pytest.raises(cp.NotInTaskError):
        cp.require(True)


def test_choose_with_one_option_is_not_a_choice_point():
    async def main():
        return cp.choose(["only"])

    report = explore(main)
    assert report.schedules == 1 and report.outcomes == {"only": 1}


# -- cp.require ---------------------------------------------------------------------------------


def test_require_prunes_executions_and_keeps_them_out_of_outcomes():
    report = explore(ordered_pair)
    assert len(report.outcomes) == 6
    assert set(report.outcomes) == {(a, b) for a in range(4) for b in range(4) if a < b}
    assert report.pruned == 10
    assert report.schedules == 16
    assert report.failures == [] and report.deadlocks == []


def test_a_plain_run_raises_pruned_which_is_not_an_exception(vm):
    assert issubclass(cp.Pruned, BaseException)
    assert not issubclass(cp.Pruned, Exception)
    with pytest.raises(cp.Pruned):
        vm.run(ordered_pair())  # fifo chooses (0, 0)


def test_require_true_lets_the_run_go_on(vm):
    assert cp.VM(schedule="cp1:0111").run(ordered_pair()) == (0, 1)


def test_except_exception_does_not_swallow_a_prune():
    async def main():
        try:
            cp.require(False)
        except Exception:
            return "swallowed"
        return "went on"

    report = explore(main)
    assert report.pruned == 1 and report.outcomes == {}


def test_require_in_a_child_task_prunes_the_execution():
    async def main():
        async def child():
            value = cp.choose([1, 2, 3])
            cp.require(value != 2)
            return value

        return (await cp.par(child()))[0]

    report = explore(main)
    assert report.outcomes == {1: 1, 3: 1}
    assert report.pruned == 1 and report.failures == []


# -- schedules ----------------------------------------------------------------------------------


def test_schedule_encoding_is_compact_runs_in_base_62():
    assert encode_schedule([0, 0, 0, 1, 0]) == "cp1:031101"
    assert encode_schedule([]) == "cp1:"
    assert decode_schedule("cp1:") == []
    assert decode_schedule(encode_schedule([0] * 200)) == [0] * 200
    assert decode_schedule(encode_schedule([70] * 130 + [61, 62])) == [70] * 130 + [61, 62]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.integers(0, 3),
            st.sampled_from([60, 61, 62, 63, 100]),
            st.integers(0, 10**6),
        ),
        max_size=200,
    )
)
def test_schedules_round_trip(choices):
    encoded = encode_schedule(choices)
    assert encoded.startswith("cp1:")
    assert decode_schedule(encoded) == choices


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 2), min_size=1, max_size=10).map(lambda xs: xs * 40))
def test_long_runs_of_equal_choices_round_trip(choices):
    assert decode_schedule(encode_schedule(choices)) == choices


@pytest.mark.parametrize(
    "schedule",
    [
        *[
            "",
            "cp1",
            "cp2:01",
            "01",
            "cp1:0",
            "cp1:(5",
            "cp1:(5)",
            "cp1:!1",
            "cp1:0!",
            "cp1:(x)1",
            5,
        ],
        *["cp1:[01", "cp1:[01]", "cp1:[]2", "cp1:01]2", "cp1:[01]0", "cp1:[[01]2]2"],
    ],
)
def test_a_malformed_schedule_is_a_value_error(schedule):
    with pytest.raises(ValueError):
        decode_schedule(schedule)
    with pytest.raises(ValueError):
        cp.VM(schedule=schedule)


def test_a_malformed_schedule_error_says_what_a_schedule_is():
    with pytest.raises(ValueError, match="cp1:"):
        cp.VM(schedule="abc")


def test_a_schedule_is_stored_in_the_journal_and_replayed():
    vm = cp.VM(schedule="cp1:")  # the running task goes on: no update is lost
    assert vm.run(lost_update()) == 2
    assert vm.journal.meta["schedule"] == "cp1:"
    assert cp.replay(lost_update, vm.journal) == 2
    assert cp.VM().run(lost_update()) == 1  # fifo alternates: the update is lost


def test_replay_of_a_finding_journal_reproduces_the_failure():
    finding = explore(withdrawal).failures[0]
    vm = cp.VM(schedule=finding.schedule)
    with pytest.raises(ValueError, match="overdrawn"):
        vm.run(withdrawal())
    assert vm.journal.meta["schedule"] == finding.schedule
    with pytest.raises(ValueError, match="overdrawn"):
        cp.replay(withdrawal, vm.journal)


def test_past_the_end_of_a_schedule_the_running_task_goes_on():
    assert cp.VM(schedule="cp1:").run(lost_update()) == 2
    assert cp.VM(schedule="cp1:").run(drink()) == "tea"


def test_a_nondeterministic_program_under_dfs_is_a_nondeterminism_error():
    runs = itertools.count()

    async def main():
        # fewer options each time: the choice tree changes between executions
        return cp.choose(range(max(1, 4 - next(runs))))

    with pytest.raises(cp.NondeterminismError, match="not deterministic"):
        explore(main)


def test_a_program_that_loses_its_choice_points_between_executions_is_nondeterministic():
    runs = itertools.count()

    async def main():
        if next(runs) == 0:
            return cp.choose("ab")  # the first execution has a choice point ...
        return "no choice"  # ... the re-run for option "b" has none

    with pytest.raises(cp.NondeterminismError):
        explore(main)


def test_a_program_whose_tasks_change_between_executions_is_nondeterministic():
    runs = itertools.count()

    async def main():
        if next(runs) % 2:

            async def step():
                await cp.checkpoint()

            await cp.par(step(), step())
            return "tasks"
        return cp.choose(["a", "b"])

    with pytest.raises(cp.NondeterminismError):
        explore(main)


# -- arguments and progress ------------------------------------------------------------------


def test_an_unknown_strategy_is_a_value_error():
    with pytest.raises(ValueError, match=r"unknown strategy 'bfs'.*'dfs'"):
        cp.explore(lost_update, strategy="bfs")


@pytest.mark.parametrize("count", [0, -1, 2.5])
def test_max_schedules_must_be_a_positive_int(count):
    with pytest.raises(ValueError, match="max_schedules"):
        cp.explore(lost_update, max_schedules=count)


@pytest.mark.parametrize("bound", [-1, 1.5])
def test_preemption_bound_must_be_a_non_negative_int(bound):
    with pytest.raises(ValueError, match="preemption_bound"):
        cp.explore(lost_update, preemption_bound=bound)


def test_a_coroutine_instead_of_a_callable_is_a_type_error():
    coro = lost_update()
    try:
        with pytest.raises(TypeError, match=r"zero-argument callable.*not `main\(\)`"):
            cp.explore(coro)
    finally:
        coro.close()


def test_progress_false_shows_nothing(capsys):
    explore(racy_rounds, strategy="random", max_schedules=50)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_a_quick_search_shows_no_progress_bar(capsys):
    cp.explore(lost_update)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_a_long_search_shows_a_progress_bar_on_stderr(capsys):
    async def slow():
        time.sleep(0.04)  # host time only: the program's behaviour does not depend on it
        return cp.choose(range(40))

    report = cp.explore(slow, max_schedules=40)
    assert report.schedules == 40
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "exploring (dfs)" in captured.err and "40/40" in captured.err


# -- the report -----------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("program", [ordered_pair, dining_philosophers, withdrawal, racy_rounds])
def test_report_fields_add_up(strategy, program):
    report = explore(program, strategy=strategy, max_schedules=40)
    assert report.schedules == sum(report.outcomes.values()) + report.pruned
    assert 0 < report.schedules <= 40
    assert report.seconds > 0 and report.schedules_per_second > 0
    assert report.schedules_per_second == pytest.approx(report.schedules / report.seconds)
    assert sum(f.count for f in report.deadlocks) == report.outcomes.get("Deadlock", 0)
    failing = {f.outcome for f in report.failures}
    assert sum(f.count for f in report.failures) == sum(
        n for outcome, n in report.outcomes.items() if outcome in failing
    )


def test_outcomes_that_cannot_be_dict_keys_are_counted_by_repr():
    report = explore(producer_consumer_pairs(1, 2, 1))
    assert set(report.outcomes) == {"[None, [0, 1]]"}


def test_report_repr_mentions_the_strategy_and_the_findings():
    report = explore(withdrawal, strategy="random", max_schedules=30)
    text = repr(report)
    assert "random" in text and "30 schedules" in text
    assert "1 failure," in text
    assert "ValueError" in text and "overdrawn by 50" in text
    assert report.failures[0].replay in text
    text = repr(explore(dining_philosophers))
    assert "dfs" in text and "(exhaustive" in text and "Deadlock" in text
    assert "1 deadlock," in text


async def busy():
    """Two tasks that need about 200 steps between them."""

    async def count():
        for _ in range(100):
            await cp.checkpoint()

    await cp.par(count(), count())
    return "done"


def test_an_execution_past_max_steps_is_a_step_limit_failure():
    with never_awaited():
        report = explore(busy, max_steps=50, max_schedules=3)
    assert set(report.outcomes) == {"StepLimitExceeded"}
    (finding,) = report.failures
    assert finding.outcome == "StepLimitExceeded"
    with never_awaited(), pytest.raises(cp.StepLimitExceeded):
        cp.VM(schedule=finding.schedule, max_steps=50).run(busy())


def test_a_search_with_a_step_limited_execution_is_not_exhaustive():
    async def one_long_branch():
        if cp.choose([False, True]):
            while True:
                await cp.checkpoint()
        return "short"

    report = explore(one_long_branch, max_steps=50)
    assert report.schedules == 2 and set(report.outcomes) == {"short", "StepLimitExceeded"}
    assert not report.exhaustive


def test_the_replay_line_of_a_step_limit_finding_reproduces_it():
    with never_awaited():
        (finding,) = explore(busy, max_steps=50, max_schedules=3).failures
    with never_awaited(), pytest.raises(cp.StepLimitExceeded):
        eval(finding.replay, {"cp": cp, "busy": busy})


async def pruned_beside_a_sibling():
    async def judge():
        cp.require(cp.choose([True, False]))

    async def sibling():
        await cp.checkpoint()

    await cp.par(judge(), sibling())


@pytest.mark.parametrize(
    ("program", "options"),
    [(pruned_beside_a_sibling, {}), (busy, {"max_steps": 50, "max_schedules": 3})],
    ids=["pruned", "step-limit"],
)
def test_explore_leaves_no_coroutine_unawaited(program, options):
    with never_awaited() as leaked:
        explore(program, **options)
    assert leaked == []


def test_findings_and_reports_are_public_names():
    report = explore(withdrawal)
    assert isinstance(report, cp.ExploreReport)
    assert all(isinstance(f, cp.Finding) for f in report.failures)


# -- soundness: an early end hides no steps ---------------------------------------------------


async def prune_before_the_producer():
    """The consumer prunes unless the producer went first, then fails: the failure is
    reached only when the producer runs before the consumer's first step."""
    state = {"ready": False}

    async def consumer():
        cp.require(state["ready"])
        raise ValueError("consumed before anything was produced")

    async def producer():
        state["ready"] = True
        await cp.checkpoint()

    await cp.par(consumer(), producer())


async def locked_check_then_act():
    """Every shared access is under one lock and followed by a checkpoint (as
    docs/explore.md recommends), but the withdrawal checks and acts in two critical
    sections: a deposit in between is lost.  The first execution (the withdrawal
    first) fails at once, and par cancels the deposits."""
    lock = cp.Lock()
    account = {"balance": 0}

    async def withdraw():
        async with lock:
            seen = account["balance"]
            await cp.checkpoint()
        if seen < 2:
            raise ValueError("insufficient funds")
        async with lock:
            account["balance"] = seen - 2
            await cp.checkpoint()

    async def deposit():
        for amount in (2, 3):
            async with lock:
                seen = account["balance"]
                await cp.checkpoint()
                account["balance"] = seen + amount
                await cp.checkpoint()

    await cp.par(withdraw(), deposit())
    assert account["balance"] == 3, f"a deposit was lost: the balance is {account['balance']}"
    return account["balance"]


async def root_returns_before_its_child():
    """The root does not wait for the task it spawned: whether the child's write
    happens before the root reads depends on the schedule."""
    state = {"written": False}

    async def writer():
        state["written"] = True

    cp.spawn(writer())
    await cp.checkpoint()
    return state["written"]


@pytest.mark.parametrize(
    ("program", "outcomes"),
    [
        (prune_before_the_producer, {"ValueError"}),
        (locked_check_then_act, {3, "AssertionError", "ValueError"}),
        (root_returns_before_its_child, {False, True}),
    ],
    ids=["prune", "failure-cancels-the-rest", "root-ends-first"],
)
def test_an_execution_that_ends_early_does_not_hide_the_steps_other_tasks_never_took(
    program, outcomes
):
    with never_awaited():
        full = explore(program, por=False)
        reduced = explore(program)
    assert set(full.outcomes) == outcomes
    assert set(reduced.outcomes) == outcomes
    assert reduced.exhaustive and reduced.schedules <= full.schedules


async def cancel_a_waiting_receiver():
    """The root cancels a receiver blocked on a channel; a sender may hand it the value
    before the cancel arrives (it keeps the value and is cancelled at its next await)
    or after (the value stays in the channel)."""
    ch = cp.channel(1)

    async def receive():
        await ch.recv()
        await cp.checkpoint()

    async def send():
        await ch.send("x")

    receiver = cp.spawn(receive())
    await cp.checkpoint()
    sender = cp.spawn(send())
    await cp.checkpoint()
    receiver.cancel()
    await sender
    with contextlib.suppress(cp.Cancelled):
        await receiver
    return len(ch)


def test_cancelling_a_blocked_task_is_ordered_against_what_would_wake_it():
    full = explore(cancel_a_waiting_receiver, por=False)
    assert set(full.outcomes) == {0, 1}
    assert set(explore(cancel_a_waiting_receiver).outcomes) == {0, 1}


# -- soundness: preemption bounds -----------------------------------------------------------------


async def abbacc():
    """Three tasks append their name twice; the order ABBACC needs one preemption."""
    log = []

    async def append(name):
        for _ in range(2):
            log.append(name)
            await cp.checkpoint()

    await cp.par(append("A"), append("B"), append("C"))
    order = "".join(log)
    assert order != "ABBACC", "found the one bad order"
    return "ok"


@pytest.mark.parametrize("bound", [0, 1, 2])
def test_a_bounded_search_with_reduction_finds_every_outcome_within_the_bound(bound):
    full = explore(abbacc, por=False, preemption_bound=bound)
    reduced = explore(abbacc, preemption_bound=bound)
    assert set(full.outcomes) == ({"ok"} if bound == 0 else {"ok", "AssertionError"})
    assert set(reduced.outcomes) == set(full.outcomes)
    assert reduced.exhaustive


# -- what a verdict assumes ------------------------------------------------------------------------


def test_a_reduced_search_says_it_assumes_python_state_is_shared_only_where_the_vm_can_see():
    report = explore(append_after_a_vm_operation)
    assert report.exhaustive
    assert any("por=False" in sentence for sentence in report.assumptions)
    assert any("Python state" in sentence for sentence in report.assumptions)


def test_a_search_of_every_interleaving_assumes_nothing_about_shared_state():
    report = explore(append_after_a_vm_operation, por=False)
    assert report.exhaustive and report.assumptions == []


def test_a_reduction_that_skipped_nothing_assumes_nothing():
    report = explore(drink)  # data choices only: every branch is explored
    assert report.exhaustive and report.assumptions == []


def test_a_bounded_search_says_its_verdict_holds_within_the_bound():
    report = explore(lost_update, preemption_bound=1, por=False)
    assert any("at most 1 preemption" in sentence for sentence in report.assumptions)


def test_the_assumptions_show_in_the_reports_text_html_and_summary():
    report = explore(append_after_a_vm_operation)
    (sentence,) = [s for s in report.assumptions if "Python state" in s]
    assert sentence in repr(report)
    assert html.escape(sentence) in report._repr_html_()
    assert "exhaustive if 1 assumption holds" in repr(report)
    assert "exhaustive if 1 assumption holds" in report.summary()
    assert "assumption" not in explore(drink).summary()
    assert "exhaustive" in explore(drink).summary()


# -- outcomes, nondeterminism, schedules ----------------------------------------------------------


def test_a_root_that_ends_cancelled_is_an_outcome():
    async def main():
        cp.current_task().cancel()
        await cp.checkpoint()
        return "not cancelled"

    report = explore(main)
    assert report.outcomes == {"Cancelled": 1} and report.exhaustive
    (finding,) = report.failures
    assert finding.outcome == "Cancelled"
    with pytest.raises(cp.Cancelled):
        cp.VM(schedule=finding.schedule).run(main())


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_host_randomness_in_a_program_is_a_nondeterminism_error(strategy):
    import random

    async def main():
        return random.random()  # not cp.rng(): every run differs

    with pytest.raises(cp.NondeterminismError, match=r"not deterministic.*cp\.rng\(\)"):
        explore(main, strategy=strategy, max_schedules=10)


def test_state_kept_between_executions_that_only_changes_the_result_is_nondeterminism():
    runs = itertools.count()

    async def main():
        return next(runs)  # no choice point at all: one schedule, six different results

    with pytest.raises(cp.NondeterminismError, match="same schedule"):
        explore(main)


def test_a_replayed_prefix_that_takes_other_steps_is_nondeterminism():
    runs = itertools.count()

    async def main():
        if next(runs) >= 2:  # from the third execution on, an extra object before the choice
            cp.Event()
        return cp.choose("ab")

    with pytest.raises(cp.NondeterminismError, match="not deterministic"):
        explore(main)


@pytest.mark.parametrize(
    ("schedule", "where"),
    [
        ("cp1:(5", "position 4"),
        ("cp1:(x)1", "position 4"),
        ("cp1:!1", "position 4"),
        ("cp1:0!", "position 5"),
        ("cp1:0", "position 5"),
        ("cp1:(-1)1", "position 4"),
        ("cp1:(5)", "position 7"),
        ("cp1:00", "position 5"),
        ("cp1:01[11", "position 6"),
        ("cp1:[01]", "position 8"),
        ("cp1:[]2", "position 4"),
        ("cp1:01]2", "position 6"),
        ("cp1:[01]0", "position 8"),
        ("cp1:[01](0)", "position 8"),
        ("cp1:[01]!", "position 8"),
        ("cp1:[01](-2)", "position 8"),
        ("cp1:[01](x)", "position 8"),
        ("cp1:[01](3", "position 8"),
        ("cp1:[0[1]2]2", "position 6"),
        ("cp1:[0]2", "position 6"),
        ("cp1:[01[11]2]2", "position 7"),
    ],
)
def test_a_malformed_schedule_is_a_schedule_error_that_says_where(schedule, where):
    with pytest.raises(cp.ScheduleError) as caught:
        cp.VM(schedule=schedule)
    message = str(caught.value)
    assert where in message and "cp1:" in message and "example" in message
    assert "substring" not in message and "invalid literal" not in message


@pytest.mark.parametrize("schedule", ["cp1:(-1)1", "cp1:(-3)1"])
def test_a_negative_choice_never_reaches_cp_choose(schedule):
    with pytest.raises(cp.ScheduleError, match="negative"):
        cp.VM(schedule=schedule)


@pytest.mark.parametrize(
    ("program", "schedule"),
    [(lost_update, "cp1:21"), (drink, "cp1:31"), (drink, "cp1:(99)1")],
)
def test_a_schedule_that_does_not_fit_the_program_is_a_schedule_error(program, schedule):
    with (
        never_awaited(),
        pytest.raises(cp.ScheduleError, match="does not fit this program: at choice point 1 "),
    ):
        cp.VM(schedule=schedule).run(program())


def test_the_vm_is_usable_after_a_schedule_that_does_not_fit():
    vm = cp.VM(schedule="cp1:31")
    with pytest.raises(cp.ScheduleError):
        vm.run(drink())
    assert vm.run(drink()) == "tea"  # past the schedule's end: the default choices
