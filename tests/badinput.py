"""The catalogue of bad input: what a user may get wrong, and the named error each gets.

``tests/test_bad_input.py`` provokes every case, checks the error's type and that its
message says what the catalogue promises, and checks that the VM is still usable
afterwards; it also checks that the table in ``docs/reliability.md`` is the one this
module renders, so the documentation cannot drift.  After adding a case::

    python tests/badinput.py --update-docs
"""

from __future__ import annotations

import asyncio
import atexit
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import counterpoint as cp

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "reliability.md"
BEGIN, END = "<!-- bad-input-table -->", "<!-- /bad-input-table -->"


@dataclass(frozen=True)
class Case:
    area: str
    what: str  # what the user did, in their words
    error: type[BaseException]  # the named error it gets
    says: str  # a fragment of the message (what happened / what to do)
    provoke: Callable[[], Any]  # raises the error (its VM, if any, is checked afterwards)


CASES: list[Case] = []


def case(area: str, what: str, error: type[BaseException], says: str):
    def register(provoke: Callable[[], Any]) -> Callable[[], Any]:
        CASES.append(Case(area, what, error, says, provoke))
        return provoke

    return register


LAST_VM: list[cp.VM] = []  # the VM a case used, for the "still usable" check


def in_task(body: Callable[[], Any], **options: Any) -> Any:
    """Run ``body`` (a plain function or a coroutine function) inside a task of a
    fresh VM; what it raises is raised here."""

    async def main():
        result = body()
        if asyncio.iscoroutine(result):
            return await result
        return result

    vm = cp.VM(**options)
    LAST_VM.append(vm)
    return vm.run(main())


def run(coro_function: Callable[[], Any], **options: Any) -> Any:
    vm = cp.VM(**options)
    LAST_VM.append(vm)
    return vm.run(coro_function())


async def idle() -> None:
    await cp.sleep(1)


# -- the VM ---------------------------------------------------------------------------------------

case("VM", "`cp.VM(seed='1')`", TypeError, "seed must be an int")(lambda: cp.VM(seed="1"))
case("VM", "`cp.VM(seed=2**64)`", ValueError, "seed must fit in 64 bits")(lambda: cp.VM(seed=2**64))
case("VM", "`cp.VM(policy='lifo')`", ValueError, "choose 'fifo' or 'random'")(
    lambda: cp.VM(policy="lifo")
)
case("VM", "`cp.VM(max_steps=0)`", ValueError, "positive int")(lambda: cp.VM(max_steps=0))
case("VM", "`cp.VM(max_steps=2.5)`", TypeError, "max_steps must be an int or None")(
    lambda: cp.VM(max_steps=2.5)
)
case("VM", "`cp.VM(max_workers=-1)`", ValueError, "0 disables workers")(
    lambda: cp.VM(max_workers=-1)
)
case("VM", "`cp.VM(workers='gpu')`", ValueError, "use 'inline', 'thread', 'process'")(
    lambda: cp.VM(workers="gpu")
)
case("VM", "`cp.VM(journal=3)`", TypeError, "a file path (stream to it)")(lambda: cp.VM(journal=3))
case("VM", "`vm.run(main)` (the function, not a call)", TypeError, "did you forget to call it")(
    lambda: cp.VM().run(idle)
)
case("VM", "`vm.run(42)`", TypeError, "needs a coroutine object")(lambda: cp.VM().run(42))
case("VM", "`vm.step(-1)`", ValueError, "non-negative int")(lambda: cp.VM().step(-1))


@case("VM", "`vm.run()` inside a task", cp.VMBusyError, "from inside a running task")
def _run_inside_a_task():
    vm = cp.VM()

    async def main():
        vm.run(idle())

    return vm.run(main())


@case("VM", "`vm.run()` on a second thread while the VM runs", cp.VMBusyError, "running on thread")
def _run_from_two_threads():
    vm = cp.VM()
    inside, done = threading.Event(), threading.Event()

    async def hold():
        inside.set()
        done.wait(10)

    thread = threading.Thread(target=lambda: vm.run(hold()))
    thread.start()
    inside.wait(10)
    try:
        vm.run(idle())
    finally:
        done.set()
        thread.join(10)


@case("VM", "nothing can run while the root waits", cp.Deadlock, "no task can make progress")
def _deadlock():
    async def main():
        await cp.channel().recv()

    return run(main)


@case("VM", "a livelock (a task that never waits)", cp.StepLimitExceeded, "livelock")
def _livelock():
    async def main():
        while True:
            await cp.checkpoint()

    return run(main, max_steps=100)


# -- tasks ---------------------------------------------------------------------------------------

case("tasks", "`cp.spawn(...)` outside a task", cp.NotInTaskError, "outside a Counterpoint task")(
    lambda: cp.spawn(idle())
)
case("tasks", "`cp.spawn(work)` (the function itself)", TypeError, "did you forget to call it")(
    lambda: in_task(lambda: cp.spawn(idle))
)
case("tasks", "`cp.spawn(coro, name=5)`", TypeError, "a task name must be a str")(
    lambda: in_task(lambda: cp.spawn(idle(), name=5))
)
case("tasks", "`task.result()` before it finished", cp.InvalidStateError, "has not finished yet")(
    lambda: in_task(lambda: cp.spawn(idle()).result())
)
case("tasks", "a task awaits itself", cp.InvalidStateError, "awaits itself")(
    lambda: in_task(lambda: _await(cp.current_task()))
)


@case("tasks", "`cp.sleep(1)` without `await`", cp.ForgottenAwaitError, "never awaited")
def _forgotten_await():
    async def body():
        cp.sleep(1)
        await cp.sleep(2)

    return in_task(body)


case("tasks", "`await asyncio.sleep(0)` in a task", cp.ForeignAwaitableError, "use cp.sleep")(
    lambda: in_task(lambda: asyncio.sleep(0))
)
case("tasks", "`await asyncio.Event().wait()` in a task", cp.ForeignAwaitableError, "asyncio")(
    lambda: in_task(lambda: asyncio.Event().wait())
)
case("tasks", "`cp.current_task()` outside a task", cp.NotInTaskError, "vm.run(main())")(
    cp.current_task
)
case("tasks", "`cp.rng()` outside a task", cp.NotInTaskError, "outside a Counterpoint task")(cp.rng)


async def _await(awaitable: Any) -> Any:
    return await awaitable


@case("tasks", "`await` a task of another VM", cp.WrongVMError, "belongs to another VM")
def _foreign_task():
    other = cp.VM()
    LAST_VM.append(other)
    task = other.spawn(idle())
    return in_task(lambda: _await(task))


# -- time ----------------------------------------------------------------------------------------

case("time", "`cp.sleep(-1)`", ValueError, "virtual time only moves forward")(
    lambda: in_task(lambda: cp.sleep(-1))
)
case("time", "`cp.sleep(0.5)`", TypeError, "a whole number of ticks")(
    lambda: in_task(lambda: cp.sleep(0.5))
)
case("time", "`cp.sleep(2**63)`", cp.TickRangeError, "past the last tick a journal can hold")(
    lambda: in_task(lambda: cp.sleep(2**63))
)
case("time", "`cp.now()` outside a task", cp.NotInTaskError, "outside a Counterpoint task")(cp.now)

# -- scopes and par ------------------------------------------------------------------------------


async def _open_scope(**options: Any) -> None:
    async with cp.scope(**options):
        pass


case("scopes", "`cp.scope(timeout=-1)`", ValueError, "timeout")(
    lambda: in_task(lambda: _open_scope(timeout=-1))
)
case("scopes", "`cp.scope(max_children=-1)`", ValueError, "max_children")(
    lambda: in_task(lambda: _open_scope(max_children=-1))
)


@case("scopes", "more children than `max_children`", cp.LimitExceeded, "allows at most 1 children")
def _too_many_children():
    async def body():
        async with cp.scope(max_children=1) as s:
            s.spawn(idle())
            s.spawn(idle())

    return in_task(body)


@case("scopes", "spawning into a scope that has exited", cp.ScopeClosed, "has already exited")
def _closed_scope():
    async def body():
        async with cp.scope() as s:
            pass
        s.spawn(idle())

    return in_task(body)


@case("scopes", "`s.spawn()` before `async with s`", cp.InvalidStateError, "was not entered")
def _unentered_scope():
    return in_task(lambda: cp.scope().spawn(idle()))


case("scopes", "`cp.par(work)` (a function)", TypeError, "did you forget to call it")(
    lambda: in_task(lambda: cp.par(idle))
)
case("scopes", "`cp.par(a(), b(), names=['a'])` (too few names)", ValueError, "one per coroutine")(
    lambda: in_task(lambda: cp.par(idle(), idle(), names=["a"]))
)
case("scopes", "`cp.par(a(), names='a')`", TypeError, "one name (a str, or None) per")(
    lambda: in_task(lambda: cp.par(idle(), names="a"))
)

# -- channels and select -------------------------------------------------------------------------

case("channels", "`cp.channel(-1)`", ValueError, "0 means rendezvous")(
    lambda: in_task(lambda: cp.channel(-1))
)
case("channels", "`cp.channel('2')`", TypeError, "capacity must be an int")(
    lambda: in_task(lambda: cp.channel("2"))
)
case("channels", "`cp.channel()` outside a task", cp.NotInTaskError, "vm.run(main())")(cp.channel)
case("channels", "`cp.channel(name=3)`", TypeError, "name must be a str (or None)")(
    lambda: in_task(lambda: cp.channel(name=3))
)
case("channels", "`cp.channel(name='')` (or over 100 characters)", ValueError, "1 to 100")(
    lambda: in_task(lambda: cp.channel(name=""))
)


@case("channels", "send on a closed channel", cp.ChannelClosed, "the value was not delivered")
def _send_closed():
    async def body():
        ch = cp.channel(1)
        ch.close()
        await ch.send(1)

    return in_task(body)


@case("channels", "receive on a closed, drained channel", cp.ChannelClosed, "closed and drained")
def _recv_closed():
    async def body():
        ch = cp.channel(1)
        ch.close()
        await ch.recv()

    return in_task(body)


@case("channels", "a channel of one VM used by another", cp.WrongVMError, "another VM")
def _foreign_channel():
    ch = cp.VM().channel()
    return in_task(lambda: ch.send(1))


case("select", "`cp.select()` with no case and no timeout", ValueError, "at least one case")(
    lambda: in_task(lambda: cp.select())
)
case("select", "`cp.select(42)`", TypeError, "must be channels")(
    lambda: in_task(lambda: cp.select(42))
)
case("select", "`cp.select(ch, policy='fair')`", ValueError, "'priority' or 'round_robin'")(
    lambda: in_task(lambda: cp.select(cp.channel(), policy="fair"))
)
case("select", "`cp.select(ch, timeout=-1)`", ValueError, ">= 0 ticks")(
    lambda: in_task(lambda: cp.select(cp.channel(), timeout=-1))
)

# -- synchronization -----------------------------------------------------------------------------

case("sync", "`cp.Semaphore(-1)`", ValueError, "value >= 0")(
    lambda: in_task(lambda: cp.Semaphore(-1))
)
case("sync", "`cp.Semaphore('1')`", TypeError, "needs an int")(
    lambda: in_task(lambda: cp.Semaphore("1"))
)
case("sync", "`cp.Barrier(0)`", ValueError, "parties >= 1")(lambda: in_task(lambda: cp.Barrier(0)))
case("sync", "`cp.Lock(name='a\\nb')`", ValueError, "control character")(
    lambda: in_task(lambda: cp.Lock(name="a\nb"))
)
case("sync", "`cp.Condition(cp.Semaphore())`", TypeError, "needs a cp.Lock")(
    lambda: in_task(lambda: cp.Condition(cp.Semaphore()))
)
case("sync", "releasing a lock nobody holds", cp.LockError, "held by nobody")(
    lambda: in_task(lambda: cp.Lock().release())
)


@case("sync", "acquiring a lock one already holds", cp.LockError, "not re-entrant")
def _reacquire():
    async def body():
        lock = cp.Lock()
        await lock.acquire()
        await lock.acquire()

    return in_task(body)


@case("sync", "releasing a `cp.RLock` held by another task", cp.LockError, "held by task")
def _foreign_rlock_release():
    async def body():
        lock = cp.RLock()
        await lock.acquire()
        await cp.spawn(_release(lock))

    return in_task(body)


async def _release(lock: Any) -> None:
    lock.release()


case("sync", "`cp.Condition(cp.RLock())`", TypeError, "not re-entrant")(
    lambda: in_task(lambda: cp.Condition(cp.RLock()))
)
case("sync", "`cp.CountdownEvent(-1)`", ValueError, "count) needs value >= 0")(
    lambda: in_task(lambda: cp.CountdownEvent(-1))
)
case("sync", "`countdown.signal(0)`", ValueError, "needs n >= 1")(
    lambda: in_task(lambda: cp.CountdownEvent(1).signal(0))
)
case("sync", "`countdown.signal(2.0)`", TypeError, "needs an int")(
    lambda: in_task(lambda: cp.CountdownEvent(1).signal(2.0))
)
case("sync", "signalling a countdown past 0", ValueError, "below 0")(
    lambda: in_task(lambda: cp.CountdownEvent(1).signal(2))
)
case("sync", "`add_count()` on a set countdown", ValueError, "already set")(
    lambda: in_task(lambda: cp.CountdownEvent(0).add_count())
)


@case("sync", "`cond.wait()` without holding its lock", cp.LockError, "async with cond:")
def _cond_without_lock():
    return in_task(lambda: cp.Condition().wait())


@case("sync", "releasing a `BoundedSemaphore` too often", ValueError, "released too many times")
def _over_release():
    return in_task(lambda: cp.BoundedSemaphore(1).release())


# -- workers -------------------------------------------------------------------------------------


@cp.worker.task
def bad_input_square(n):
    return n * n


@cp.worker.task
def bad_input_uses_the_vm(_payload):
    return cp.now()


@cp.worker.task
def bad_input_returns_an_object(_payload):
    return object()


async def _start_and_wait(name: str, payload: Any = None, **kw: Any) -> Any:
    handle = cp.worker.start(name, payload, **kw)
    await cp.worker.wait(handle)
    return cp.worker.result(handle)


case("workers", "`cp.worker.start('nope')`", cp.UnknownWorkerTask, "decorate a plain function")(
    lambda: in_task(lambda: cp.worker.start("nope"))
)
case("workers", "a payload that is not plain data", cp.NotPlainData, "plain data")(
    lambda: in_task(lambda: cp.worker.start("bad_input_square", object()))
)
case("workers", "`cost=0`", ValueError, "at least 1 tick")(
    lambda: in_task(lambda: cp.worker.start("bad_input_square", 2, cost=0))
)
case("workers", "workers with `max_workers=0`", cp.PolicyError, "disabled by policy")(
    lambda: in_task(lambda: cp.worker.start("bad_input_square", 2), max_workers=0)
)
case("workers", "`cp.worker.poll('1')`", TypeError, "takes a worker handle")(
    lambda: in_task(lambda: cp.worker.poll("1"))
)
case("workers", "`cp.worker.wait_any([])`", ValueError, "at least one handle")(
    lambda: in_task(lambda: cp.worker.wait_any([]))
)
case("workers", "`cp.worker.result(h)` of a pending worker", cp.InvalidStateError, "still pending")(
    lambda: in_task(lambda: cp.worker.result(cp.worker.start("bad_input_square", 3)))
)
case("workers", "a worker function that uses the VM", cp.WorkerFailed, "WorkerIsolationError")(
    lambda: in_task(lambda: _start_and_wait("bad_input_uses_the_vm"))
)
case("workers", "a worker result that is not plain data", cp.WorkerFailed, "TypeError")(
    lambda: in_task(lambda: _start_and_wait("bad_input_returns_an_object"))
)

# -- host events ---------------------------------------------------------------------------------

case("events", "`vm.events.enqueue(1, ...)`", TypeError, "event source must be a str")(
    lambda: cp.VM().events.enqueue(1, "x")
)
case("events", "an event payload that is not plain data", cp.NotPlainData, "plain data")(
    lambda: cp.VM().events.enqueue("keys", object())
)
case("events", "`cp.events.drain(-1)`", ValueError, "max_events must be >= 0")(
    lambda: in_task(lambda: cp.events.drain(-1))
)
case("events", "`await cp.events.next()` outside a task", cp.NotInTaskError, "outside")(
    cp.events.next
)

# -- journals and replay -------------------------------------------------------------------------

case("journal", "`cp.Journal.load('missing.db')`", cp.JournalError, "missing.db")(
    lambda: cp.Journal.load(ROOT / "missing.db")
)
case("journal", "`vm.journal.digest()` with `journal=False`", RuntimeError, "journal=None")(
    lambda: cp.VM(journal=False).journal.digest()
)


@case("replay", "replaying a program that changed", cp.NondeterminismError, "expected")
def _changed_program():
    async def original():
        await cp.sleep(3)

    async def changed():
        await cp.sleep(4)

    vm = cp.VM()
    vm.run(original())
    return cp.replay(changed, vm.journal)


# -- recovery (docs/recovery.md) ----------------------------------------------------------------


async def _two_ticks():
    await cp.sleep(2)
    return "done"


def _folder() -> Path:
    """A temporary folder, removed when the process exits."""
    folder = Path(tempfile.mkdtemp(prefix="counterpoint-badinput-"))
    atexit.register(shutil.rmtree, folder, True)
    return folder


def _journal_file(name: str = "run.db", **options: Any) -> Path:
    """A finished run's journal file, in a folder of its own."""
    path = _folder() / name
    with cp.VM(journal=path, **options) as vm:
        vm.run(_two_ticks())
    return path


case("recovery", "`cp.VM.recover('missing.db')`", cp.JournalError, "no such journal file")(
    lambda: cp.VM.recover(ROOT / "missing.db")
)
case("recovery", "`cp.VM.recover(42)`", TypeError, "needs a journal file path")(
    lambda: cp.VM.recover(42)
)


@case("recovery", "recovering a file that is not a journal", cp.JournalError, "not a Counterpoint")
def _recover_garbage():
    path = _folder() / "notes.db"
    path.write_bytes(b"my notes, not a journal\n" * 40)
    return cp.VM.recover(path)


@case("recovery", "recovering with another `seed=` than the run's", ValueError, "leave seed out")
def _recover_other_seed():
    return cp.VM.recover(_journal_file(seed=1), seed=2)


@case("recovery", "recovering a program that changed", cp.NondeterminismError, "diverged")
def _recover_changed_program():
    async def changed():
        await cp.sleep(3)
        return "done"

    # (the recovered VM is bound to its file, left untouched: no other program runs on it)
    return cp.VM.recover(_journal_file()).run(changed())


# -- steering ------------------------------------------------------------------------------------


def _stepped_vm() -> cp.VM:
    async def child():
        await cp.sleep(1)

    async def main():
        cp.spawn(child(), name="child")
        await cp.sleep(5)

    vm = cp.VM()
    LAST_VM.append(vm)
    vm.spawn(main())
    vm.step(task=1)
    return vm


@case(
    "steering",
    "`vm.step(task=ID)` for a task that is not ready",
    cp.InvalidStateError,
    "the ready tasks are",
)
def _step_blocked():
    _stepped_vm().step(task=1)


@case("steering", "`vm.step(task=...)` with a name instead of an id", TypeError, "task id")
def _step_by_name():
    _stepped_vm().step(task="child")


case("steering", "`vm.schedule` with `journal=False`", cp.JournalError, "journal=False")(
    lambda: cp.VM(journal=False).schedule
)
case("steering", "`vm.watch(...)` with something not callable", TypeError, "needs a callable")(
    lambda: cp.VM().watch("print")
)
case("journal", "`journal.records(0)` (event ids start at 1)", ValueError, "start at 1")(
    lambda: cp.VM().journal.records(0)
)


# -- exploration ---------------------------------------------------------------------------------

case("explore", "`cp.explore(main())` (a coroutine, not a factory)", TypeError, "zero-argument")(
    lambda: cp.explore(idle())
)
case("explore", "`cp.explore(main, strategy='bfs')`", ValueError, "strategy")(
    lambda: cp.explore(idle, strategy="bfs")
)
case("explore", "`cp.choose([])`", ValueError, "at least one option")(
    lambda: in_task(lambda: cp.choose([]))
)
case("explore", "`cp.choose(range(2**30))`", cp.LimitExceeded, "choose in steps")(
    lambda: in_task(lambda: cp.choose(range(2**30)))
)
case("explore", "`cp.require(x)` outside a task", cp.NotInTaskError, "outside")(
    lambda: cp.require(True)
)
case("explore", "`cp.explore(main, invariant=True)`", TypeError, "zero-argument callable")(
    lambda: cp.explore(idle, invariant=True)
)
case("explore", "`cp.explore(main, shared_only='yes')`", TypeError, "True or False")(
    lambda: cp.explore(idle, shared_only="yes")
)
case("explore", "`cp.shared(5)` (an immutable value)", TypeError, "put the value in a dict")(
    lambda: cp.shared(5)
)
case("explore", "`cp.shared(d, name=3)`", TypeError, "takes a str")(lambda: cp.shared({}, name=3))
case("explore", "`pickle.dumps(cp.shared(d))`", TypeError, "pickle the object it wraps")(
    lambda: __import__("pickle").dumps(cp.shared({}))
)


# -- widgets -------------------------------------------------------------------------------------


def _widgets():
    import counterpoint.widgets as widgets

    return widgets


def _lost_update():
    from scheduler_programs import lost_update  # (tests/: the lost update, for widgets)

    return lost_update


case("widgets", "`Timeline(42)` (not a VM, journal or path)", TypeError, "cp.VM, a cp.Journal")(
    lambda: _widgets().Timeline(42)
)
case("widgets", "`Timeline(vm, last=10**6)`", ValueError, "between 1 and 4000")(
    lambda: _widgets().Timeline(cp.VM(), last=10**6)
)
case("widgets", "`TimeTravel(vm, event=999)` past the journal's end", ValueError, "must be 0..")(
    lambda: _widgets().TimeTravel(cp.VM(), event=999)
)
case(
    "widgets", "`Scheduler(main())` (a coroutine, not the function)", TypeError, "Scheduler(main)"
)(lambda: _widgets().Scheduler(_lost_update()()))
case(
    "widgets", "`scheduler.choose(ID)` of a task that is not ready", cp.InvalidStateError, "ready"
)(lambda: _widgets().Scheduler(_lost_update(), timeline=False).choose(7))
case("widgets", "`finding.show()` of a finding unpickled elsewhere", ValueError, "program=")(
    lambda: _pickled_finding().show()
)


def _pickled_finding():
    import pickle

    return pickle.loads(pickle.dumps(cp.explore(_lost_update()).failures[0]))


def rows() -> list[tuple[str, str, str, str]]:
    return [(c.area, c.what, _name(c.error), c.says) for c in CASES]


def _name(error: type[BaseException]) -> str:
    return f"`cp.{error.__name__}`" if error.__module__ == "counterpoint" else f"`{error.__name__}`"


def table() -> str:
    lines = [
        f"{len(CASES)} kinds of bad input, each provoked by `tests/test_bad_input.py`:",
        "",
        "| area | the user ... | gets | and the message says (in part) |",
        "|---|---|---|---|",
    ]
    for area, what, error, says in rows():
        lines.append(f"| {area} | {what} | {error} | {says.replace('|', '/')} |")
    return "\n".join(lines)


def documented() -> str:
    text = DOC.read_text()
    return text[text.index(BEGIN) + len(BEGIN) : text.index(END)].strip()


def update_docs() -> None:
    text = DOC.read_text()
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    DOC.write_text(text[:start] + "\n" + table() + "\n" + text[end:])


if __name__ == "__main__":
    if "--update-docs" in sys.argv:
        update_docs()
        print(f"wrote {len(CASES)} cases to {DOC}")
    else:
        print(table())
