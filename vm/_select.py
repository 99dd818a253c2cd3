"""``cp.select``: wait for the first of several channels (receive) or tasks/slots (join).

If cases are ready when ``select`` is awaited, the policy picks one:
``"priority"`` takes the lowest ready index; ``"round_robin"`` starts one past
the index that won this task's previous select over the same cases.  If none
is ready, the task waits on all of them and the first event to happen wins
(events are already ordered by the VM, so this is deterministic).
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any, NamedTuple

from ._channel import Channel
from ._journal import BLOCK, MAX_TICK, RECV, SELECT, tick_error
from ._ops import same_vm
from ._scope import Slot
from ._task import BLOCKED, CANCELLED, DONE, FAILED, Task
from ._traps import (
    PARK,
    RESCHEDULE,
    enter,
    fail_after_step,
    new_op,
    observed,
    operation,
    require_task,
)

POLICIES = ("priority", "round_robin")


class SelectTag(IntEnum):
    """What happened to the winning case of a ``cp.select``.

    ``SLOT_READY`` (1) a task/slot finished, ``SLOT_CANCELLED`` (2) it was cancelled,
    ``RECV`` (3) a channel delivered a value, ``CLOSED`` (4) a channel is closed and
    drained, ``TIMEOUT`` (5) the timeout passed first.

    >>> import counterpoint as cp
    >>> int(cp.SelectTag.RECV), cp.SelectTag(5).name
    (3, 'TIMEOUT')
    """

    SLOT_READY = 1
    SLOT_CANCELLED = 2
    RECV = 3
    CLOSED = 4
    TIMEOUT = 5


class SelectResult(NamedTuple):
    """Result of ``cp.select``: the winning case's ``index`` (-1 on timeout), ``tag``, ``value``.

    >>> import counterpoint as cp
    >>> async def main():
    ...     return await cp.select(cp.channel(), timeout=4), cp.now()
    >>> cp.VM().run(main())
    (SelectResult(index=-1, tag=<SelectTag.TIMEOUT: 5>, value=None), 4)
    """

    index: int
    tag: SelectTag
    value: Any


def _describe(case: Channel | Task) -> str:
    """A case as the journal records it (numbers only: names do not change a record)."""
    return f"channel {case.id}" if type(case) is Channel else f"task {case.id}"


def _spell(case: Channel | Task) -> str:
    """A case as messages say it (``channel 'jobs'`` for a named channel)."""
    return case._label if type(case) is Channel else f"task {case.id}"


class _Selector:
    """A task blocked in select, registered with every case (and maybe a timer)."""

    __slots__ = ("cases", "done", "task", "timer")

    def __init__(self, task: Task, cases: tuple) -> None:
        self.task = task
        self.cases = cases
        self.timer: list | None = None
        self.done = False

    def _unregister(self, _task: Task | None = None) -> None:
        self.done = True
        for case in self.cases:
            queue = case._recvq if type(case) is Channel else case._joiners
            while queue and self in queue:
                queue.remove(self)
        if self.timer is not None:
            self.timer.remove(self)
            self.timer = None

    def _complete(self, index: int, tag: SelectTag, value: Any, by: int) -> None:
        self._unregister()
        task = self.task
        vm = task._vm
        vm._record(task, SELECT, 0, (index, tag.name))
        vm._wake(task, SelectResult(index, tag, value), by)

    # callbacks from channels, tasks and timers
    def _on_value(self, channel: Channel, value: Any, by: int) -> None:
        channel._record(self.task, RECV, value)
        self._complete(self.cases.index(channel), SelectTag.RECV, value, by)

    def _on_closed(self, channel: Channel, by: int) -> None:
        if not self.done:
            self._complete(self.cases.index(channel), SelectTag.CLOSED, None, by)

    def _task_done(self, done: Task) -> None:
        if self.done:
            return
        if done._state == CANCELLED:
            self._complete(self.cases.index(done), SelectTag.SLOT_CANCELLED, None, done.id)
        else:
            self._complete(self.cases.index(done), SelectTag.SLOT_READY, None, done.id)

    def _timer_fired(self) -> None:
        self.timer = None
        self._complete(-1, SelectTag.TIMEOUT, None, 0)


def _key(cases: tuple) -> tuple:
    return tuple(_describe(case) for case in cases)


def _ready_case(cases: tuple, policy: str, task: Task) -> tuple[int, SelectTag, Any] | None:
    count = len(cases)
    start = 0
    if policy == "round_robin" and count:
        last = (task._rr or {}).get(_key(cases), -1)
        start = (last + 1) % count
    for offset in range(count):
        index = (start + offset) % count
        case = cases[index]
        if type(case) is Channel:
            if case._buf or case._sendq:
                return index, SelectTag.RECV, case._take(task)
            if case._closed:
                return index, SelectTag.CLOSED, None
        elif case._state >= DONE:
            if case._state == CANCELLED:
                return index, SelectTag.SLOT_CANCELLED, None
            return index, SelectTag.SLOT_READY, None
    return None


def _finish(cases: tuple, policy: str, task: Task, result: SelectResult) -> SelectResult:
    if result.index >= 0:
        if policy == "round_robin":
            if task._rr is None:
                task._rr = {}
            task._rr[_key(cases)] = result.index
        if result.tag == SelectTag.SLOT_READY:
            case = cases[result.index]
            if case._state == FAILED:
                case._observed = True
                raise case._error
            return SelectResult(result.index, result.tag, case.result())
    return result


@operation(lambda cases, timeout, policy: "cp.select(" + ", ".join(map(_spell, cases)) + ")")
def _select(cases: tuple, timeout: int | None, policy: str):
    task = enter()
    vm = task._vm
    for case in cases:
        same_vm(task, case._vm, _spell(case))
    if task._cancelled:
        return (yield from fail_after_step(task, vm._cancelled_error(task)))
    if vm._chooser is not None:  # exploring: reading the cases is part of the footprint
        for case in cases:
            observed(vm, "channel" if type(case) is Channel else "task", case.id)
    found = _ready_case(cases, policy, task)
    if found is not None or timeout == 0:
        index, tag, value = found if found is not None else (-1, SelectTag.TIMEOUT, None)
        vm._record(task, SELECT, 0, (index, tag.name))
        yield RESCHEDULE
        return _finish(cases, policy, task, SelectResult(index, tag, value))
    selector = _Selector(task, cases)
    for case in cases:
        if type(case) is Channel:
            case._recvq.append(selector)
        else:
            if case._joiners is None:
                case._joiners = []
            case._joiners.append(selector)
    if timeout is not None:
        selector.timer = vm._add_timer(vm._now + timeout, selector)
    descriptions = [_describe(case) for case in cases]
    task._state = BLOCKED
    task._waitq = None
    task._cleanup = selector._unregister
    task._waiting = ("select", "cases", descriptions, cases)
    vm._record(task, BLOCK, 0, ("select", "cases", descriptions))
    result = yield PARK
    return _finish(cases, policy, task, result)


def select(*cases: Any, timeout: int | None = None, policy: str = "priority"):
    """``await cp.select(ch1, ch2, slot, timeout=10)``: the first case that is ready.

    Channel cases receive (tag ``RECV`` with the value, or ``CLOSED``); task and
    slot cases join (``SLOT_READY`` with the result, ``SLOT_CANCELLED``; a failed
    task re-raises its exception).  On timeout, ``index`` is -1 and ``value`` None.

    >>> import counterpoint as cp
    >>> async def main():
    ...     fast, slow = cp.channel(1), cp.channel(1)
    ...     async def feed(ch, delay, value):
    ...         await cp.sleep(delay)
    ...         await ch.send(value)
    ...     cp.spawn(feed(slow, 5, "slow"))
    ...     cp.spawn(feed(fast, 2, "fast"))
    ...     sel = await cp.select(slow, fast)
    ...     return sel.index, sel.tag.name, sel.value, cp.now()
    >>> cp.VM().run(main())
    (1, 'RECV', 'fast', 2)
    """
    task = require_task("cp.select()")
    if policy not in POLICIES:
        raise ValueError(f"unknown select policy {policy!r}: choose 'priority' or 'round_robin'")
    if timeout is not None:
        if not isinstance(timeout, int) or isinstance(timeout, bool):
            raise TypeError(f"select timeout must be an int (ticks) or None, got {timeout!r}")
        if timeout < 0:
            raise ValueError(f"select timeout must be >= 0 ticks, got {timeout}")
        if timeout > MAX_TICK - task._vm._now:
            call = "cp.select(timeout={})"
            raise tick_error(call, task._vm._now, timeout, "use a smaller timeout, or None")
    normalized = []
    for case in cases:
        if type(case) is Slot:
            case = case.task
        if type(case) is not Channel and type(case) is not Task:
            raise TypeError(
                f"cp.select() cases must be channels (to receive from) or tasks/slots (to "
                f"join), got {type(case).__name__}"
            )
        normalized.append(case)
    if not normalized and timeout is None:
        raise ValueError("cp.select() needs at least one case or a timeout")
    return new_op(task, _select(tuple(normalized), timeout, policy))
