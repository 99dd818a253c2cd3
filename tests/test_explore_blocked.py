"""Finding.blocked / Finding.finished: a deadlock finding says who was stuck on what,
and who had already finished; plain data outside the finding's six fields."""

from __future__ import annotations

import base64
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

import counterpoint as cp
from counterpoint._report import Finding


async def crossed():
    """Two diners take the fork and knife in opposite orders, after a waiter is done."""
    fork, knife = cp.Lock(name="fork"), cp.Lock(name="knife")

    async def eat(first, second):
        async with first:
            await cp.checkpoint()
            async with second:
                pass

    async def waiter():
        return "served"

    await cp.spawn(waiter())
    await cp.par(eat(fork, knife), eat(knife, fork), names=["left", "right"])


async def divides():
    if cp.choose([1, 0]) == 0:
        raise ZeroDivisionError("the 0 was chosen")


def test_a_deadlock_finding_says_which_tasks_were_blocked_on_what_and_which_had_finished():
    (finding,) = cp.explore(crossed).deadlocks
    assert finding.blocked == (
        (1, "crossed", "for its cp.par() branches (tasks 3, 4) to finish"),
        (3, "left", "to acquire lock 'knife' (held by task 4 'right')"),
        (4, "right", "to acquire lock 'fork' (held by task 3 'left')"),
    )
    assert finding.finished == ((2, "waiter", "done"),)


def test_a_deadlock_findings_blocked_tasks_are_those_of_its_replayed_run():
    (finding,) = cp.explore(crossed).deadlocks
    try:
        cp.VM(schedule=finding.schedule).run(crossed())
    except cp.Deadlock as error:
        replayed = error
    assert finding.blocked == tuple(map(tuple, replayed.blocked))
    assert finding.finished == tuple(map(tuple, replayed.finished))


def test_a_failure_finding_has_no_blocked_or_finished_tasks():
    (finding,) = cp.explore(divides).failures
    assert finding.blocked == () and finding.finished == ()


def test_blocked_and_finished_leave_a_findings_fields_repr_and_equality_as_they_were():
    (finding,) = cp.explore(crossed).deadlocks
    assert finding._fields == ("outcome", "message", "schedule", "preemptions", "count", "replay")
    bare = Finding(*finding)  # the same six fields, nothing else known
    assert bare == finding and repr(bare) == repr(finding)
    assert bare.blocked == () and bare.finished == ()


def test_blocked_and_finished_survive_pickling_and_an_older_pickle_loads_without_them():
    (finding,) = cp.explore(crossed).deadlocks
    again = pickle.loads(pickle.dumps(finding))
    assert (again.blocked, again.finished) == (finding.blocked, finding.finished)
    older = pickle.loads(pickle.dumps(Finding(*finding)))  # as pickled before they existed
    assert older == finding and older.blocked == () and older.finished == ()


def test_blocked_and_finished_are_the_same_in_another_process_with_another_hash_seed():
    code = (
        "import base64, pickle, sys\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "import counterpoint as cp\n"
        "from test_explore_blocked import crossed\n"
        "(f,) = cp.explore(crossed).deadlocks\n"
        "sys.stdout.write(base64.b64encode(pickle.dumps((f.blocked, f.finished))).decode())\n"
    )
    (finding,) = cp.explore(crossed).deadlocks
    env = {"PYTHONHASHSEED": "23", "PATH": ""}
    done = subprocess.run(
        [sys.executable, "-c", code, str(Path(__file__).parent)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    there = pickle.loads(base64.b64decode(done.stdout))
    assert there == (finding.blocked, finding.finished)


# -- partial-order reduction keeps every outcome of programs on the teaching primitives ----


async def rlock_readers():
    lock, log = cp.RLock(), cp.shared([])

    async def nested(name):
        async with lock:
            await cp.checkpoint()
            async with lock:
                log.append(name)
            log.append(lock.locked())

    async def peek():
        await cp.checkpoint()
        got = lock.try_acquire()
        log.append(("peek", got))
        if got:
            lock.release()

    await cp.par(nested("a"), nested("b"), peek())
    return tuple(log)


async def countdown_readers():
    done, log = cp.CountdownEvent(1), cp.shared([])

    async def signaller():
        await cp.checkpoint()
        log.append(done.signal())

    async def adder():  # more work, unless the countdown is set already
        await cp.checkpoint()
        if not done.is_set():
            done.add_count()
            await cp.checkpoint()
            log.append(done.signal())

    async def reader():
        await cp.checkpoint()
        log.append(done.count)
        await done.wait()
        log.append("woke")

    await cp.par(signaller(), adder(), reader(), names=["s", "a", "r"])
    return tuple(log)


@pytest.mark.parametrize("program", [rlock_readers, countdown_readers])
@pytest.mark.parametrize("shared_only", [False, True])
def test_reduction_finds_every_outcome_of_programs_on_rlocks_and_countdowns(program, shared_only):
    full = cp.explore(program, por=False)
    reduced = cp.explore(program, shared_only=shared_only)
    assert full.exhaustive and reduced.exhaustive
    assert len(full.outcomes) > 1  # (the programs race)
    assert set(reduced.outcomes) == set(full.outcomes)
