"""Dynamic partial-order reduction: what a step touches, which steps race, where to
backtrack.

Everything here reads plain data: :func:`footprint` turns one step's journal records
into its footprint, a plain tuple with the fields of :class:`Step` (the VM objects it
touched, the tasks it woke or cancelled), and
:func:`races` and :func:`backtrack_points` read a run's steps (a
:class:`~counterpoint._explore.RunSummary`), never a VM.

Two steps are *dependent* when they touch the same VM object (channel, lock,
semaphore, event, condition, barrier, task, timer deadline, worker ...), read off the
step's own journal records and the record-free reads the VM reports while exploring
(``event.is_set()``, ``len(channel)`` ...).  A step that touches no VM object at all
(say, shared Python state around an ``await cp.checkpoint()``), or ends a task that
never touched one, is taken to depend on every step, so races on plain Python
variables written that way are explored too.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

from ._journal import (
    A_SHIFT,
    CANCEL,
    KIND_NAMES,
    STEP,
    TASK_SHIFT,
)
from ._kinds import _KIND_MASK, _TASK_MASK, HAS_VALUE, KINDS

_NONE: frozenset = frozenset()


class Step(NamedTuple):
    """The fields of a step's footprint: the task that took it, the index of the choice
    point that picked it (None when no other task was ready), the VM objects it
    ``touched`` (``("channel", 3)``, ``("lock", 2)``, ``("timer", 5)`` ...) and the
    ``cp.shared`` locations it wrote (``("shared", "box", "n")``), the tasks it ``woke``
    or spawned, the other tasks it ``cancelled``, and the ``cp.shared`` locations it only
    ``read`` (reads commute with reads).

    Footprints are plain tuples in this order (``Step._make(t)`` names the fields): the
    reduction reads one per step of every run, and Python unpacks an exact tuple
    fastest."""

    task: int
    point: int | None
    touched: frozenset
    woke: frozenset
    cancelled: frozenset
    read: frozenset = frozenset()


def _object(item: Any) -> tuple:
    """The object named by a select case ("channel 3") or a worker handle."""
    if isinstance(item, str):
        kind, number = item.split()
        return kind, int(number)
    return "workers", None


# How each record kind touches VM objects (the footprint of a record):
_NOTHING = 0  # step, wake, timer, choose, create ...: only whom it woke
_NAMED = 1  # a channel, event, condition or scope, numbered a: (name, a)
_TASK = 2  # a task ending or being cancelled: ("task", its id)
_BLOCK = 3  # waiting: the object waited on (every case of a select)
_SPAWN = 4  # a new task, numbered a: woken, touches nothing
_LOCKING = 5  # acquire or release: (lock kind, a)
_SLEEP = 6  # a timer deadline: ("timer", deadline)
_WORKERS = 7  # the worker pool
_HOST = 8  # the host-event queue
_HOW = [_NOTHING] * 64
_NAME = [""] * 64
_CLASSES = {
    "": _NOTHING,
    "task": _TASK,
    "waited": _BLOCK,
    "spawned": _SPAWN,
    "held": _LOCKING,
    "timer": _SLEEP,
    "workers": _WORKERS,
    "host events": _HOST,
}
for _code, _kind in KINDS.items():  # (what each kind touches is declared with it)
    _HOW[_code] = _CLASSES.get(_kind.touches, _NAMED)
    if _HOW[_code] == _NAMED:
        _NAME[_code] = _kind.touches


def footprint(
    task: int, point: int | None, rows: Sequence[int], values: Iterator, reads: Sequence = ()
) -> tuple:
    """The footprint of one step of ``task``: its journal ``rows`` (packed records, in
    order), ``values`` (an iterator over the values of the records that have one, which
    this consumes) and ``reads`` (VM objects the step read without writing a record).

    This is the one place that says which VM object a record kind touches."""
    touched: set = set(reads)
    woke: set | None = None
    cancelled: set | None = None
    how_of, has_value = _HOW, HAS_VALUE
    for row in rows:
        kind = row & _KIND_MASK
        how = how_of[kind]
        b = next(values) if has_value[kind] else None
        other = (row >> TASK_SHIFT) & _TASK_MASK
        if how:
            a = row >> A_SHIFT
            if how == _NAMED:
                touched.add((_NAME[kind], a))
            elif how == _TASK:
                if kind == CANCEL:
                    if not a:
                        continue  # by the host, ending the run: no part of any step
                    if other != task:
                        if cancelled is None:
                            cancelled = set()
                        cancelled.add(other)
                touched.add(("task", other))
            elif how == _BLOCK:
                if len(b) == 3:  # a select: every case it waits on
                    touched.update(_object(item) for item in b[2])
                else:
                    touched.add(("workers", None) if b[1] == "worker" else (b[1], a))
            elif how == _SPAWN:
                if woke is None:
                    woke = set()
                woke.add(a)
            elif how == _LOCKING:
                touched.add((b, a))
            elif how == _SLEEP:
                touched.add(("timer", b))
            elif how == _WORKERS:
                touched.add(("workers", None))
            else:
                touched.add(("host events", None))
        if other != task and other:
            if woke is None:
                woke = set()
            woke.add(other)
    return (
        task,
        point,
        frozenset(touched) if touched else _NONE,
        frozenset(woke) if woke else _NONE,
        frozenset(cancelled) if cancelled else _NONE,
        _NONE,
    )


def with_accesses(step: tuple, accesses: Sequence) -> tuple:
    """``step`` (a footprint) with its ``cp.shared`` accesses, (step, location, write)
    triples: the locations written join ``touched``, the ones only read ``read``."""
    if not accesses:
        return step
    written = {location for _, location, write in accesses if write}
    read = {location for _, location, write in accesses if not write} - written
    touched = step[2].union(written) if written else step[2]
    return (step[0], step[1], touched, step[3], step[4], frozenset(read) if read else _NONE)


def dependent(a: tuple, b: tuple) -> bool:
    """Whether two steps (footprints) of different tasks do not commute: one writes
    what the other reads or writes, or one cancels or wakes the other's task."""
    touched_a, touched_b = a[2], b[2]
    if touched_a and not (touched_a.isdisjoint(touched_b) and touched_a.isdisjoint(b[5])):
        return True
    if touched_b and not touched_b.isdisjoint(a[5]):
        return True
    return b[0] in a[3] or b[0] in a[4] or a[0] in b[3] or a[0] in b[4]


def visible_steps(steps: tuple, visible: set | None) -> tuple:
    """With ``invariant=``: the steps that write what the invariant read are *visible*
    and all depend on each other (so every order of them is explored: the invariant's
    value can only change there).  An invariant that read nothing the VM sees (plain
    Python state) makes every step visible."""
    mark = ("invariant",)
    out = []
    for step in steps:
        touched = step[2]
        if not visible or not touched.isdisjoint(visible):
            step = (step[0], step[1], touched.union((mark,)), *step[3:])
        out.append(step)
    return tuple(out)


def footprints(
    journal: Any,
    steps: list[tuple],
    advances: list[int],
    reads: list[tuple[int, tuple]],
    accesses: Sequence[tuple[int, tuple, bool]] = (),
) -> tuple[tuple[tuple, ...], frozenset[int]]:
    """The footprint (fields of :class:`Step`) of every step of an execution, and the
    steps that begin after virtual time advanced (global barriers).

    ``steps`` holds (task, journal position where the step began, choice point),
    ``advances`` the journal positions where time advanced, ``reads`` (step index,
    object) for each record-free read, ``accesses`` (step index, location, write) for
    each ``cp.shared`` access.  Step j's records run from its start to the next
    step's start, or to the moment time advanced, whichever comes first (records of
    time advancing belong to no step)."""
    n = len(steps)
    if not n:
        return (), _NONE
    rows, has_value = journal._rows, HAS_VALUE
    total = len(rows)
    count = len(advances)
    barriers: frozenset[int] = _NONE
    if count:
        starts = [start for _, start, _ in steps]
        barriers = frozenset(bisect_left(starts, position) for position in advances)
    first = steps[0][1]
    values = iter(journal._vals)
    for row in rows[:first]:  # records before the first step
        if has_value[row & _KIND_MASK]:
            next(values)
    by_step: dict[int, list] = {}  # (most runs read nothing without a record)
    for j, obj in reads:
        if j >= 0:
            by_step.setdefault(j, []).append(obj)
    shared: dict[int, list] = {}
    for access in accesses:
        if access[0] >= 0:
            shared.setdefault(access[0], []).append(access)
    nothing: tuple = ()
    out: list[tuple] = []
    append = out.append
    a = 0
    index = first
    for j in range(n):
        task, start, point = steps[j]
        if index < start:  # records of time advancing, between steps
            for row in rows[index:start]:
                if has_value[row & _KIND_MASK]:
                    next(values)
        end = steps[j + 1][1] if j + 1 < n else total
        while a < count and advances[a] <= start:
            a += 1
        if a < count and advances[a] < end:
            end = advances[a]
        read = by_step.get(j, nothing) if by_step else nothing
        if start < end and rows[start] & _KIND_MASK == STEP:
            start += 1  # its own step record (no value) touches nothing
        if start == end and not read:  # (the usual step between two checkpoints)
            step = (task, point, _NONE, _NONE, _NONE, _NONE)
        else:
            step = footprint(task, point, rows[start:end], values, read)
        append(with_accesses(step, shared[j]) if j in shared else step)
        index = end
    return tuple(out), barriers


def races(steps: Sequence[tuple], barriers: frozenset[int], left_behind: Sequence[int], tasks: int):
    """Races of an execution: (step i, task p) where a step of task p depends on step i
    (another task's) without being causally after it.

    Vector clocks (a list per step, indexed by task id: the last step of that task that
    comes before): a step comes after its task's previous step, the steps that woke or
    spawned its task, the steps it conflicts with, and every step before a time advance
    (``barriers``: the steps that begin after one).

    The later step of a race is an executed one, or one task p never got to take: a task
    that is cancelled while it still had steps to run, or that could still run when the
    execution ended (``left_behind``: the root finished or failed, or ``cp.require``
    pruned), may have done anything next.  Its unknown next step is taken to depend on
    every step of every other task that is not causally before it.  ``tasks`` is how
    many task ids the execution used."""
    return Races()(steps, barriers, left_behind, tasks)


class Races:
    """:func:`races` of one execution after another.  A depth-first search re-runs a
    prefix of the execution before: the steps a run shares with the one before it (its
    first ``s`` footprints are the same) leave the same clocks and the same races, so
    they are not gone over again; what they left (each step's clock, what it touched,
    whom it woke) is kept and set back in one light pass.

    The result is the one :func:`races` gives for the same arguments, whatever came
    before (``tests/test_explore_soundness.py`` checks it on generated programs)."""

    __slots__ = (
        "barriers",
        "clocks",
        "found",
        "races",
        "steps",
        "touched",
        "width",
        "wild",
        "woken",
    )

    def __init__(self) -> None:
        self.steps: Sequence[tuple] = ()
        self.barriers: frozenset[int] = _NONE
        self.width = 0  # the length of every clock (at least the tasks of any run so far)
        self.clocks: list[list[int]] = []  # per step: its vector clock
        self.touched: list[Any] = []  # per step: what it touched (with reads and cancels)
        self.wild: list[bool] = []  # per step: whether it may touch any Python state
        self.woken: list[Any] = []  # per step: (task, its new clock) for each task it woke
        self.found: list[int] = []  # per step: how many races were found up to its end
        self.races: list[tuple[int, int]] = []  # the races of the steps of the run before

    def __call__(
        self,
        steps: Sequence[tuple],
        barriers: frozenset[int],
        left_behind: Sequence[int],
        tasks: int,
    ) -> list[tuple[int, int]]:
        if not steps:
            return []
        old = self.steps
        same = 0
        if tasks <= self.width and barriers == self.barriers and old:
            most = min(len(old), len(steps))
            while same < most and old[same] == steps[same]:
                same += 1
        else:
            self.width = max(tasks, self.width)
            self.barriers = barriers
        self.steps = steps
        width = self.width
        clocks, touched_of, wild_of, woken_of, found_at = (
            self.clocks,
            self.touched,
            self.wild,
            self.woken,
            self.found,
        )
        del clocks[same:], touched_of[same:], wild_of[same:], woken_of[same:], found_at[same:]
        nothing = [-1] * width  # a clock: indexed by task id
        task_clock: dict[int, list[int]] = {}
        floor: list[int] | None = None  # what every step after the last time advance comes after
        latest = nothing[:]  # each task's last step: the join of every clock so far
        last_access: dict[tuple, int] = {}
        last_step_of: dict[int, int] = {}
        last_wildcard_of: dict[int, int] = {}
        last_touched: dict[int, Any] = {}
        uses_vm: set[int] = set()  # tasks that have touched a VM object
        found: list[tuple[int, int]] = self.races[: found_at[same - 1]] if same else []
        for j in range(same):  # the steps it shares with the run before: as they were
            task = steps[j][0]
            if barriers and j in barriers:
                floor = latest[:]
            latest[task] = last_step_of[task] = j
            task_clock[task] = clocks[j]
            touched = last_touched[task] = touched_of[j]
            for obj in touched:
                last_access[obj] = j
            if wild_of[j]:
                last_wildcard_of[task] = j
            else:
                uses_vm.add(task)
            woken = woken_of[j]
            if woken:
                task_clock.update(woken)
        known = _OBJECTS
        owner = [step[0] for step in steps]
        for j in range(same, len(steps)):
            task, _, touched, woke, cancelled, read = steps[j]
            if barriers and j in barriers:
                floor = latest[:]
            clock = task_clock.get(task, nothing)
            if floor is not None:
                clock = list(map(max, clock, floor))
            # Python state: a step that touches no VM object, or ends a task that never
            # touched one, may share plain Python state with any task (cp.shared locations
            # are not VM objects here: the step may touch unwrapped state too)
            if read:
                touched = touched.union(read)  # (reads do not commute in this mode)
            if touched:
                objects = known.get(touched)
                if objects is None:
                    objects = _vm_objects(touched)
                wild = not objects or (
                    task not in uses_vm and len(objects) == 1 and ("task", task) in objects
                )
            else:
                wild = True
            if cancelled:  # a cancel takes a task off what it waits on: it touches that too
                touched = touched.union(*(last_touched.get(p, ()) for p in cancelled))
            racing: list[int] = []
            if wild:
                for t, i in last_step_of.items():
                    if t != task and clock[t] < i:
                        racing.append(i)
                last_wildcard_of[task] = j
            else:
                uses_vm.add(task)
                for obj in touched:
                    i = last_access.get(obj, -1)
                    if i >= 0 and owner[i] != task and clock[owner[i]] < i:
                        racing.append(i)
                for t, i in last_wildcard_of.items():
                    if t != task and clock[t] < i:
                        racing.append(i)
            if racing:  # (one pass over the clocks for all of them)
                for i in racing:
                    found.append((i, task))
                clock = list(map(max, clock, *[clocks[i] for i in racing]))
            elif floor is None:
                clock = clock[:]
            clock[task] = j
            latest[task] = last_step_of[task] = j
            clocks.append(clock)
            task_clock[task] = clock
            for obj in touched:
                last_access[obj] = j
            last_touched[task] = touched
            touched_of.append(touched)
            wild_of.append(wild)
            if cancelled:
                for p in cancelled:  # p's next step is not the one it would have taken
                    _unknown_next_step(p, task_clock.get(p, nothing), last_step_of, found)
            if woke:  # (a new list: the old one is the clock of other's last step)
                woken = [(p, list(map(max, task_clock.get(p, nothing), clock))) for p in woke]
                task_clock.update(woken)
                woken_of.append(woken)
            else:
                woken_of.append(None)
            found_at.append(len(found))
        self.races = found[:]
        for p in left_behind:
            _unknown_next_step(p, task_clock.get(p, nothing), last_step_of, found)
        return found


def _vm_objects(touched: frozenset) -> frozenset:
    """The VM objects among a step's touched things (not cp.shared locations)."""
    known = _OBJECTS.get(touched)
    if known is None:
        known = frozenset(obj for obj in touched if obj[0] != "shared")
        if len(known) == len(touched):
            known = touched
        if len(_OBJECTS) > 4096:  # (the same few sets recur run after run)
            _OBJECTS.clear()
        _OBJECTS[touched] = known
    return known


_OBJECTS: dict[frozenset, frozenset] = {}


def races_rw(
    steps: Sequence[tuple], barriers: frozenset[int], left_behind: Sequence[int], tasks: int
):
    """Races of an execution when every shared thing is a VM object or a ``cp.shared``
    location (``shared_only=True``): steps that touch nothing shared are independent
    of everything, and reads commute.  Returns (races, clocks): races are (step i, task
    p, step j) -- j is p's step that races with i, None for an unknown next step (see
    :func:`races`) -- and clocks the vector clock of each step.

    A race is *immediate*: the conflicting earlier steps are taken latest first, and one
    already ordered before j through another is not a race."""
    found: list[tuple] = []
    owner = [step[0] for step in steps]
    nothing = [-1] * tasks
    task_clock: dict[int, list[int]] = {}
    step_clock: list[list[int]] = []
    floor: list[int] | None = None
    latest = nothing[:]
    last_write: dict[tuple, int] = {}
    readers: dict[tuple, dict[int, int]] = {}  # location -> task -> its last read since the write
    last_step_of: dict[int, int] = {}
    last_touched: dict[int, Any] = {}
    for j, (task, _, touched, woke, cancelled, read) in enumerate(steps):
        if j in barriers:
            floor = latest[:]
        clock = task_clock.get(task, nothing)
        clock = list(map(max, clock, floor)) if floor is not None else clock[:]
        conflicts: set[int] = set()
        if cancelled:  # it changes what p does next: it depends on p's last step too
            touched = touched.union(*(last_touched.get(p, ()) for p in cancelled))
            conflicts.update(last_step_of[p] for p in cancelled if p in last_step_of)
        for obj in touched:
            if obj in last_write:
                conflicts.add(last_write[obj])
            if obj in readers:
                conflicts.update(readers[obj].values())
        for obj in read:
            if obj in last_write:
                conflicts.add(last_write[obj])
        for i in sorted(conflicts, reverse=True):  # latest first: immediate races only
            if owner[i] != task and clock[owner[i]] < i:
                found.append((i, task, j))
                clock = list(map(max, clock, step_clock[i]))
        clock[task] = j
        latest[task] = j
        step_clock.append(clock)
        task_clock[task] = clock
        for obj in touched:
            last_write[obj] = j
            readers.pop(obj, None)
        for obj in read:
            readers.setdefault(obj, {})[task] = j
        last_step_of[task] = j
        last_touched[task] = touched
        for p in cancelled:
            _unknown_next_step(p, task_clock.get(p, nothing), last_step_of, found)
        for other in woke:
            task_clock[other] = list(map(max, task_clock.get(other, nothing), clock))
    for p in left_behind:
        _unknown_next_step(p, task_clock.get(p, nothing), last_step_of, found)
    return [race if len(race) == 3 else (*race, None) for race in found], step_clock


def source_sets(run: Any) -> list[tuple[int | None, frozenset | None, int]]:
    """Source-DPOR (Abdulla, Aronis, Jonsson and Sagonas, "Source Sets", JACM 2017):
    for each race (i, j) of ``run``, (the choice point before step i, the *initials* of
    ``v`` -- the tasks that can start the steps between i and j that do not depend on
    i, followed by j --, j's task).  Reversing the race needs just one initial tried
    at that choice point (or one asleep there).  Initials are None for a race with an
    unknown next step: that task itself must be tried."""
    steps = run.footprints
    found, clocks = races_rw(steps, run.barriers, run.left_behind, run.tasks)
    out = []
    for i, p, j in found:
        point = steps[i][1]
        if point is None or j is None:
            out.append((point, None, p))
            continue
        mine = steps[i][0]
        firsts: dict[int, int] = {}  # task -> its first step in v
        initials = set()
        for k in range(i + 1, j):
            clock = clocks[k]
            if clock[mine] >= i:
                continue  # after i: not in v
            if not any(clock[t] >= first for t, first in firsts.items()):
                initials.add(steps[k][0])
            firsts.setdefault(steps[k][0], k)
        clock = clocks[j]
        if not any(clock[t] >= first for t, first in firsts.items()):
            initials.add(p)
        out.append((point, frozenset(initials), p))
    return out


def _unknown_next_step(
    p: int, clock: list[int], last_step_of: dict[int, int], found: list[tuple[int, int]]
) -> None:
    """Task p's next step is unknown: it races with the last step of every other task
    that is not causally before it."""
    for t, i in last_step_of.items():
        if t != p and clock[t] < i:
            found.append((i, p))


def backtrack_points(
    run: Any, bounded: bool, shared_only: bool = False, finder: Any = races
) -> list[tuple[int | None, int]]:
    """(choice point, task): for each race of ``run`` (a
    :class:`~counterpoint._explore.RunSummary` with footprints), the choice point where
    trying ``task`` reverses it (None when no other task was ready there, so nothing can
    be tried).

    Under a preemption bound (Coons, Musuvathi and McKinley, "Bounded partial-order
    reduction", OOPSLA 2013) the reversal at step i may need a preemption the bound
    forbids while an equivalent schedule does not, so the task is also tried where the
    run of steps containing i began, a switch that costs no more.

    ``shared_only``: the races of :func:`races_rw` (nothing is wild, reads commute).
    ``finder``: :func:`races`, or a :class:`Races` that a search keeps from run to run."""
    steps = run.footprints
    if shared_only:
        found = [race[:2] for race in races_rw(steps, run.barriers, run.left_behind, run.tasks)[0]]
    else:
        found = finder(steps, run.barriers, run.left_behind, run.tasks)
    if not bounded:
        return [(steps[i][1], task) for i, task in found]
    points = []
    for i, task in found:
        runner, point = steps[i][0], steps[i][1]
        points.append((point, task))
        first = i
        while first > 0 and steps[first - 1][0] == runner:
            first -= 1
        if first != i:
            points.append((steps[first][1], task))
    return points


class Backtracking:
    """:func:`backtrack_points` for the runs of one search, one after another: the race
    finder keeps what the steps a run shares with the one before left (:class:`Races`)."""

    __slots__ = ("finder",)

    def __init__(self) -> None:
        self.finder = Races()

    def __call__(self, run: Any, bounded: bool, shared_only: bool = False) -> list:
        return backtrack_points(run, bounded, shared_only, self.finder)


def describe_row(row: int) -> str:
    """A journal row in words, for a nondeterminism message."""
    task = (row >> TASK_SHIFT) & _TASK_MASK
    return f"a {KIND_NAMES.get(row & _KIND_MASK, '?')!r} record of task {task}"
