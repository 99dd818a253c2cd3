"""Schedules: the ``cp1:`` codec, and the choosers that decide at choice points.

A *choice point* is a moment when more than one task is ready (the candidates are
offered in ascending task id) or a ``cp.choose(options)`` call.  A *schedule* is the
list of indices chosen at the choice points of one execution, written as a compact
string (see :func:`encode_schedule`); ``cp.VM(schedule=...)`` replays it exactly with
a :class:`ScheduleChooser`.  The VM asks its chooser (``vm._chooser``) through the
:class:`Chooser` protocol: ``pick``, ``choose``, ``ran``, ``advancing``, ``observe``,
``access``.
"""

from __future__ import annotations

from itertools import groupby
from typing import Any

from ._errors import ScheduleError

_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_DIGIT_VALUES = {digit: value for value, digit in enumerate(_DIGITS)}
_PREFIX = "cp1:"


# -- schedules --------------------------------------------------------------------------------

_GRAMMAR = (
    "A schedule is 'cp1:' then (choice, run length) pairs: each a base-62 digit (0-9, a-z, "
    "A-Z), a choice of 62 or more written in decimal in parentheses, and a run length from "
    "1 to z (61); for example 'cp1:0311' is choice 0 three times, then choice 1 once, and "
    "'cp1:(70)2' is choice 70 twice. Take schedules from an exploration report "
    "(finding.schedule)."
)


def encode_schedule(choices: list[int]) -> str:
    """``"cp1:"`` then runs of equal choices, each as (choice, run length) in base 62;
    a choice of 62 or more is written ``(n)``.

    >>> encode_schedule([0, 0, 0, 1, 0])
    'cp1:031101'
    """
    out = [_PREFIX]
    longest = len(_DIGITS) - 1  # a run length is one digit: longer runs are split
    for choice, run in groupby(choices):
        digit = _DIGITS[choice] if choice <= longest else f"({choice})"
        length = len(list(run))
        while length > longest:
            out.append(digit + _DIGITS[longest])
            length -= longest
        out.append(digit + _DIGITS[length])
    return "".join(out)


def _malformed(schedule: str, position: int, what: str) -> ScheduleError:
    return ScheduleError(
        f"schedule {schedule!r} is malformed at position {position}: {what}. {_GRAMMAR}"
    )


def _runs(schedule: Any) -> list[tuple[int, int, int]]:
    """Parse a schedule string into (choice, run length, position of the choice) runs;
    ``cp.ScheduleError`` saying where, if it is not one."""
    if not isinstance(schedule, str):
        raise ScheduleError(
            f"a schedule is a string, not {type(schedule).__name__} {schedule!r}. {_GRAMMAR}"
        )
    if not schedule.startswith(_PREFIX):
        raise _malformed(schedule, 0, f"it does not start with {_PREFIX!r}")
    runs: list[tuple[int, int, int]] = []
    i, end = len(_PREFIX), len(schedule)
    digits = _DIGIT_VALUES
    while i < end:
        start = i
        char = schedule[i]
        if char == "(":
            close = schedule.find(")", i)
            if close < 0:
                raise _malformed(schedule, i, "'(' opens a choice that no ')' closes")
            text = schedule[i + 1 : close]
            if text.startswith("-") and text[1:].isdigit():
                raise _malformed(
                    schedule, i, f"the choice {text} is negative (choices count from 0)"
                )
            if not (text.isascii() and text.isdigit()):
                raise _malformed(schedule, i, f"{schedule[i : close + 1]!r} is not a choice")
            choice, i = int(text), close + 1
        elif char in digits:
            choice, i = digits[char], i + 1
        else:
            raise _malformed(schedule, i, f"{char!r} is not a base-62 digit or '('")
        if i >= end:
            raise _malformed(schedule, i, "the schedule ends where a run length should be")
        count = digits.get(schedule[i])
        if count is None:
            raise _malformed(schedule, i, f"{schedule[i]!r} is not a run length (1-9, a-z, A-Z)")
        if count == 0:
            raise _malformed(schedule, i, "a run length of 0 (runs are 1 to 61 choices long)")
        runs.append((choice, count, start))
        i += 1
    return runs


def decode_schedule(schedule: str) -> list[int]:
    """The choices a schedule string stands for (``cp.ScheduleError``, a ``ValueError``,
    saying where, if it is not one).

    >>> decode_schedule("cp1:0311")
    [0, 0, 0, 1]
    """
    choices: list[int] = []
    for choice, count, _ in _runs(schedule):
        choices.extend([choice] * count)
    return choices


# -- choosers: who decides at choice points -----------------------------------------------------


class Chooser:
    """Base: the default decision is to let the task that just ran go on (no
    preemption), else the task at the front of the ready queue; ``cp.choose`` takes 0."""

    def __init__(self) -> None:
        self.previous: Any = None

    def default(self, candidates: list, front: Any) -> int:
        if self.previous in candidates:
            return candidates.index(self.previous)
        return candidates.index(front)

    def pick(self, vm: Any, candidates: list, front: Any) -> int:
        return self.default(candidates, front)

    def choose(self, vm: Any, count: int) -> int:
        return 0

    def ran(self, vm: Any, task: Any, candidates: list | None) -> None:
        self.previous = task

    def advancing(self, vm: Any) -> None:
        """Virtual time is about to advance (a global barrier between steps)."""

    def observe(self, obj: tuple) -> None:
        """The running step read VM object ``obj`` without writing a journal record."""

    def access(self, location: tuple, write: bool) -> None:
        """The running step read (or wrote) ``location`` of a ``cp.shared`` wrapper:
        ``("shared", label, key)``.  Called directly from the wrapper's method, so the
        user's frame that made the access is ``sys._getframe(2)`` here."""

    def abandoning(self, vm: Any) -> None:
        """The run is being abandoned (deadlock, ``max_steps``, an interrupt): its tasks
        are about to be cancelled, and ``vm._ready`` still says who could have run."""


class ScheduleChooser(Chooser):
    """Replays a schedule string; past its end, the default decisions."""

    def __init__(self, schedule: str) -> None:
        super().__init__()
        self.text = schedule
        self.choices = decode_schedule(schedule)
        self.position = 0

    def _next(self, count: int, default: int, offer: str) -> int:
        if self.position >= len(self.choices):
            return default
        choice = self.choices[self.position]
        self.position += 1
        if choice >= count:
            raise ScheduleError(self._misfit(count, choice, offer))
        return choice

    def _misfit(self, count: int, choice: int, offer: str) -> str:
        number = self.position  # 1-based: the choice point that did not fit
        where, seen = len(_PREFIX), 0
        for _, length, start in _runs(self.text):
            where, seen = start, seen + length
            if seen >= number:
                break
        return (
            f"the schedule {self.text!r} does not fit this program: at choice point {number} "
            f"the program offers {offer} (options 0 to {count - 1}), but the schedule takes "
            f"option {choice} (the run at position {where} of the string). Use a schedule "
            f"found by exploring this same program (finding.schedule)."
        )

    def pick(self, vm: Any, candidates: list, front: Any) -> int:
        default = self.default(candidates, front)
        if self.position >= len(self.choices):
            return default
        offer = "a choice between tasks " + ", ".join(str(t.id) for t in candidates)
        return self._next(len(candidates), default, offer)

    def choose(self, vm: Any, count: int) -> int:
        return self._next(count, 0, f"a cp.choose() of {count} options")
