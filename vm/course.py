"""Exercises for the course notebooks: check a learner's program, say whether it is solved.

An exercise gives the learner a function to edit and a check cell::

    from counterpoint.course import check

    async def deposit(account, amount):  # fix me: two deposits can lose one
        balance = account["balance"]
        await cp.checkpoint()
        account["balance"] = balance + amount

    async def bank():
        account = {"balance": 0}
        await cp.par(deposit(account, 100), deposit(account, 100))
        return account["balance"]

    check(bank, returns=200)

:func:`check` explores the program (``cp.explore``, dfs) and returns a
:class:`Verdict`: solved when every schedule ends well -- no exception, no deadlock,
the expected return value if ``returns=`` is given -- and the search was exhaustive;
otherwise the simplest schedule that goes wrong, explained step by step
(``finding.explain()``), with the line that replays it.  :func:`breaks` checks the
other kind of exercise, "find a schedule that breaks it": the learner's schedule is
replayed and must end in a failure or a deadlock.

Both are deterministic (the same text in every process, on every machine: no times,
no addresses), so a notebook's stored output is the verdict nbval compares.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from types import CoroutineType
from typing import Any

from ._errors import Deadlock, NondeterminismError, ScheduleError
from ._report import ExploreReport, count

__all__ = ["Verdict", "breaks", "check"]

_ANY = object()  # returns= not given: any return value is right
_MAX = 20_000  # schedules a check runs at most (exercises are small programs)


class Verdict:
    """What :func:`check` or :func:`breaks` found: ``solved`` (a bool), the ``text``
    (first line: the verdict; then why), the exploration ``report`` (None for
    :func:`breaks`).  Shown as its text, and in a notebook as a coloured box; truthy
    when solved."""

    __slots__ = ("report", "solved", "text")

    def __init__(self, solved: bool, text: str, report: ExploreReport | None = None) -> None:
        self.solved = solved
        self.text = text
        self.report = report

    def __bool__(self) -> bool:
        return self.solved

    def __repr__(self) -> str:
        return self.text

    def _repr_html_(self) -> str:
        colour = "#1a7f37" if self.solved else "#b42318"
        background = "#e9f7ee" if self.solved else "#fdecea"
        head, _, rest = self.text.partition("\n")
        pre = "margin:6px 0 0 0;white-space:pre;overflow-x:auto"
        body = f"<pre style='{pre}'>{html.escape(rest)}</pre>" if rest else ""
        return (
            f"<div class='counterpoint-verdict' style='border-left:4px solid {colour};"
            f"background:{background};padding:6px 10px;font-family:sans-serif'>"
            f"<b style='color:{colour}'>{html.escape(head)}</b>{body}</div>"
        )


def check(
    program: Callable[[], Any],
    *,
    returns: Any = _ANY,
    invariant: Callable[[], Any] | None = None,
    max_schedules: int = _MAX,
    shared_only: bool = False,
    max_steps: int = 10_000,
) -> Verdict:
    """Whether ``program`` (a zero-argument callable returning a fresh coroutine, as
    for ``cp.explore``) is right under every schedule: no failure, no deadlock, the
    ``invariant`` (if given) holds after every step, and every schedule returns
    ``returns`` (if given).  Solved needs an exhaustive search: a search that stops at
    ``max_schedules`` is not a proof, and the verdict says to make the program smaller.

    >>> import counterpoint as cp
    >>> from counterpoint.course import check
    >>> async def two_deposits():
    ...     account = {"balance": 0}
    ...     async def deposit(amount):
    ...         balance = account["balance"]
    ...         await cp.checkpoint()
    ...         account["balance"] = balance + amount
    ...     await cp.par(deposit(100), deposit(100))
    ...     return account["balance"]
    >>> verdict = check(two_deposits, returns=200)
    >>> verdict.solved
    False
    >>> print(verdict.text.splitlines()[0])
    Not yet: 4 of 6 schedules go wrong; the simplest returned 100, not 200.
    """
    _check_program(program, "check")
    if not isinstance(max_schedules, int) or isinstance(max_schedules, bool) or max_schedules < 1:
        raise ValueError(f"check(max_schedules=...) must be a positive int, got {max_schedules!r}")
    from ._explore import explore

    target = program if returns is _ANY else _returning(program, returns)
    report = explore(
        target,
        max_schedules=max_schedules,
        max_steps=max_steps,
        shared_only=shared_only,
        invariant=invariant,
        progress=False,
    )
    findings = report.failures + report.deadlocks
    if findings:
        first = min(findings, key=lambda f: (f.preemptions, len(f.schedule)))
        wrong = sum(f.count for f in findings)
        head = (
            f"Not yet: {wrong} of {count(report.schedules, 'schedule')} "
            f"{'goes' if wrong == 1 else 'go'} wrong; the simplest {_went(first)}"
        )
        story = _story(first, target, everywhere=wrong == report.schedules)
        return Verdict(False, "\n".join([head, *story]), report)
    if not report.exhaustive:
        return Verdict(
            False,
            f"Not proven: {count(report.schedules, 'schedule')} ran without a problem, but "
            f"the search stopped before covering every schedule (max_schedules="
            f"{max_schedules}). Make the program smaller (fewer tasks or steps) so that "
            f"every schedule can be tried.",
            report,
        )
    said = "" if returns is _ANY else f", each returning {returns!r}"
    holds = "" if invariant is None else ", the invariant held after every step"
    return Verdict(
        True,
        f"Solved: {_all(report.schedules)}{said}{holds} (every schedule that matters was tried).",
        report,
    )


def breaks(program: Callable[[], Any], schedule: str, *, max_steps: int = 10_000) -> Verdict:
    """Whether ``schedule`` (a ``cp1:...`` schedule string: from the Scheduler widget,
    a finding's ``schedule``, or ``vm.schedule`` of a run) makes ``program`` fail or
    deadlock: the "break it" kind of exercise.

    >>> import counterpoint as cp
    >>> from counterpoint.course import breaks
    >>> async def two_deposits():
    ...     account = {"balance": 0}
    ...     async def deposit(amount):
    ...         balance = account["balance"]
    ...         await cp.checkpoint()
    ...         account["balance"] = balance + amount
    ...     await cp.par(deposit(100), deposit(100))
    ...     assert account["balance"] == 200, "a deposit was lost"
    >>> print(breaks(two_deposits, "cp1:0112").text.splitlines()[0])
    Broken: under cp1:0112 the program fails with AssertionError: a deposit was lost
    """
    _check_program(program, "breaks")
    if not isinstance(schedule, str):
        raise TypeError(
            f"breaks() takes the schedule as a 'cp1:...' string, got {type(schedule).__name__}"
        )
    from ._vm import VM

    vm = VM(schedule=schedule, max_steps=max_steps)  # (a malformed one: ScheduleError here)
    try:
        value = vm.run(program())
    except (ScheduleError, NondeterminismError) as error:
        return Verdict(
            False,
            f"Not this one: {error}",
        )
    except Deadlock as error:
        return Verdict(True, f"Broken: under {schedule} the program deadlocks\n{error}")
    except Exception as error:
        said = str(error).strip().splitlines()
        text = f"{type(error).__name__}: {said[0]}" if said else type(error).__name__
        return Verdict(True, f"Broken: under {schedule} the program fails with {text}")
    finally:
        vm._dispose()  # (the tasks a misfit left behind: no "never awaited" warnings)
        vm.close()
    return Verdict(
        False,
        f"Not broken: under {schedule} the program ends well (it returned {value!r}). "
        "Try another order: where could a task be interrupted between a read and a write?",
    )


def _check_program(program: Any, what: str) -> None:
    if callable(program):
        return
    if isinstance(program, CoroutineType):
        program.close()  # (passed where its function was meant: no "never awaited")
    raise TypeError(
        f"{what}() takes the program as a zero-argument callable that returns a fresh "
        f"coroutine (such as `main`, not `main()`), got {type(program).__name__}"
    )


class WrongResult(AssertionError):
    """A schedule returned another value than the exercise expects."""


def _returning(program: Callable[[], Any], expected: Any) -> Callable[[], Any]:
    """``program``, failing with :class:`WrongResult` when it returns anything else than
    ``expected``."""

    async def checked() -> Any:
        value = await program()
        if value != expected:
            raise WrongResult(f"returned {value!r}, not {expected!r}")
        return value

    checked.__name__ = checked.__qualname__ = getattr(program, "__name__", "program")
    return checked


def _went(finding: Any) -> str:
    """How the simplest wrong schedule went, for the headline."""
    if finding.outcome == "Deadlock":
        return "deadlocks."
    message = (finding.message or "").strip().splitlines()
    if finding.outcome == "WrongResult" and message:
        return _stop(message[0])
    said = f": {message[0]}" if message else ""
    return f"fails with {finding.outcome}{_stop(said)}"


def _stop(text: str) -> str:
    """``text`` ending a sentence (no second full stop after one it has)."""
    return text if text.endswith((".", "!", "?")) else text + "."


def _all(schedules: int) -> str:
    return (
        "the only schedule ends well" if schedules == 1 else f"all {schedules} schedules end well"
    )


def _story(finding: Any, program: Any, everywhere: bool = False) -> list[str]:
    """The explanation of the simplest wrong schedule (without its headline) and the
    line that replays it.  When ``everywhere`` (every schedule goes wrong) the order of
    the steps is not the bug, so the explanation's race pattern is left out."""
    try:
        lines = finding.explain(program).splitlines()[1:]
    except Exception as error:  # the verdict must still say what went wrong
        lines = [f"(finding.explain() failed: {type(error).__name__}: {error})"]
    else:
        if everywhere and lines:
            lines[0] = (
                "Every schedule goes wrong, so the bug is not in the order of the steps: "
                "the simplest run below shows where it goes wrong."
            )
    replay = f"replay it: {finding.replay}"
    return [line for line in lines if not line.startswith("replay it")] + [replay]
