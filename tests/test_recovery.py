"""Recovery (issue 13, "Recovery"; vm/_recover.py, docs/recovery.md): ``cp.VM.recover(path)``
re-executes a program against the journal file a killed or stopped run left, then goes
on live appending to the same file, which ends as the uninterrupted run's file.

The test that matters kills a run (workers on the process backend, host events, timers,
a seeded random policy) at more than 20 moments chosen from a fixed seed -- mid-chunk,
mid-checkpoint, during close, while a worker works, after so many records or
milliseconds -- recovers it (killing some recoveries too, and recovering again) and
checks that the final journal and result are the uninterrupted run's."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

import counterpoint as cp

PROGRAM = Path(__file__).resolve().parent / "recovery_program.py"
TIMEOUT = 120  # seconds any one child may take (they take about half a second)


# ---------------------------------------------------------------------------
# Helpers: a child process running or recovering tests/recovery_program.py


def _env(**extra: str) -> dict:
    env = dict(os.environ, PYTHONHASHSEED=str(random.randrange(1, 2**31)), **extra)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    return env


def _finished(process: subprocess.Popen, what: str) -> dict:
    out, err = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 0, f"{what} failed ({process.returncode}):\n{err}"
    return json.loads(out.strip().splitlines()[-1])


def start(command: str, path: Path, **extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(PROGRAM), command, str(path)],
        env=_env(**extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def records_in(path: Path) -> int:
    """Records committed to the file so far (0 while it is being created)."""
    try:
        uri = path.absolute().as_uri() + "?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=0.1)) as connection:
            (count,) = connection.execute("SELECT coalesce(sum(count), 0) FROM chunks").fetchone()
            return count
    except sqlite3.Error:
        return 0


def wait_for(condition, process: subprocess.Popen) -> bool:
    """Poll ``condition`` until it holds (True) or the process ends (False)."""
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        if process.poll() is not None:
            return False
        assert time.monotonic() < deadline, "the child made no progress"
        time.sleep(0.002)
    return True


def kill(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)
    process.communicate(timeout=TIMEOUT)


def run_killed(command: str, path: Path, moment: tuple, marks: Path) -> int | None:
    """Run (or recover) until ``moment``, where it dies; the return status (None if it
    finished before the moment came)."""
    how, at = moment
    if how == "statement":  # the child kills itself as its writer starts that statement
        process = start(command, path, CP_KILL_AT=at)
        process.communicate(timeout=TIMEOUT)
        return None if process.returncode == 0 else process.returncode
    process = start(command, path, CP_WORKER_MARK=str(marks))
    if how == "records":
        came = wait_for(lambda: records_in(path) >= at, process)
    elif how == "worker":
        came = wait_for(lambda: Path(f"{marks}{at}").exists(), process)
    else:  # milliseconds after the file has its first chunk
        came = wait_for(lambda: records_in(path) > 0, process)
        time.sleep(at / 1000)
        came = came and process.poll() is None
    kill(process)
    return process.returncode if came else None


def moments(count_each: int, seed: int) -> list[tuple]:
    """Kill moments, chosen from ``seed``: self-kills at exact SQL statements of the
    writer (a chunk written but not committed, a checkpoint, closing), and kills from
    outside after a number of committed records, while a worker works, after some ms."""
    rng = random.Random(seed)
    chosen = [("statement", f"COMMIT:{n}") for n in rng.sample(range(2, 20), count_each + 1)]
    chosen += [
        ("statement", f"PRAGMA wal_checkpoint(PASSIVE):{n}") for n in rng.sample(range(1, 5), 2)
    ]
    chosen += [
        ("statement", "INSERT INTO records:1"),  # close: the records table
        ("statement", "CREATE INDEX:2"),  # close: its indexes
        ("statement", "PRAGMA wal_checkpoint(TRUNCATE):1"),  # close: the last checkpoint
    ]
    chosen += [("records", n) for n in rng.sample(range(1, 3600), count_each)]
    chosen += [("worker", n) for n in rng.sample(range(12), min(count_each, 12))]
    chosen += [("ms", n) for n in rng.sample(range(0, 250), count_each)]
    return chosen


def file_bytes(path: Path) -> dict[str, str]:
    """Hashes of the journal file and its -wal companion (what a reader sees)."""
    out = {}
    for suffix in ("", "-wal"):
        part = Path(f"{path}{suffix}")
        if part.exists():
            out[suffix] = hashlib.sha256(part.read_bytes()).hexdigest()
    return out


def pending_workers(journal: cp.Journal) -> int:
    """Workers started in ``journal`` with no receipt in it."""
    started = {r.data["worker"] for r in journal.filter(kind="start")}
    return len(started - {r.data["worker"] for r in journal.filter(kind="receipt")})


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict:
    path = tmp_path_factory.mktemp("uninterrupted") / "run.db"
    outcome = _finished(start("run", path), "the uninterrupted run")
    journal = cp.Journal.load(path)
    assert journal.digest() == outcome["digest"]
    return {"outcome": outcome, "meta": journal.meta, "records": len(journal), "path": path}


def check_kills(uninterrupted: dict, tmp_path: Path, chosen: list[tuple]) -> None:
    assert len(chosen) >= 20
    rng = random.Random(len(chosen))
    pending_seen = killed_recoveries = 0
    for number, moment in enumerate(chosen):
        path = tmp_path / f"run{number}.db"
        marks = tmp_path / f"marks{number}-"
        status = run_killed("run", path, moment, marks)
        if status is not None:
            assert status == -signal.SIGKILL, moment
            prefix = cp.Journal.load(path)  # an exact prefix of the uninterrupted run
            pending_seen += pending_workers(prefix) > 0
            if number % 3 == 1:  # the recovery dies too, and is recovered again
                again = rng.choice([("statement", f"COMMIT:{rng.randrange(1, 4)}"), ("ms", 150)])
                killed_recoveries += run_killed("recover", path, again, marks) is not None
            outcome = _finished(start("recover", path), f"recovering after {moment}")
        else:  # the run ended before the moment: the file is complete, recover re-checks it
            outcome = _finished(start("recover", path), f"recovering the finished {moment}")
        assert outcome == uninterrupted["outcome"], moment
        final = cp.Journal.load(path)
        assert final.digest() == uninterrupted["outcome"]["digest"], moment
        assert final.meta == uninterrupted["meta"], moment
        with contextlib.closing(sqlite3.connect(path)) as connection:
            meta = dict(connection.execute("SELECT key, value FROM meta"))
            (rows,) = connection.execute("SELECT count(*) FROM records").fetchone()
        assert meta["complete"] == "1" and rows == uninterrupted["records"], moment
    assert pending_seen, "no kill left a worker started without its receipt"
    assert killed_recoveries, "no recovery was killed"


# ---------------------------------------------------------------------------
# The kill test


def test_a_run_killed_at_any_of_twenty_moments_recovers_to_the_uninterrupted_journal(
    uninterrupted, tmp_path
):
    check_kills(uninterrupted, tmp_path, moments(4, seed=13))


@pytest.mark.slow
def test_a_run_killed_at_any_of_sixty_moments_recovers_to_the_uninterrupted_journal(
    uninterrupted, tmp_path
):
    check_kills(uninterrupted, tmp_path, moments(10, seed=1301))


# ---------------------------------------------------------------------------
# The rules, one by one (in this process; files killed in a child)

import recovery_program  # noqa: E402  (tests/ is on the path, as for programs.py)


@pytest.fixture(scope="module")
def killed(tmp_path_factory) -> Path:
    """A file left by a run SIGKILLed as it committed its 7th chunk: a worker is pending."""
    path = tmp_path_factory.mktemp("killed") / "killed.db"
    status = run_killed("run", path, ("statement", "COMMIT:7"), path.parent / "marks")
    assert status == -signal.SIGKILL
    return path


def copy_of(path: Path, tmp_path: Path) -> Path:
    out = tmp_path / path.name
    for suffix in ("", "-wal"):
        if Path(f"{path}{suffix}").exists():
            shutil.copy(f"{path}{suffix}", f"{out}{suffix}")
    return out


def recover_and_run(path: Path, **options) -> tuple[cp.VM, object]:
    vm = cp.VM.recover(path, **options)
    for source, payload in recovery_program.EVENTS:
        vm.events.enqueue(source, payload)
    return vm, vm.run(recovery_program.main())


def test_a_recovered_run_in_this_process_ends_as_the_uninterrupted_one(
    killed, uninterrupted, tmp_path
):
    path = copy_of(killed, tmp_path)
    vm, result = recover_and_run(path, workers="inline")  # (any backend: same outcomes)
    assert vm.recovery.live and vm.recovery.records == len(cp.Journal.load(killed))
    vm.close()
    assert json.loads(json.dumps(result)) == uninterrupted["outcome"]["result"]
    assert cp.Journal.load(path).digest() == uninterrupted["outcome"]["digest"]


def test_options_default_to_the_files_and_one_given_differently_is_refused_naming_it(killed):
    with pytest.raises(ValueError, match=r"seed=1 is not the seed .* seed=20261130"):
        cp.VM.recover(killed, seed=1)
    with pytest.raises(ValueError, match=r"policy='fifo' .* policy='random'"):
        cp.VM.recover(killed, policy="fifo")
    with pytest.raises(ValueError, match=r"max_workers=2 .* max_workers=None"):
        cp.VM.recover(killed, max_workers=2)
    with pytest.raises(TypeError, match=r"unexpected option.*journal"):
        cp.VM.recover(killed, journal="elsewhere.db")
    vm = cp.VM.recover(killed, seed=recovery_program.SEED, policy="random")  # the file's: fine
    assert (vm.seed, vm.policy, vm.journal.meta) == (
        recovery_program.SEED,
        "random",
        cp.Journal.load(killed).meta,
    )
    vm.close()  # (nothing re-executed: the file is left as it was)


def changed_main():
    async def main():  # (the same name: the spawn record is the same)
        await cp.sleep(1)  # the change: a sleep first
        return await recovery_program.main()

    return main()


def test_a_changed_program_raises_nondeterminism_at_its_first_divergence_and_leaves_the_file(
    killed, tmp_path
):
    path = copy_of(killed, tmp_path)
    before = file_bytes(path)
    vm = cp.VM.recover(path, workers="inline")
    with pytest.raises(cp.NondeterminismError, match="diverged from the journal file") as caught:
        vm.run(changed_main())
    assert caught.value.event_id == 3  # spawn and step are the same, then a sleep
    assert caught.value.got.kind == "sleep" and "expected" in str(caught.value)
    with pytest.raises(cp.NondeterminismError):  # it stays diverged: nothing is written
        vm.run(recovery_program.main())
    vm.close()
    assert file_bytes(path) == before
    vm, _ = recover_and_run(path, workers="inline")  # the right program still recovers it
    vm.close()
    assert cp.Journal.load(path).digest() != cp.Journal.load(killed).digest()


def test_a_finished_file_is_rechecked_and_gives_its_result_without_running_workers(
    uninterrupted, tmp_path, monkeypatch
):
    path = copy_of(uninterrupted["path"], tmp_path)
    before = file_bytes(path)
    monkeypatch.setenv("CP_WORKER_MARK", str(tmp_path / "ran-"))
    vm, result = recover_and_run(path, workers="inline")
    assert json.loads(json.dumps(result)) == uninterrupted["outcome"]["result"]
    assert not list(tmp_path.glob("ran-*"))  # every outcome came from the file's receipts
    assert vm.recovery.complete and vm.recovery.live and not vm.recovery.appended
    vm.close()
    assert file_bytes(path) == before  # reproduced: nothing to write


async def more():
    await cp.sleep(3)
    return cp.now()


def test_a_finished_file_goes_on_when_the_recovered_vm_does_more(tmp_path):
    path, whole = tmp_path / "finished.db", tmp_path / "whole.db"
    with cp.VM(journal=path, seed=4, policy="random") as vm:
        assert vm.run(more()) == 3
    with cp.VM(journal=whole, seed=4, policy="random") as vm:
        assert [vm.run(more()), vm.run(more())] == [3, 6]
    vm = cp.VM.recover(path)
    assert vm.run(more()) == 3 and not vm.recovery.appended
    assert vm.run(more()) == 6 and vm.recovery.appended > 0
    assert meta_of(path)["complete"] == "0"  # (unfinished until closed again)
    vm.close()
    assert cp.Journal.load(path).digest() == cp.Journal.load(whole).digest()
    assert meta_of(path) == meta_of(whole)


def meta_of(path: Path) -> dict[str, str]:
    with contextlib.closing(sqlite3.connect(path)) as connection:
        return dict(connection.execute("SELECT key, value FROM meta"))


def test_a_worker_pending_at_the_kill_runs_again_and_the_others_come_from_receipts(
    killed, tmp_path, monkeypatch
):
    path = copy_of(killed, tmp_path)
    prefix = cp.Journal.load(path)
    received = {r.data["worker"] for r in prefix.filter(kind="receipt")}
    assert pending_workers(prefix) == 1
    monkeypatch.setenv("CP_WORKER_MARK", str(tmp_path / "ran-"))
    vm, _ = recover_and_run(path, workers="inline")
    vm.close()
    ran = sorted(int(mark.name.removeprefix("ran-")) for mark in tmp_path.glob("ran-*"))
    # payload i is worker i + 1: those with a receipt in the file did not run again
    assert ran == [i for i in range(12) if i + 1 not in received]
    assert len(ran) == 12 - len(received)


def test_a_recovery_closed_before_the_end_of_the_file_leaves_it_as_it_was(killed, tmp_path):
    path = copy_of(killed, tmp_path)
    before = file_bytes(path)
    vm = cp.VM.recover(path, workers="inline")
    vm.spawn(recovery_program.main())
    vm.step(50)
    assert not vm.recovery.live and vm.recovery.checked == len(vm.journal)
    vm.close()
    assert file_bytes(path) == before


async def three_events():
    return [(await cp.events.next()).payload for _ in range(3)]


@pytest.mark.parametrize("given_again", [True, False], ids=["all-given-again", "only-new"])
def test_host_events_after_the_end_of_the_file_are_taken_live(given_again, tmp_path):
    path, copy = tmp_path / "events.db", tmp_path / "copy" / "events.db"
    vm = cp.VM(journal=path)  # the original host: two events, the run waits for a third
    vm.events.enqueue("key", 1)
    vm.events.enqueue("key", 2)
    task = vm.spawn(three_events(), name="listener")
    vm.step(100)
    copy.parent.mkdir()
    copy_of(path, copy.parent)  # (as a SIGKILL here would leave it)
    vm.events.enqueue("key", 3)
    vm.step(100)
    assert task.result() == [1, 2, 3]
    vm.close()

    recovered = cp.VM.recover(copy)
    if given_again:  # a host re-running its code gives the taken events again: dropped
        recovered.events.enqueue("key", 1)
        recovered.events.enqueue("key", 2)
    recovered.events.enqueue("key", 3)
    again = recovered.spawn(three_events(), name="listener")
    recovered.step(100)
    assert again.result() == [1, 2, 3]
    recovered.close()
    assert cp.Journal.load(copy).digest() == cp.Journal.load(path).digest()


async def three_values(channel):
    return [await channel.recv() for _ in range(3)]


def test_a_host_that_runs_its_code_again_sends_into_channels_before_and_after_the_end(tmp_path):
    path, copy = tmp_path / "host.db", tmp_path / "copy" / "host.db"

    def host(vm, stop_after_first=None):
        jobs = vm.channel(4, name="jobs")
        task = vm.spawn(three_values(jobs), name="consumer")
        jobs.try_send("a")
        vm.step(100)
        if stop_after_first is not None:
            stop_after_first()
        jobs.try_send("b")
        jobs.try_send("c")
        vm.step(100)
        return task.result()

    def killed_here():
        copy.parent.mkdir()
        copy_of(path, copy.parent)  # (as a SIGKILL here would leave it)

    with cp.VM(journal=path) as vm:
        assert host(vm, killed_here) == ["a", "b", "c"]
    recovered = cp.VM.recover(copy)
    assert host(recovered) == ["a", "b", "c"]  # "a": checked against the file; "b", "c": live
    assert recovered.recovery.live and recovered.recovery.appended
    recovered.close()
    assert cp.Journal.load(copy).digest() == cp.Journal.load(path).digest()


def test_a_file_that_is_missing_empty_or_not_a_stream_raises_journal_error(tmp_path):
    with pytest.raises(cp.JournalError, match="no such journal file"):
        cp.VM.recover(tmp_path / "missing.db")
    (tmp_path / "empty.db").write_bytes(b"")
    with pytest.raises(cp.JournalError, match="is empty"):
        cp.VM.recover(tmp_path / "empty.db")
    (tmp_path / "text.db").write_text("hello")
    with pytest.raises(cp.JournalError, match="not a Counterpoint journal"):
        cp.VM.recover(tmp_path / "text.db")
    with pytest.raises(cp.JournalError, match="is a directory"):
        cp.VM.recover(tmp_path)
    vm = cp.VM()
    vm.events.enqueue("key", 1)
    vm.events.enqueue("key", 2)
    vm.events.enqueue("key", 3)
    vm.run(three_events())
    vm.journal.export_jsonl(tmp_path / "run.jsonl")
    with pytest.raises(cp.JournalError, match="JSON-lines export"):
        cp.VM.recover(tmp_path / "run.jsonl")
    with pytest.raises(TypeError, match="journal file path"):
        cp.VM.recover(42)


# ---------------------------------------------------------------------------
# counterpoint run --recover FILE PROGRAM.py

LONG_PROGRAM = """
import counterpoint as cp

async def main():
    ch = cp.channel(2)
    async def producer():
        for i in range(60_000):
            await ch.send(i)
            if i % 5_000 == 0:
                await cp.sleep(1)
        ch.close()
    cp.spawn(producer(), name="producer")
    total = 0
    async for value in ch:
        total += value * cp.rng().randrange(1, 3)
    return total
"""


def counterpoint(*args, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "counterpoint", *map(str, args)],
        cwd=cwd,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_counterpoint_run_recover_finishes_a_killed_run_as_the_uninterrupted_one(tmp_path):
    (tmp_path / "long.py").write_text(LONG_PROGRAM)
    whole = counterpoint(
        "run", "long.py", "--policy", "random", "--journal", "whole.db", cwd=tmp_path
    )
    whole_out, _ = whole.communicate(timeout=TIMEOUT)
    killed = counterpoint(
        "run", "long.py", "--policy", "random", "--journal", "run.db", cwd=tmp_path
    )
    assert wait_for(lambda: records_in(tmp_path / "run.db") > 0, killed)
    kill(killed)
    assert killed.returncode == -signal.SIGKILL
    prefix = len(cp.Journal.load(tmp_path / "run.db"))

    done = counterpoint("run", "long.py", "--recover", "run.db", cwd=tmp_path)
    out, err = done.communicate(timeout=TIMEOUT)
    assert done.returncode == 0, err
    final = cp.Journal.load(tmp_path / "run.db")
    appended = len(final) - prefix
    assert (
        f"recovered:    run.db: {prefix:,} records re-executed and checked, then {appended:,} live"
        in out
    )
    assert "(policy random, seed 0)" in out  # the file's
    same = [line for line in out.splitlines() if line.startswith(("result:", "journal:"))]
    assert same == [
        line for line in whole_out.splitlines() if line.startswith(("result:", "journal:"))
    ]
    assert final.digest() == cp.Journal.load(tmp_path / "whole.db").digest()
    assert final.meta == cp.Journal.load(tmp_path / "whole.db").meta  # (its program too)


def test_counterpoint_run_recover_refuses_another_program_or_seed_and_leaves_the_file(tmp_path):
    (tmp_path / "long.py").write_text(LONG_PROGRAM)
    (tmp_path / "other.py").write_text(LONG_PROGRAM.replace("i % 5_000", "i % 4_000"))
    killed = counterpoint("run", "long.py", "--journal", "run.db", cwd=tmp_path)
    assert wait_for(lambda: records_in(tmp_path / "run.db") > 0, killed)
    kill(killed)
    before = file_bytes(tmp_path / "run.db")

    other = counterpoint("run", "other.py", "--recover", "run.db", cwd=tmp_path)
    _, err = other.communicate(timeout=TIMEOUT)
    assert other.returncode == 1
    assert "other.py does not re-execute run.db, which was left as it was" in err
    assert "expected" in err and "at event" in err
    seeded = counterpoint("run", "long.py", "--recover", "run.db", "--seed", "5", cwd=tmp_path)
    _, err = seeded.communicate(timeout=TIMEOUT)
    assert seeded.returncode == 2
    assert "cannot recover run.db" in err and "seed=5 is not the seed" in err
    missing = counterpoint("run", "long.py", "--recover", "missing.db", cwd=tmp_path)
    _, err = missing.communicate(timeout=TIMEOUT)
    assert missing.returncode == 2 and "no such journal file" in err
    assert file_bytes(tmp_path / "run.db") == before


# ---------------------------------------------------------------------------
# %recover PATH: a killed kernel's session, back in a fresh kernel

SESSION = [
    "x = 41\nch = channel(4, name='jobs')\nlock = Lock()",
    "async def nap():\n    await sleep(5)\n    return 'rested'\n"
    "napper = spawn(nap(), name='napper')",
    "@worker.task\ndef square(n):\n    return n * n\n"
    "handle = worker.start('square', 7, cost=10)\nawait checkpoint()",
    "await sleep(2)\nawait ch.send(x + 1)\nawait lock.acquire()\nprint('shown once')",
]
RUNNING = "import time\ny = x + 1\ntime.sleep(1.5)"  # (running when the kernel is killed)
AFTER = [
    "x, y, now(), await ch.recv(), lock.locked()",
    "await napper",
    "await worker.wait(handle), worker.result(handle), now()",
    "vm.journal.digest()",
]


@pytest.fixture
def this_kernel(tmp_path, monkeypatch):
    """The ``counterpoint`` kernelspec of this checkout's Python (not an installed one)."""
    spec = tmp_path / "jupyter" / "kernels" / "counterpoint"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "counterpoint.kernel", "-f", "{connection_file}"]
    kernel = {"argv": argv, "display_name": "cp", "language": "python"}
    (spec / "kernel.json").write_text(json.dumps({**kernel, "env": {"PYTHONHASHSEED": "0"}}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    from kernels import Kernel

    started = []

    def start_kernel():
        started.append(Kernel())
        return started[-1]

    yield start_kernel
    for kernel in started:
        kernel.shutdown()


def stop(kernel) -> None:
    """Shut the kernel down as a restart does (its session completes its journal file)."""
    kernel.client.stop_channels()
    kernel.manager.shutdown_kernel(now=False)


def ok(kernel, code: str):
    reply = kernel.execute(code, timeout=60)
    assert reply.status == "ok", reply.traceback_text
    return reply


def test_recover_brings_a_killed_kernels_session_back_and_new_cells_append(this_kernel, tmp_path):
    path = tmp_path / "session.db"
    first = this_kernel()
    ok(first, f"%vm reset --journal {path}")
    for cell in SESSION:
        ok(first, cell)
    first.client.execute(RUNNING)
    deadline = time.monotonic() + 60
    while "time.sleep(1.5)" not in json.dumps([r.data for r in cp.Journal.load(path)][-3:]):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(first.manager.provisioner.process.pid, signal.SIGKILL)

    second = this_kernel()
    report = ok(second, f"%recover {path}").text
    assert report.startswith(f"recovered 5 cells from {path}: ")
    assert "cell 5 was running when the kernel stopped: it was re-run to its end" in report
    assert report.rstrip().endswith(f"new cells append to {path}")
    assert "shown once" not in report  # (the cells' outputs were shown when they first ran)
    tasks = ok(second, "%tasks").text
    assert "'napper'" in tasks and "until tick 5" in tasks
    values = [ok(second, cell).result["text/plain"] for cell in AFTER]
    assert values[:3] == ["(41, 42, 2, 42, True)", "'rested'", "(1, 49, 10)"]
    stop(second)  # (the session completes the file)

    uninterrupted = this_kernel()  # the same cells, never killed: the same journal
    whole = tmp_path / "whole.db"
    ok(uninterrupted, f"%vm reset --journal {whole}")
    expected = [ok(uninterrupted, cell) for cell in [*SESSION, RUNNING, "%tasks"]]
    assert "shown once" in expected[3].text
    assert [ok(uninterrupted, cell).result["text/plain"] for cell in AFTER] == values
    stop(uninterrupted)
    assert cp.Journal.load(path).digest() == cp.Journal.load(whole).digest()
    assert meta_of(path)["complete"] == meta_of(whole)["complete"] == "1"


def test_recover_after_a_clean_restart_goes_on_appending_to_the_finished_file(
    this_kernel, tmp_path
):
    path = tmp_path / "session.db"
    first = this_kernel()
    ok(first, f"%vm reset --journal {path}")
    ok(first, SESSION[0])
    ok(first, SESSION[1])
    stop(first)  # a restart: the session completes its file
    assert meta_of(path)["complete"] == "1"
    finished = len(cp.Journal.load(path))

    second = this_kernel()
    assert ok(second, f"%recover {path}").text.rstrip().endswith(f"new cells append to {path}")
    assert ok(second, "await napper, x").result["text/plain"] == "('rested', 41)"
    stop(second)
    assert len(cp.Journal.load(path)) > finished
    assert meta_of(path)["complete"] == "1"


def test_recover_restores_the_cells_before_an_interrupted_one_and_says_what_is_not(
    this_kernel, tmp_path
):
    path = tmp_path / "session.db"
    first = this_kernel()
    ok(first, f"%vm reset --journal {path}")
    ok(first, "x = 1")
    msg_id = first.client.execute("import time\nwhile True:\n    time.sleep(0.01)")
    time.sleep(1)
    first.interrupt()
    assert first.collect(msg_id).ename == "KeyboardInterrupt"
    ok(first, "z = 3")
    os.kill(first.manager.provisioner.process.pid, signal.SIGKILL)
    before = file_bytes(path)

    second = this_kernel()
    missing = second.execute(f"%recover {tmp_path / 'missing.db'}")
    assert missing.ename == "UsageError" and "no such journal file" in missing.evalue
    with cp.VM(journal=tmp_path / "program.db") as vm:
        vm.run(more())
    program = second.execute(f"%recover {tmp_path / 'program.db'}")
    assert program.ename == "UsageError" and "holds no notebook cells" in program.evalue
    report = ok(second, f"%recover {path}").text
    assert report.startswith(f"recovered 1 cell from {path}")
    assert (
        "cell 2 was interrupted, and an interrupt cannot be re-executed (where it landed is "
        "not journaled): cells 2..3 are not restored, and the session goes on in memory"
    ) in report
    assert ok(second, "x, 'z' in globals()").result["text/plain"] == "(1, False)"
    second.shutdown()
    assert file_bytes(path) == before


def test_a_cell_marker_reaches_a_streamed_journal_file_at_once(tmp_path):
    # (a kernel killed between cells leaves every cell it ran: %recover re-runs them)
    from counterpoint import lowlevel

    path = tmp_path / "session.db"
    vm = cp.VM(journal=path)
    lowlevel.mark(vm, lowlevel.CELL, 1, "x = 1")
    lowlevel.mark(vm, lowlevel.CELL_DONE, 1, ("ok",))
    assert [record.kind for record in cp.Journal.load(path)] == ["cell", "cell_done"]
    vm.close()


def test_the_recovery_benchmark_recovers_its_half_file_to_the_uninterrupted_digest(capsys):
    from benchmarks import recovery as bench

    results = bench.measure(rounds=1, round_trips=3_000)  # (it checks the digests itself)
    assert results["records"] == 27_016 and 0 < results["file_records"] < 27_016
    assert "| ratio (bar: at most 1.5x) |" in bench.table(results)


def test_recover_of_a_session_whose_cells_do_not_remake_it_raises_and_keeps_the_kernels_vm(
    this_kernel, tmp_path
):
    path, setting = tmp_path / "session.db", tmp_path / "ticks.txt"
    setting.write_text("3")
    first = this_kernel()
    ok(first, f"%vm reset --journal {path}")
    ok(first, f"import pathlib\nticks = int(pathlib.Path({str(setting)!r}).read_text())")
    ok(first, "await sleep(ticks)")
    os.kill(first.manager.provisioner.process.pid, signal.SIGKILL)
    before = file_bytes(path)
    setting.write_text("4")  # what the cell reads changed

    second = this_kernel()
    diverged = second.execute(f"%recover {path}")
    assert diverged.ename == "NondeterminismError"
    assert "diverged from the journal file" in diverged.evalue
    assert '"kind":"sleep"' in diverged.evalue and '"ticks":4' in diverged.evalue
    assert ok(second, "now(), len(vm.journal) < 10").result["text/plain"] == "(0, True)"
    second.shutdown()
    assert file_bytes(path) == before
