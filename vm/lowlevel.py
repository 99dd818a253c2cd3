"""``counterpoint.lowlevel``: the seam that tools build on.

The kernel extension, the widgets, exploration and recovery use this module and the
public API (``import counterpoint as cp``), never ``counterpoint._*``.  It holds:

* **Record kinds, declared once** (``KINDS``: code -> :class:`Kind`, with each kind's
  fields and how it packs, decodes, encodes and is checked), the kind codes, and
  :func:`raw_records` to read a journal's records undecoded, fast.
* **Host markers**: :func:`mark` appends a record of a host-marker kind (a notebook
  cell's ``cell`` / ``cell_done``) from host code.
* **Kept roots**: :func:`run_root` runs a root task that is never abandoned -- a
  deadlock, step limit or interrupt is raised *inside* it (a notebook cell).
* **The scheduler calls operations use** (:func:`reschedule`, :func:`wake`,
  :func:`throw`, :func:`park`, :func:`unpark`, :func:`add_timer`, :func:`record`): the only ways a
  task changes between ready and blocked, trio's discipline of "primitives only park
  and reschedule".  See "Who may change scheduler state" in ``docs/design.md``.
* **Places in user code**: :func:`add_source_namer` (``TaskInfo.where`` of a notebook
  cell reads ``Cell In[3]:2``), :func:`is_internal`, :func:`user_traceback`,
  :func:`source_of` (the source of the function a task is paused in),
  :func:`failure_source` (where an error was raised in user code).
* **Host stepping** (the Scheduler widget): :func:`pass_time` (what ``vm.step()`` does
  first when no task is ready) and :func:`dispose` (close a dropped VM's tasks).
* **Sources of nondeterminism**: :class:`Sources` (choices, worker outcomes, host
  events) given to ``cp.VM(sources=...)``; :func:`from_journal` takes them from a
  journal (replay, recovery).
* **Replays** of a journal prefix: :func:`replaying_vm`, :func:`prefix`, and a recovery
  that goes on live after it (:func:`recovering_vm`, see docs/recovery.md),
  :func:`first_difference`, :func:`divergence`.
* **Rich output** helpers shared by the CLI and the kernel (``display``), and
  :func:`messages`: every value sent over a channel paired with its receive (what a
  message sequence chart draws), and :class:`MessagePairs`, the same pairing kept up to
  date incrementally for a live picture; :func:`label` names an object as every message does
  (``lock 'fork 1'``); :func:`next_effect` finds a task's next or previous effect in a
  big journal without decoding it (time travel's "jump to the next effect").

Everything here is used by Counterpoint's own tools and tested; names may still
change between minor versions (the public API does not).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

from . import _display as display
from ._journal import Journal
from ._kinds import (
    A_SHIFT,
    ACQUIRE,
    BLOCK,
    BLOCK_RECV,
    BLOCK_SEND,
    CANCEL,
    CANCELLED,
    CELL,
    CELL_DONE,
    CHOOSE,
    CLEAR,
    CLOSE,
    CREATE,
    DONE,
    EVENT,
    FAIL,
    KIND_CODES,
    KIND_NAMES,
    KINDS,
    NOTIFY,
    QUEUE,
    RECEIPT,
    RECV,
    RELEASE,
    RESUME,
    SCOPE,
    SELECT,
    SEND,
    SET,
    SLEEP,
    SPAWN,
    START,
    STEP,
    SUSPEND,
    TASK_SHIFT,
    TIMEOUT,
    TIMER,
    WAKE,
    Kind,
    decode,
    encode,
    row,
)
from ._msc import Message, MessagePairs, messages
from ._names import Wait, label
from ._recover import recovering_vm
from ._replay import divergence, first_difference, replaying_vm
from ._roots import RootRun, Words, run_root
from ._sources import Sources, from_journal
from ._traps import session, this_task
from ._vm import POLICIES, VM, is_internal, source_dirs, user_traceback
from ._where import add_source_namer, frame_source, function_source, source_name

__all__ = [
    "A_SHIFT",
    "ACQUIRE",
    "BLOCK",
    "BLOCK_RECV",
    "BLOCK_SEND",
    "CANCEL",
    "CANCELLED",
    "CELL",
    "CELL_DONE",
    "CHOOSE",
    "CLEAR",
    "CLOSE",
    "CREATE",
    "DONE",
    "EVENT",
    "FAIL",
    "HOST_MARKERS",
    "KIND_CODES",
    "KIND_MASK",
    "KIND_NAMES",
    "KINDS",
    "NOTIFY",
    "POLICIES",
    "QUEUE",
    "RECEIPT",
    "RECV",
    "RELEASE",
    "RESUME",
    "SCOPE",
    "SELECT",
    "SEND",
    "SET",
    "SLEEP",
    "SPAWN",
    "START",
    "STEP",
    "SUSPEND",
    "TASK_SHIFT",
    "TIMEOUT",
    "TIMER",
    "WAKE",
    "Kind",
    "RawRecord",
    "RootRun",
    "Source",
    "Sources",
    "Words",
    "add_source_namer",
    "a_of",
    "add_timer",
    "decode",
    "display",
    "dispose",
    "divergence",
    "encode",
    "find",
    "failure_source",
    "first_difference",
    "from_journal",
    "is_internal",
    "label",
    "mark",
    "Message",
    "MessagePairs",
    "messages",
    "next_effect",
    "park",
    "pass_time",
    "prefix",
    "raw_records",
    "record",
    "recovering_vm",
    "replaying_vm",
    "reschedule",
    "row",
    "rows",
    "run_root",
    "session",
    "source_dirs",
    "source_name",
    "source_of",
    "task_of",
    "this_task",
    "throw",
    "unpark",
    "user_traceback",
    "wait_of",
    "Wait",
    "wake",
]

# Kinds a host may append with :func:`mark` (markers between runs, never effects)
HOST_MARKERS = frozenset({CELL, CELL_DONE})


class RawRecord(NamedTuple):
    """A record as stored: ``index`` (event id - 1), ``tick``, ``task``, ``kind`` (a
    code, see ``KINDS``), ``a`` (its id) and ``value`` (its value slot, or None)."""

    index: int
    tick: int
    task: int
    kind: int
    a: int
    value: Any


def raw_records(journal: Journal, start: int = 0, stop: int | None = None) -> Iterator[RawRecord]:
    """The records with indexes ``start..stop-1`` (event ids ``start+1..stop``),
    undecoded: for tools that scan big journals (``KINDS[kind].decode`` gives
    ``data``)."""
    for raw in journal._iter_raw(start, stop):
        yield RawRecord._make(raw)


def rows(journal: Journal, start: int = 0, stop: int | None = None) -> list[int]:
    """The packed rows of the records with indexes ``start..stop-1`` (``kind | task <<
    TASK_SHIFT | a << A_SHIFT``): the cheapest read of a big journal (no decoding, no
    values), for tools that index it (``KIND_MASK``, ``task_of``, ``a_of``)."""
    return journal._rows[start:stop]


KIND_MASK = (1 << TASK_SHIFT) - 1


def task_of(packed: int) -> int:
    """The task id of a packed row (see :func:`rows`)."""
    return (packed >> TASK_SHIFT) & ((1 << (A_SHIFT - TASK_SHIFT)) - 1)


def a_of(packed: int) -> int:
    """The object id ``a`` of a packed row (see :func:`rows`)."""
    return packed >> A_SHIFT


def find(journal: Journal, kind: int) -> list[int]:
    """The indexes of the records of ``kind`` (a code), in order; fast (no decoding)."""
    mask = (1 << TASK_SHIFT) - 1
    return [index for index, packed in enumerate(journal._rows) if packed & mask == kind]


_SCAN = 4096  # rows read at a time by next_effect (it stops at the first match)


def next_effect(
    journal: Journal, index: int, task: int | None = None, *, backward: bool = False
) -> int | None:
    """The index of the first record at or after ``index`` (``backward``: at or before)
    that is an effect -- any kind but ``step`` -- of ``task`` (None: of any task), or
    None if there is none.  Reads the packed rows in chunks and stops at the first match:
    a few microseconds when the effect is near, about 0.1 s to scan 1,000,000 rows."""
    rows, total = journal._rows, len(journal._rows)
    kinds = (1 << TASK_SHIFT) - 1
    who = ((1 << A_SHIFT) - 1) ^ kinds  # the task bits
    want = -1 if task is None else task << TASK_SHIFT

    def first(chunk: Any) -> int | None:  # the offset of the first effect in ``chunk``
        if want < 0:
            found = (i for i, packed in enumerate(chunk) if packed & kinds != STEP)
        else:
            found = (
                i
                for i, packed in enumerate(chunk)
                if packed & who == want and packed & kinds != STEP
            )
        return next(found, None)

    if backward:
        hi = min(index, total - 1) + 1  # the chunk is rows[lo:hi], read last first
        while hi > 0:
            lo = max(0, hi - _SCAN)
            offset = first(rows[hi - 1 : lo - 1 if lo else None : -1])
            if offset is not None:
                return hi - 1 - offset
            hi = lo
        return None
    lo = max(0, index)
    while lo < total:
        offset = first(rows[lo : lo + _SCAN])
        if offset is not None:
            return lo + offset
        lo += _SCAN
    return None


def prefix(journal: Journal, count: int) -> Journal:
    """A new journal of the first ``count`` records of ``journal`` (and its meta)."""
    return journal._prefix(count)


def mark(vm: VM, kind: int, number: int, value: Any) -> None:
    """Append a host marker (a kind of :data:`HOST_MARKERS`: ``CELL`` with the cell's
    source, ``CELL_DONE`` with its outcome tuple) about ``number`` (the cell), from
    host code while the VM is not running.  The value is checked as a record loaded
    from a file would be (``ValueError`` if no VM writes it)."""
    if kind not in HOST_MARKERS:
        markers = ", ".join(KIND_NAMES[k] for k in sorted(HOST_MARKERS))
        raise ValueError(
            f"lowlevel.mark() appends host markers ({markers}), not "
            f"{KIND_NAMES.get(kind, kind)!r} records: effects are written by operations"
        )
    with vm._as_host(f"lowlevel.mark({KIND_NAMES[kind]})"):
        KINDS[kind].check(number, value, vm._now)
        vm._rows.append(row(kind, 0, number))
        vm._vals.append(value)
        if vm._stream is not None:  # a journal file gets every marker at once: a kernel
            vm._stream.flush(True)  # killed between cells leaves all its cells (recovery)


# -- the scheduler calls ------------------------------------------------------------------------


def reschedule(task: Any, value: Any = None) -> None:
    """Make a parked ``task`` ready, to be resumed with ``value``; journal nothing (the
    operation journals its effect: the ``recv`` of a handed-over value ...)."""
    task._vm._reschedule(task, value)


def wake(task: Any, value: Any, by: int) -> None:
    """Make a parked ``task`` ready, resumed with ``value``, and journal ``wake`` by
    task ``by`` (0: the host)."""
    task._vm._wake(task, value, by)


def throw(task: Any, error: BaseException, by: int) -> None:
    """Make a parked ``task`` ready, to raise ``error`` at its ``await``; journal
    ``wake`` by ``by``."""
    task._vm._throw(task, error, by)


def park(task: Any, queue: Any, waiting: tuple, kind_row: int, value: Any, cleanup: Any = None):
    """Queue ``task`` at the end of ``queue`` (FIFO) and journal its ``block`` record
    (``kind_row``: the row's kind and id bits, ``value``: the op descriptor); the
    operation then yields ``PARK``.  ``waiting`` says what it waits for (``vm.tasks()``);
    ``cleanup(task)`` runs if the wait is interrupted (cancelled)."""
    from ._task import park as _park

    _park(task, queue, waiting, kind_row, value, cleanup)


def unpark(task: Any) -> None:
    """Take a parked ``task`` out of what it waits on (its queue, its cleanup), without
    making it ready: the caller then wakes or throws into it."""
    task._vm._unpark(task)


def record(vm: VM, task: Any, kind: int, a: int = 0, value: Any = None) -> None:
    """Append a record of ``kind`` by ``task`` (None: the host) about id ``a``, with
    ``value`` in its value slot if the kind has one: what an operation does, during its
    task's step, for each effect.  (Host code appends only markers: :func:`mark`.)"""
    vm._record(task, kind, a, value)


def add_timer(vm: VM, deadline: int, target: Any) -> list:
    """Fire ``target`` at tick ``deadline``: a task is made ready (journaled ``timer``),
    any other object gets ``target._timer_fired()``.  Returns the timer's bucket; remove
    ``target`` from it to cancel."""
    return vm._add_timer(deadline, target)


# -- inspecting ---------------------------------------------------------------------------------


def wait_of(task: Any) -> Wait | None:
    """What a live blocked or sleeping ``task`` waits for, as data: the same
    :class:`Wait` as ``journal.state_at(e).waits[task.id]`` (None if it does not wait)."""
    from ._task import BLOCKED
    from ._task import wait_of as _wait_of

    if task._state != BLOCKED or task._waiting is None:
        return None
    return _wait_of(task._waiting)


class Source(NamedTuple):
    """The source of the function a task is paused in: ``where`` (as
    ``TaskInfo.where``), ``function`` (its qualified name), ``first`` (the line number
    of ``lines[0]``), ``lines`` (the function's source lines, without line ends) and
    ``line`` (the line it is paused at; a task not started yet: its ``def`` line)."""

    where: str
    function: str
    first: int
    lines: tuple[str, ...]
    line: int


def source_of(vm: VM, task_id: int) -> Source | None:
    """The :class:`Source` of live task ``task_id``'s paused function (its innermost
    frame that is not Counterpoint's), or None if the task has ended, is not this VM's,
    or runs only Counterpoint's code (``cp.spawn(ch.recv())``)."""
    task = vm._live.get(task_id)
    if task is None or task._coro is None:
        return None
    found = function_source(task._coro)
    if found is None:
        return None
    where, function, first, lines, line = found
    return Source(where, function, first, tuple(lines), line)


def failure_source(error: BaseException) -> Source | None:
    """The :class:`Source` of the function ``error`` was raised in: its traceback's
    innermost entry in user code, ``line`` the line that raised (None if the traceback
    holds only Counterpoint's frames)."""
    from ._vm import failure_site

    site = failure_site(error)
    if site is None:
        return None
    where, function, first, lines, line = frame_source(site.tb_frame, site.tb_lineno)
    return Source(where, function, first, tuple(lines), line)


def pass_time(vm: VM) -> bool:
    """When no task is ready, do what ``vm.step()`` does before its next step and run no
    task: hand queued host events to waiting tasks, or jump virtual time to the earliest
    timer and fire it (journaled as the loop would), until a task is ready.  Returns
    True if one is; False if nothing can ever run (nothing changed).  A host calling
    this and then ``vm.step(task=ID)`` writes the journal ``vm.step(task=ID)`` alone
    would, so ``vm.schedule`` replays it.  Raises ``InvalidStateError`` if a task is
    ready (time passes only when nothing can run)."""
    from ._errors import InvalidStateError
    from ._traps import RunState, enter_run_state, leave_run_state

    with vm._as_host("lowlevel.pass_time()"):
        if vm._ready:
            raise InvalidStateError(
                "lowlevel.pass_time(): a task is ready, and time passes only when no task "
                "can run; step a ready task instead (vm.step(task=ID))"
            )
        previous = enter_run_state(RunState())
        try:
            while not vm._ready:
                if not vm._advance_time():
                    return False
        finally:
            leave_run_state(previous)
        return True


def dispose(vm: VM) -> None:
    """Close the coroutines of the tasks ``vm`` leaves behind, for a VM the host is about
    to drop (Python would warn that each unstarted one was never awaited).  Their
    ``finally`` blocks run outside the VM; the VM is unusable afterwards."""
    with vm._as_host("lowlevel.dispose()"):
        pass
    vm._dispose()
