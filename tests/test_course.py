"""counterpoint.course: the check an exercise cell runs says solved only for a program
that is right under every schedule, and says why not otherwise -- the same text in
every process."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

import pytest
from scheduler_programs import two_locks  # (each takes one lock, then the other)

import counterpoint as cp
from counterpoint.course import Verdict, breaks, check


def bank(locked: bool):
    async def main():
        account = {"balance": 0}
        lock = cp.Lock(name="account")

        async def deposit(amount):
            if locked:
                await lock.acquire()
            balance = account["balance"]
            await cp.checkpoint()
            account["balance"] = balance + amount
            if locked:
                lock.release()

        await cp.par(deposit(100), deposit(100))
        return account["balance"]

    return main


def asserting(program):
    async def main():
        assert await program() == 200, "a deposit was lost"

    return main


def test_a_program_right_under_every_schedule_is_solved():
    verdict = check(bank(locked=True), returns=200)
    assert verdict.solved and bool(verdict)
    assert verdict.text.startswith("Solved: all ")
    assert "each returning 200" in verdict.text
    assert verdict.report.exhaustive


def test_a_wrong_return_value_in_some_schedule_is_not_solved_and_is_explained():
    verdict = check(bank(locked=False), returns=200)
    assert not verdict.solved and not verdict
    lines = verdict.text.splitlines()
    assert lines[0] == "Not yet: 4 of 6 schedules go wrong; the simplest returned 100, not 200."
    assert lines[1].startswith("Lost update on account['balance']")
    assert lines[-1].startswith("replay it: cp.VM(schedule='cp1:")


def test_without_returns_any_value_is_right_and_a_failure_is_wrong():
    assert check(bank(locked=False)).solved  # it returns 100 or 200, and never fails
    verdict = check(asserting(bank(locked=False)))
    assert verdict.text.splitlines()[0].endswith(
        "the simplest fails with AssertionError: a deposit was lost."
    )


def test_a_deadlock_in_some_schedule_is_not_solved():
    verdict = check(two_locks)
    assert not verdict.solved
    assert verdict.text.splitlines()[0].endswith("the simplest deadlocks.")
    assert "Lock-order cycle" in verdict.text


def transfer(atomic: bool):
    accounts: dict = {}

    async def main():
        accounts.update(a=100, b=0)

        async def move():
            accounts["a"] -= 50
            if not atomic:
                await cp.checkpoint()
            accounts["b"] += 50

        await cp.par(move(), move())

    return main, lambda: accounts["a"] + accounts["b"] == 100


def test_an_invariant_broken_between_steps_is_not_solved():
    program, invariant = transfer(atomic=False)
    verdict = check(program, invariant=invariant)
    assert not verdict.solved
    assert "the simplest fails with AssertionError: the invariant" in verdict.text
    program, invariant = transfer(atomic=True)
    verdict = check(program, invariant=invariant)
    assert verdict.solved and "the invariant held after every step" in verdict.text


def test_a_search_that_cannot_finish_is_not_a_proof():
    async def long():
        async def spin():
            for _ in range(6):
                await cp.checkpoint()

        await cp.par(spin(), spin(), spin())

    verdict = check(long, max_schedules=50)
    assert not verdict.solved
    assert verdict.text.startswith("Not proven: 50 schedules ran without a problem")


def test_a_schedule_that_breaks_the_program_wins_the_break_it_exercise():
    program = asserting(bank(locked=False))
    verdict = breaks(program, "cp1:0112")
    assert verdict.solved
    assert verdict.text == (
        "Broken: under cp1:0112 the program fails with AssertionError: a deposit was lost"
    )
    safe = breaks(program, "cp1:04")
    assert not safe.solved
    assert safe.text.startswith("Not broken: under cp1:04 the program ends well")


def test_a_schedule_that_deadlocks_wins_too():
    schedule = cp.explore(two_locks).deadlocks[0].schedule
    verdict = breaks(two_locks, schedule)
    assert verdict.solved
    assert verdict.text.startswith(f"Broken: under {schedule} the program deadlocks")


def test_a_schedule_of_another_program_is_said_not_to_fit():
    async def two_tasks():
        await cp.par(cp.checkpoint(), cp.checkpoint())

    verdict = breaks(two_tasks, "cp1:0121")  # option 2 of tasks 2 and 3
    assert not verdict.solved
    said = "Not this one: the schedule 'cp1:0121' does not fit this program"
    assert verdict.text.startswith(said)


@pytest.mark.parametrize(
    ("call", "error", "words"),
    [
        (lambda: check(bank(False)()), TypeError, "not `main()`"),
        (lambda: check(bank(False), max_schedules=0), ValueError, "positive int"),
        (lambda: breaks(bank(False), 12), TypeError, "'cp1:...' string"),
        (lambda: breaks(bank(False)(), "cp1:01"), TypeError, "not `main()`"),
        (lambda: breaks(bank(False), "cp1:00"), cp.ScheduleError, "malformed"),
    ],
)
def test_bad_input_is_a_named_error_that_says_what_to_do(call, error, words):
    with pytest.raises(error, match=re.escape(words)):
        call()


def test_a_verdict_shows_as_its_text_and_as_a_coloured_box_in_a_notebook():
    verdict = check(bank(locked=False), returns=200)
    assert repr(verdict) == verdict.text
    page = verdict._repr_html_()
    assert "counterpoint-verdict" in page and "Not yet: 4 of 6 schedules" in page
    assert "&#x27;balance&#x27;" in page  # escaped
    assert isinstance(Verdict(True, "Solved"), Verdict)


CHILD = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from test_course import bank
    from counterpoint.course import check
    print(check(bank(locked=False), returns=200).text)
    """
)


def test_the_verdict_is_the_same_text_in_another_process():
    here = check(bank(locked=False), returns=200).text
    assert check(bank(locked=False), returns=200).text == here
    tests = str(__import__("pathlib").Path(__file__).parent)
    for hashseed in ("1", "2"):
        out = subprocess.run(
            [sys.executable, "-c", CHILD.format(tests=tests)],
            capture_output=True,
            text=True,
            check=True,
            env={**__import__("os").environ, "PYTHONHASHSEED": hashseed},
            timeout=120,
        ).stdout
        assert out.rstrip("\n") == here


def test_a_bug_in_every_schedule_is_not_told_as_a_race():
    async def always_short():
        account = {"balance": 0}

        async def deposit(amount):
            account["balance"] += amount - 1  # wrong in every order

        await cp.par(deposit(100), deposit(100))
        return account["balance"]

    lines = check(always_short, returns=200).text.splitlines()
    assert lines[0] == "Not yet: 2 of 2 schedules go wrong; the simplest returned 198, not 200."
    assert lines[1].startswith("Every schedule goes wrong, so the bug is not in the order")
    assert not any(line.startswith(("Lost update", "Check-then-act", "Other:")) for line in lines)
