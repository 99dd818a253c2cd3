"""Journal robustness (issue 9, defect 8; vm/_journal.py, vm/_store.py, vm/_plaindata.py).

* Ticks and ids are bounded where they enter: a deadline past the last tick a journal can hold
  is a ``cp.TickRangeError`` at the call, and the journal file still completes.
* Ints in record values have at most 4,300 digits: recording writes a longer one as
  ``"<int of N bits>"``, plain data (workers, host events) refuses it, loading refuses it fast.
* Every file either raises ``cp.JournalError`` at load or gives a journal on which every
  operation works: proved by mutating valid JSON-lines and SQLite journals of a program that
  writes every record kind, and running every operation on whatever loads.
* Zero-byte files, a database copied without its ``-wal``, a VM used after ``close()`` and
  other hostile files each get a named error that says what happened.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import pytest

import counterpoint as cp
from counterpoint._journal import INT64_MAX, MAX_TICK

# ---------------------------------------------------------------------------
# Helpers


def load_error(path: Path) -> str:
    """The message of the JournalError that loading ``path`` raises (it names the file)."""
    with pytest.raises(cp.JournalError) as caught:
        cp.Journal.load(path)
    message = str(caught.value)
    assert str(path) in message
    return message


def modify(path: Path, *statements: str, params: tuple = ()) -> None:
    with contextlib.closing(sqlite3.connect(path)) as connection:
        for statement in statements:
            connection.execute(statement, params)
        connection.commit()


def loads_the_same(journal: cp.Journal, tmp_path: Path) -> None:
    """Both file formats give back a journal with the same digest and records."""
    for name in ("again.db", "again.jsonl"):
        path = tmp_path / name
        if name.endswith(".db"):
            journal.save(path)
        else:
            journal.export_jsonl(path)
        loaded = cp.Journal.load(path)
        assert loaded.digest() == journal.digest()
        assert loaded.to_records() == journal.to_records()


@cp.worker.task(name="robustness_square")
def _square(n):
    return n * n


@cp.worker.task(name="robustness_fail")
def _fail(payload):
    raise ValueError(f"bad input {payload!r}")


@cp.worker.task(name="robustness_echo")
def _echo(payload):
    return payload


# ---------------------------------------------------------------------------
# Ticks: bounded where they enter


def test_the_tick_bound_leaves_room_for_adding_one_more_bounded_count_in_64_bits():
    assert MAX_TICK == 2**62 - 1
    assert MAX_TICK + MAX_TICK <= INT64_MAX == 2**63 - 1  # SQLite INTEGER


@pytest.mark.parametrize("ticks", [2**63, 2**62, MAX_TICK + 1, 10**30], ids=hex)
def test_a_sleep_past_the_last_tick_is_a_tick_range_error_at_the_call(ticks):
    async def main():
        with pytest.raises(cp.TickRangeError) as caught:
            await cp.sleep(ticks)
        await cp.sleep(1)  # the task and the VM go on
        return str(caught.value)

    vm = cp.VM()
    message = vm.run(main())
    assert f"cp.sleep({ticks})" in message
    assert "2**62 - 1" in message and f"{MAX_TICK:,}" in message
    assert "sleep fewer ticks" in message
    assert vm.now == 1
    assert [r.kind for r in vm.journal].count("sleep") == 1  # the refused sleep wrote nothing


def test_a_tick_range_error_is_a_limit_exceeded_and_a_value_error():
    assert issubclass(cp.TickRangeError, cp.LimitExceeded)
    assert issubclass(cp.TickRangeError, ValueError)
    assert "TickRangeError" in cp.__all__


def test_the_deadline_counts_from_now_so_time_never_passes_the_last_tick():
    async def main():
        await cp.sleep(10)
        with pytest.raises(cp.TickRangeError, match="at tick 10 would reach tick"):
            await cp.sleep(MAX_TICK - 9)
        await cp.sleep(MAX_TICK - 10)  # exactly the last tick: allowed
        with pytest.raises(cp.TickRangeError):
            await cp.sleep(1)
        await cp.sleep(0)  # a checkpoint is always fine
        return cp.now()

    vm = cp.VM()
    assert vm.run(main()) == MAX_TICK


async def _scope_timeout(ticks):
    with contextlib.suppress(TimeoutError):
        async with cp.scope(timeout=ticks):
            await cp.sleep(ticks)


async def _select_timeout(ticks):
    await cp.select(cp.channel(), timeout=ticks)


async def _worker_cost(ticks):
    await cp.worker.wait(cp.worker.start("robustness_square", 3, cost=ticks))


TICK_CALLS = {
    "cp.sleep": (cp.sleep, "cp.sleep("),
    "scope timeout": (_scope_timeout, "cp.scope(timeout="),
    "select timeout": (_select_timeout, "cp.select(timeout="),
    "worker cost": (_worker_cost, "cp.worker.start(cost="),
}


@pytest.mark.parametrize("call", TICK_CALLS, ids=str)
def test_every_count_of_ticks_that_makes_a_deadline_is_bounded_at_the_call(call, tmp_path):
    """The defect: cp.sleep(2**63) was accepted, then close() raised a raw OverflowError
    and left the file incomplete.  Now the call raises and the file completes."""
    operation, words = TICK_CALLS[call]
    path = tmp_path / "run.db"

    async def main():
        await cp.sleep(5)
        with pytest.raises(cp.TickRangeError) as caught:
            await operation(2**63)
        assert words in str(caught.value)
        await operation(3)  # the same call within the bound works
        return cp.now()

    with cp.VM(journal=path) as vm:
        assert vm.run(main()) == 8
    loaded = cp.Journal.load(path)
    assert loaded.digest() == vm.journal.digest()
    assert dict(sqlite3.connect(path).execute("SELECT key, value FROM meta"))["complete"] == "1"


def test_a_run_at_the_last_tick_saves_and_loads_in_both_formats(tmp_path):
    async def main():
        await cp.sleep(MAX_TICK)
        return cp.now()

    vm = cp.VM()
    assert vm.run(main()) == MAX_TICK
    loads_the_same(vm.journal, tmp_path)
    assert vm.journal.state_at(len(vm.journal)).tick == MAX_TICK


# ---------------------------------------------------------------------------
# A VM whose journal file is closed


async def _short():
    await cp.sleep(1)
    return cp.now()


def _closed_vm(tmp_path: Path) -> tuple[cp.VM, Path]:
    path = tmp_path / "run.db"
    vm = cp.VM(journal=path)
    vm.run(_short())
    vm.close()
    return vm, path


@pytest.mark.parametrize(
    "action",
    [
        pytest.param(lambda vm: vm.run(_short()), id="vm.run"),
        pytest.param(lambda vm: vm.step(), id="vm.step"),
        pytest.param(lambda vm: vm.spawn(_short()), id="vm.spawn"),
        pytest.param(lambda vm: vm.channel(), id="vm.channel"),
    ],
)
def test_driving_a_vm_after_close_is_refused_and_no_record_is_lost(action, tmp_path):
    """The defect: vm.run after vm.close() ran without streaming, silently."""
    vm, path = _closed_vm(tmp_path)
    before = vm.journal.digest()
    with pytest.raises(cp.JournalError) as caught:
        action(vm)
    message = str(caught.value)
    assert str(path) in message and "vm.close()" in message and "cp.VM(journal=" in message
    assert vm.journal.digest() == before
    assert cp.Journal.load(path).digest() == before
    vm.close()  # still idempotent


def test_host_actions_that_would_journal_after_close_are_refused(tmp_path):
    path = tmp_path / "run.db"
    vm = cp.VM(journal=path)
    ch = vm.channel()
    vm.close()
    with pytest.raises(cp.JournalError, match=r"vm\.close\(\)"):
        ch.close()
    assert cp.Journal.load(path).digest() == vm.journal.digest()


def test_a_vm_without_a_journal_file_runs_after_close():
    vm = cp.VM()
    vm.run(_short())
    vm.close()
    assert vm.run(_short()) == 2
