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
