"""Search strategies: which schedule prefixes to run, in what order.

A strategy never runs the program itself: it is given ``run(prefix, expect, then)``,
which runs one schedule prefix and returns a plain
:class:`~counterpoint._explore.RunSummary`, and it yields each summary it gets.  What
happens past the prefix is ``then``: plain data (:class:`Default`, :class:`Random`,
:class:`PCT`) that makes a fresh chooser for each run.

``"dfs"``
    Depth-first search of the choice tree (a stack of :class:`Frame`), with dynamic
    partial-order reduction (:mod:`._reduction`): after each execution, pairs of
    dependent steps of different tasks that were not causally ordered are found, and
    only then is the other order scheduled.  ``por=False`` explores every interleaving.
``"random"``
    Uniformly random choices, seeded.
``"pct"``
    Probabilistic concurrency testing (Burckhardt et al., 2010): random task
    priorities with ``depth - 1`` random priority-change points; finds a bug of depth d
    with probability at least 1 / (n * k**(d-1)).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from ._reduction import Backtracking, source_sets


class Verdict(NamedTuple):
    """How a search ended: whether it covered the tree, and what that rests on."""

    covered: bool  # the tree was covered (within the bound), no execution cut short
    reduced: bool  # partial-order reduction left out a branch it judged equivalent
    bounded: bool  # the preemption bound left out (or may have left out) a branch


# -- past the prefix: who decides -----------------------------------------------------------------

FAIRNESS = 8  # the default fairness bound: steps without effect before a task yields


class Default(NamedTuple):
    """The default decisions: the task that just ran goes on, ``cp.choose`` takes 0."""

    def chooser(self) -> Default:
        return self

    def pick(self, recorder: Any, candidates: list, default: int) -> int:
        return default

    def choose(self, recorder: Any, count: int) -> int:
        return 0


DEFAULT = Default()


class Random(NamedTuple):
    """Uniformly random choices from ``random.Random(seed)``; once a schedule has
    ``bound`` preemptions, the default decisions."""

    seed: str
    bound: int | None

    def chooser(self) -> _RandomChooser:
        return _RandomChooser(random.Random(self.seed), self.bound)


class _RandomChooser:
    def __init__(self, rng: random.Random, bound: int | None) -> None:
        self.rng = rng
        self.bound = bound

    def pick(self, recorder: Any, candidates: list, default: int) -> int:
        if self.bound is not None and recorder.preemptions >= self.bound:
            return default
        return self.rng.randrange(len(candidates))

    def choose(self, recorder: Any, count: int) -> int:
        return self.rng.randrange(count)


class PCT(NamedTuple):
    """PCT choices from ``random.Random(seed)``: bug depth ``depth``, for programs of
    about ``steps`` steps."""

    seed: str
    depth: int
    steps: int

    def chooser(self) -> _PCTChooser:
        return _PCTChooser(random.Random(self.seed), self.depth, self.steps)


class _PCTChooser:
    """Random priorities; at d-1 random steps the running task drops to a low priority."""

    def __init__(self, rng: random.Random, depth: int, steps: int) -> None:
        self.rng = rng
        self.priority: dict[int, float] = {}
        points = rng.sample(range(1, steps + 1), min(depth - 1, steps))
        self.changes = {step: depth - i for i, step in enumerate(points)}
        self.depth = depth

    def pick(self, recorder: Any, candidates: list, default: int) -> int:
        step = len(recorder.steps)
        previous = recorder.previous
        if step in self.changes and previous is not None:
            self.priority[previous.id] = self.changes[step] / (self.depth + 1)  # low
        for task in candidates:
            if task.id not in self.priority:
                self.priority[task.id] = self.depth + self.rng.random()  # high, distinct
        spinner = recorder.spinner  # past the fairness bound: the others go first
        return max(
            range(len(candidates)),
            key=lambda i: (candidates[i] is not spinner, self.priority[candidates[i].id]),
        )

    def choose(self, recorder: Any, count: int) -> int:
        return self.rng.randrange(count)


# -- the strategies -------------------------------------------------------------------------------

Run = Callable[..., Any]  # run(prefix, expect=None, then=DEFAULT) -> RunSummary


class RandomSearch:
    """``max_schedules`` runs, each with its own seeded random (or PCT) choices."""

    def __init__(self, strategy: str, seed: int, max_schedules: int, bound: int | None, depth: int):
        self.strategy = strategy
        self.seed = seed
        self.max_schedules = max_schedules
        self.bound = bound
        self.depth = depth
        self.verdict = Verdict(False, False, bound is not None)

    def runs(self, run: Run) -> Iterator[Any]:
        steps = 1
        if self.strategy == "pct":  # a first run to learn how many steps a run takes
            steps = max(1, run([]).steps)
        for then in self.thens(steps):
            yield run([], then=then)

    def thens(self, steps: int, start: int = 0, stop: int | None = None) -> Iterator[Any]:
        """The choosers of runs number ``start`` to ``stop`` (each has its own seed);
        ``steps`` is PCT's idea of a run's length."""
        stop = self.max_schedules if stop is None else stop
        for number in range(start, stop):
            seed = f"counterpoint-explore/{self.seed}/{number}"
            if self.strategy == "random":
                yield Random(seed, self.bound)
            else:
                yield PCT(seed, self.depth, steps)


@dataclass(slots=True)
class Frame:
    """A choice point on the dfs stack: what it offered, what is chosen now, which
    options are still to try (``backtrack`` - ``done``), and the journal rows of the run
    that reached it, with ``position``, where the journal stood when it was offered."""

    kind: str  # "sched" or "data"
    options: tuple  # task ids (sched) or range(count) as a tuple (data)
    previous: int  # the task that ran before (sched), else 0
    chosen: int  # a task id (sched) or an option index (data)
    backtrack: set[int]
    done: set[int]
    position: int
    rows: Any
    sleep: dict | None = None  # sleep sets: asleep here, task -> the step it would take
    took: dict | None = None  # sleep sets: the step each task tried here took

    @classmethod
    def reached(cls, point: Any, por: bool, position: int, rows: Any) -> Frame:
        sched = point.kind == "sched"
        chosen = point.options[point.chosen] if sched else point.chosen
        if por and sched:
            backtrack = {chosen}
        else:
            backtrack = set(point.options) if sched else set(range(len(point.options)))
        return cls(
            point.kind, point.options, point.previous, chosen, backtrack, {chosen}, position, rows
        )

    def index(self) -> int:
        """The index of the chosen option: what the schedule says here."""
        return self.options.index(self.chosen) if self.kind == "sched" else self.chosen

    def preempts(self, option: int) -> bool:
        """Choosing ``option`` here switches away from a task that could have gone on."""
        return self.kind == "sched" and self.previous in self.options and option != self.previous

    def add(self, task: int) -> None:
        """Try ``task`` here (every option, if it was not ready here)."""
        if task in self.options:
            self.backtrack.add(task)
        else:
            self.backtrack.update(self.options)


class Expected(NamedTuple):
    """What a re-run that follows an earlier execution's choices must repeat: the
    ``offers`` (kind, options) of its choice points, and the journal ``rows`` up to
    ``position``, where the last of them was offered."""

    offers: Sequence[tuple]
    rows: Any = ()
    position: int = 0


_new_expected = tuple.__new__  # (Expected(...) without a Python call: one per run)


@dataclass(slots=True)
class Cursor:
    """Where a depth-first search stands when it is about to run ``choices``: its
    ``stack`` of frames (with the ``offers`` and ``choices`` of each), what the run
    must repeat (``expect``) and, with sleep sets, the ``sleep`` set it starts its
    branch with.  A search started from a cursor explores only the subtree below its
    first ``floor`` frames: it ends when it would go back up to them.  (The
    distributed search, :mod:`._distributed`, ships cursors to workers.)"""

    stack: list[Frame]
    offers: list[tuple]
    choices: list[int]
    expect: Expected | None = None
    floor: int = 0
    sleep: tuple | None = None


class DepthFirst:
    """Depth-first search over choice points.  The tree is covered unless
    ``max_schedules`` stops it or an execution is cut short by ``max_steps`` (its
    subtree is unknown).

    With ``shared_only`` (all shared state is VM objects or ``cp.shared`` locations),
    steps that touch nothing shared commute and so do reads; without a preemption
    bound the search is then source-DPOR with sleep sets (Abdulla et al., "Source
    Sets", JACM 2017): each run is given the sleep set at its prefix's end, a race adds
    one of its initials at its choice point only when none is there (or asleep)
    already, and a run whose every runnable task is asleep is abandoned (kind
    ``"blocked"``: equivalent to one already run; not counted as a schedule)."""

    def __init__(self, max_schedules: int, bound: int | None, por: bool, shared_only: bool = False):
        self.max_schedules = max_schedules
        self.bound = bound
        self.por = por
        self.shared_only = shared_only and por
        self.sleepy = self.shared_only and bound is None
        self.verdict = Verdict(False, False, False)
        self.backtrack_points = Backtracking()  # (a distributed search ships these two)
        self.source_sets = source_sets
        self.at = Cursor([], [], [])

    def runs(self, run: Run, at: Cursor | None = None) -> Iterator[Any]:
        """Run the search (from cursor ``at``, which the search keeps up to date, or
        from the root), yielding each summary.  A ``run`` that returns None pauses
        the search before that run (``at`` stands there; ``verdict`` holds what the
        search has found so far)."""
        at = self.at = Cursor([], [], []) if at is None else at
        stack = at.stack
        offers = at.offers  # (kind, options) of each frame: what a re-run must offer
        choices = at.choices  # the index each frame takes: the next execution's prefix
        floor, bound, por, sleepy = at.floor, self.bound, self.por, self.sleepy
        cut_short = reduced = bounded = False
        expect = at.expect
        sleep: tuple | None = (at.sleep or ()) if sleepy else None
        count = 0
        while count < self.max_schedules:
            summary = run(choices[:], expect, sleep=sleep) if sleepy else run(choices[:], expect)
            if summary is None:  # (a distributed job's time is up: it stops before this run)
                self.verdict = Verdict(False, reduced, bounded)
                return
            if summary.kind == "blocked":
                reduced = True
            else:
                count += 1
            cut_short = cut_short or summary.outcome == "StepLimitExceeded"
            yield summary
            points, positions, rows = summary.points, summary.positions, summary.rows
            known = len(stack)
            for k in range(known, len(points)):
                point = points[k]
                stack.append(Frame.reached(point, por, positions[k], rows))
                offers.append((point.kind, point.options))
                choices.append(point.chosen)
            if sleepy:
                _note_sleep(stack, summary, known)
                for point, initials, task in self.source_sets(summary):
                    if point is not None:
                        _add_source(stack[point], initials, task)
            elif por:
                points_ = self.backtrack_points(summary, bound is not None, self.shared_only)
                for point, task in points_:
                    if point is not None:
                        stack[point].add(task)
            # the next prefix: the deepest point with something left to try
            while len(stack) > floor:
                frame = stack[-1]
                remaining = frame.backtrack - frame.done
                if sleepy and frame.sleep:
                    remaining = remaining.difference(frame.sleep)
                if bound is not None and frame.kind == "sched":
                    spent = sum(f.preempts(f.chosen) for f in stack[:-1])
                    over = {r for r in frame.options if spent + frame.preempts(r) > bound}
                    if over:
                        bounded = True  # the bound leaves a branch out here
                        remaining -= over
                if remaining:
                    frame.chosen = min(remaining)
                    frame.done.add(frame.chosen)
                    choices[-1] = frame.index()
                    break
                reduced = reduced or len(frame.backtrack) < len(frame.options)
                stack.pop()
                offers.pop()
                choices.pop()
            else:
                self.verdict = Verdict(not cut_short, reduced, bounded)
                return
            expect = at.expect = _new_expected(Expected, (offers, frame.rows, frame.position))
            if sleepy:
                sleep = at.sleep = _sleep_for(frame)
        self.verdict = Verdict(False, reduced, bounded)


def _note_sleep(stack: list[Frame], summary: Any, known: int) -> None:
    """Sleep-set bookkeeping after a run whose prefix reached ``known`` frames: the
    sleep set at each new frame, and the step each frame's chosen task took."""
    took = {step[1]: step for step in summary.footprints if step[1] is not None}
    sleeps = summary.sleeps
    for k in range(max(known - 1, 0), len(stack)):
        frame = stack[k]
        if k >= known:
            frame.sleep = dict(sleeps[k - known]) if k - known < len(sleeps) else {}
        if frame.kind == "sched" and k in took:
            if frame.took is None:
                frame.took = {}
            frame.took[frame.chosen] = took[k]


def _add_source(frame: Frame, initials: frozenset | None, task: int) -> None:
    """A race reversed at ``frame``: one of its ``initials`` must be tried there, unless
    one is already to be tried, was tried, or is asleep there (explored elsewhere)."""
    if initials is None:  # an unknown next step: that very task
        frame.add(task)
        return
    asleep = frame.sleep or ()
    if not initials.isdisjoint(frame.backtrack) or not initials.isdisjoint(asleep):
        return
    ready = initials.intersection(frame.options)
    if ready:
        frame.backtrack.add(min(ready))
    else:
        frame.backtrack.update(frame.options)


def _sleep_for(frame: Frame) -> tuple:
    """The sleep set the next run starts its branch at ``frame`` with: what sleeps
    there, and (at a scheduling choice) every sibling tried before, with its step."""
    sleep = dict(frame.sleep or ())
    if frame.kind == "sched" and frame.took:
        for task in frame.done:
            if task != frame.chosen and task in frame.took:
                sleep[task] = frame.took[task]
    return tuple(sorted(sleep.items()))
