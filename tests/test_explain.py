"""finding.explain(): the failing schedule step by step, the conflicting pair marked, the
pattern named."""

from __future__ import annotations

import os
import pickle
import re
import subprocess
import sys
import textwrap

import pytest
from scheduler_programs import two_locks  # (each task takes one lock, then the other)

import counterpoint as cp
from counterpoint._explain import explanation


def marked_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.endswith("<-")]


# -- lock-order cycle ------------------------------------------------------------------------


def test_a_deadlock_of_locks_taken_in_opposite_orders_is_a_lock_order_cycle():
    finding = cp.explore(two_locks).deadlocks[0]
    found = explanation(finding, two_locks)
    assert found.pattern == "lock-order cycle"
    assert found.sentence == (
        "Lock-order cycle: task 2 'one' holds lock 'a' and waits for lock 'b'; "
        "task 3 'two' holds lock 'b' and waits for lock 'a'."
    )


def test_a_lock_order_cycle_keeps_the_deadlock_message_and_marks_the_acquisitions():
    finding = cp.explore(two_locks).deadlocks[0]
    text = finding.explain()
    for line in finding.message.splitlines():  # who holds what, word for word
        assert line in text.splitlines()
    marked = marked_lines(text)
    assert len(marked) == 2
    assert "async with a:" in marked[0] and "acquires lock 'a'" in marked[0]
    assert "async with b:" in marked[1] and "acquires lock 'b'" in marked[1]
    assert text.splitlines()[-1] == f"replay it: {finding.replay}"


# -- lost wake-up ----------------------------------------------------------------------------


async def notify_too_early():
    ready = cp.Condition(name="ready")

    async def consumer():
        await cp.checkpoint()
        async with ready:
            await ready.wait()

    async def producer():
        async with ready:
            ready.notify()

    await cp.par(consumer(), producer())


def test_a_notify_that_wakes_nobody_before_the_wait_is_a_lost_wake_up():
    finding = cp.explore(notify_too_early).deadlocks[0]
    found = explanation(finding, notify_too_early)
    assert found.pattern == "lost wake-up"
    assert found.sentence.startswith(
        "Lost wake-up on condition 'ready': task 3 'producer' notified it (step "
    )
    marked = marked_lines(found.text)
    assert "ready.notify()" in marked[0] and "waking nobody" in marked[0]
    assert "await ready.wait()" in marked[1]


async def set_then_cleared():
    go = cp.Event(name="go")

    async def waiter():
        await cp.checkpoint()
        go.clear()
        await go.wait()

    async def setter():
        go.set()

    await cp.par(waiter(), setter())


def test_an_event_set_then_cleared_before_the_wait_is_a_lost_wake_up():
    finding = cp.explore(set_then_cleared).deadlocks[0]
    found = explanation(finding, set_then_cleared)
    assert found.pattern == "lost wake-up"
    assert "task 3 'setter' set it" in found.sentence
    assert "task 2 'waiter' cleared it" in found.sentence
    marked = marked_lines(found.text)
    assert "go.set()" in marked[0] and "go.clear()" in marked[1]


# -- check-then-act --------------------------------------------------------------------------


async def put_if_empty():
    slot = cp.channel(1, name="slot")

    async def put(value):
        if len(slot) == 0:
            await cp.checkpoint()
            if not slot.try_send(value):
                raise RuntimeError("the slot was taken")

    await cp.par(put(1), put(2))


def test_acting_on_a_stale_len_of_a_channel_is_check_then_act():
    finding = cp.explore(put_if_empty).failures[0]
    found = explanation(finding, put_if_empty)
    assert found.pattern == "check-then-act"
    assert found.sentence.startswith("Check-then-act on channel 'slot': task 2 'put' read it")
    assert "then task 2 'put' failed" in found.sentence
    marked = marked_lines(found.text)
    assert "if len(slot) == 0:" in marked[0] and "reads channel 'slot'" in marked[0]
    assert "sends 2 on channel 'slot'" in marked[1]
    assert "raise RuntimeError" in found.text.splitlines()[2]  # where it was raised


async def start_once():
    started = cp.Event(name="started")
    log = cp.channel(4, name="log")

    async def starter(name):
        if not started.is_set():
            await cp.checkpoint()
            started.set()
            await log.send(name)

    await cp.par(starter("a"), starter("b"))
    assert len(log) == 1, "started twice"


def test_acting_on_a_stale_event_is_set_is_check_then_act():
    finding = cp.explore(start_once).failures[0]
    found = explanation(finding, start_once)
    assert found.pattern == "check-then-act"
    assert found.sentence.startswith("Check-then-act on event 'started'")
    assert "acted on what it had read" in found.sentence
    assert "if not started.is_set():" in marked_lines(found.text)[0]


# -- cp.shared state ---------------------------------------------------------------------------


async def shared_lost_update():
    box = cp.shared({"n": 0}, name="box")

    async def add():
        seen = box["n"]
        await cp.checkpoint()
        box["n"] = seen + 1

    await cp.par(add(), add(), add())
    assert box["n"] == 3, "an update was lost"


def test_a_lost_update_on_a_shared_dict_names_the_location_and_the_two_readers():
    finding = cp.explore(shared_lost_update, shared_only=True).failures[0]
    found = explanation(finding, shared_lost_update)
    assert found.pattern == "lost update"
    first, second = (found.steps[j].task for j in found.marked)
    assert found.sentence == (
        f"Lost update on box['n']: task {first} 'add' and task {second} 'add' both read it "
        "before either wrote it back."
    )
    marked = marked_lines(found.text)
    assert all('seen = box["n"]' in line and "reads box['n']" in line for line in marked)


def test_each_shared_access_is_told_once():
    finding = cp.explore(shared_lost_update, shared_only=True).failures[0]
    text = finding.explain()
    assert sum(line.count("reads box['n']") for line in text.splitlines()) == 4  # 3 + assert
    assert sum(line.count("writes box['n']") for line in text.splitlines()) == 3


class Account:
    def __init__(self):
        self.balance = 100


async def overdraw():
    account = cp.shared(Account(), name="account")

    async def withdraw(amount):
        if account.balance >= amount:
            await cp.checkpoint()
            account.balance -= amount

    await cp.par(withdraw(80), withdraw(50))
    assert account.balance >= 0, f"overdrawn: {account.balance}"


def test_withdrawing_on_a_stale_shared_balance_is_check_then_act():
    finding = cp.explore(overdraw, shared_only=True).failures[0]
    found = explanation(finding, overdraw)
    assert found.pattern == "check-then-act"
    assert found.sentence.startswith(
        "Check-then-act on account.balance: task 2 'withdraw' read it (step 2), "
        "task 3 'withdraw' changed it (step 4), then task 2 'withdraw' acted on what it had "
        "read (step 5)."
    )
    marked = marked_lines(found.text)
    assert "if account.balance >= amount:" in marked[0]
    assert "account.balance -= amount" in marked[1] and "writes account.balance" in marked[1]


# -- lost update: plain Python state ---------------------------------------------------------


async def plain_lost_update():
    box = {"n": 0}

    async def add():
        seen = box["n"]
        await cp.checkpoint()
        box["n"] = seen + 1

    await cp.par(add(), add())
    assert box["n"] == 2, "an update was lost"


def test_two_tasks_that_read_a_dict_item_before_either_writes_it_back_are_a_lost_update():
    finding = cp.explore(plain_lost_update).failures[0]
    found = explanation(finding, plain_lost_update)
    assert found.pattern == "lost update"
    assert found.sentence == (
        "Lost update on box['n']: task 2 'add' and task 3 'add' both read it before either "
        "wrote it back."
    )
    lines = found.text.splitlines()
    assert lines[0] == "AssertionError: an update was lost  (schedule cp1:0112, 1 preemption)"
    marked = marked_lines(found.text)
    assert len(marked) == 2
    assert all('seen = box["n"]' in line and "reads box['n']" in line for line in marked)
    assert sum("writes box['n']" in line for line in lines) == 2


class Counter:
    def __init__(self):
        self.value = 0


async def attribute_lost_update():
    counter = Counter()

    async def bump(by):
        counter.value += (await cp.checkpoint()) or by  # read, await, write back

    await cp.par(bump(1), bump(2))
    assert counter.value == 3, "an update was lost"


def test_an_augmented_attribute_update_across_an_await_is_a_lost_update():
    finding = cp.explore(attribute_lost_update).failures[0]
    found = explanation(finding, attribute_lost_update)
    assert found.pattern == "lost update"
    assert found.sentence.startswith("Lost update on Counter.value: task ")
    writes = [line for line in found.text.splitlines() if "writes Counter.value" in line]
    assert len(writes) == 3  # __init__'s, and each task's write back
    assert sum("counter.value += (await" in line for line in writes) == 2


async def nonlocal_lost_update():
    count = 0

    async def add():
        nonlocal count
        seen = count
        await cp.checkpoint()
        count = seen + 1

    await cp.par(add(), add())
    assert count == 2, "an update was lost"


def test_state_explain_cannot_see_gives_the_steps_the_last_race_and_what_to_do():
    finding = cp.explore(nonlocal_lost_update).failures[0]
    found = explanation(finding, nonlocal_lost_update)
    assert found.pattern == "other"
    assert found.sentence.startswith("Other: the last race is step 2 (task 2 'add') against")
    assert "cp.shared(" in found.sentence  # what to do to learn more
    lines = found.text.splitlines()
    assert sum("seen = count" in line for line in lines) == 2
    assert sum("count = seen + 1" in line for line in lines) == 2
    assert any("raises AssertionError" in line for line in lines)


# -- long runs, determinism, errors ----------------------------------------------------------


async def long_then_deadlock():
    a, b = cp.Lock(name="a"), cp.Lock(name="b")

    async def one():
        for _ in range(30):
            await cp.checkpoint()
        async with a:
            await cp.checkpoint()
            async with b:
                pass

    async def two():
        for _ in range(30):
            await cp.checkpoint()
        async with b:
            await cp.checkpoint()
            async with a:
                pass

    await cp.par(one(), two())


def test_a_long_run_is_elided_around_the_marked_steps():
    report = cp.explore(long_then_deadlock, preemption_bound=1, max_schedules=5000)
    finding = report.deadlocks[0]
    found = explanation(finding, long_then_deadlock)
    assert found.pattern == "lock-order cycle"
    step_lines = [line for line in found.text.splitlines() if line.startswith("  step ")]
    assert len(step_lines) < len(found.steps) / 2
    assert any(
        line.strip().startswith("...") and "steps ..." in line for line in found.text.splitlines()
    )
    assert len(marked_lines(found.text)) == 2


def test_an_explanation_is_the_same_twice():
    finding = cp.explore(put_if_empty).failures[0]
    assert finding.explain() == finding.explain()


PROGRAM = textwrap.dedent(
    """
    import counterpoint as cp

    async def notify_too_early():
        ready = cp.Condition(name="ready")

        async def consumer():
            await cp.checkpoint()
            async with ready:
                await ready.wait()

        async def producer():
            async with ready:
                ready.notify()

        await cp.par(consumer(), producer())

    class Counter:
        def __init__(self):
            self.value = 0

    async def plain_state():
        counters = [Counter(), Counter()]
        box = {"n": 0}

        async def add(counter):
            seen, before = box["n"], counter.value
            await cp.checkpoint()
            box["n"] = seen + 1
            counter.value = before + 1

        await cp.par(add(counters[0]), add(counters[1]), add(counters[0]))
        assert box["n"] == 3, "lost"

    def both():
        return "\\n".join(
            [
                cp.explore(notify_too_early).deadlocks[0].explain(),
                cp.explore(plain_state).failures[0].explain(),
            ]
        )

    if __name__ == "__main__":
        print(both())
    """
)


def test_an_explanation_is_the_same_in_another_process(tmp_path):
    path = tmp_path / "wakeup.py"
    path.write_text(PROGRAM)
    texts = []
    for seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        done = subprocess.run(
            [sys.executable, str(path)], capture_output=True, text=True, env=env, timeout=120
        )
        assert done.returncode == 0, done.stderr
        texts.append(done.stdout)
    namespace: dict = {"__name__": "wakeup"}
    exec(compile(PROGRAM, str(path), "exec"), namespace)
    here = namespace["both"]()
    assert texts[0] == texts[1] == here + "\n"
    assert "ready.notify()" in here
    assert "reads Counter#2.value" in here and "Lost update on box['n']" in here


def test_a_finding_without_its_program_says_to_pass_it_as_run_does():
    finding = pickle.loads(pickle.dumps(cp.explore(two_locks).deadlocks[0]))
    with pytest.raises(ValueError, match="does not know its program") as explained:
        finding.explain()
    with pytest.raises(ValueError, match="does not know its program") as ran:
        finding.run()
    assert str(explained.value).replace("explain", "show") == str(ran.value)
    assert finding.explain(program=two_locks).splitlines()[1].startswith("Lock-order cycle")


def test_explain_refuses_a_coroutine_for_program():
    finding = cp.explore(two_locks).deadlocks[0]
    coroutine = two_locks()
    with pytest.raises(TypeError, match="zero-argument callable"):
        finding.explain(program=coroutine)


def test_explaining_with_another_program_is_a_nondeterminism_error():
    finding = cp.explore(two_locks).deadlocks[0]

    async def fine():
        return 1

    with pytest.raises(cp.NondeterminismError, match="not the one explored"):
        finding.explain(program=fine)


def test_explaining_leaves_the_trace_function_as_it_was():
    calls = []

    def tracer(frame, event, arg):
        calls.append(event)

    finding = cp.explore(two_locks).deadlocks[0]
    before = sys.gettrace()
    sys.settrace(tracer)
    try:
        finding.explain()
        assert sys.gettrace() is tracer
    finally:
        sys.settrace(before)


def test_assert_ok_shows_the_first_finding_explained_after_its_first_lines():
    report = cp.explore(put_if_empty)
    with pytest.raises(AssertionError) as failed:
        report.assert_ok()
    lines = str(failed.value).splitlines()
    assert lines[0].startswith("cp.explore found 1 problem: 1 failure, no deadlocks in ")
    assert lines[1].startswith("RuntimeError (in ")
    assert lines[2] == f"replay it: {report.failures[0].replay}"
    assert lines[4].startswith("Check-then-act on channel 'slot'")
    assert any("if len(slot) == 0:" in line and line.endswith("<-") for line in lines)


def test_assert_ok_of_a_report_from_another_process_has_no_explanation():
    report = pickle.loads(pickle.dumps(cp.explore(put_if_empty)))
    with pytest.raises(AssertionError) as failed:
        report.assert_ok()
    assert len(str(failed.value).splitlines()) == 3


def test_a_finding_of_a_broken_invariant_runs_and_explains_with_the_invariant_checked():
    state: dict = {}

    async def main():
        box = state["box"] = cp.shared({"n": 0}, name="box")

        async def add():
            seen = box["n"]
            await cp.checkpoint()
            box["n"] = seen + 1

        await cp.par(add(), add())

    def program():
        state.clear()
        return main()

    def below_two():
        return "box" not in state or state["box"]["n"] < 2

    finding = cp.explore(program, invariant=below_two, shared_only=True).failures[0]
    assert finding.message.startswith("the invariant below_two() returned False after a step")
    assert finding.run().journal  # (it used to end "returned None": no invariant checked)
    text = finding.explain()
    assert text.startswith("AssertionError: the invariant below_two() returned False")
    assert "def below_two" not in text and 'return "box" not in state' not in text
    assert "writes box['n']" in text.splitlines()[-2]


async def nobody_sends():
    inbox = cp.channel(name="inbox")

    async def reader():
        return await inbox.recv()

    async def idle():
        await cp.checkpoint()

    await cp.par(reader(), idle())


def test_a_deadlock_on_a_channel_is_other_without_a_word_about_plain_state():
    finding = cp.explore(nobody_sends).deadlocks[0]
    found = explanation(finding, nobody_sends)
    assert found.pattern == "other"
    assert "cp.shared" not in found.text
    assert "task 2 'reader' waits to receive on channel 'inbox'" in found.text
    assert any(
        "return await inbox.recv()" in line and "waits to receive on channel 'inbox'" in line
        for line in found.text.splitlines()
    )


def test_an_explanation_shows_as_its_text_in_a_repl_and_a_notebook():
    text = cp.explore(two_locks).deadlocks[0].explain()
    assert isinstance(text, str)
    assert repr(text) == str(text)
    assert text._repr_html_().startswith("<pre>Deadlock  (schedule ")
    assert "holds lock &#x27;a&#x27;" in text._repr_html_()


def test_steps_in_two_files_spelt_alike_are_labelled_with_their_file(tmp_path):
    # nbval runs every cell as "Cell In[1]": two cells are two files with one name
    namespace: dict = {"cp": cp}
    for folder, source in (
        (
            "a",
            "async def add(box):\n    seen = box['n']\n    await cp.checkpoint()\n"
            "    box['n'] = seen + 1\n",
        ),
        (
            "b",
            "async def main():\n    box = {'n': 0}\n    await cp.par(add(box), add(box))\n"
            "    assert box['n'] == 2, 'lost'\n",
        ),
    ):
        path = tmp_path / folder / "cell.py"
        path.parent.mkdir()
        path.write_text(source)
        exec(compile(source, str(path), "exec"), namespace)
    finding = cp.explore(namespace["main"]).failures[0]
    text = finding.explain()
    assert "cell.py:2" in text and "cell.py:3" in text
    assert " line 2 " not in text


async def _long_step():
    box = {"n": 0}

    async def add():
        a = 1
        b = a + 1
        c = b + 1
        d = c + 1
        e = d + 1
        seen = box["n"] + e - 5
        await cp.checkpoint()
        box["n"] = seen + 1

    await cp.par(add(), add())
    assert box["n"] == 2, "lost"


def test_a_step_of_many_lines_is_shown_with_the_middle_ones_elided():
    text = cp.explore(_long_step).failures[0].explain()
    assert re.search(r"\.\.\. \d+ lines? \.\.\.", text), text


async def _notify_wakes_the_wrong_waiter():
    shelf, cond = [], cp.Condition(name="shelf")

    async def baker(loaf):
        async with cond:
            while len(shelf) == 1:
                await cond.wait()
            shelf.append(loaf)
            cond.notify()

    async def customer():
        async with cond:
            while not shelf:
                await cond.wait()
            shelf.pop()
            cond.notify()

    await cp.par(customer(), customer(), baker("rye"), baker("spelt"))


def test_a_notify_that_woke_someone_is_not_called_a_lost_wake_up():
    finding = cp.explore(_notify_wakes_the_wrong_waiter).deadlocks[0]
    assert explanation(finding, _notify_wakes_the_wrong_waiter).pattern != "lost wake-up"
