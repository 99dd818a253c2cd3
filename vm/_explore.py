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

import linecache
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from . import _distributed
from ._errors import (
    Cancelled,
    Deadlock,
    LimitExceeded,
    NondeterminismError,
    StepLimitExceeded,
)
from ._interrupts import DeferredInterrupts
from ._journal import _ATOMIC, plain
from ._reduction import (
    _KIND_MASK,
    STEP,
    dependent,
    describe_row,
    footprint,
    footprints,
    visible_steps,
    with_accesses,
)
from ._report import ExploreReport, Finding, Tally
from ._schedule import (
    Chooser,
    ScheduleChooser,
    decode_schedule,
    encode_schedule,
)
from ._shared import describe, user_frame
from ._sources import Sources
from ._strategies import DEFAULT, FAIRNESS, DepthFirst, Expected, RandomSearch
from ._traps import discard, require_task
from ._where import source_name

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
    previous: int  # id of the task that ran before (sched), else 0; 0 where it gave way (fairness)


class RunOptions(NamedTuple):
    """How each execution runs: the VM's ``seed`` and ``max_steps``; whether to compute
    the steps' ``footprints`` (partial-order reduction needs them) and to keep the
    ``journal``'s ticks and values (the determinism check compares two runs by them);
    the ``invariant`` checked after every step (None: none); the ``fairness`` bound of
    the default decisions (None: off; see :class:`_Recorder`)."""

    seed: int = 0
    max_steps: int = 100_000
    footprints: bool = True
    journal: bool = False
    invariant: Any = None  # fn() checked after every step (explore(..., invariant=fn))
    fairness: int | None = FAIRNESS  # steps without effect before a task yields (None: off)


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
    records' values); with sleep sets (``shared_only=True``), the sleep set in force at
    each choice point past the prefix (``sleeps``: tuples of (task, footprint));
    ``warnings``: the lint's sentences (a read-modify-write of a ``cp.shared``
    location in one step that another task also uses: atomic here, racy under threads);
    a deadlock's ``finished`` tasks (``cp.Deadlock.finished``); last, ``yields``: the
    choice points where the running task was past the fairness bound (see
    :class:`_Recorder`).

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
    sleeps: tuple = ()
    warnings: tuple = ()
    finished: tuple = ()
    yields: tuple[int, ...] = ()

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
    were first seen; a re-run that offers anything else is a NondeterminismError.

    The fairness bound (``fairness``, an int or None), as CHESS's fair scheduler has
    it: a task whose last ``fairness`` steps had no effect (each wrote no journal record
    but its own ``step`` record and no ``cp.shared`` location; reads reported through
    :meth:`observe` or :meth:`access` are no effect) is spinning, and at the next
    choice point where it could go on, the default decision is the next ready task
    after it in ascending id (round-robin), not it.  That choice point is noted in
    ``yields`` and records no preemption (``previous`` 0): the task gave way."""

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
        self.accesses: list[tuple[int, tuple, bool]] = []  # (step, location, write): cp.shared
        self.rmw: list[tuple] = []  # read-modify-writes of a location within one step
        self._read_step = -1  # the step whose cp.shared reads are in _step_reads
        self._step_reads: set = set()
        self.invariant: Any = None  # fn() to check after every step
        self.about_to_run: Any = None  # the only ready task, while the invariant is checked
        self.visible: set | None = None  # what the invariant read (None: not checked yet)
        self._checking = False
        self.fairness: int | None = None  # (set by run_prefix)
        self.idle: dict[int, int] = {}  # task id -> its last steps in a row without effect
        self.effected = False  # the running step wrote a cp.shared location
        self.counted = False  # the last step's effect is counted (at a choice point)
        self.spinner: Any = None  # at a choice point: the task past the bound, if it is ready
        self.yields: list[int] = []  # choice points where the running task had to yield

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
        if self.invariant is not None:
            self.check_invariant()
        previous = self.previous
        went_on = previous in candidates
        default = previous if went_on else front
        ran_before = previous.id if previous else 0
        if self.fairness is not None:
            self._count_effect(vm)
            self.spinner = None
            if went_on and self.idle.get(previous.id, 0) >= self.fairness:
                # spinning: it yields to the next ready task after it (round-robin)
                after = candidates.index(previous) + 1
                default = candidates[after if after < len(candidates) else 0]
                self.spinner = previous
                self.yields.append(len(self.points))
                went_on = False  # (giving way is no preemption, whoever is chosen)
                ran_before = 0
        ids = tuple([task.id for task in candidates])
        self.positions.append(len(vm._rows))
        choice = self._replay("sched", ids) if len(self.points) < self.known else None
        if choice is None:
            choice = self.decide(candidates, default)
        if went_on and candidates[choice] is not previous:
            self.preemptions += 1
        elif self.spinner is not None and candidates[choice] is not previous:
            self.idle[previous.id] = 0  # it gave way: it may spin again when it runs next
        point = ("sched", ids, choice, ran_before)
        self.points.append(_new_point(Point, point))
        return choice

    def decide(self, candidates: list, default: Any) -> int:
        """Past the prefix: the default decision (the task that ran goes on, else the
        front of the ready queue), or the strategy's."""
        index = candidates.index(default)
        return index if self.defaults else self.strategy.pick(self, candidates, index)

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
        if candidates is None and self.invariant is not None:
            self.about_to_run = task  # (taken off the ready queue: if the invariant
            self.check_invariant()  # fails now, it is still a task left behind)
            self.about_to_run = None
        if self.fairness is not None:
            if not self.counted:
                self._count_effect(vm)
            self.counted = False
        point = len(self.points) - 1 if candidates is not None else None
        self.steps.append((task.id, len(vm._rows), point))
        self.previous = task

    def _count_effect(self, vm: Any) -> None:
        """Count the step that just ended towards its task's run of steps without effect."""
        self.counted = True
        if not self.steps:
            return
        task, start, _ = self.steps[-1]
        if self.effected or len(vm._rows) - start > 1:  # more than its own step record
            self.idle[task] = 0
            self.effected = False
        else:
            self.idle[task] = self.idle.get(task, 0) + 1

    def advancing(self, vm: Any) -> None:
        if self.invariant is not None:
            self.check_invariant()
        self.advances.append(len(vm._rows))

    def abandoning(self, vm: Any) -> None:
        # the run ended early: note which tasks could still run before they are cancelled
        self.left_behind = self.still_ready(vm)

    def still_ready(self, vm: Any) -> list[int]:
        """The tasks that could still run: the ready queue, and the task taken off it
        to run next if the invariant failed just before its step began."""
        ready = [task.id for task in vm._ready]
        if self.about_to_run is not None:
            ready.insert(0, self.about_to_run.id)
        return ready

    def observe(self, obj: tuple) -> None:
        if self._checking:  # the invariant reads it: steps that write it are visible
            self.visible.add(obj)
            return
        self.reads.append((len(self.steps) - 1, obj))

    def access(self, location: tuple, write: bool) -> None:
        if self._checking:
            self.visible.add(location)
            return
        step = len(self.steps) - 1
        self.accesses.append((step, location, write))
        if write:
            self.effected = True  # (progress, for the fairness bound)
        if not write:
            if self._read_step != step:
                self._read_step = step
                self._step_reads = set()
            self._step_reads.add(location)
        elif self._read_step == step and location in self._step_reads:
            self._step_reads.discard(location)  # (one warning per read-then-write)
            self.rmw.append((step, location, user_frame()))

    def check_invariant(self) -> None:
        """Check the invariant after a step; a falsy result raises AssertionError (the
        run's failure), an exception propagates as it is."""
        if not self.steps:  # (before the first step: nothing has run yet)
            return
        if self.visible is None:
            self.visible = set()
        self._checking = True
        try:
            holds = self.invariant()
        finally:
            self._checking = False
        if not holds:
            raise invariant_broken(self.invariant, holds, self.previous)


def invariant_broken(invariant: Any, value: Any, task: Any) -> AssertionError:
    """The failure of an ``invariant=`` that returned ``value`` (falsy) after a step of
    ``task``."""
    name = getattr(invariant, "__name__", "invariant")
    after = f"a step of task {task.id} {task.name!r}" if task is not None else "the start"
    return AssertionError(f"the invariant {name}() returned {value!r} after {after}")


class SleepBlocked(BaseException):
    """Every task that could run is asleep: the execution is equivalent to one already
    explored (sleep sets), so it is abandoned here."""


class _SleepRecorder(_Recorder):
    """A :class:`_Recorder` with sleep sets (``shared_only=True``, no preemption bound).

    ``given`` is the sleep set in force at the prefix's last choice point (task id ->
    the footprint of the step it would take, explored from there already).  Past that
    point the recorder keeps it up to date -- a step wakes every sleeper whose step it
    depends on; time advancing wakes them all -- and never picks a sleeping task; when
    every task that could run is asleep the run is redundant (:class:`SleepBlocked`).
    At each choice point past the prefix it notes the sleep set in force (``sleeps``)."""

    def __init__(self, prefix: Sequence[int], then: Any, expected: Sequence, given: Any) -> None:
        super().__init__(prefix, then, expected)
        self.given = dict(given or ())
        self.sleep: dict[int, tuple] = {}
        self.sleeps: list[tuple] = []
        self.starts: list[int] = []  # journal value count where each step began
        self.settled = 0  # steps whose footprint has been applied to the sleep set
        self.read_at = 0  # (positions in reads and accesses already applied)
        self.access_at = 0

    def settle(self, vm: Any, upto: int) -> None:
        """Apply the footprints of the steps before ``upto`` that ended since the last
        call: each wakes the sleepers it depends on."""
        steps = self.steps
        if not self.sleep:
            self.settled = max(self.settled, upto)
            self.read_at, self.access_at = len(self.reads), len(self.accesses)
            return
        rows, values = vm._rows, vm._journal._vals
        reads, accesses = self.reads, self.accesses
        while self.settled < upto and self.sleep:
            j = self.settled
            task, start, point = steps[j]
            end = steps[j + 1][1] if j + 1 < len(steps) else len(rows)
            read = []
            while self.read_at < len(reads) and reads[self.read_at][0] <= j:
                if reads[self.read_at][0] == j:
                    read.append(reads[self.read_at][1])
                self.read_at += 1
            shared = []
            while self.access_at < len(accesses) and accesses[self.access_at][0] <= j:
                if accesses[self.access_at][0] == j:
                    shared.append(accesses[self.access_at])
                self.access_at += 1
            if start < end and rows[start] & _KIND_MASK == STEP:
                start += 1
            step = footprint(task, point, rows[start:end], iter(values[self.starts[j] :]), read)
            step = with_accesses(step, shared)
            self.sleep = {q: other for q, other in self.sleep.items() if not dependent(step, other)}
            self.settled = j + 1
        self.settled = max(self.settled, upto)

    def _activate(self, chosen: int | None) -> None:
        """At the prefix's last choice point: the given sleep set comes into force."""
        self.sleep = {q: step for q, step in self.given.items() if q != chosen}

    def pick(self, vm: Any, candidates: list, front: Any) -> int:
        position = len(self.points)
        last = len(self.prefix) - 1
        if position > last:
            self.settle(vm, len(self.steps))
            self.sleeps.append(tuple(sorted(self.sleep.items())) if self.sleep else ())
            return super().pick(vm, candidates, front)
        choice = super().pick(vm, candidates, front)
        if position == last:
            self.settled = len(self.steps)
            self.read_at, self.access_at = len(self.reads), len(self.accesses)
            self._activate(candidates[choice].id)
        return choice

    def decide(self, candidates: list, default: Any) -> int:
        sleep = self.sleep
        if sleep and default.id in sleep:  # never a sleeper: the first awake task
            default = next((task for task in candidates if task.id not in sleep), None)
            if default is None:
                raise SleepBlocked()
        return super().decide(candidates, default)

    def choose(self, vm: Any, count: int) -> int:
        position = len(self.points)
        last = len(self.prefix) - 1
        if position > last:
            self.settle(vm, len(self.steps) - 1)  # (the running step has not ended)
            self.sleeps.append(tuple(sorted(self.sleep.items())) if self.sleep else ())
            return super().choose(vm, count)
        choice = super().choose(vm, count)
        if position == last:
            self.settled = len(self.steps) - 1
            self.read_at, self.access_at = len(self.reads), len(self.accesses)
            self._activate(None)
        return choice

    def ran(self, vm: Any, task: Any, candidates: list | None) -> None:
        if candidates is None and self.sleep:
            self.settle(vm, len(self.steps))
            if task.id in self.sleep:  # the only task that can run is asleep
                raise SleepBlocked()
        self.starts.append(len(vm._journal._vals))
        super().ran(vm, task, candidates)

    def advancing(self, vm: Any) -> None:
        super().advancing(vm)
        self.sleep = {}  # time advancing orders everything before it before everything after


def run_prefix(
    program: Callable,
    prefix: Sequence[int],
    options: RunOptions | None = None,
    expect: Expected | None = None,
    then: Any = DEFAULT,
    sleep: Any = None,
) -> RunSummary:
    """Run ``program`` once on a fresh VM: the choices of ``prefix`` (indices, as in a
    schedule) at its first choice points, then the decisions of ``then`` (the default
    decisions unless a strategy passes its own); return the :class:`RunSummary`.

    ``sleep`` turns sleep sets on (``shared_only=True``): the sleep set in force at the
    prefix's last choice point, as (task, footprint) pairs (``()`` for the first run).
    A run that finds every task that could run asleep ends early, of kind ``"blocked"``.

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
    chooser = then if then is DEFAULT else then.chooser()
    if sleep is None:
        recorder = _Recorder(prefix, chooser, expected)
    else:
        recorder = _SleepRecorder(prefix, chooser, expected, sleep)
    recorder.invariant = options.invariant
    recorder.fairness = options.fairness
    kind, outcome, detail, vm = _execute(program, recorder, options)
    recorder.check_prefix_used()
    journal = vm._journal
    rows = tuple(journal._rows)
    if expect is not None and expect.position:
        _check_prefix(expect, recorder, rows, len(prefix))
    if options.footprints:
        steps, barriers = footprints(
            journal, recorder.steps, recorder.advances, recorder.reads, recorder.accesses
        )
        if options.invariant is not None:
            steps = visible_steps(steps, recorder.visible)
    else:
        steps, barriers = None, frozenset()
    message = blocked = None
    if kind == "ok" or kind == "blocked":
        message, blocked = "", ()
        if kind == "blocked":  # (every task that could run was asleep: known elsewhere)
            recorder.left_behind = ()
    else:
        message = str(detail)
        detail.__traceback__ = None  # (its frames hold it: a cycle, see _task_exit)
        blocked = tuple(map(tuple, detail.blocked)) if kind == "deadlock" else ()
    finished = tuple(map(tuple, detail.finished)) if kind == "deadlock" else ()
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
        tuple(recorder.sleeps) if sleep is not None else (),
        _warnings(recorder) if recorder.rmw else (),
        finished,
        tuple(recorder.yields),
    )
    return _new_summary(RunSummary, fields)  # (RunSummary(*fields), without a Python call)


def _plain_journal(journal: Any) -> tuple:
    """A journal's ticks and values as plain data: with its rows, what its canonical
    encoding (and so its digest) is made of."""
    atomic = _ATOMIC  # (kept as they are: a big int too, which is just as comparable)
    values = tuple([v if type(v) in atomic else plain(v) for v in journal._vals])
    return tuple(journal._mark_index), tuple(journal._mark_tick), values


_new_summary = tuple.__new__


def _warnings(recorder: _Recorder) -> tuple[str, ...]:
    """The lint: a step that reads a cp.shared location and writes it back with no await
    in between is atomic under the VM (a step runs alone) but is a lost update under
    threads -- worth saying when another task uses the location too."""
    users: dict[tuple, set] = {}
    steps = recorder.steps
    for step, location, _ in recorder.accesses:
        if step >= 0:
            users.setdefault(location, set()).add(steps[step][0])
    said = []
    for step, location, (filename, line, function) in recorder.rmw:
        task = steps[step][0] if step >= 0 else 0
        if not users.get(location, set()) - {task}:
            continue  # no other task uses it: no race, whatever the model
        text = linecache.getline(filename, line).strip()
        where = f"{source_name(filename)}:{line} in {function}()"
        said.append(
            f"{describe(location)} is read and written back in one step ({where}: "
            f"{text or '?'}): atomic here, since no await separates the read from the "
            f"write, but racy under threads, where another thread can write it in between"
        )
    return tuple(dict.fromkeys(said))


def _execute(program: Callable, chooser: _Recorder, options: RunOptions) -> tuple:
    """Run one execution; return (kind, outcome key, exception or value, vm)."""
    from ._vm import VM  # (here: _vm imports this module)

    vm = VM(seed=options.seed, max_steps=options.max_steps, sources=Sources(chooser=chooser))
    chooser.left_behind = None
    try:
        value = vm.run(program())
        if chooser.invariant is not None:
            chooser.check_invariant()  # (after the last step)
    except SleepBlocked:
        return "blocked", None, None, vm
    except Pruned as pruned:
        return "pruned", None, pruned, vm
    except Deadlock as error:
        if chooser.invariant is not None:
            try:
                chooser.check_invariant()  # (a broken invariant comes first)
            except Exception as broken:
                return "failure", type(broken).__name__, broken, vm
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
            chooser.left_behind = chooser.still_ready(vm)
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
        self,
        prefix: Sequence[int],
        expect: Expected | None = None,
        then: Any = DEFAULT,
        sleep: Any = None,
    ) -> RunSummary:
        if not self.first:
            return run_prefix(self.program, prefix, self.options, expect, then, sleep)
        self.first = False
        options = self.options._replace(journal=True)
        first = run_prefix(self.program, prefix, options, expect, then, sleep)
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
    shared_only: bool = False,
    invariant: Callable[[], Any] | None = None,
    fairness: int | None = FAIRNESS,
    stop_on_first: bool = False,
    client: Any = None,
    processes: int | None = None,
) -> ExploreReport:
    """Run ``program`` under many schedules and report the outcomes, failures and deadlocks.

    ``program`` is a zero-argument callable returning a fresh coroutine (each
    execution gets a fresh VM).  ``strategy`` is ``"dfs"`` (exhaustive, with
    partial-order reduction unless ``por=False``), ``"random"`` or ``"pct"``
    (``depth`` is its bug depth).  ``preemption_bound`` limits the preemptions of a
    schedule (switching away from a task that could go on); ``max_steps`` bounds
    each execution.  A progress bar shows on searches that take more than a second
    (``progress=False`` hides it).  ``client`` (a ``distributed.Client``) runs the
    executions on a Dask cluster, ``processes=N`` on N local processes; the report is
    the one this process alone would make (see docs/explore.md).

    ``shared_only=True`` promises that tasks share state only through VM objects and
    ``cp.shared`` wrappers: steps that touch neither commute, and so do reads, which
    lets ``dfs`` run one schedule per distinct order of conflicting accesses.
    ``invariant`` is a zero-argument callable checked after every step: a falsy result
    fails the run with ``AssertionError``, an exception fails it with that exception.
    ``fairness`` is the fairness bound of the default decisions (a task that takes that
    many steps in a row without effect yields to the next ready task; ``None``: off);
    ``stop_on_first`` ends the search at the first failure or deadlock.

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
    if not isinstance(shared_only, bool):
        raise TypeError(
            f"shared_only= is True or False (True promises that tasks share state only "
            f"through VM objects and cp.shared() wrappers), not {shared_only!r}"
        )
    if invariant is not None and not callable(invariant):
        raise TypeError(
            f"invariant= takes a zero-argument callable (checked after every step), not "
            f"{type(invariant).__name__}: pass the function, e.g. invariant=balanced"
        )
    if fairness is not None and (
        not isinstance(fairness, int) or isinstance(fairness, bool) or fairness < 1
    ):
        raise ValueError(
            f"fairness must be a positive int (steps without effect before a spinning task "
            f"yields) or None to switch the bound off, got {fairness!r}"
        )
    if not isinstance(stop_on_first, bool):
        raise TypeError(f"stop_on_first is True or False, not {stop_on_first!r}")
    if strategy == "dfs":
        search: Any = DepthFirst(max_schedules, preemption_bound, por, bool(shared_only))
    else:
        search = RandomSearch(strategy, seed, max_schedules, preemption_bound, depth)
    footprints = strategy == "dfs" and por
    options = RunOptions(seed, max_steps, footprints, invariant=invariant, fairness=fairness)
    cluster = _distributed.resolve(client, processes)
    if cluster is None:
        run: Any = _Checked(program, options)
    else:
        run = _distributed.master(cluster, program, options, search)
    tally = Tally()
    bar = _progress_bar(max_schedules, strategy, progress)
    started = time.perf_counter()
    try:
        # Ctrl-C is deferred to a safe point once for the whole search, not per execution
        # (each vm.run keeps a SIGINT handler that is already there)
        with DeferredInterrupts():
            if isinstance(run, _distributed.Subtrees):  # (dfs on workers: folded per subtree)
                run.explore(tally, bar, stop_on_first)
            else:
                for summary in search.runs(run):
                    tally.add(summary)
                    if bar is not None:
                        bar.update(1)
                    if stop_on_first and tally.first_finding is not None:
                        break  # (the search's verdict stays "not covered")
    finally:
        if bar is not None:
            bar.close()
        if cluster is not None:
            run.close()
    name = getattr(program, "__name__", "program")
    seconds = time.perf_counter() - started
    report = tally.report(
        strategy,
        search.verdict,
        preemption_bound,
        seconds,
        (seed, max_steps, name),
        shared_only=bool(shared_only) and strategy == "dfs" and por,
        invariant=invariant is not None,
    )
    report.stopped_at_first = stop_on_first and tally.first_finding is not None
    if tally.first_finding_clock is not None:
        report.first_finding_seconds = tally.first_finding_clock - started
    report._explored(program, invariant)
    return report


def _progress_bar(total: int, strategy: str, progress: bool | None) -> Any:
    if progress is False:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return None
    if sys.platform == "emscripten":  # (no threads in the browser: no monitor thread)
        tqdm.monitor_interval = 0
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
    """Assume ``condition``: prune this execution unless it holds (raises ``cp.Pruned``).

    An assumption, not an assertion: ``cp.explore`` leaves a pruned execution out --
    counted in ``report.pruned``, in no outcome, never a finding -- where a false
    ``assert`` would be a failure with a replay line.  Use it for the inputs and
    environments the program is not meant to handle; use ``assert`` for what must hold
    in every interleaving (docs/explore.md, "cp.require: an assumption").

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
