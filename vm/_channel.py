"""Channels: FIFO message passing between tasks, rendezvous (capacity 0) or buffered.

Rules (see ``docs/design.md``):

* Values come out in the order they went in; blocked senders and receivers
  are served first come, first served.
* A value is delivered exactly once: a cancelled sender never delivers (its
  value leaves with it) and a cancelled receiver never consumes (it is taken
  off the queue before anything is handed to it).
* ``close()`` wakes every blocked receiver and sender with ``ChannelClosed``;
  values already buffered can still be received; then ``recv`` raises
  ``ChannelClosed`` and ``async for`` ends.
"""

from __future__ import annotations

from collections import deque
from enum import IntEnum
from typing import Any

from ._errors import ChannelClosed
from ._journal import _ATOMIC, A_SHIFT, BLOCK_RECV, BLOCK_SEND, CLOSE, RECV, SEND, plain
from ._names import check_name, label
from ._ops import same_vm
from ._task import BLOCKED, READY, Task
from ._traps import (
    PARK,
    RESCHEDULE,
    check_fresh,
    current,
    fail_after_step,
    observed,
    operation,
    require_task,
    task_or_host,
    task_or_session,
)


class SendStatus(IntEnum):
    """Result of ``Channel.try_send``: ``FULL`` (0), ``SENT`` (1) or ``CLOSED`` (2).

    >>> import counterpoint as cp
    >>> async def main():
    ...     ch = cp.channel(1)
    ...     first, second = ch.try_send("a"), ch.try_send("b")
    ...     ch.close()
    ...     return first.name, second.name, ch.try_send("c").name
    >>> cp.VM().run(main())
    ('SENT', 'FULL', 'CLOSED')
    """

    FULL = 0
    SENT = 1
    CLOSED = 2


class RecvStatus(IntEnum):
    """Status part of ``Channel.try_recv()``: ``OK`` (0), ``EMPTY`` (1) or ``CLOSED`` (2).

    >>> import counterpoint as cp
    >>> async def main():
    ...     ch = cp.channel(1)
    ...     empty = ch.try_recv()
    ...     ch.try_send(42)
    ...     ch.close()
    ...     return empty, ch.try_recv(), ch.try_recv()
    >>> cp.VM().run(main())
    ((<RecvStatus.EMPTY: 1>, None), (<RecvStatus.OK: 0>, 42), (<RecvStatus.CLOSED: 2>, None))
    """

    OK = 0
    EMPTY = 1
    CLOSED = 2


class Channel:
    """A FIFO channel between tasks.  Create with ``cp.channel(capacity)``.

    >>> import counterpoint as cp
    >>> async def main():
    ...     ch = cp.channel(2)
    ...     async def producer():
    ...         for i in range(3):
    ...             await ch.send(i)
    ...         ch.close()
    ...     cp.spawn(producer())
    ...     return [v async for v in ch]
    >>> cp.VM().run(main())
    [0, 1, 2]
    """

    __slots__ = (
        "_a",
        "_block_recv",
        "_block_send",
        "_buf",
        "_closed",
        "_label",
        "_recv_code",
        "_recv_wait",
        "_recvq",
        "_send_code",
        "_send_wait",
        "_sendq",
        "_vm",
        "capacity",
        "id",
        "name",
    )
    KIND = "channel"

    def __init__(
        self, vm: Any, capacity: int, creator: Task | None, name: str | None = None
    ) -> None:
        if not isinstance(capacity, int) or isinstance(capacity, bool):
            raise TypeError(f"channel capacity must be an int, got {type(capacity).__name__}")
        if capacity < 0:
            raise ValueError(f"channel capacity must be >= 0 (0 means rendezvous), got {capacity}")
        self.name = check_name(name, "a channel")
        self.capacity = capacity
        self._vm = vm
        self._buf: deque = deque()
        self._recvq: deque = deque()
        self._sendq: deque[Task] = deque()
        self._closed = False
        extra: dict[str, Any] = {"capacity": capacity}
        if name is not None:
            extra["name"] = name
        self.id = vm._new_object("channel", creator, extra)
        self._label = label("channel", self.id, name)
        self._a = self.id << A_SHIFT
        # precomputed for the hot paths: record codes and wait descriptors
        self._send_code = SEND | self._a
        self._recv_code = RECV | self._a
        self._block_send = BLOCK_SEND | self._a
        self._block_recv = BLOCK_RECV | self._a
        self._send_wait = ("send", "channel", self.id, name)
        self._recv_wait = ("recv", "channel", self.id, name)

    # -- awaitable operations ---------------------------------------------------------

    def send(self, value: Any):
        """``await ch.send(v)``: deliver ``v``; blocks while the channel is full.

        Raises ``cp.ChannelClosed`` if the channel is (or gets) closed before the
        value is delivered.
        """
        task = current().task
        if task is None:
            task = require_task("channel.send()")
        if task._fresh is not None:
            check_fresh(task)
        task._fresh = op = _send(self, value)
        return op

    def recv(self):
        """``await ch.recv()``: the next value; blocks while there is none.

        Raises ``cp.ChannelClosed`` once the channel is closed and drained.
        """
        task = current().task
        if task is None:
            task = require_task("channel.recv()")
        if task._fresh is not None:
            check_fresh(task)
        task._fresh = op = _recv(self, False)
        return op

    def __aiter__(self) -> Channel:
        return self

    def __anext__(self):
        task = current().task
        if task is None:
            task = require_task("`async for` over a channel")
        if task._fresh is not None:
            check_fresh(task)
        task._fresh = op = _recv(self, True)
        return op

    # -- synchronous operations -----------------------------------------------------------

    def try_send(self, value: Any) -> SendStatus:
        """Send without waiting: ``SENT``, ``FULL`` (would block) or ``CLOSED``."""
        task = self._task_or_host("try_send()")
        if task is None:
            with self._vm._as_host(f"{self._label}.try_send()"):
                return self._try_send(None, value)
        return self._try_send(task, value)

    def _try_send(self, actor: Task | None, value: Any) -> SendStatus:
        if self._closed:
            observed(self._vm, "channel", self.id)
            return SendStatus.CLOSED
        if self._recvq:
            self._hand_off(actor, value)
            return SendStatus.SENT
        if len(self._buf) < self.capacity:
            self._buf.append(value)
            self._record(actor, SEND, value)
            return SendStatus.SENT
        observed(self._vm, "channel", self.id)
        return SendStatus.FULL

    def try_recv(self) -> tuple[RecvStatus, Any]:
        """Receive without waiting: ``(OK, value)``, ``(EMPTY, None)`` or ``(CLOSED, None)``."""
        task = self._task_or_host("try_recv()")
        if task is None:
            with self._vm._as_host(f"{self._label}.try_recv()"):
                return self._try_recv(None)
        return self._try_recv(task)

    def _try_recv(self, actor: Task | None) -> tuple[RecvStatus, Any]:
        if self._buf or self._sendq:
            return RecvStatus.OK, self._take(actor)
        observed(self._vm, "channel", self.id)
        if self._closed:
            return RecvStatus.CLOSED, None
        return RecvStatus.EMPTY, None

    def close(self) -> None:
        """Close the channel (idempotent).  Blocked receivers and senders get ``ChannelClosed``."""
        task = self._task_or_host("close()")
        if task is None:
            with self._vm._as_host(f"{self._label}.close()"):
                return self._close(None)
        return self._close(task)

    def _close(self, actor: Task | None) -> None:
        if self._closed:
            observed(self._vm, "channel", self.id)
            return
        self._closed = True
        vm = self._vm
        vm._rows.append((0 if actor is None else actor._k) | CLOSE | self._a)
        by = 0 if actor is None else actor.id
        receivers, self._recvq = self._recvq, deque()
        for receiver in receivers:
            if type(receiver) is Task:
                vm._throw(receiver, self._closed_error("receive on"), by)
            else:
                receiver._on_closed(self, by)
        senders, self._sendq = self._sendq, deque()
        for sender in senders:
            sender._payload = None
            vm._throw(sender, self._closed_error("send on"), by)

    # -- state ---------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        observed(self._vm, "channel", self.id)
        return self._closed

    def __len__(self) -> int:
        """How many values are buffered."""
        observed(self._vm, "channel", self.id)
        return len(self._buf)

    def __repr__(self) -> str:
        state = " closed" if self._closed else ""
        named = "" if self.name is None else f" {self.name!r}"
        return (
            f"<Channel {self.id}{named} capacity={self.capacity} buffered={len(self._buf)}{state}>"
        )

    def _repr_html_(self) -> str:
        from ._display import table

        def waiting(queue: deque) -> str:
            return ", ".join(
                f"task {w.id}" if type(w) is Task else f"task {w.task.id} (select)" for w in queue
            )

        rows = [
            ["capacity", self.capacity if self.capacity else "0 (rendezvous)"],
            ["buffered", [plain(value) for value in self._buf]],
            ["closed", self._closed],
            ["receivers waiting", waiting(self._recvq) or None],
            ["senders waiting", waiting(self._sendq) or None],
        ]
        return table(["channel", str(self.id) if self.name is None else repr(self.name)], rows)

    # -- internals -----------------------------------------------------------------------

    def _task_or_host(self, what: str) -> Task | None:
        task = task_or_host(f"{self._label}.{what}")
        if task is not None:
            same_vm(task, self._vm, self._label)
        return task

    def _closed_error(self, verb: str) -> ChannelClosed:
        if verb == "send on":
            return ChannelClosed(
                f"send on closed {self._label}: the value was not delivered. Close a "
                f"channel only when no task will send on it any more."
            )
        return ChannelClosed(f"receive on closed {self._label}: it is closed and drained")

    def _record(self, task: Task | None, kind: int, value: Any) -> None:
        vm = self._vm
        vm._rows.append((0 if task is None else task._k) | kind | self._a)
        vm._vals.append(value if type(value) in _ATOMIC else plain(value))

    def _hand_off(self, sender: Task | None, value: Any) -> None:
        """Give ``value`` straight to the first waiting receiver (the queue is non-empty)."""
        receiver = self._recvq.popleft()
        self._record(sender, SEND, value)
        if type(receiver) is Task:  # (inlines vm._reschedule: a hot path)
            receiver._val = value
            receiver._state = READY
            self._vm._ready.append(receiver)
            self._record(receiver, RECV, value)
        else:
            receiver._on_value(self, value, 0 if sender is None else sender.id)

    def _take(self, receiver: Task | None) -> Any:
        """Take the next value (the buffer or a blocked sender has one)."""
        buf = self._buf
        if buf:
            value = buf.popleft()
            self._record(receiver, RECV, value)
            if self._sendq:
                sender = self._sendq.popleft()
                buf.append(sender._payload)
                self._complete_sender(sender)
            return value
        sender = self._sendq.popleft()
        value = sender._payload
        self._complete_sender(sender)
        self._record(receiver, RECV, value)
        return value

    def _complete_sender(self, sender: Task) -> None:
        value = sender._payload
        sender._payload = None
        sender._val = None  # (inlines vm._reschedule: the recv path of buffered channels)
        sender._state = READY
        self._vm._ready.append(sender)
        self._record(sender, SEND, value)

    def _ready_for_select(self) -> bool:
        return bool(self._buf or self._sendq or self._closed)


def _refuse(task: Task, ch: Channel, verb: str):
    """An operation that may not go ahead (cancelled, closed): it fails after a step.
    (An object of another VM is a programming error, raised at once.)"""
    if task._vm is not ch._vm:
        same_vm(task, ch._vm, ch._label)
    return (yield from fail_after_step(task, _refusal(task, ch, verb)))


def _refusal(task: Task, ch: Channel, verb: str) -> BaseException:
    """The error of a refused operation.  (Made here, not held in the operation's frame:
    a frame in the traceback of the exception it holds is a reference cycle.)"""
    if task._cancelled:
        return task._vm._cancelled_error(task)
    observed(ch._vm, "channel", ch.id)
    return ch._closed_error(verb)


@operation(lambda ch, value: f"{ch._label}.send({plain(value)!r})")
def _send(ch, value):
    task = current().task
    task._fresh = None
    vm = ch._vm
    if task._vm is not vm or task._cancelled or ch._closed:
        return (yield from _refuse(task, ch, "send on"))
    recvq = ch._recvq
    if recvq:  # hand the value straight to the longest-waiting receiver
        logged = value if type(value) in _ATOMIC else plain(value)
        receiver = recvq.popleft()
        vm._rows.append(task._k | ch._send_code)
        vm._vals.append(logged)
        if type(receiver) is Task:  # (inlines vm._reschedule: the hottest path)
            receiver._val = value
            receiver._state = READY
            vm._ready.append(receiver)
            vm._rows.append(receiver._k | ch._recv_code)
            vm._vals.append(logged)
        else:
            receiver._on_value(ch, value, task.id)
        yield RESCHEDULE
        return
    buf = ch._buf
    if len(buf) < ch.capacity:
        buf.append(value)
        vm._rows.append(task._k | ch._send_code)
        vm._vals.append(value if type(value) in _ATOMIC else plain(value))
        yield RESCHEDULE
        return
    task._payload = value
    queue = ch._sendq
    queue.append(task)
    task._state = BLOCKED
    task._waitq = queue
    task._cleanup = None
    task._waiting = ch._send_wait
    vm._rows.append(task._k | ch._block_send)
    yield PARK


@operation(lambda ch, iterating: f"{ch._label}.recv()")
def _recv(ch, iterating):
    task = current().task
    task._fresh = None
    vm = ch._vm
    if task._vm is not vm or task._cancelled:
        return (yield from _refuse(task, ch, "receive on"))
    buf = ch._buf
    if buf and not ch._sendq:
        value = buf.popleft()
        vm._rows.append(task._k | ch._recv_code)
        vm._vals.append(value if type(value) in _ATOMIC else plain(value))
        yield RESCHEDULE
        return value
    if buf or ch._sendq:
        value = ch._take(task)
        yield RESCHEDULE
        return value
    if ch._closed:
        observed(vm, "channel", ch.id)
        return (yield from fail_after_step(task, _ended(ch, iterating)))
    queue = ch._recvq
    queue.append(task)
    task._state = BLOCKED
    task._waitq = queue
    task._cleanup = None
    task._waiting = ch._recv_wait
    vm._rows.append(task._k | ch._block_recv)
    try:
        value = yield PARK
    except ChannelClosed:
        if iterating:
            raise StopAsyncIteration from None
        raise
    return value


def _ended(ch: Channel, iterating: bool) -> BaseException:
    """A receive on a closed, drained channel: the end of an ``async for`` or
    ``ChannelClosed``.  (Made here: see _refusal.)"""
    return StopAsyncIteration() if iterating else ch._closed_error("receive on")


def channel(capacity: int = 0, *, name: str | None = None) -> Channel:
    """Create a channel: ``capacity=0`` is a rendezvous, ``n > 0`` buffers ``n`` values.

    Must be called inside a task (on the host, use ``vm.channel(capacity)``).  ``name``
    (1 to 100 printable characters) is journaled with the channel and used in its repr
    and in every message about it: ``channel 'jobs'`` instead of ``channel 2``.

    >>> import counterpoint as cp
    >>> async def main():
    ...     ch = cp.channel(3)
    ...     for word in ("to", "be"):
    ...         await ch.send(word)
    ...     return len(ch), await ch.recv()
    >>> cp.VM().run(main())
    (2, 'to')
    """
    task, vm = task_or_session("cp.channel()")
    return Channel(vm, capacity, task, name)
