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

from collections.abc import Iterator
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
    "1 to Z (61); pairs in square brackets, then a repeat count (a digit from 1 to Z, or a "
    "decimal number in parentheses), are a group repeated that many times (groups do not "
    "nest); for example 'cp1:0311' is choice 0 three times, then choice 1 once, "
    "'cp1:(70)2' is choice 70 twice, and 'cp1:[0812](500)' is eight 0s and two 1s, 500 "
    "times. Take schedules from an exploration report (finding.schedule)."
)

_GROUPED_FROM = 32  # runs: a shorter schedule is written without groups
_LONGEST_PERIOD = 64  # runs: the longest group body encode_schedule looks for
DECODE_LIMIT = 10_000_000  # choices: the most decode_schedule lists (a VM replays any)


def _number(n: int) -> str:
    """A choice or repeat count: one base-62 digit, or ``(n)`` from 62 on."""
    return _DIGITS[n] if n < len(_DIGITS) else f"({n})"


def encode_schedule(choices: list[int]) -> str:
    """``"cp1:"`` then runs of equal choices, each as (choice, run length) in base 62;
    a choice of 62 or more is written ``(n)``.  In a schedule of more than 32 runs, a
    stretch of runs that repeats is written once, in brackets, with its repeat count:
    a livelock's periodic tail stays short.

    >>> encode_schedule([0, 0, 0, 1, 0])
    'cp1:031101'
    >>> encode_schedule([0] * 8000)
    'cp1:[0Z](131)09'
    """
    runs = []
    longest = len(_DIGITS) - 1  # a run length is one digit: longer runs are split
    for choice, run in groupby(choices):
        digit = _number(choice)
        length = len(list(run))
        while length > longest:
            runs.append(digit + _DIGITS[longest])
            length -= longest
        runs.append(digit + _DIGITS[length])
    if len(runs) < _GROUPED_FROM:
        return _PREFIX + "".join(runs)
    return _PREFIX + _grouped(runs)


def _grouped(runs: list[str]) -> str:
    """The runs with repeating stretches written as groups: from left to right, at each
    run the group (of at most ``_LONGEST_PERIOD`` runs, repeated as often as it repeats)
    that saves the most characters, else the run itself.  The periods tried at a run are
    the distances to the next runs equal to it, so the work is about
    ``_LONGEST_PERIOD`` comparisons of slices per run written."""
    n = len(runs)
    following = [n] * n  # the next run equal to each
    seen: dict[str, int] = {}
    for k in range(n - 1, -1, -1):
        following[k] = seen.get(runs[k], n)
        seen[runs[k]] = k
    out = []
    i = 0
    while i < n:
        best = best_period = best_repeats = 0
        j = following[i]
        while j < n and j - i <= _LONGEST_PERIOD and i + 2 * (j - i) <= n:
            period = j - i
            body = runs[i:j]
            repeats, k = 1, j
            while runs[k : k + period] == body:
                repeats, k = repeats + 1, k + period
            if repeats > 1:
                size = sum(map(len, body))
                saving = size * (repeats - 1) - 2 - len(_number(repeats))
                if saving > best:
                    best, best_period, best_repeats = saving, period, repeats
            j = following[j]
        if best:
            out.append(f"[{''.join(runs[i : i + best_period])}]{_number(best_repeats)}")
            i += best_period * best_repeats
        else:
            out.append(runs[i])
            i += 1
    return "".join(out)


def _malformed(schedule: str, position: int, what: str) -> ScheduleError:
    return ScheduleError(
        f"schedule {schedule!r} is malformed at position {position}: {what}. {_GRAMMAR}"
    )


Run = tuple[int, int, int]  # (choice, run length, position of the choice in the string)


def _segments(schedule: Any) -> list[tuple[tuple[Run, ...], int, int]]:
    """Parse a schedule string into segments (runs, repeat count, position): a run
    outside a group is a segment of one run repeated once.  ``cp.ScheduleError`` saying
    where, if it is not a schedule.  Nothing is expanded: the work is linear in the
    length of the string, whatever it stands for."""
    if not isinstance(schedule, str):
        raise ScheduleError(
            f"a schedule is a string, not {type(schedule).__name__} {schedule!r}. {_GRAMMAR}"
        )
    if not schedule.startswith(_PREFIX):
        raise _malformed(schedule, 0, f"it does not start with {_PREFIX!r}")
    segments: list[tuple[tuple[Run, ...], int, int]] = []
    group: list[Run] | None = None  # the runs of the group being read
    opened = 0
    i, end = len(_PREFIX), len(schedule)
    digits = _DIGIT_VALUES
    while i < end:
        start = i
        char = schedule[i]
        if char == "[":
            if group is not None:
                raise _malformed(schedule, i, "a group inside a group (groups do not nest)")
            group, opened = [], i
            i += 1
            continue
        if char == "]":
            if group is None:
                raise _malformed(schedule, i, "']' closes no group")
            if not group:
                raise _malformed(schedule, opened, "an empty group '[]'")
            i += 1
            if i >= end:
                raise _malformed(schedule, i, "the schedule ends where a repeat count should be")
            repeat, i = _count(schedule, i, "repeat count", "a group repeated 0 times")
            segments.append((tuple(group), repeat, opened))
            group = None
            continue
        if char == "(":
            choice, i = _decimal(schedule, i, "choice")
        elif char in digits:
            choice, i = digits[char], i + 1
        else:
            raise _malformed(schedule, i, f"{char!r} is not a base-62 digit, '(' or '['")
        if i >= end:
            raise _malformed(schedule, i, "the schedule ends where a run length should be")
        count = digits.get(schedule[i])
        if count is None:
            raise _malformed(schedule, i, f"{schedule[i]!r} is not a run length (1-9, a-z, A-Z)")
        if count == 0:
            raise _malformed(schedule, i, "a run length of 0 (runs are 1 to 61 choices long)")
        i += 1
        if group is None:
            segments.append((((choice, count, start),), 1, start))
        else:
            group.append((choice, count, start))
    if group is not None:
        raise _malformed(schedule, opened, "'[' opens a group that no ']' closes")
    return segments


def _decimal(schedule: str, i: int, what: str) -> tuple[int, int]:
    """The ``(n)`` at ``i``: n and the position after it."""
    close = schedule.find(")", i)
    if close < 0:
        raise _malformed(schedule, i, f"'(' opens a {what} that no ')' closes")
    text = schedule[i + 1 : close]
    if text.startswith("-") and text[1:].isdigit():
        rule = "choices count from 0" if what == "choice" else "a group repeats 1 or more times"
        raise _malformed(schedule, i, f"the {what} {text} is negative ({rule})")
    if not (text.isascii() and text.isdigit()):
        raise _malformed(schedule, i, f"{schedule[i : close + 1]!r} is not a {what}")
    return int(text), close + 1


def _count(schedule: str, i: int, what: str, zero: str) -> tuple[int, int]:
    """A repeat count at ``i`` (a base-62 digit or ``(n)``): n and the position after."""
    char = schedule[i]
    if char == "(":
        n, after = _decimal(schedule, i, what)
    elif char in _DIGIT_VALUES:
        n, after = _DIGIT_VALUES[char], i + 1
    else:
        raise _malformed(schedule, i, f"{char!r} is not a {what} (1-9, a-z, A-Z or (n))")
    if n == 0:
        raise _malformed(schedule, i, zero)
    return n, after


def _length(segments: list) -> int:
    """How many choices the parsed schedule stands for."""
    return sum(repeat * sum(run[1] for run in runs) for runs, repeat, _ in segments)


def _expand(segments: list) -> Iterator[tuple[int, int]]:
    """The choices of a parsed schedule, one by one, each with the position of its run
    in the string: lazily, so a short string that stands for billions of choices costs
    only what a run takes from it."""
    for runs, repeat, _ in segments:
        for _ in range(repeat):
            for choice, count, start in runs:
                for _ in range(count):
                    yield choice, start


def check_schedule(schedule: Any) -> None:
    """Raise ``cp.ScheduleError`` unless ``schedule`` is a schedule string (nothing is
    expanded)."""
    _segments(schedule)


def decode_schedule(schedule: str) -> list[int]:
    """The choices a schedule string stands for (``cp.ScheduleError``, a ``ValueError``,
    saying where, if it is not one; or if it stands for more than ``DECODE_LIMIT``
    choices, which ``cp.VM(schedule=...)`` still replays, taking them as it goes).

    >>> decode_schedule("cp1:0311")
    [0, 0, 0, 1]
    >>> decode_schedule("cp1:[0211]3")
    [0, 0, 1, 0, 0, 1, 0, 0, 1]
    """
    segments = _segments(schedule)
    total = _length(segments)
    if total > DECODE_LIMIT:
        raise ScheduleError(
            f"schedule {schedule[:60]!r}{'...' if len(schedule) > 60 else ''} stands for "
            f"{total:,} choices, more than decode_schedule() lists ({DECODE_LIMIT:,}); "
            "cp.VM(schedule=...) replays it all the same, taking the choices as it goes"
        )
    choices: list[int] = []
    for runs, repeat, _ in segments:
        body: list[int] = []
        for choice, count, _ in runs:
            body.extend([choice] * count)
        choices.extend(body * repeat)
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
    """Replays a schedule string; past its end, the default decisions.  The choices
    are taken from the string as the run reaches them (a group is not expanded)."""

    def __init__(self, schedule: str) -> None:
        super().__init__()
        self.text = schedule
        self.choices = _expand(_segments(schedule))
        self.position = 0  # choices taken
        self.ended = False

    def _next(self, count: int, default: int, offer: str) -> int:
        if self.ended:
            return default
        taken = next(self.choices, None)
        if taken is None:
            self.ended = True
            return default
        choice, where = taken
        self.position += 1
        if choice >= count:
            raise ScheduleError(self._misfit(count, choice, offer, where))
        return choice

    def _misfit(self, count: int, choice: int, offer: str, where: int) -> str:
        number = self.position  # 1-based: the choice point that did not fit
        return (
            f"the schedule {self.text!r} does not fit this program: at choice point {number} "
            f"the program offers {offer} (options 0 to {count - 1}), but the schedule takes "
            f"option {choice} (the run at position {where} of the string). Use a schedule "
            f"found by exploring this same program (finding.schedule)."
        )

    def pick(self, vm: Any, candidates: list, front: Any) -> int:
        default = self.default(candidates, front)
        if self.ended:
            return default
        offer = "a choice between tasks " + ", ".join(str(t.id) for t in candidates)
        return self._next(len(candidates), default, offer)

    def choose(self, vm: Any, count: int) -> int:
        return self._next(count, 0, f"a cp.choose() of {count} options")
