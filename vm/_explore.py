"""Schedule exploration: model checking by re-execution.

``explore`` runs a program many times, each time under a different schedule (see
:mod:`._schedule`), and reports what happened (:mod:`._report`).  The pieces:

* the unit of work, :func:`run_prefix`: run the program once, following a schedule
  prefix and then a strategy's choices, and return a :class:`RunSummary` -- plain,
  picklable data (choice points, step footprints, outcome, schedule) that is the same
  in any process;
* a strategy (:mod:`._strategies`: ``"dfs"`` with partial-order reduction from
  :mod:`._reduction`, ``"random"``, ``"pct"``) decides which prefixes to run;
* :class:`~._report.Tally` folds the summaries into an :class:`ExploreReport`.

Also here: ``cp.choose`` and ``cp.require``, and the checks that the program is
deterministic given its choices (``cp.NondeterminismError`` otherwise).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from ._errors import (
    Cancelled,
    Deadlock,
    LimitExceeded,
    NondeterminismError,
    StepLimitExceeded,
)
from ._interrupts import DeferredInterrupts
from ._journal import _ATOMIC, plain
from ._reduction import describe_row, footprints
from ._report import ExploreReport, Finding, Tally
from ._schedule import (
    Chooser,
    ScheduleChooser,
    decode_schedule,
    encode_schedule,
)
from ._sources import Sources
from ._strategies import DEFAULT, DepthFirst, Expected, RandomSearch
from ._traps import discard, require_task

__all__ = [
    "Chooser",
    "ExploreReport",
    "Finding",
    "Pruned",
    "RunOptions",
    "RunSummary",
    "ScheduleChooser",
    "choose",
    "decode_schedule",
    "encode_schedule",
    "explore",
    "require",
    "run_prefix",
]


class Pruned(BaseException):
    """Raised by ``cp.require(False)``: this execution is not one the program wants.

    ``explore`` counts it as pruned (not an outcome); a plain ``vm.run`` raises it.
    """


# -- the unit of work: run one schedule prefix ----------------------------------------------------


class Point(NamedTuple):
    """A choice point of one execution, as plain data."""

    kind: str  # "sched" or "data"
    options: tuple  # task ids (sched) or range(count) as a tuple (data)
    chosen: int  # the index taken
    previous: int  # id of the task that ran before (sched), else 0


class RunOptions(NamedTuple):
    """How each execution runs: the VM's ``seed`` and ``max_steps``; whether to compute
    the steps' ``footprints`` (partial-order reduction needs them) and to keep the
    ``journal``'s ticks and values (the determinism check compares two runs by them)."""

    seed: int = 0
    max_steps: int = 100_000
    footprints: bool = True
    journal: bool = False


class RunSummary(NamedTuple):
    """One execution, as plain data that pickles and is equal in any process: its choice
    ``points`` (and so its ``schedule``), how many ``steps`` it took and (when
    asked for) the ``footprints`` of each (tuples of the fields of
    :class:`~._reduction.Step`), how it ended
    (``kind``: ``"ok"``, ``"failure"``, ``"deadlock"`` or ``"pruned"``;
    ``outcome``: the return value, its repr if unhashable, or the exception's type
    name; ``message``: the exception's text; ``blocked``: a deadlock's blocked tasks),
    its ``preemptions``, and what the search needs to go on from it: the journal length
    at each choice point (``positions``), the packed journal ``rows``, the steps that
    begin after virtual time advanced (``barriers``), the tasks still ready at the end
    (``left_behind``), how many task ids it used (``tasks``), and, when asked for, the
    rest of the ``journal`` as plain data: (where time advanced, to which tick, the
    records' values).

    The return value is the outcome itself when it is hashable (a report counts
    outcomes by it), so a summary pickles when the program's results do."""

    points: tuple[Point, ...]
    steps: int
    footprints: tuple[tuple, ...] | None
    kind: str
    outcome: Any
    message: str
    blocked: tuple
    preemptions: int
    positions: tuple[int, ...]
    rows: tuple[int, ...]
    barriers: frozenset
    left_behind: tuple[int, ...]
    tasks: int
    journal: tuple | None

    @property
    def schedule(self) -> str:
        """The choices this run made, as a schedule string (``cp1:...``)."""
        return encode_schedule([point.chosen for point in self.points])


_new_point = tuple.__new__  # (Point(...) without a Python call: one per choice point)

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
    """Follows a prefix of choices, then ``then`` (a strategy's chooser); records the
    choice points and steps.

    ``expected`` holds the (kind, options) the prefix's choice points had when they
    were first seen; a re-run that offers anything else is a NondeterminismError."""

    def __init__(self, prefix: Sequence[int], then: Any, expected: Sequence = ()) -> None:
        super().__init__()
        self.prefix = prefix
        self.expected = expected
        self.strategy = then
        self.defaults = then is DEFAULT  # past the prefix, the default decisions
        self.points: list[Point] = []
        self.steps: list[tuple] = []  # (task id, journal position, choice point index)
        self.advances: list[int] = []
        self.reads: list[tuple[int, tuple]] = []  # (step index, object) read without a record
        self.positions: list[int] = []  # journal length when each choice point was offered
        self.known = max(len(prefix), len(expected))  # points decided by the past
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
            choice = default if self.defaults else self.strategy.pick(self, candidates, default)
        if went_on and candidates[choice] is not previous:
            self.preemptions += 1
        point = ("sched", ids, choice, previous.id if previous else 0)
        self.points.append(_new_point(Point, point))
        return choice

    def choose(self, vm: Any, count: int) -> int:
        options = tuple(range(count))
        self.positions.append(len(vm._rows))
        choice = self._replay("data", options) if len(self.points) < self.known else None
        if choice is None:
            choice = self.strategy.choose(self, count)
        self.points.append(_new_point(Point, ("data", options, choice, 0)))
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

    def abandoning(self, vm: Any) -> None:
        # the run ended early: note which tasks could still run before they are cancelled
        self.left_behind = [task.id for task in vm._ready]

    def observe(self, obj: tuple) -> None:
        self.reads.append((len(self.steps) - 1, obj))


def run_prefix(
    program: Callable,
    prefix: Sequence[int],
    options: RunOptions | None = None,
    expect: Expected | None = None,
    then: Any = DEFAULT,
) -> RunSummary:
    """Run ``program`` once on a fresh VM: the choices of ``prefix`` (indices, as in a
    schedule) at its first choice points, then the decisions of ``then`` (the default
    decisions unless a strategy passes its own); return the :class:`RunSummary`.

    ``expect`` is what an earlier execution that took the same choices saw (its
    choice points' offers and journal rows): a run that does not repeat it raises
    ``cp.NondeterminismError``, as does one that ends before the prefix is used up.

    >>> import counterpoint as cp
    >>> from counterpoint._explore import run_prefix
    >>> async def main():
    ...     return cp.choose("ab") + cp.choose("xy")
    >>> summary = run_prefix(main, [1])
    >>> summary.schedule, summary.outcome, [point.options for point in summary.points]
    ('cp1:1101', 'bx', [(0, 1), (0, 1)])
    """
    if options is None:
        options = RunOptions()
    expected = expect.offers if expect is not None else ()
    recorder = _Recorder(prefix, then if then is DEFAULT else then.chooser(), expected)
    kind, outcome, detail, vm = _execute(program, recorder, options)
    recorder.check_prefix_used()
    journal = vm._journal
    rows = tuple(journal._rows)
    if expect is not None and expect.position:
        _check_prefix(expect, recorder, rows, len(prefix))
    if options.footprints:
        steps, barriers = footprints(journal, recorder.steps, recorder.advances, recorder.reads)
    else:
        steps, barriers = None, frozenset()
    message = blocked = None
    if kind == "ok":
        message, blocked = "", ()
    else:
        message = str(detail)
        detail.__traceback__ = None  # (its frames hold it: a cycle, see _task_exit)
        blocked = tuple(map(tuple, detail.blocked)) if kind == "deadlock" else ()
    fields = (
        tuple(recorder.points),
        len(recorder.steps),
        steps,
        kind,
        outcome,
        message,
        blocked,
        recorder.preemptions,
        tuple(recorder.positions),
        rows,
        barriers,
        tuple(recorder.left_behind or ()),
        recorder.tasks,
        _plain_journal(journal) if options.journal else None,
    )
    return _new_summary(RunSummary, fields)  # (RunSummary(*fields), without a Python call)


def _plain_journal(journal: Any) -> tuple:
    """A journal's ticks and values as plain data: with its rows, what its canonical
    encoding (and so its digest) is made of."""
    atomic = _ATOMIC  # (kept as they are: a big int too, which is just as comparable)
    values = tuple([v if type(v) in atomic else plain(v) for v in journal._vals])
    return tuple(journal._mark_index), tuple(journal._mark_tick), values


_new_summary = tuple.__new__


def _execute(program: Callable, chooser: _Recorder, options: RunOptions) -> tuple:
    """Run one execution; return (kind, outcome key, exception or value, vm)."""
    from ._vm import VM  # (here: _vm imports this module)

    vm = VM(seed=options.seed, max_steps=options.max_steps, sources=Sources(chooser=chooser))
    chooser.left_behind = None
    try:
        value = vm.run(program())
    except Pruned as pruned:
        return "pruned", None, pruned, vm
    except Deadlock as error:
        return "deadlock", "Deadlock", error, vm
    except StepLimitExceeded as error:
        return "failure", "StepLimitExceeded", error, vm
    except NondeterminismError:
        raise
    except Exception as error:
        return "failure", type(error).__name__, error, vm
    except Cancelled as error:  # the root ended cancelled: an outcome like any other
        return "failure", "Cancelled", error, vm
    finally:
        if chooser.left_behind is None:  # the root ended: the tasks it left ready
            chooser.left_behind = [task.id for task in vm._ready]
        chooser.tasks = vm._next_task
        vm._dispose()
        # (what points back at the VM, or holds a task that does: see _task_exit)
        vm._workers = vm.events = vm._chooser = vm._kept = None
    return "ok", _outcome_key(value), value, vm


def _outcome_key(value: Any) -> Any:
    try:
        hash(value)
    except TypeError:
        return repr(value)
    return value


# -- determinism checks ---------------------------------------------------------------------------


def _check_prefix(expect: Expected, recorder: _Recorder, rows: Any, length: int) -> None:
    """A re-run that follows an earlier execution's choices up to the choice point where
    it branches must write the same journal up to there."""
    position = expect.position
    before = expect.rows
    if recorder.positions[length - 1] == position and rows[:position] == before[:position]:
        return
    k = next(
        (k for k in range(min(len(rows), position)) if rows[k] != before[k]),
        min(len(rows), position),
    )
    got = describe_row(rows[k]) if k < len(rows) else "the end of the journal"
    expected = describe_row(before[k]) if k < len(before) else "the end of the journal"
    raise NondeterminismError(
        _NOT_DETERMINISTIC.format(
            what=f"wrote {got} at event {k + 1}, where the earlier execution wrote {expected} "
            f"(before choice point {length}, which both reached)"
        )
    )


class _Checked:
    """``run`` for a strategy: :func:`run_prefix` with the search's options; the first
    run is made twice, and the two must write the same journal (and so end the same).
    Catches the host nondeterminism that changes no choice point, such as
    ``random.random()`` in the result."""

    def __init__(self, program: Callable, options: RunOptions) -> None:
        self.program = program
        self.options = options
        self.first = True

    def __call__(
        self, prefix: Sequence[int], expect: Expected | None = None, then: Any = DEFAULT
    ) -> RunSummary:
        if not self.first:
            return run_prefix(self.program, prefix, self.options, expect, then)
        self.first = False
        options = self.options._replace(journal=True)
        first = run_prefix(self.program, prefix, options, expect, then)
        again = run_prefix(
            self.program,
            [point.chosen for point in first.points],
            options._replace(footprints=False),  # (only compared: no search goes on from it)
            Expected(tuple((point.kind, point.options) for point in first.points)),
        )
        if (first.kind, first.rows, first.journal) != (again.kind, again.rows, again.journal):
            raise NondeterminismError(
                f"the program is not deterministic: run twice on the same schedule "
                f"{first.schedule!r}, it ended {_ending(first)} and then {_ending(again)}. "
                + _ADVICE
            )
        return first


def _ending(summary: RunSummary) -> str:
    if summary.kind == "ok":
        text = repr(summary.outcome)
        return f"returning {text if len(text) <= 60 else text[:57] + '...'}"
    if summary.kind == "pruned":
        return "pruned by cp.require()"
    message = summary.message.splitlines()[0] if summary.message else ""
    return f"raising {summary.outcome}" + (f" ({message[:60]})" if message else "")


# -- explore --------------------------------------------------------------------------------------


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
    if strategy == "dfs":
        search: Any = DepthFirst(max_schedules, preemption_bound, por)
    else:
        search = RandomSearch(strategy, seed, max_schedules, preemption_bound, depth)
    options = RunOptions(seed, max_steps, footprints=strategy == "dfs" and por)
    run = _Checked(program, options)
    tally = Tally()
    bar = _progress_bar(max_schedules, strategy, progress)
    started = time.perf_counter()
    try:
        # Ctrl-C is deferred to a safe point once for the whole search, not per execution
        # (each vm.run keeps a SIGINT handler that is already there)
        with DeferredInterrupts():
            for summary in search.runs(run):
                tally.add(summary)
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    name = getattr(program, "__name__", "program")
    seconds = time.perf_counter() - started
    report = tally.report(
        strategy, search.verdict, preemption_bound, seconds, (seed, max_steps, name)
    )
    if tally.first_finding_clock is not None:
        report.first_finding_seconds = tally.first_finding_clock - started
    report._explored(program)
    return report


def _progress_bar(total: int, strategy: str, progress: bool | None) -> Any:
    if progress is False:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return None
    return tqdm(total=total, desc=f"exploring ({strategy})", unit="schedule", delay=1.0)


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
    from ._journal import CHOOSE, MAX_OBJECT_ID

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
    vm._record(task, CHOOSE, count, index)
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
