"""Schedule exploration: model checking by re-execution.

A *choice point* is a moment when more than one task is ready (the candidates are
offered in ascending task id) or a ``cp.choose(options)`` call.  A *schedule* is
the list of indices chosen at the choice points of one execution, written as a
compact string (see :func:`encode_schedule`); ``cp.VM(schedule=...)`` replays it
exactly.  ``explore`` runs a program many times, each time under a different
schedule, and reports what happened:

``"dfs"``
    Depth-first search of the choice tree, with dynamic partial-order reduction:
    after each execution, pairs of *dependent* steps of different tasks that were
    not causally ordered are found (vector clocks), and only then is the other
    order scheduled.  Two steps are dependent when they touch the same VM object
    (channel, lock, semaphore, event, condition, barrier, task, timer deadline,
    worker ...), read off the step's own journal records and the record-free reads
    the VM reports while exploring (``event.is_set()``, ``len(channel)`` ...).  A
    step that touches no VM object at all (say, shared Python state around an
    ``await cp.checkpoint()``), or ends a task that never touched one, is taken to
    depend on every step, so races on plain Python variables written that way are
    explored too.  ``por=False`` explores every interleaving.
``"random"``
    Uniformly random choices, seeded.
``"pct"``
    Probabilistic concurrency testing (Burckhardt et al., 2010): random task
    priorities with ``depth - 1`` random priority-change points; finds a bug of
    depth d with probability at least 1 / (n * k**(d-1)).
"""

from __future__ import annotations

import random
import time
from bisect import bisect_left
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from ._errors import (
    Cancelled,
    Deadlock,
    LimitExceeded,
    NondeterminismError,
    ScheduleError,
    StepLimitExceeded,
)
from ._interrupts import DeferredInterrupts
from ._journal import (
    _HAS_VALUE,
    A_SHIFT,
    ACQUIRE,
    BLOCK,
    BLOCK_RECV,
    BLOCK_SEND,
    CANCEL,
    CANCELLED,
    CLEAR,
    CLOSE,
    DONE,
    EVENT,
    FAIL,
    KIND_NAMES,
    NOTIFY,
    QUEUE,
    RECEIPT,
    RECV,
    RELEASE,
    SCOPE,
    SEND,
    SET,
    SLEEP,
    SPAWN,
    START,
    STEP,
    TASK_SHIFT,
    TIMEOUT,
    plain,
)
from ._traps import discard, require_task

_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_DIGIT_VALUES = {digit: value for value, digit in enumerate(_DIGITS)}
_PREFIX = "cp1:"


class Pruned(BaseException):
    """Raised by ``cp.require(False)``: this execution is not one the program wants.

    ``explore`` counts it as pruned (not an outcome); a plain ``vm.run`` raises it.
    """


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
    i = 0
    while i < len(choices):
        choice = choices[i]
        j = i
        while j < len(choices) and choices[j] == choice and j - i < len(_DIGITS) - 1:
            j += 1
        out.append(_DIGITS[choice] if choice < len(_DIGITS) else f"({choice})")
        out.append(_DIGITS[j - i])
        i = j
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


class _Point(NamedTuple):
    kind: str  # "sched" or "data"
    options: tuple  # task ids (sched) or range(count) (data)
    chosen: int  # index
    previous: int  # id of the task that ran before (sched), else 0


_ADVICE = (
    "Exploring re-runs the program once per schedule, so it must do the same thing "
    "under the same choices: take randomness from cp.rng() (seeded by the VM) and inputs "
    "from cp.choose(), never from the random module, the clock or the environment, and "
    "keep no state between executions (module globals, counters, caches)."
)
_NOT_DETERMINISTIC = "the program is not deterministic: re-run under the same choices, it {what}. "
_NOT_DETERMINISTIC += _ADVICE.replace("{", "{{").replace("}", "}}")


def _offer(kind: str, options: tuple) -> str:
    if kind == "data":
        return f"a cp.choose() of {len(options)} options"
    return "a scheduling choice between tasks " + ", ".join(map(str, options))


class _Recorder(Chooser):
    """Follows a prefix of choices, then a strategy; records everything for analysis.

    ``expected`` holds the (kind, options) the prefix's choice points had when they
    were first seen; a re-run that offers anything else is a NondeterminismError."""

    def __init__(self, prefix: list[int], strategy: Any, expected: list | None = None) -> None:
        super().__init__()
        self.prefix = prefix
        self.expected = expected or []
        self.strategy = strategy
        self.points: list[_Point] = []
        self.steps: list[tuple] = []  # (task id, journal position, choice point index)
        self.advances: list[int] = []
        self.reads: list[tuple[int, tuple]] = []  # (step index, object) read without a record
        self.positions: list[int] = []  # journal length when each choice point was offered
        self.known = max(len(prefix), len(self.expected))  # points decided by the past
        self.left_behind: list[int] | None = []  # tasks still ready when the execution ended
        self.tasks = 0  # how many task ids the execution used (1 more than the largest)
        self.preemptions = 0

    def _replay(self, kind: str, options: tuple) -> int | None:
        """The prefix's choice at this point (None past the prefix), after checking that
        the point offers what it offered when it was first seen."""
        position = len(self.points)
        count = len(options)
        if position < len(self.expected) and self.expected[position] != (kind, options):
            was = _offer(*self.expected[position])
            raise NondeterminismError(
                _NOT_DETERMINISTIC.format(
                    what=f"offered {_offer(kind, options)} at choice point {position + 1}, "
                    f"where the earlier execution offered {was}"
                )
            )
        if position < len(self.prefix):
            choice = self.prefix[position]
            if choice >= count:
                raise NondeterminismError(
                    _NOT_DETERMINISTIC.format(
                        what=f"offered {count} options at choice point {position + 1}, fewer "
                        f"than the earlier execution (which took option {choice})"
                    )
                )
            return choice
        return None

    def pick(self, vm: Any, candidates: list, front: Any) -> int:
        previous = self.previous
        went_on = previous in candidates
        default = candidates.index(previous if went_on else front)
        ids = tuple([task.id for task in candidates])
        self.positions.append(len(vm._rows))
        choice = self._replay("sched", ids) if len(self.points) < self.known else None
        if choice is None:
            choice = self.strategy.pick(self, candidates, default)
        if went_on and candidates[choice] is not previous:
            self.preemptions += 1
        self.points.append(_Point("sched", ids, choice, previous.id if previous else 0))
        return choice

    def choose(self, vm: Any, count: int) -> int:
        options = tuple(range(count))
        self.positions.append(len(vm._rows))
        choice = self._replay("data", options) if len(self.points) < self.known else None
        if choice is None:
            choice = self.strategy.choose(self, count)
        self.points.append(_Point("data", options, choice, 0))
        return choice

    def check_prefix_used(self) -> None:
        """A re-run must reach every choice point of its prefix."""
        if len(self.points) < len(self.prefix):
            raise NondeterminismError(
                _NOT_DETERMINISTIC.format(
                    what=f"ended after {len(self.points)} choice points, where the earlier "
                    f"execution went on to choice point {len(self.prefix)} "
                    f"({_offer(*self.expected[len(self.points)])})"
                )
            )

    def ran(self, vm: Any, task: Any, candidates: list | None) -> None:
        point = len(self.points) - 1 if candidates is not None else None
        self.steps.append((task.id, len(vm._rows), point))
        self.previous = task

    def advancing(self, vm: Any) -> None:
        self.advances.append(len(vm._rows))

    def observe(self, obj: tuple) -> None:
        self.reads.append((len(self.steps) - 1, obj))

    def schedule(self) -> str:
        return encode_schedule([point.chosen for point in self.points])


class _Default:
    """DFS beyond the prefix: the default decisions."""

    def pick(self, recorder: _Recorder, candidates: list, default: int) -> int:
        return default

    def choose(self, recorder: _Recorder, count: int) -> int:
        return 0


_DEFAULT = _Default()


class _Random:
    def __init__(self, rng: random.Random, bound: int | None) -> None:
        self.rng = rng
        self.bound = bound

    def pick(self, recorder: _Recorder, candidates: list, default: int) -> int:
        if self.bound is not None and recorder.preemptions >= self.bound:
            return default
        return self.rng.randrange(len(candidates))

    def choose(self, recorder: _Recorder, count: int) -> int:
        return self.rng.randrange(count)


class _PCT:
    """Random priorities; at d-1 random steps the running task drops to a low priority."""

    def __init__(self, rng: random.Random, depth: int, steps: int) -> None:
        self.rng = rng
        self.priority: dict[int, float] = {}
        points = rng.sample(range(1, steps + 1), min(depth - 1, steps))
        self.changes = {step: depth - i for i, step in enumerate(points)}
        self.depth = depth

    def pick(self, recorder: _Recorder, candidates: list, default: int) -> int:
        step = len(recorder.steps)
        previous = recorder.previous
        if step in self.changes and previous is not None:
            self.priority[previous.id] = self.changes[step] / (self.depth + 1)  # low
        for task in candidates:
            if task.id not in self.priority:
                self.priority[task.id] = self.depth + self.rng.random()  # high, distinct
        return max(range(len(candidates)), key=lambda i: self.priority[candidates[i].id])

    def choose(self, recorder: _Recorder, count: int) -> int:
        return self.rng.randrange(count)


# -- reports -------------------------------------------------------------------------------------

_REDUCED = (
    "Partial-order reduction left out schedules it judged equivalent to ones it ran. It "
    "assumes that tasks share plain Python state (anything but VM objects) only in steps "
    "that use no VM object, such as a read or write followed by `await cp.checkpoint()`, "
    "or in the last step of a task that never used one; a step that uses a channel, lock "
    "or other VM object is taken to touch no shared Python state. Explore with "
    "por=False to drop this assumption."
)


def _bounded(bound: int) -> str:
    return (
        f"Only schedules with at most {bound} preemption{'' if bound == 1 else 's'} were "
        f"explored (preemption_bound={bound}): a verdict of exhaustive holds within that "
        f"bound."
    )


class Finding(NamedTuple):
    """A failure or deadlock found by ``explore``, with the schedule that shows it best
    (the fewest preemptions found) and a line that replays it.

    >>> import counterpoint as cp
    >>> async def main():
    ...     if cp.choose([1, 0]) == 0:
    ...         raise ZeroDivisionError("the 0 was chosen")
    >>> finding = cp.explore(main).failures[0]
    >>> finding.outcome, finding.schedule, finding.replay
    ('ZeroDivisionError', 'cp1:11', "cp.VM(schedule='cp1:11', seed=0).run(main())")
    """

    outcome: str
    message: str
    schedule: str
    preemptions: int
    count: int
    replay: str


class ExploreReport:
    """What ``cp.explore`` found.

    ``schedules`` (executions run), ``exhaustive`` (the whole choice tree was
    covered), ``assumptions`` (sentences: what the verdict rests on, empty when
    nothing was left out), ``outcomes`` (outcome -> count; an outcome is the return
    value, or the exception type name), ``deadlocks`` and ``failures`` (lists of
    :class:`Finding`), ``pruned`` (executions ended by ``cp.require``), ``seconds``
    and ``schedules_per_second``.

    >>> import counterpoint as cp
    >>> async def main():
    ...     return cp.choose("ab") + cp.choose("xy")
    >>> report = cp.explore(main)
    >>> report.schedules, report.exhaustive, sorted(report.outcomes), report.assumptions
    (4, True, ['ax', 'ay', 'bx', 'by'], [])
    >>> report.summary()
    'dfs: 4 schedules, exhaustive; 4 outcomes, 0 failures, 0 deadlocks'
    """

    def __init__(self, strategy: str) -> None:
        self.strategy = strategy
        self.schedules = 0
        self.exhaustive = False
        self.assumptions: list[str] = []
        self.outcomes: dict[Any, int] = {}
        self.deadlocks: list[Finding] = []
        self.failures: list[Finding] = []
        self.pruned = 0
        self.seconds = 0.0

    @property
    def schedules_per_second(self) -> float:
        return self.schedules / self.seconds if self.seconds else 0.0

    def _verdict(self) -> str:
        if not self.exhaustive:
            return "not exhaustive"
        if not self.assumptions:
            return "exhaustive"
        count = len(self.assumptions)
        return f"exhaustive if {count} assumption{'s hold' if count > 1 else ' holds'}"

    def summary(self) -> str:
        """One line: the search, its verdict (and whether it rests on assumptions), and
        what it found."""
        return (
            f"{self.strategy}: {_count(self.schedules, 'schedule')}, {self._verdict()}"
            f"{' (see report.assumptions)' if self.exhaustive and self.assumptions else ''}"
            f"; {_count(len(self.outcomes), 'outcome')}, {_count(len(self.failures), 'failure')}"
            f", {_count(len(self.deadlocks), 'deadlock')}"
            f"{f', {self.pruned} pruned' if self.pruned else ''}"
        )

    def __repr__(self) -> str:
        lines = [
            f"<ExploreReport {self.strategy}: {self.schedules} schedules"
            f"{f' ({self._verdict()})' if self.exhaustive else ''}, "
            f"{len(self.failures)} failures, {len(self.deadlocks)} deadlocks>",
            "outcomes: " + ", ".join(f"{o!r} x{n}" for o, n in self.outcomes.items()),
        ]
        for finding in self.deadlocks + self.failures:
            lines.append(
                f"{finding.outcome} ({finding.count}x, {finding.preemptions} preemptions): "
                f"{finding.message.splitlines()[0]}"
            )
            lines.append(f"  replay: {finding.replay}")
        lines.extend(f"assumes: {sentence}" for sentence in self.assumptions)
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        from html import escape

        from ._display import table

        caption = (
            f"{self.strategy}: {self.schedules} schedules"
            f"{f' ({self._verdict()})' if self.exhaustive else ''}"
            f"{f', {self.pruned} pruned' if self.pruned else ''}"
        )
        out = table(["outcome", "schedules"], [[o, n] for o, n in self.outcomes.items()], caption)
        findings = [
            [f.outcome, f.count, f.preemptions, f.message.splitlines()[0], f.replay]
            for f in self.deadlocks + self.failures
        ]
        if findings:
            heading = ["finding", "schedules", "preemptions", "message", "replay"]
            out += table(heading, findings)
        if self.assumptions:
            items = "".join(f"<li>{escape(sentence)}</li>" for sentence in self.assumptions)
            out += f"<p><b>This verdict assumes:</b></p><ul>{items}</ul>"
        return out


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _outcome_key(value: Any) -> Any:
    try:
        hash(value)
    except TypeError:
        return repr(value)
    return value


# -- dynamic partial-order reduction ------------------------------------------------------------


def _object(item: Any) -> tuple:
    """The object named by a select case ("channel 3") or a worker handle."""
    if isinstance(item, str):
        kind, number = item.split()
        return kind, int(number)
    return "workers", None


_NAMED: list[str | None] = [None] * 64  # kinds whose object is (name, a)
for _kind in (SEND, RECV, CLOSE, BLOCK_SEND, BLOCK_RECV):
    _NAMED[_kind] = "channel"
_NAMED[SET] = _NAMED[CLEAR] = "event"
_NAMED[NOTIFY] = "condition"
_NAMED[SCOPE] = _NAMED[TIMEOUT] = "scope"
_TASK_KINDS = frozenset({DONE, FAIL, CANCELLED, CANCEL})
_WORKER_KINDS = frozenset({QUEUE, START, RECEIPT})
_KIND_MASK = (1 << TASK_SHIFT) - 1
_TASK_MASK = (1 << (A_SHIFT - TASK_SHIFT)) - 1


def _races(recorder: _Recorder, journal: Any) -> list[tuple[int, int]]:
    """Races of the execution: (step i, task p) where a step of task p depends on step i
    (another task's) without being causally after it.

    A step's *footprint* is the VM objects it touched (read off its journal records,
    plus the reads that write none, which the VM reported while it ran), the tasks it
    made ready or spawned, and the other tasks it cancelled.  Step j's records run from
    its start to the next step's start, or to the moment time advanced, whichever comes
    first (records of time advancing belong to no step).

    Vector clocks (a list per step, indexed by task id: the last step of that task that
    comes before): a step comes after its task's previous step, the steps that woke or
    spawned its task, the steps it conflicts with, and every step before a time advance.

    The later step of a race is an executed one, or one task p never got to take: a task
    that is cancelled while it still had steps to run, or that could still run when the
    execution ended (the root finished or failed, or ``cp.require`` pruned), may have
    done anything next.  Its unknown next step is taken to depend on every step of every
    other task that is not causally before it."""
    steps = recorder.steps
    n = len(steps)
    races: list[tuple[int, int]] = []
    if not n:
        return races
    rows, vals, has_value = journal._rows, journal._vals, _HAS_VALUE
    total = len(rows)
    advances = recorder.advances
    count = len(advances)
    reads = recorder.reads
    n_reads = len(reads)
    r = 0
    while r < n_reads and reads[r][0] < 0:
        r += 1
    next_read = reads[r][0] if r < n_reads else n
    barriers: Any = ()
    if count:
        starts = [start for _, start, _ in steps]
        barriers = {bisect_left(starts, position) for position in advances}
    owner = [task for task, _, _ in steps]  # each step's task
    named = _NAMED
    nothing = [-1] * recorder.tasks  # a clock: indexed by task id
    task_clock: dict[int, list[int]] = {}
    step_clock: list[list[int]] = []
    floor: list[int] | None = None  # what every step after the last time advance comes after
    latest = nothing[:]  # each task's last step: the join of every clock so far
    last_access: dict[tuple, int] = {}
    last_step_of: dict[int, int] = {}
    last_wildcard_of: dict[int, int] = {}
    last_touched: dict[int, Any] = {}
    uses_vm: set[int] = set()  # tasks that have touched a VM object
    a = 0
    index = steps[0][1]
    v = journal._value_offset(index) if index else 0
    for j in range(n):
        task, start, _ = steps[j]
        # -- the footprint of step j
        while index < start:  # records of time advancing, between steps
            v += has_value[rows[index] & _KIND_MASK]
            index += 1
        end = steps[j + 1][1] if j + 1 < n else total
        while a < count and advances[a] <= start:
            a += 1
        if a < count and advances[a] < end:
            end = advances[a]
        touched: Any = ()
        woken: Any = ()
        cancelled: Any = ()
        if index < end and rows[index] & _KIND_MASK == STEP:
            index += 1  # the step's own record (no value): it touches nothing
        while index < end:
            row = rows[index]
            index += 1
            kind = row & _KIND_MASK
            if has_value[kind]:
                b = vals[v]
                v += 1
            other = (row >> TASK_SHIFT) & _TASK_MASK
            a_ = row >> A_SHIFT
            name = named[kind]
            if name is not None:  # a channel, event, condition or scope, numbered a_
                obj: Any = (name, a_)
            elif kind in _TASK_KINDS:
                if kind == CANCEL:
                    if not a_:
                        continue  # by the host, ending the run: no part of any step
                    if other != task:
                        if not cancelled:
                            cancelled = set()
                        cancelled.add(other)
                obj = ("task", other)
            elif kind == BLOCK:
                if len(b) == 3:  # a select: every case it waits on
                    if not touched:
                        touched = set()
                    touched.update(_object(item) for item in b[2])
                    obj = None
                else:
                    obj = ("workers", None) if b[1] == "worker" else (b[1], a_)
            elif kind == SPAWN:
                if not woken:
                    woken = set()
                woken.add(a_)
                obj = None
            elif kind in (ACQUIRE, RELEASE):
                obj = (b, a_)
            elif kind == SLEEP:
                obj = ("timer", b)
            elif kind in _WORKER_KINDS:
                obj = ("workers", None)
            elif kind == EVENT:
                obj = ("host events", None)
            else:  # step, wake, timer, choose, create ...: only whom it woke
                obj = None
            if other != task and other:
                if not woken:
                    woken = set()
                woken.add(other)
            if obj is not None:
                if not touched:
                    touched = set()
                touched.add(obj)
        if next_read == j:
            if not touched:
                touched = set()
            while r < n_reads and reads[r][0] == j:
                touched.add(reads[r][1])
                r += 1
            next_read = reads[r][0] if r < n_reads else n
        # -- its races
        if j in barriers:
            floor = latest[:]
        clock = task_clock.get(task, nothing)
        clock = list(map(max, clock, floor)) if floor is not None else clock[:]
        # Python state: a step that touches no VM object, or ends a task that never
        # touched one, may share plain Python state with any task
        wild = not touched or (
            task not in uses_vm and len(touched) == 1 and ("task", task) in touched
        )
        if cancelled:  # a cancel takes a task off what it waits on: it touches that too
            touched = set(touched).union(*(last_touched.get(p, ()) for p in cancelled))
        if wild:  # touches no VM object: it may share Python state with any task
            racing = [i for t, i in last_step_of.items() if t != task and clock[t] < i]
        else:
            uses_vm.add(task)
            conflicts = [last_access[obj] for obj in touched if obj in last_access]
            conflicts.extend(i for t, i in last_wildcard_of.items() if t != task)
            racing = [i for i in conflicts if clock[owner[i]] < i and owner[i] != task]
        for i in racing:
            races.append((i, task))
            clock = list(map(max, clock, step_clock[i]))
        clock[task] = j
        latest[task] = j
        step_clock.append(clock)
        task_clock[task] = clock
        for obj in touched:
            last_access[obj] = j
        if wild:
            last_wildcard_of[task] = j
        last_step_of[task] = j
        last_touched[task] = touched
        for p in cancelled:  # p's next step is not the one it would have taken
            _unknown_next_step(p, task_clock.get(p, nothing), last_step_of, races)
        for other in woken:  # (a new list: the old one is the clock of other's last step)
            task_clock[other] = list(map(max, task_clock.get(other, nothing), clock))
    for p in recorder.left_behind or ():
        _unknown_next_step(p, task_clock.get(p, nothing), last_step_of, races)
    return races


def _unknown_next_step(
    p: int, clock: list[int], last_step_of: dict[int, int], races: list[tuple[int, int]]
) -> None:
    """Task p's next step is unknown: it races with the last step of every other task
    that is not causally before it."""
    for t, i in last_step_of.items():
        if t != p and clock[t] < i:
            races.append((i, p))


# -- the explorer ---------------------------------------------------------------------------------


def _execute(program: Callable, chooser: _Recorder, options: dict) -> tuple[str, Any, Any]:
    """Run one execution; return (kind, outcome key, (exception or value, vm))."""
    from ._vm import VM

    vm = VM(**options)
    vm._chooser = chooser
    abandon = vm._abandon

    def note_then_abandon(root: Any, reason: str) -> None:
        # the run ended early: note which tasks could still run before they are cancelled
        chooser.left_behind = [task.id for task in vm._ready]
        abandon(root, reason)

    vm._abandon = note_then_abandon
    chooser.left_behind = None
    try:
        value = vm.run(program())
    except Pruned as pruned:
        return "pruned", None, (pruned, vm)
    except Deadlock as error:
        return "deadlock", "Deadlock", (error, vm)
    except StepLimitExceeded as error:
        return "failure", "StepLimitExceeded", (error, vm)
    except NondeterminismError:
        raise
    except Exception as error:
        return "failure", type(error).__name__, (error, vm)
    except Cancelled as error:  # the root ended cancelled: an outcome like any other
        return "failure", "Cancelled", (error, vm)
    finally:
        if chooser.left_behind is None:  # the root ended: the tasks it left ready
            chooser.left_behind = [task.id for task in vm._ready]
        chooser.tasks = vm._next_task
        del vm._abandon
        _dispose(vm)
    return "ok", _outcome_key(value), (value, vm)


def _dispose(vm: Any) -> None:
    """Close the coroutines of the tasks an execution left behind (never started, or
    stopped by a failure, a prune or the step limit).  The VM is dropped next, and
    Python would warn about each one when it is collected.  Their ``finally`` blocks run
    outside the VM, so an ``await`` there fails; that error is of no interest here."""
    for task in list(vm._live.values()):
        try:
            task._coro.close()
        except Exception:  # its finally blocks awaited: see above
            pass


def explore(
    program: Callable,
    *,
    strategy: str = "dfs",
    max_schedules: int = 1000,
    seed: int = 0,
    preemption_bound: int | None = None,
    max_steps: int = 100_000,
    por: bool = True,
    depth: int = 3,
    progress: bool | None = None,
) -> ExploreReport:
    """Run ``program`` under many schedules and report the outcomes, failures and deadlocks.

    ``program`` is a zero-argument callable returning a fresh coroutine (each
    execution gets a fresh VM).  ``strategy`` is ``"dfs"`` (exhaustive, with
    partial-order reduction unless ``por=False``), ``"random"`` or ``"pct"``
    (``depth`` is its bug depth).  ``preemption_bound`` limits the preemptions of a
    schedule (switching away from a task that could go on); ``max_steps`` bounds
    each execution.  A progress bar shows on searches that take more than a second
    (``progress=False`` hides it).

    >>> import counterpoint as cp
    >>> async def main():
    ...     box = {"n": 0}
    ...     async def add():
    ...         seen = box["n"]
    ...         await cp.checkpoint()
    ...         box["n"] = seen + 1
    ...     await cp.par(add(), add())
    ...     return box["n"]
    >>> report = cp.explore(main)
    >>> sorted(report.outcomes), report.exhaustive
    ([1, 2], True)
    """
    if not callable(program):
        discard(program)  # (a refused coroutine must not warn "never awaited")
        raise TypeError(
            "cp.explore() needs a zero-argument callable that returns a fresh coroutine "
            "(such as `main`, not `main()`)"
        )
    if strategy not in ("dfs", "random", "pct"):
        raise ValueError(f"unknown strategy {strategy!r}: choose 'dfs', 'random' or 'pct'")
    if not isinstance(max_schedules, int) or max_schedules < 1:
        raise ValueError(f"max_schedules must be a positive int, got {max_schedules!r}")
    if preemption_bound is not None and (
        not isinstance(preemption_bound, int) or preemption_bound < 0
    ):
        raise ValueError(
            f"preemption_bound must be a non-negative int or None, got {preemption_bound!r}"
        )
    report = ExploreReport(strategy)
    options = {"seed": seed, "max_steps": max_steps}
    found: dict[tuple, dict] = {}  # (kind, outcome, key) -> the best schedule and a count
    name = getattr(program, "__name__", "program")
    bar = _progress_bar(max_schedules, strategy, progress)
    started = time.perf_counter()

    def record(kind: str, outcome: Any, detail: Any, recorder: _Recorder) -> None:
        report.schedules += 1
        if bar is not None:
            bar.update(1)
        if kind == "pruned":
            report.pruned += 1
            return
        report.outcomes[outcome] = report.outcomes.get(outcome, 0) + 1
        if kind in ("deadlock", "failure"):
            error = detail[0]
            message = str(error)
            key = (kind, outcome, _finding_key(error, message))
            entry = found.setdefault(key, {"best": None, "count": 0})
            entry["count"] += 1
            if entry["best"] is None or recorder.preemptions < entry["best"][1]:
                entry["best"] = (recorder.schedule(), recorder.preemptions, message)

    try:
        # Ctrl-C is deferred to a safe point once for the whole search, not per execution
        # (each vm.run keeps a SIGINT handler that is already there)
        with DeferredInterrupts():
            if strategy == "dfs":
                search = _dfs(program, options, max_schedules, preemption_bound, por, record)
                report.exhaustive = search.covered
                if search.bounded:
                    report.assumptions.append(_bounded(preemption_bound))
                if search.reduced:
                    report.assumptions.append(_REDUCED)
            else:
                steps = 1
                if strategy == "pct":
                    probe = _Recorder([], _Default())
                    _execute(program, probe, options)
                    steps = max(1, len(probe.steps))
                for number in range(max_schedules):
                    rng = random.Random(f"counterpoint-explore/{seed}/{number}")
                    chosen = (
                        _Random(rng, preemption_bound)
                        if strategy == "random"
                        else _PCT(rng, depth, steps)
                    )
                    recorder = _Recorder([], chosen)
                    result = _execute(program, recorder, options)
                    if number == 0:
                        _check_rerun(program, options, recorder, result)
                    record(*result, recorder)
                if preemption_bound is not None:
                    report.assumptions.append(_bounded(preemption_bound))
    finally:
        if bar is not None:
            bar.close()
    report.seconds = time.perf_counter() - started
    for (kind, outcome, _), entry in found.items():
        (schedule, preemptions, message), count = entry["best"], entry["count"]
        limit = f", max_steps={max_steps}" if outcome == "StepLimitExceeded" else ""
        finding = Finding(
            outcome,
            message,
            schedule,
            preemptions,
            count,
            f"cp.VM(schedule={schedule!r}, seed={seed}{limit}).run({name}())",
        )
        (report.deadlocks if kind == "deadlock" else report.failures).append(finding)
    return report


def _finding_key(error: BaseException, message: str) -> Any:
    if isinstance(error, Deadlock):  # the same blocked tasks, whatever the tick
        return tuple(error.blocked)
    return message


def _progress_bar(total: int, strategy: str, progress: bool | None) -> Any:
    if progress is False:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return None
    return tqdm(total=total, desc=f"exploring ({strategy})", unit="schedule", delay=1.0)


class _Search(NamedTuple):
    """How a dfs ended: whether it covered the tree, and what its verdict rests on."""

    covered: bool  # the tree was covered (within the bound), no execution cut short
    reduced: bool  # partial-order reduction left out a branch it judged equivalent
    bounded: bool  # the preemption bound left out a branch


class _Entry:
    """A choice point on the dfs stack: what it offered, what was chosen, which options
    are still to try (``backtrack`` - ``done``), and where the journal stood."""

    __slots__ = ("backtrack", "chosen", "done", "kind", "options", "position", "previous", "rows")

    def __init__(self, point: _Point, por: bool, position: int, rows: Any) -> None:
        self.kind = point.kind
        self.options = point.options
        self.previous = point.previous
        sched = point.kind == "sched"
        self.chosen = point.options[point.chosen] if sched else point.chosen
        if por and sched:
            self.backtrack = {self.chosen}
        else:
            self.backtrack = set(point.options) if sched else set(range(len(point.options)))
        self.done = {self.chosen}
        self.position = position
        self.rows = rows

    def preempts(self, option: int) -> bool:
        """Choosing ``option`` here switches away from a task that could have gone on."""
        return self.kind == "sched" and self.previous in self.options and option != self.previous


def _dfs(
    program: Callable,
    options: dict,
    max_schedules: int,
    bound: int | None,
    por: bool,
    record: Callable,
) -> _Search:
    """Depth-first search over choice points.  The tree is covered unless
    ``max_schedules`` stops it or an execution is cut short by ``max_steps`` (its
    subtree is unknown)."""
    stack: list[_Entry] = []
    offers: list[tuple] = []  # (kind, options) of each entry: what a re-run must offer
    choices: list[int] = []  # the index each entry takes: the next execution's prefix
    executions = 0
    cut_short = reduced = bounded = False
    while executions < max_schedules:
        prefix = choices[:]
        recorder = _Recorder(prefix, _DEFAULT, offers)
        result = _execute(program, recorder, options)
        kind, outcome, detail = result
        recorder.check_prefix_used()
        rows = detail[1]._rows
        if prefix:
            _check_prefix(stack[-1], recorder, rows, len(prefix))
        else:
            _check_rerun(program, options, recorder, result)
        executions += 1
        cut_short = cut_short or outcome == "StepLimitExceeded"
        record(kind, outcome, detail, recorder)
        points, positions = recorder.points, recorder.positions
        for k in range(len(stack), len(points)):
            point = points[k]
            stack.append(_Entry(point, por, positions[k], rows))
            offers.append((point.kind, point.options))
            choices.append(point.chosen)
        if por:
            steps = recorder.steps
            for i, task in _races(recorder, detail[1].journal):
                _backtrack(stack, steps[i][2], task)
                if bound is not None:
                    # Bounded POR (Coons, Musuvathi and McKinley, OOPSLA 2013): the
                    # reversal at step i may need a preemption the bound forbids while an
                    # equivalent schedule does not, so also try the task where the run
                    # of steps containing i began, a switch that costs no more.
                    first = i
                    while first > 0 and steps[first - 1][0] == steps[i][0]:
                        first -= 1
                    if first != i:
                        _backtrack(stack, steps[first][2], task)
        # the next prefix: the deepest point with something left to try
        while stack:
            entry = stack[-1]
            remaining = entry.backtrack - entry.done
            if bound is not None and entry.kind == "sched":
                spent = sum(e.preempts(e.chosen) for e in stack[:-1])
                over = {r for r in entry.options if spent + entry.preempts(r) > bound}
                if over:
                    bounded = True  # the bound leaves a branch out here
                    remaining -= over
            if remaining:
                chosen = min(remaining)
                entry.chosen = chosen
                entry.done.add(chosen)
                choices[-1] = entry.options.index(chosen) if entry.kind == "sched" else chosen
                break
            reduced = reduced or len(entry.backtrack) < len(entry.options)
            stack.pop()
            offers.pop()
            choices.pop()
        else:
            return _Search(not cut_short, reduced, bounded)
    return _Search(False, reduced, bounded)


def _backtrack(stack: list[_Entry], point_index: int | None, task: int) -> None:
    """Try ``task`` at choice point ``point_index`` (every option if it was not ready)."""
    if point_index is None:
        return  # no other task was ready
    entry = stack[point_index]
    if task in entry.options:
        entry.backtrack.add(task)
    else:
        entry.backtrack.update(entry.options)


def _describe_row(row: int) -> str:
    task = (row >> TASK_SHIFT) & _TASK_MASK
    return f"a {KIND_NAMES.get(row & _KIND_MASK, '?')!r} record of task {task}"


def _check_prefix(entry: _Entry, recorder: _Recorder, rows: Any, length: int) -> None:
    """A re-run that follows an earlier execution's choices up to the choice point where
    it branches must write the same journal up to there."""
    position = entry.position
    before = entry.rows
    if recorder.positions[length - 1] == position and rows[:position] == before[:position]:
        return
    k = next(
        (k for k in range(min(len(rows), position)) if rows[k] != before[k]),
        min(len(rows), position),
    )
    got = _describe_row(rows[k]) if k < len(rows) else "the end of the journal"
    expected = _describe_row(before[k]) if k < len(before) else "the end of the journal"
    raise NondeterminismError(
        _NOT_DETERMINISTIC.format(
            what=f"wrote {got} at event {k + 1}, where the earlier execution wrote {expected} "
            f"(before choice point {length}, which both reached)"
        )
    )


def _check_rerun(program: Callable, options: dict, first: _Recorder, result: tuple) -> None:
    """Run the first schedule a second time: the same choices must give the same journal
    (and so the same outcome).  Catches the host nondeterminism that changes no choice
    point, such as ``random.random()`` in the result."""
    again = _Recorder(
        [point.chosen for point in first.points],
        _Default(),
        [(point.kind, point.options) for point in first.points],
    )
    second = _execute(program, again, options)
    again.check_prefix_used()
    if result[0] == second[0] and _same_journal(result[2][1].journal, second[2][1].journal):
        return
    raise NondeterminismError(
        f"the program is not deterministic: run twice on the same schedule "
        f"{first.schedule()!r}, it ended {_ending(result)} and then {_ending(second)}. " + _ADVICE
    )


def _same_journal(one: Any, two: Any) -> bool:
    """The two journals have the same canonical encoding (and so the same digest): the
    same records at the same ticks, with the same values as plain data."""
    if (
        one._rows != two._rows
        or one._mark_index != two._mark_index
        or one._mark_tick != two._mark_tick
        or len(one._vals) != len(two._vals)
    ):
        return False
    return all(a is b or plain(a) == plain(b) for a, b in zip(one._vals, two._vals, strict=True))


def _ending(result: tuple) -> str:
    kind, outcome, (detail, _) = result
    if kind == "ok":
        text = repr(detail)
        return f"returning {text if len(text) <= 60 else text[:57] + '...'}"
    if kind == "pruned":
        return "pruned by cp.require()"
    message = str(detail).splitlines()[0] if str(detail) else ""
    return f"raising {outcome}" + (f" ({message[:60]})" if message else "")


# -- choose and require ---------------------------------------------------------------------------


def choose(options: Any) -> Any:
    """A data choice point: one of ``options``, as the schedule decides.

    ``cp.explore`` tries every option; a plain run takes the first (``"fifo"``) or
    a seeded random one (``"random"``); ``cp.VM(schedule=...)`` the schedule's.
    Journaled as a ``choose`` record.

    >>> import counterpoint as cp
    >>> async def main():
    ...     return cp.choose(["tea", "coffee"])
    >>> cp.VM().run(main()), sorted(cp.explore(main).outcomes)
    ('tea', ['coffee', 'tea'])
    """
    from ._journal import A_SHIFT, CHOOSE, MAX_OBJECT_ID

    task = require_task("cp.choose()")
    if not isinstance(options, Sequence):  # (a range, list, tuple or str is used as it is)
        options = list(options)
    count = len(options)
    if not count:
        raise ValueError("cp.choose() needs at least one option")
    if count > MAX_OBJECT_ID:
        raise LimitExceeded(
            f"cp.choose() of {count:,} options: a choice point can have at most "
            f"{MAX_OBJECT_ID:,} (the most a journal record holds); choose in steps, e.g. "
            f"a high part and a low part"
        )
    vm = task._vm
    index = vm._choose(count)
    vm._rows.append(task._k | CHOOSE | count << A_SHIFT)
    vm._vals.append(index)
    return options[index]


def require(condition: Any) -> None:
    """Prune this execution unless ``condition`` holds (raises ``cp.Pruned`` if not).

    >>> import counterpoint as cp
    >>> async def main():
    ...     a, b = cp.choose(range(4)), cp.choose(range(4))
    ...     cp.require(a < b)
    ...     return (a, b)
    >>> report = cp.explore(main)
    >>> len(report.outcomes), report.pruned
    (6, 10)
    """
    require_task("cp.require()")
    if not condition:
        raise Pruned("cp.require() found its condition false: this execution is pruned")
