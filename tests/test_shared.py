"""cp.shared(obj), explore(shared_only=True), invariant= and the threads lint."""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap

import pytest

import counterpoint as cp
from counterpoint._explore import RunOptions, run_prefix
from counterpoint._reduction import Step


def lost_update(n: int, *, wrap: bool = True):
    async def main():
        box = cp.shared({"n": 0}, name="box") if wrap else {"n": 0}

        async def add():
            seen = box["n"]
            await cp.checkpoint()
            box["n"] = seen + 1

        await cp.par(*[add() for _ in range(n)])
        return box["n"]

    return main


async def independent():
    """4 tasks x 4 steps, each on its own objects."""

    async def work(i):
        mine = cp.shared({"x": 0}, name=f"mine {i}")
        for _ in range(4):
            mine["x"] = mine["x"] + 1
            await cp.checkpoint()
        return mine["x"]

    return await cp.par(*[work(i) for i in range(4)])


# -- the wrappers behave like what they wrap ---------------------------------------------


def test_a_shared_dict_reads_and_writes_the_dict_it_wraps():
    plain = {"a": 1}
    box = cp.shared(plain)
    box["b"] = 2
    box.setdefault("c", 3)
    box.update(d=4)
    assert plain == {"a": 1, "b": 2, "c": 3, "d": 4}
    assert box == plain and len(box) == 4 and list(box) == ["a", "b", "c", "d"]
    assert box.get("zz", 9) == 9 and "a" in box and box.pop("d") == 4
    del box["c"]
    assert sorted(box.items()) == [("a", 1), ("b", 2)] and box.copy() == {"a": 1, "b": 2}


def test_a_shared_list_behaves_like_a_list():
    items = cp.shared([3, 1])
    items.append(2)
    items.insert(0, 9)
    items.extend([5])
    items[1] = 4
    assert items == [9, 4, 1, 2, 5] and items[-1] == 5 and items[1:3] == [4, 1]
    assert items.pop() == 5 and items.pop(0) == 9
    items.sort()
    assert list(items) == [1, 2, 4] and 2 in items and items.index(4) == 2 and len(items) == 3
    items.remove(2)
    del items[0]
    assert items.copy() == [4]


def test_a_shared_object_runs_its_methods_on_the_wrapper_and_passes_isinstance():
    class Account:
        def __init__(self):
            self.balance = 0

        def deposit(self, amount):
            self.balance += amount

        @property
        def empty(self):
            return self.balance == 0

    account = cp.shared(Account(), name="account")
    assert isinstance(account, Account) and account.empty
    account.deposit(5)
    assert account.balance == 5 and not account.empty


def test_a_shared_object_compares_as_its_object_and_its_super_calling_methods_still_work():
    class Base:
        def __init__(self):
            self.log = []

        def note(self, text):
            self.log.append(text)

    class Child(Base):
        def note(self, text):
            super().note(text.upper())

    class Point:
        def __init__(self, x):
            self.x = x

        def __eq__(self, other):
            return isinstance(other, Point) and other.x == self.x

    child = cp.shared(Child())
    child.note("hi")
    assert child.log == ["HI"]
    assert cp.shared(Point(1)) == Point(1) and cp.shared(Point(1)) != Point(2)


def test_nested_dicts_and_lists_come_out_wrapped_and_named_after_their_place():
    async def main():
        state = cp.shared({"items": [], "meta": {"n": 0}}, name="state")
        state["items"].append(1)
        state["meta"]["n"] += 1
        assert state == {"items": [1], "meta": {"n": 1}}
        assert state["items"] is state["items"]  # the same wrapper while the list is the same
        await cp.checkpoint()

    summary = run_prefix(main, [], RunOptions(), sleep=())
    touched = Step._make(summary.footprints[0]).touched
    assert ("shared", "state['items']", 0) in touched
    assert ("shared", "state['meta']", "n") in touched


def test_shared_refuses_what_it_cannot_track_with_a_message_that_says_what_to_do():
    with pytest.raises(TypeError, match=r"cp.shared\(\{'n': 0\}\)"):
        cp.shared(5)
    with pytest.raises(TypeError, match="plain dict or list"):
        cp.shared(type("D", (dict,), {})())
    with pytest.raises(TypeError, match="takes a str"):
        cp.shared({}, name=3)
    with pytest.raises(TypeError, match="not pickled"):
        pickle.dumps(cp.shared({}))
    box = cp.shared({})
    assert cp.shared(box) is box


# -- accesses become footprints ----------------------------------------------------------


def test_each_step_reads_and_writes_shared_locations_key_by_key():
    summary = run_prefix(lost_update(2), [], RunOptions(), sleep=())
    steps = [Step._make(step) for step in summary.footprints]
    location = ("shared", "box", "n")
    reads = [step.task for step in steps if location in step.read]
    writes = [step.task for step in steps if location in step.touched]
    assert reads == [2, 3, 1] and writes == [2, 3]  # both adds read then write; the root reads


def test_an_object_attribute_and_a_lists_length_are_their_own_locations():
    class Counter:
        value = 0

    async def main():
        counter = cp.shared(Counter(), name="counter")
        log = cp.shared([], name="log")
        counter.value = 1
        log.append("x")
        await cp.checkpoint()

    summary = run_prefix(main, [], RunOptions(), sleep=())
    touched = Step._make(summary.footprints[0]).touched
    assert {("shared", "counter", ".value"), ("shared", "log", None), ("shared", "log", 0)} <= (
        touched
    )


# -- shared_only: one schedule per distinct order of conflicting accesses ----------------


@pytest.mark.parametrize(("tasks", "orders", "interleavings"), [(2, 4, 6), (3, 36, 90)])
def test_shared_only_runs_one_schedule_per_distinct_order_of_the_lost_update(
    tasks, orders, interleavings
):
    reduced = cp.explore(lost_update(tasks), shared_only=True, progress=False)
    everything = cp.explore(lost_update(tasks), por=False, progress=False)
    assert reduced.schedules == orders and reduced.exhaustive
    assert everything.schedules == interleavings
    assert set(reduced.outcomes) == set(everything.outcomes) == set(range(1, tasks + 1))


@pytest.mark.slow
def test_the_four_task_lost_update_takes_its_576_distinct_orders_not_2520():
    reduced = cp.explore(lost_update(4), shared_only=True, progress=False, max_schedules=5000)
    assert reduced.schedules == 576 and reduced.exhaustive
    assert set(reduced.outcomes) == {1, 2, 3, 4}


def test_four_tasks_of_four_steps_on_their_own_objects_take_one_schedule():
    report = cp.explore(independent, shared_only=True, progress=False)
    assert report.schedules == 1 and report.exhaustive
    assert report.outcomes == {"[4, 4, 4, 4]": 1}  # (a list is unhashable: its repr)


def test_without_shared_only_the_search_stays_as_sound_and_as_large_as_before():
    assert cp.explore(lost_update(3), progress=False).schedules == 90
    assert cp.explore(lost_update(3, wrap=False), progress=False).schedules == 90
    capped = cp.explore(independent, progress=False, max_schedules=200)
    assert not capped.exhaustive  # plain state could be shared: every order is tried


def test_shared_only_still_orders_steps_on_vm_objects():
    async def main():
        mailbox = cp.channel(1)
        got = []

        async def send(value):
            await mailbox.send(value)

        async def receive():
            got.append(await mailbox.recv())
            got.append(await mailbox.recv())

        await cp.par(send(1), send(2), receive())
        return tuple(got)

    report = cp.explore(main, shared_only=True, progress=False)
    assert set(report.outcomes) == {(1, 2), (2, 1)} and report.exhaustive


def test_a_shared_only_report_names_its_assumption():
    report = cp.explore(lost_update(3), shared_only=True, progress=False)
    assert any("shared_only=True" in sentence for sentence in report.assumptions)


def test_shared_only_exploration_is_the_same_twice_and_in_another_process():
    def digest(report):
        return (report.schedules, sorted(report.outcomes.items()), report.failures)

    first = cp.explore(lost_update(3), shared_only=True, progress=False)
    assert digest(first) == digest(cp.explore(lost_update(3), shared_only=True, progress=False))
    code = textwrap.dedent(
        """
        import sys
        sys.path.insert(0, "tests")
        import counterpoint as cp
        from test_shared import lost_update
        r = cp.explore(lost_update(3), shared_only=True, progress=False)
        print(repr((r.schedules, sorted(r.outcomes.items()), r.failures)))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "4242", "PATH": ""},
        cwd=str(__import__("pathlib").Path(__file__).parent.parent),
    ).stdout.strip()
    assert out == repr(digest(first))


# -- the lint: atomic here, racy under threads -------------------------------------------


async def increments():
    box = cp.shared({"n": 0}, name="box")

    async def add():
        box["n"] += 1
        await cp.checkpoint()

    await cp.par(add(), add())
    return box["n"]


def test_a_read_modify_write_in_one_step_is_never_lost_here_but_is_flagged_as_racy_under_threads():
    report = cp.explore(increments, shared_only=True, progress=False)
    assert set(report.outcomes) == {2}
    (warning,) = report.warnings
    assert warning.startswith("box['n'] is read and written back in one step")
    assert 'box["n"] += 1' in warning and "racy under threads" in warning
    assert "warning: box['n']" in repr(report)


def test_the_lint_is_quiet_when_no_other_task_uses_the_location_or_an_await_splits_it():
    assert cp.explore(independent, shared_only=True, progress=False).warnings == []
    assert cp.explore(lost_update(2), shared_only=True, progress=False).warnings == []


# -- invariant= ---------------------------------------------------------------------------

accounts = cp.shared({}, name="accounts")


async def transfer():
    accounts.clear()
    accounts.update(a=10, b=0)

    async def move(amount):
        seen = accounts["a"]
        await cp.checkpoint()
        accounts["a"] = seen - amount
        await cp.checkpoint()
        accounts["b"] += amount

    await cp.par(move(3), move(4))


def money_is_conserved():
    return accounts["a"] + accounts["b"] == 10


@pytest.mark.parametrize("shared_only", [False, True])
def test_an_invariant_is_checked_after_every_step_and_a_falsy_result_is_a_finding(shared_only):
    report = cp.explore(transfer, invariant=money_is_conserved, shared_only=shared_only)
    assert report.exhaustive and set(report.outcomes) == {"AssertionError"}
    finding = report.failures[0]
    assert finding.message.startswith("the invariant money_is_conserved() returned False")
    vm = finding.run()  # the replay checks the invariant again, and stops where it broke
    assert isinstance(vm, cp.VM)
    assert finding.replay.endswith("# the invariant breaks on the way: finding.run() checks it")


def test_an_invariant_that_raises_is_a_finding_of_that_exception():
    def strict():
        if accounts["a"] < 10 and accounts["b"] == 0:
            raise ValueError("money left a but never reached b")
        return True

    report = cp.explore(transfer, invariant=strict, progress=False)
    assert "ValueError" in report.outcomes


def test_steps_that_write_what_the_invariant_reads_are_visible_and_all_depend_on_each_other():
    mark = ("invariant",)
    options = RunOptions(invariant=lambda: accounts["a"] >= 0)
    steps = [Step._make(step) for step in run_prefix(transfer, [], options).footprints]
    visible = [step.task for step in steps if mark in step.touched]
    writers = [step.task for step in steps if ("shared", "accounts", "a") in step.touched]
    assert visible == writers and len(visible) == 3  # the root's update, then each move


def test_an_invariant_over_plain_state_makes_every_step_visible():
    plain = {"a": 0}
    options = RunOptions(invariant=lambda: plain["a"] >= 0)
    steps = [Step._make(step) for step in run_prefix(transfer, [], options).footprints]
    assert all(("invariant",) in step.touched for step in steps)


flag = cp.shared({}, name="flag")


async def writer_and_a_greedy_reader():
    flag.update(a=0)
    lock = cp.Lock(name="lock")

    async def writer():
        async with lock:
            flag["a"] = 1

    async def reader():
        await lock.acquire()  # and never releases it

    await cp.par(writer(), reader())


@pytest.mark.parametrize(("por", "shared_only"), [(True, False), (True, True), (False, False)])
def test_a_run_the_invariant_stops_leaves_the_next_task_behind_so_its_other_order_is_tried(
    por, shared_only
):
    # the invariant breaks as the last ready task is about to run: that task's step,
    # never taken, still races with the writer's, so the deadlock is found too
    report = cp.explore(
        writer_and_a_greedy_reader,
        invariant=lambda: flag["a"] == 0,
        por=por,
        shared_only=shared_only,
    )
    assert set(report.outcomes) == {"AssertionError", "Deadlock"}


def test_invariant_must_be_callable():
    with pytest.raises(TypeError, match="zero-argument callable"):
        cp.explore(transfer, invariant=True)


def test_findings_come_simplest_first():
    async def main():
        box = cp.shared({"n": 0}, name="box")

        async def add():
            seen = box["n"]
            await cp.checkpoint()
            box["n"] = seen + 1

        await cp.par(add(), add(), add())
        if box["n"] == 1:
            raise RuntimeError("two updates lost")
        if box["n"] == 2:
            raise ValueError("one update lost")

    report = cp.explore(main, progress=False)
    keys = [(f.preemptions, len(f.schedule)) for f in report.failures]
    assert [f.preemptions for f in report.failures] == sorted(
        f.preemptions for f in report.failures
    )
    assert keys


def test_sleep_set_redundant_runs_are_not_counted_as_schedules():
    report = cp.explore(lost_update(3), shared_only=True, progress=False)
    assert sum(report.outcomes.values()) == report.schedules


def test_two_threads_exploring_at_once_each_see_only_their_own_accesses():
    import threading

    results = {}

    def search(name):
        report = cp.explore(lost_update(3), shared_only=True, progress=False)
        results[name] = (report.schedules, sorted(report.outcomes.items()), report.warnings)

    threads = [threading.Thread(target=search, args=(name,)) for name in "ab"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    alone = cp.explore(lost_update(3), shared_only=True, progress=False)
    assert results["a"] == results["b"] == (36, sorted(alone.outcomes.items()), [])


def test_a_wrapper_used_by_host_code_between_runs_reports_nothing():
    box = cp.shared({"n": 0})
    box["n"] += 1  # outside any VM: a plain dict access

    async def main():
        return box["n"]

    summary = run_prefix(main, [], RunOptions(), sleep=())
    assert summary.outcome == 1 and summary.warnings == ()
