"""Journal files (issue 4, "Persistence"; vm/_store.py): SQLite save/load, the queryable
records table and its indexes, JSONL export/import, streaming with ``cp.VM(journal=path)``,
a real SIGKILL mid-run, and bad files -> ``cp.JournalError`` naming the file and the problem.
Loading never executes code."""

from __future__ import annotations

import collections
import contextlib
import hashlib
import importlib.util
import itertools
import json
import os
import pickle
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest

import counterpoint as cp
from counterpoint import _store

EXAMPLES = sorted((Path(__file__).resolve().parent.parent / "examples").glob("*.py"))
BIG = 10**4299  # 4,300 digits: the longest int a journal holds, beyond the strictest int->str
# limit a process may set (640 digits)
TEXT = 'h\u00e9llo "w\u00f6rld" \\ \u2603 \U0001f600 \n\t \' \x00 \ud800 end'
EXPECTED_META_KEYS = {"format", "schema_version", "complete", "records", "digest"}


# ---------------------------------------------------------------------------
# Helpers


def prefix_digest(journal: cp.Journal, n: int) -> str:
    """The digest that a journal made of the first ``n`` records of ``journal`` would have."""
    hasher = hashlib.sha256()
    for line in itertools.islice(journal.iter_lines(), n):
        hasher.update(line.encode("ascii") + b"\n")
    return hasher.hexdigest()


def assert_same_journal(loaded: cp.Journal, original: cp.Journal) -> None:
    assert len(loaded) == len(original)
    assert loaded.digest() == original.digest()
    assert loaded.to_records() == original.to_records()
    assert loaded.meta == original.meta
    loaded._check()


def query(path: Path, sql: str, params: tuple = ()) -> list[tuple]:
    """Run a read-only query with plain sqlite3."""
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as connection:
        return connection.execute(sql, params).fetchall()


def modify(path: Path, *statements: str, params: tuple = ()) -> None:
    """Change a journal file behind Counterpoint's back."""
    with contextlib.closing(sqlite3.connect(path)) as connection:
        for statement in statements:
            connection.execute(statement, params)
        connection.commit()


def json_any(text: str):
    """json.loads, also for ints longer than the process's int->str limit."""
    return json.loads(text, parse_int=lambda digits: int(Decimal(digits)))


def meta_of(path: Path) -> dict[str, str]:
    return dict(query(path, "SELECT key, value FROM meta"))


def load_error(path: Path) -> str:
    """The message of the JournalError that loading ``path`` raises (it must name the file)."""
    with pytest.raises(cp.JournalError) as caught:
        cp.Journal.load(path)
    message = str(caught.value)
    assert str(path) in message
    return message


def load_example(path: Path):
    spec = importlib.util.spec_from_file_location(f"_journal_files_example_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_catching(vm: cp.VM, coro) -> None:
    """Run ``coro``; some programs end in an exception, which is part of what they show."""
    try:
        vm.run(coro)
    except Exception:
        pass


async def ping_pong(rounds: int, payload: str = "ping"):
    ping, pong = cp.channel(), cp.channel()

    async def echo():
        for _ in range(rounds):
            value = await ping.recv()
            await pong.send([payload, value + 1])

    cp.spawn(echo(), name="echo")
    last = None
    for i in range(rounds):
        await ping.send(i)
        last = await pong.recv()
    return last


async def sleepy(rounds: int):
    """Records at increasing ticks."""
    ch = cp.channel(1)
    for i in range(rounds):
        await cp.sleep(i % 3 + 1)
        await ch.send(i)
        await ch.recv()


def journal_of(coro, **options) -> cp.Journal:
    vm = cp.VM(**options)
    vm.run(coro)
    return vm.journal


# ---------------------------------------------------------------------------
# A program that uses (almost) everything: workers, host events, select, locks,
# scopes, cancellation, failures, large ints and awkward strings.


@cp.worker.task(name="journal_files_square")
def _square(n):
    return n * n


@cp.worker.task(name="journal_files_fail")
def _fail(payload):
    raise ValueError(f"bad input {payload!r}")


async def everything():
    ch = cp.channel()
    other = cp.channel(2)
    lock = cp.Lock()
    semaphore = cp.Semaphore(1)
    event = cp.Event()
    condition = cp.Condition()
    barrier = cp.Barrier(1)

    async def producer():
        await ch.send(BIG)
        await ch.send({"text": TEXT, TEXT: [TEXT, -BIG, 2.5, None, True]})
        await cp.sleep(2)
        ch.close()

    async def holder():
        async with lock:
            await cp.sleep(1)

    async def failing():
        await cp.sleep(1)
        raise ValueError(TEXT)

    async def waiter():
        await event.wait()

    cp.spawn(producer(), name=f"producer {TEXT}")
    got = [await ch.recv(), await ch.recv()]
    timed_out = await cp.select(other, timeout=1)
    closed = await cp.select(ch, other)
    await other.send(TEXT)
    await other.recv()
    handles = [cp.worker.start("journal_files_square", n, cost=n) for n in (3, 1, 2)]
    bad = cp.worker.start("journal_files_fail", TEXT, cost=2)
    statuses = [await cp.worker.wait(h) for h in [*handles, bad]]
    results = [cp.worker.result(h) for h in handles]
    host_event = await cp.events.next()
    held = cp.spawn(holder(), name="holder")
    await cp.checkpoint()
    async with lock:
        pass
    await held
    async with semaphore:
        pass
    waiting = cp.spawn(waiter(), name="waiter")
    await cp.checkpoint()
    event.set()
    event.clear()
    await waiting
    async with condition:
        condition.notify()
    await barrier.wait()
    picked = cp.choose(["tea", TEXT])
    victim = cp.spawn(cp.sleep(100), name="victim")
    await cp.checkpoint()
    victim.cancel()
    try:
        async with cp.scope() as s:
            s.spawn(failing(), name="failing")
    except ExceptionGroup:
        pass
    try:
        async with cp.scope(timeout=3):
            await cp.sleep(10)
    except TimeoutError:
        pass
    return {
        "got": got[1][TEXT][1] == -BIG,
        "select": [timed_out.index, closed.tag.name],
        "statuses": statuses,
        "results": results,
        "event": host_event.payload["text"],
        "picked": picked,
        "big": BIG,
    }


def run_everything(vm: cp.VM) -> dict:
    vm.events.enqueue(f"sensor {TEXT}", {"text": TEXT, "n": BIG})
    return vm.run(everything())


@pytest.fixture
def rich_vm():
    vm = cp.VM(seed=7, policy="random", max_workers=2)
    result = run_everything(vm)
    assert result["got"] is True
    assert result["statuses"] == [1, 1, 1, -1]
    assert result["results"] == [9, 1, 4]
    assert result["event"] == TEXT
    return vm


def test_the_rich_program_writes_the_kinds_these_tests_rely_on(rich_vm):
    kinds = {record.kind for record in rich_vm.journal}
    assert kinds >= {
        "spawn",
        "step",
        "block",
        "wake",
        "send",
        "recv",
        "close",
        "sleep",
        "timer",
        "cancel",
        "done",
        "fail",
        "cancelled",
        "select",
        "acquire",
        "release",
        "set",
        "clear",
        "notify",
        "create",
        "scope",
        "timeout",
        "queue",
        "start",
        "receipt",
        "event",
        "choose",
    }


# ---------------------------------------------------------------------------
# save / load


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.stem)
def test_save_then_load_gives_an_equal_journal_for_every_example(example, tmp_path):
    vm = cp.VM()
    run_catching(vm, load_example(example).main())
    assert len(vm.journal) > 0
    path = vm.journal.save(tmp_path / "run.db")
    assert path == tmp_path / "run.db"
    assert_same_journal(cp.Journal.load(path), vm.journal)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.stem)
def test_a_streamed_example_loads_as_the_in_memory_journal(example, tmp_path):
    path = tmp_path / "run.db"
    vm = cp.VM(journal=path)
    run_catching(vm, load_example(example).main())
    vm.close()
    assert_same_journal(cp.Journal.load(path), vm.journal)


def test_save_then_load_gives_an_equal_journal_for_a_program_using_every_feature(rich_vm, tmp_path):
    path = rich_vm.journal.save(tmp_path / "rich.db")
    loaded = cp.Journal.load(path)
    assert_same_journal(loaded, rich_vm.journal)
    assert loaded.meta == {"seed": 7, "policy": "random", "max_workers": 2}
    values = [r.data["value"] for r in loaded if r.kind == "send"]
    assert BIG in values
    assert {"text": TEXT, TEXT: [TEXT, -BIG, 2.5, None, True]} in values
    assert any(r.kind == "fail" and r.data["message"] == TEXT for r in loaded)
    assert any(r.kind == "spawn" and r.data["name"] == f"producer {TEXT}" for r in loaded)


def test_save_then_load_of_a_streamed_rich_run_gives_an_equal_journal(tmp_path):
    path = tmp_path / "rich.db"
    vm = cp.VM(seed=7, policy="random", max_workers=2, journal=path)
    run_everything(vm)
    vm.close()
    assert_same_journal(cp.Journal.load(path), vm.journal)


def test_a_journal_with_schedule_meta_keeps_it(tmp_path):
    vm = cp.VM(schedule="cp1:")
    vm.run(ping_pong(3))
    loaded = cp.Journal.load(vm.journal.save(tmp_path / "run.db"))
    assert loaded.meta["schedule"] == "cp1:"
    assert_same_journal(loaded, vm.journal)


def test_saving_replaces_an_existing_file(tmp_path):
    path = tmp_path / "run.db"
    journal_of(ping_pong(50)).save(path)
    small = journal_of(ping_pong(2))
    small.save(path)
    assert_same_journal(cp.Journal.load(path), small)


def test_an_empty_journal_round_trips_through_sqlite(tmp_path):
    empty = cp.Journal()
    assert_same_journal(cp.Journal.load(empty.save(tmp_path / "empty.db")), empty)
    assert empty.digest() == hashlib.sha256(b"").hexdigest()


def test_an_empty_journal_is_not_exported_to_an_empty_jsonl_file_that_would_not_load(tmp_path):
    with pytest.raises(cp.JournalError, match="no records") as caught:
        cp.Journal().export_jsonl(tmp_path / "empty.jsonl")
    assert "save()" in str(caught.value)
    assert not (tmp_path / "empty.jsonl").exists()


def test_load_accepts_str_and_path_objects(tmp_path):
    journal = journal_of(ping_pong(3))
    journal.save(str(tmp_path / "a.db"))
    assert cp.Journal.load(str(tmp_path / "a.db")).digest() == journal.digest()
    assert cp.Journal.load(tmp_path / "a.db").digest() == journal.digest()


# ---------------------------------------------------------------------------
# The SQLite file is queryable with plain sqlite3


def test_a_saved_file_answers_sql_queries_by_kind_task_and_tick(rich_vm, tmp_path):
    journal = rich_vm.journal
    path = journal.save(tmp_path / "rich.db")

    by_kind = dict(query(path, "SELECT kind, count(*) FROM records GROUP BY kind"))
    assert by_kind == dict(collections.Counter(r.kind for r in journal))

    def event_ids(where: str, value) -> list[int]:
        sql = f"SELECT event_id FROM records WHERE {where} = ? ORDER BY event_id"
        return [row[0] for row in query(path, sql, (value,))]

    for task in {r.task for r in journal}:
        assert event_ids("task", task) == [r.event_id for r in journal.filter(task=task)]
    for tick in {r.tick for r in journal}:
        assert event_ids("tick", tick) == [r.event_id for r in journal if r.tick == tick]

    rows = query(path, "SELECT event_id, tick, lane, task, kind, data FROM records")
    assert [
        {"event_id": e, "tick": t, "lane": la, "task": ta, "kind": k, "data": json_any(d)}
        for e, t, la, ta, k, d in rows
    ] == journal.to_records()


def test_the_records_table_holds_the_canonical_encoding(rich_vm, tmp_path):
    """Rebuilding each line from the columns gives the digest back."""
    path = rich_vm.journal.save(tmp_path / "rich.db")
    rows = query(path, "SELECT data, event_id, kind, lane, task, tick FROM records")
    text = "".join(
        '{"data":%s,"event_id":%d,"kind":"%s","lane":%d,"task":%d,"tick":%d}\n' % row
        for row in rows
    )
    assert hashlib.sha256(text.encode("ascii")).hexdigest() == rich_vm.journal.digest()


def test_the_records_table_has_indexes_by_task_kind_and_tick(tmp_path):
    path = journal_of(ping_pong(20)).save(tmp_path / "run.db")
    indexes = dict(query(path, "SELECT name, tbl_name FROM sqlite_master WHERE type = 'index'"))
    for name in ("records_by_task", "records_by_kind", "records_by_tick"):
        assert indexes.get(name) == "records"
    for column, value, index in (
        ("task", 2, "records_by_task"),
        ("kind", "send", "records_by_kind"),
        ("tick", 0, "records_by_tick"),
    ):
        plan = query(path, f"EXPLAIN QUERY PLAN SELECT * FROM records WHERE {column} = ?", (value,))
        assert any(index in row[-1] for row in plan), plan


def test_meta_names_the_format_version_completeness_count_and_digest(rich_vm, tmp_path):
    path = rich_vm.journal.save(tmp_path / "rich.db")
    meta = meta_of(path)
    assert meta["format"] == "counterpoint-journal"
    assert meta["schema_version"] == "1"
    assert meta["complete"] == "1"
    assert meta["records"] == str(len(rich_vm.journal))
    assert meta["digest"] == rich_vm.journal.digest()
    assert {key: json.loads(meta[key]) for key in ("seed", "policy", "max_workers")} == {
        "seed": 7,
        "policy": "random",
        "max_workers": 2,
    }
    assert query(path, "SELECT count(*) FROM records") == [(len(rich_vm.journal),)]


# ---------------------------------------------------------------------------
# JSON lines


def test_export_jsonl_writes_one_canonical_line_per_record(tmp_path):
    journal = journal_of(sleepy(20))
    path = journal.export_jsonl(tmp_path / "run.jsonl")
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b""  # every line ends in \n
    lines = lines[:-1]
    assert len(lines) == len(journal)
    for line, record in zip(lines, journal, strict=True):
        expected = json.dumps(
            record.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=True
        )
        assert line.decode("ascii") == expected


def test_the_sha256_of_the_jsonl_file_is_the_digest(rich_vm, tmp_path):
    path = rich_vm.journal.export_jsonl(tmp_path / "rich.jsonl")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == rich_vm.journal.digest()
    assert path.read_text(encoding="ascii").splitlines() == list(rich_vm.journal.iter_lines())


def test_loading_an_exported_jsonl_gives_the_same_journal(rich_vm, tmp_path):
    path = rich_vm.journal.export_jsonl(tmp_path / "rich.jsonl")
    loaded = cp.Journal.load(path)
    assert len(loaded) == len(rich_vm.journal)
    assert loaded.digest() == rich_vm.journal.digest()
    assert loaded.to_records() == rich_vm.journal.to_records()
    loaded._check()


def test_a_jsonl_import_can_be_saved_to_sqlite_and_back(rich_vm, tmp_path):
    imported = cp.Journal.load(rich_vm.journal.export_jsonl(tmp_path / "rich.jsonl"))
    again = cp.Journal.load(imported.save(tmp_path / "rich.db"))
    assert again.digest() == rich_vm.journal.digest()


def _replace_line(lines, number, text):
    lines[number - 1] = text


def _edit_record(lines, number, **changes):
    record = json.loads(lines[number - 1])
    for key, value in changes.items():
        if value is None:
            del record[key]
        else:
            record[key] = value
    lines[number - 1] = json.dumps(record, sort_keys=True, separators=(",", ":"))


JSONL_DAMAGE = {
    "bad json": (lambda lines: _replace_line(lines, 5, '{"data":{},"event_id":'), 5),
    "not an object": (lambda lines: _replace_line(lines, 4, "[1, 2, 3]"), 4),
    "missing key": (lambda lines: _edit_record(lines, 6, kind=None), 6),
    "missing data key": (lambda lines: _edit_record(lines, 4, data={}), 4),
    "unknown kind": (lambda lines: _edit_record(lines, 7, kind="teleport"), 7),
    "event_id gap": (lambda lines: lines.pop(4), 5),
    "event_id repeated": (lambda lines: lines.insert(3, lines[2]), 4),
    "negative task": (lambda lines: _edit_record(lines, 3, task=-1), 3),
    "ticks going backwards": (lambda lines: _edit_record(lines, -1 % len(lines) + 1, tick=0), None),
}


@pytest.mark.parametrize("damage", JSONL_DAMAGE, ids=str)
def test_a_corrupted_jsonl_line_is_a_journal_error_naming_the_file_and_line(damage, tmp_path):
    journal = journal_of(sleepy(6))
    assert journal[-1].tick > 0 and journal[3].kind == "sleep"
    lines = list(journal.iter_lines())
    mutate, number = JSONL_DAMAGE[damage]
    mutate(lines)
    if number is None:  # the last line
        number = len(lines)
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="ascii")
    message = load_error(path)
    assert f"line {number} " in message


def test_a_jsonl_line_with_invalid_utf8_is_a_journal_error(tmp_path):
    lines = [line.encode("ascii") for line in journal_of(sleepy(2)).iter_lines()]
    lines[1] = lines[1].replace(b'"step"', b'"st\xffep"')
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    assert "line 2" in load_error(path)


# ---------------------------------------------------------------------------
# Streaming: cp.VM(journal=path)


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of at least 50 records, written between slices of 10 steps, with a WAL
    checkpoint every 3 chunks."""
    monkeypatch.setattr(_store, "CHUNK", 50)
    monkeypatch.setattr(_store, "CHECKPOINT_EVERY", 3)


def chunk_rows(path: Path) -> list[tuple[int, int]]:
    return query(path, "SELECT first, count FROM chunks ORDER BY first")


def test_a_streaming_vm_writes_chunks_while_it_runs(small_chunks, tmp_path):
    path = tmp_path / "run.db"
    seen = []

    async def main():
        ch = cp.channel(1)
        for i in range(200):
            await ch.send(i)
            await ch.recv()
            if i == 150:
                seen.append(chunk_rows(path))  # mid-run, from inside a task

    vm = cp.VM(journal=path)
    vm._slice = 10
    vm.run(main())
    mid_run = seen[0]
    assert len(mid_run) >= 3
    for (first, count), (next_first, _) in itertools.pairwise(mid_run):
        assert count >= 50
        assert first + count == next_first
    assert mid_run[0][0] == 0
    # what was written mid-run is a prefix of the run
    written = sum(count for _, count in mid_run)
    assert written < len(vm.journal)
    vm.close()


def test_after_run_returns_the_file_holds_the_whole_journal_without_close(tmp_path):
    path = tmp_path / "run.db"
    vm = cp.VM(seed=3, policy="random", max_workers=1, journal=path)
    vm.run(ping_pong(30))
    loaded = cp.Journal.load(path)
    assert_same_journal(loaded, vm.journal)
    assert meta_of(path)["complete"] == "0"  # not finished until close()
    assert query(path, "SELECT count(*) FROM records") == [(0,)]
    vm.close()


def test_after_a_failed_run_the_file_holds_the_whole_journal(tmp_path):
    path = tmp_path / "run.db"
    vm = cp.VM(journal=path)

    async def main():
        await cp.sleep(1)
        raise KeyError("no")

    with pytest.raises(KeyError):
        vm.run(main())
    assert_same_journal(cp.Journal.load(path), vm.journal)
    vm.close()


async def _deadlock():
    await cp.channel().recv()


async def _spin():
    while True:
        await cp.checkpoint()


@pytest.mark.parametrize(
    ("program", "error", "options"),
    [(_deadlock, cp.Deadlock, {}), (_spin, cp.StepLimitExceeded, {"max_steps": 20})],
    ids=["deadlock", "step limit"],
)
def test_after_a_run_that_raises_the_file_holds_the_whole_journal(
    program, error, options, tmp_path
):
    path = tmp_path / "run.db"
    vm = cp.VM(journal=path, **options)
    with pytest.raises(error):
        vm.run(program())
    try:
        assert len(cp.Journal.load(path)) == len(vm.journal)
    finally:
        vm.close()


def test_after_a_run_that_raises_the_file_is_still_a_loadable_prefix(tmp_path):
    path = tmp_path / "run.db"
    vm = cp.VM(journal=path)
    with pytest.raises(cp.Deadlock):
        vm.run(_deadlock())
    loaded = cp.Journal.load(path)
    assert 0 < len(loaded) <= len(vm.journal)
    assert loaded.digest() == prefix_digest(vm.journal, len(loaded))
    vm.close()
    assert_same_journal(cp.Journal.load(path), vm.journal)


def test_vm_step_flushes_everything_it_ran(small_chunks, tmp_path):
    path = tmp_path / "run.db"
    vm = cp.VM(journal=path)
    vm._slice = 10
    vm.spawn(ping_pong(100))
    for n in (1, 7, 100, 3):
        assert vm.step(n) == n
        loaded = cp.Journal.load(path)
        assert len(loaded) == len(vm.journal)
        assert loaded.digest() == vm.journal.digest()
    vm.close()


def test_close_completes_the_records_table_and_meta(small_chunks, tmp_path):
    path = tmp_path / "run.db"
    vm = cp.VM(journal=path)
    vm._slice = 10
    vm.run(ping_pong(100))
    vm.close()
    meta = meta_of(path)
    assert meta["complete"] == "1"
    assert meta["records"] == str(len(vm.journal))
    assert meta["digest"] == vm.journal.digest()
    assert query(path, "SELECT count(*), min(event_id), max(event_id) FROM records") == [
        (len(vm.journal), 1, len(vm.journal))
    ]
    assert len(chunk_rows(path)) > 3
    assert_same_journal(cp.Journal.load(path), vm.journal)
    vm.close()  # idempotent
    assert_same_journal(cp.Journal.load(path), vm.journal)


def test_a_vm_used_as_a_context_manager_completes_its_file(tmp_path):
    path = tmp_path / "run.db"
    with cp.VM(journal=path) as vm:
        vm.run(ping_pong(5))
    assert meta_of(path)["complete"] == "1"
    assert_same_journal(cp.Journal.load(path), vm.journal)


def test_a_vm_that_runs_several_times_appends_to_its_file(small_chunks, tmp_path):
    path = tmp_path / "run.db"
    vm = cp.VM(journal=path)
    vm._slice = 10
    lengths = []
    for rounds in (3, 40, 1, 25):
        vm.run(ping_pong(rounds))
        loaded = cp.Journal.load(path)
        assert loaded.digest() == vm.journal.digest()
        lengths.append(len(loaded))
    assert lengths == sorted(set(lengths))  # grew every time
    chunks = chunk_rows(path)
    assert [first for first, _ in chunks] == list(
        itertools.accumulate([0] + [count for _, count in chunks[:-1]])
    )
    vm.close()
    assert_same_journal(cp.Journal.load(path), vm.journal)


def test_a_streaming_vm_keeps_the_journal_in_memory_too(tmp_path):
    path = tmp_path / "run.db"
    streaming = cp.VM(journal=path)
    memory = cp.VM()
    assert streaming.run(ping_pong(10)) == memory.run(ping_pong(10))
    assert streaming.journal.enabled
    assert len(streaming.journal) == len(memory.journal) > 0
    assert streaming.journal.to_records() == memory.journal.to_records()
    assert streaming.journal.digest() == memory.journal.digest()
    streaming.close()


def test_a_streaming_vm_replaces_an_existing_file(tmp_path):
    path = tmp_path / "run.db"
    journal_of(ping_pong(50)).save(path)
    with cp.VM(journal=str(path)) as vm:
        vm.run(ping_pong(2))
    assert_same_journal(cp.Journal.load(path), vm.journal)


# ---------------------------------------------------------------------------
# A real kill: SIGKILL mid-run leaves a file that loads, a prefix of the run

ENDLESS_PING_PONG = """
import counterpoint as cp


async def main():
    ping, pong = cp.channel(), cp.channel()

    async def echo():
        while True:
            value = await ping.recv()
            await pong.send([value, "pong \\u2603"])

    cp.spawn(echo(), name="echo")
    n = 0
    while True:
        await ping.send(n)
        n = (await pong.recv())[0] + 1
"""


def _chunks_in(path: Path) -> int:
    """How many chunks the file has now (0 while it does not exist or has no table yet)."""
    if not path.exists():
        return 0
    try:
        return query(path, "SELECT count(*) FROM chunks")[0][0]
    except sqlite3.Error:
        return 0


@pytest.mark.slow
@pytest.mark.parametrize(
    ("settings", "wanted_chunks"),
    [
        ("", 1),
        ("import counterpoint._store\ncounterpoint._store.CHUNK = 300\n", 5),
        (
            "import counterpoint._store\ncounterpoint._store.CHUNK = 300\n"
            "counterpoint._store.CHECKPOINT_EVERY = 2\n",
            7,
        ),
    ],
    ids=["default chunks", "small chunks", "checkpointed mid-run"],
)
def test_a_process_killed_mid_run_leaves_a_loadable_prefix_of_the_run(
    settings, wanted_chunks, tmp_path
):
    path = tmp_path / "killed.db"
    code = (
        ENDLESS_PING_PONG
        + settings
        + f"vm = cp.VM(journal={str(path)!r})\n"
        + ("vm._slice = 100\n" if settings else "")
        + "vm.run(main())\n"
    )
    stderr = tmp_path / "stderr.txt"
    with stderr.open("wb") as errors:
        process = subprocess.Popen([sys.executable, "-c", code], stderr=errors)
    try:
        deadline = time.monotonic() + 60
        while _chunks_in(path) < wanted_chunks:
            assert process.poll() is None, stderr.read_text()
            assert time.monotonic() < deadline, "no chunk was written within 60 s"
            time.sleep(0.01)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
    assert process.returncode == -signal.SIGKILL

    loaded = cp.Journal.load(path)
    assert len(loaded) > 0
    assert loaded.meta == {"seed": 0, "policy": "fifo", "max_workers": None}
    assert meta_of(path)["complete"] == "0"
    loaded._check()

    # the same program in memory, run at least as far
    namespace: dict = {}
    exec(ENDLESS_PING_PONG, namespace)
    vm = cp.VM()
    vm.spawn(namespace["main"]())
    while len(vm.journal) < len(loaded):
        vm.step(20_000)
    assert loaded.digest() == prefix_digest(vm.journal, len(loaded))
    assert loaded[:20] == vm.journal[:20]
    assert loaded[-1] == vm.journal[len(loaded) - 1]


# ---------------------------------------------------------------------------
# Loading never executes code


class _Trap:
    """Unpickling this creates a directory: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def _pickle_payload(marker: Path, protocol: int) -> bytes:
    payload = pickle.dumps(_Trap(marker), protocol=protocol)
    pickle.loads(payload)  # the trap is live ...
    assert marker.is_dir()
    marker.rmdir()  # ... reset it
    return payload


SMUGGLED = {
    "vals as a pickle blob": ("UPDATE chunks SET vals = ?", 5),
    "vals as pickle text": ("UPDATE chunks SET vals = ?", 0),
    "vals as pickle text with a pickle format": (
        "UPDATE chunks SET vals = ?, vals_format = 'pickle'",
        0,
    ),
    "rows as a pickle blob with a pickle format": (
        "UPDATE chunks SET rows = ?, rows_format = 'pickle'",
        5,
    ),
    "marks as pickle text": ("UPDATE chunks SET marks = ?", 0),
}


@pytest.mark.parametrize("where", SMUGGLED, ids=str)
def test_loading_never_unpickles_a_smuggled_payload(where, tmp_path):
    marker = tmp_path / "code-ran"
    statement, protocol = SMUGGLED[where]
    payload = _pickle_payload(marker, protocol)
    value = payload.decode("latin-1") if protocol == 0 else payload
    path = journal_of(ping_pong(5)).save(tmp_path / "run.db")
    modify(path, statement, params=(value,))
    message = load_error(path)
    assert "corrupted" in message
    assert not marker.exists()


def test_loading_never_unpickles_a_smuggled_jsonl_line(tmp_path):
    marker = tmp_path / "code-ran"
    payload = _pickle_payload(marker, 0)
    path = tmp_path / "run.jsonl"
    lines = list(journal_of(ping_pong(2)).iter_lines())
    path.write_bytes("\n".join(lines[:2]).encode() + b"\n" + payload + b"\n")
    assert "line 3" in load_error(path)
    assert not marker.exists()


# ---------------------------------------------------------------------------
# Bad files -> cp.JournalError naming the file and the problem


@pytest.fixture
def saved(tmp_path) -> tuple[Path, cp.Journal]:
    """A completed journal file of a ping-pong of 2,000 round trips."""
    journal = journal_of(ping_pong(2000))
    return journal.save(tmp_path / "saved.db"), journal


def test_a_missing_file_is_a_journal_error(tmp_path):
    assert "no such journal file" in load_error(tmp_path / "nothing.db")


@pytest.mark.parametrize("name", ["empty.db", "empty", "empty.sqlite"])
def test_an_empty_file_is_a_journal_error(name, tmp_path):
    path = tmp_path / name
    path.write_bytes(b"")
    assert "not a Counterpoint journal" in load_error(path)


def test_a_text_file_with_a_db_name_is_a_journal_error(tmp_path):
    path = tmp_path / "notes.db"
    path.write_text("just some notes\n", encoding="utf-8")
    assert "not a Counterpoint journal" in load_error(path)


def test_a_directory_is_a_journal_error(tmp_path):
    path = tmp_path / "dir.db"
    path.mkdir()
    load_error(path)


def test_an_sqlite_file_that_is_not_a_journal_is_a_journal_error(tmp_path):
    path = tmp_path / "other.db"
    modify(path, "CREATE TABLE t (x)")
    assert "not a Counterpoint journal" in load_error(path)


def test_an_sqlite_file_of_another_format_is_a_journal_error(saved):
    path, _ = saved
    modify(path, "UPDATE meta SET value = 'something-else' WHERE key = 'format'")
    assert "something-else" in load_error(path)


@pytest.mark.parametrize("fraction", [0.25, 0.5, 0.75])
def test_a_truncated_file_is_a_journal_error(fraction, saved, tmp_path):
    path, _ = saved
    data = path.read_bytes()
    truncated = tmp_path / "truncated.db"
    truncated.write_bytes(data[: int(len(data) * fraction)])
    assert "corrupted" in load_error(truncated)


def test_corrupting_the_chunk_data_is_a_journal_error(saved, tmp_path):
    path, _ = saved
    blob = query(path, "SELECT rows FROM chunks")[0][0]
    data = bytearray(path.read_bytes())
    at = data.find(blob[:256]) + 128
    assert at > 128
    data[at : at + 64] = b"\xff" * 64
    damaged = tmp_path / "damaged.db"
    damaged.write_bytes(bytes(data))
    assert "corrupted" in load_error(damaged)


def test_overwriting_bytes_in_the_middle_of_a_file_is_a_journal_error(saved, tmp_path):
    path, _ = saved
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = b"\xff" * 64
    damaged = tmp_path / "damaged.db"
    damaged.write_bytes(bytes(data))
    assert "corrupted" in load_error(damaged)


def test_a_wrong_schema_version_is_a_journal_error(saved):
    path, _ = saved
    modify(path, "UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    message = load_error(path)
    assert "schema version 2" in message
    assert "version 1" in message


def test_a_file_without_a_schema_version_is_a_journal_error(saved):
    path, _ = saved
    modify(path, "DELETE FROM meta WHERE key = 'schema_version'")
    assert "schema version" in load_error(path)


def test_a_missing_chunk_is_a_journal_error(small_chunks, tmp_path):
    path = tmp_path / "run.db"
    vm = cp.VM(journal=path)
    vm._slice = 10
    vm.run(ping_pong(100))
    chunks = chunk_rows(path)
    assert len(chunks) >= 4
    first, count = chunks[2]
    vm.close()
    modify(path, f"DELETE FROM chunks WHERE first = {first}")
    assert f"records {first + 1}..{first + count} are missing" in load_error(path)


def test_a_missing_chunk_of_an_unfinished_file_is_a_journal_error(small_chunks, tmp_path):
    path = tmp_path / "run.db"
    vm = cp.VM(journal=path)
    vm._slice = 10
    vm.run(ping_pong(100))
    middle = chunk_rows(path)[1][0]
    modify(path, f"DELETE FROM chunks WHERE first = {middle}")
    assert "missing" in load_error(path)
    vm.close()


def test_a_missing_last_chunk_of_a_completed_file_is_a_journal_error(small_chunks, tmp_path):
    path = tmp_path / "run.db"
    with cp.VM(journal=path) as vm:
        vm._slice = 10
        vm.run(ping_pong(100))
    modify(path, "DELETE FROM chunks WHERE first = (SELECT max(first) FROM chunks)")
    message = load_error(path)
    assert f"says it has {len(vm.journal)} records" in message


def test_a_records_count_mismatch_in_a_completed_file_is_a_journal_error(saved):
    path, journal = saved
    modify(path, "UPDATE meta SET value = ? WHERE key = 'records'", params=(str(len(journal) + 1),))
    assert f"says it has {len(journal) + 1} records, but {len(journal)}" in load_error(path)


def test_a_digest_mismatch_in_a_completed_file_is_a_journal_error(saved):
    path, _ = saved
    modify(path, "UPDATE meta SET value = ? WHERE key = 'digest'", params=("0" * 64,))
    assert "digest" in load_error(path)


def test_a_changed_value_in_a_completed_file_is_a_journal_error(saved):
    path, _ = saved
    modify(path, "UPDATE chunks SET vals = replace(vals, '\"ping\"', '\"pong\"')")
    assert "digest" in load_error(path)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE chunks SET vals = '[1, 2'",
        "UPDATE chunks SET vals = '{}'",
        "UPDATE chunks SET vals = '5'",
        "UPDATE chunks SET vals_format = 'yaml'",
        "UPDATE chunks SET rows = X'0102'",
        "UPDATE chunks SET rows = X'FFFFFFFFFFFFFFFF'",
        "UPDATE chunks SET marks = '[]'",
        "UPDATE chunks SET marks = '[[0, -1]]'",
        "UPDATE chunks SET count = count + 1",
    ],
)
def test_a_damaged_chunk_is_a_journal_error(statement, saved):
    path, _ = saved
    modify(path, statement)
    assert "corrupted" in load_error(path)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE meta SET value = 'not json' WHERE key = 'seed'",
        "UPDATE meta SET value = 'many' WHERE key = 'records'",
        "UPDATE chunks SET count = 'many'",
        """UPDATE chunks SET marks = '{"a": 1}'""",
    ],
    ids=["meta value not json", "records count not an int", "chunk count text", "marks a dict"],
)
def test_damaged_metadata_is_a_journal_error(statement, saved):
    path, _ = saved
    modify(path, statement)
    load_error(path)


@pytest.mark.parametrize("writer_limit", [0, 640], ids=["unlimited", "strictest"])
def test_a_journal_saved_with_any_int_digits_limit_loads_with_the_default_limit(
    writer_limit, tmp_path
):
    path = tmp_path / "big.db"
    limit = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(writer_limit)
    try:
        journal = journal_of(ping_pong(2, payload=BIG))  # type: ignore[arg-type]
        journal.save(path)
        digest = journal.digest()
    finally:
        sys.set_int_max_str_digits(limit)
    assert cp.Journal.load(path).digest() == digest
    values = [record.data["value"] for record in cp.Journal.load(path).filter(kind="send")]
    assert [BIG, 1] in values


# ---------------------------------------------------------------------------
# Writing


@pytest.mark.parametrize(
    "write",
    [
        pytest.param(lambda path: journal_of(ping_pong(2)).save(path), id="save"),
        pytest.param(lambda path: cp.VM(journal=path), id="VM(journal=path)"),
        pytest.param(
            lambda path: journal_of(ping_pong(2)).export_jsonl(path),
            id="export_jsonl",
        ),
    ],
)
def test_writing_to_a_directory_that_does_not_exist_is_a_journal_error(write, tmp_path):
    path = tmp_path / "no" / "such" / "dir" / "run.db"
    with pytest.raises(cp.JournalError) as caught:
        write(path)
    assert str(path) in str(caught.value)
    assert not path.parent.exists()


@pytest.mark.parametrize("bad", [3, 2.5, b"run.db", ["run.db"], object()], ids=repr)
def test_journal_of_a_bad_type_is_a_type_error(bad):
    with pytest.raises(TypeError, match="journal must be"):
        cp.VM(journal=bad)


def test_copying_a_completed_file_gives_a_loadable_file(saved, tmp_path):
    """A completed file is self-contained (no -wal file needed)."""
    path, journal = saved
    copy = tmp_path / "copy.db"
    shutil.copyfile(path, copy)
    assert cp.Journal.load(copy).digest() == journal.digest()
