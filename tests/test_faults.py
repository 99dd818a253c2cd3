"""Crash safety: a process that streams its journal to a file (``cp.VM(journal=path)``)
and is SIGKILLed at any moment leaves a file that loads and holds an exact prefix of
the uninterrupted run's records: the same records for the first N event ids.

The child runs a deterministic program (a ping-pong over channels, many `vm.run`s, so
the file gets many chunks and several WAL checkpoints) and says on stdout when it starts
a checkpoint and when it starts closing the file; the test kills it at random moments of
the whole run, and at random moments inside checkpoints and inside the close.
(Worker processes killed mid-job are tested with the workers, tests/test_backends.py.)
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import counterpoint as cp

pytestmark = pytest.mark.slow  # starts a process per kill

PROGRAM = """
import counterpoint as cp

RUNS, ROUNDS = 40, 400


async def pingpong(rounds, run):
    ask, answer = cp.channel(1), cp.channel(0)

    async def echo():
        async for value in ask:
            await answer.send([value, run])
            if value % 97 == 0:
                await cp.sleep(1)

    cp.spawn(echo())
    total = 0
    for i in range(rounds):
        await ask.send(i)
        total += (await answer.recv())[0]
    ask.close()
    return total


def play(vm):
    for run in range(RUNS):
        vm.run(pingpong(ROUNDS, run))
"""

# The child: the program, streamed to argv[1]; phases announced on stdout.  The
# announcements wrap the journal writer's own methods without changing what they do.
CHILD = (
    PROGRAM
    + r"""
import sys
import time
from counterpoint import _store

def say(what):
    print(what, time.perf_counter(), flush=True)

flush, finish = _store.Writer.flush, _store.Writer.finish

def announced_flush(self, force=False):
    pending = len(self.journal._rows) - self.written
    checkpoint = pending >= (1 if force else _store.CHUNK) and (
        (self.chunks + 1) % _store.CHECKPOINT_EVERY == 0
    )
    if checkpoint:
        say("checkpoint")  # this chunk's transaction, then a WAL checkpoint
    flush(self, force)
    if checkpoint:
        say("checkpoint-end")

def announced_finish(self):
    say("close")
    finish(self)
    say("close-end")

_store.Writer.flush = announced_flush
_store.Writer.finish = announced_finish
vm = cp.VM(journal=sys.argv[1])
say("started")
play(vm)
vm.close()
say("done")
"""
)


@pytest.fixture(scope="module")
def reference() -> cp.Journal:
    """The journal of the uninterrupted run, made in this process (no file)."""
    namespace: dict = {}
    exec(PROGRAM, namespace)
    vm = cp.VM()
    namespace["play"](vm)
    return vm.journal


class Child:
    """The streaming process, with its announcements read line by line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seen: list[tuple[str, float]] = []
        self.process = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def wait_for(self, marker: str, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                raise AssertionError(
                    f"the child ended before {marker!r}: {self.process.stderr.read()[-2000:]}"
                )
            what, when = line.split()
            self.seen.append((what, float(when)))
            if what == marker:
                return
        raise AssertionError(f"no {marker!r} within {timeout} s")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.finish()

    def finish(self) -> int:
        out, _ = self.process.communicate(timeout=120)
        for line in out.splitlines():
            words = line.split()
            if len(words) == 2:  # (a line cut short by the kill is not an announcement)
                self.seen.append((words[0], float(words[1])))
        return self.process.returncode

    def said(self, marker: str) -> int:
        return sum(1 for what, _ in self.seen if what == marker)


def assert_exact_prefix(path: Path, reference: cp.Journal, why: str) -> int:
    """The file loads, and its records are the reference's first N; returns N."""
    try:
        loaded = cp.Journal.load(path)
    except cp.JournalError as error:
        raise AssertionError(f"{why}: the file does not load: {error}") from error
    count = len(loaded)
    assert count <= len(reference), f"{why}: {count} records, the run has {len(reference)}"
    assert loaded._rows == reference._rows[:count], f"{why}: a record differs"
    assert loaded.digest() == reference._prefix(count).digest(), f"{why}: not an exact prefix"
    return count


@pytest.fixture(scope="module")
def timeline(tmp_path_factory, reference) -> dict[str, float]:
    """One uninterrupted run: its file is complete, and how long its phases take."""
    path = tmp_path_factory.mktemp("faults") / "complete.db"
    child = Child(path)
    child.wait_for("started")
    assert child.finish() == 0, child.process.stderr.read()
    times = dict(child.seen)
    loaded = cp.Journal.load(path)
    assert len(loaded) == len(reference)
    assert loaded.digest() == reference.digest()
    begins = [when for what, when in child.seen if what == "checkpoint"]
    ends = [when for what, when in child.seen if what == "checkpoint-end"]
    assert len(begins) >= 2, "the run should checkpoint its file several times"
    return {
        "run": times["done"] - times["started"],
        "checkpoint": max(end - begin for begin, end in zip(begins, ends, strict=True)),
        "close": times["close-end"] - times["close"],
    }


def test_an_uninterrupted_streamed_run_loads_as_the_whole_journal(timeline):
    assert timeline["run"] > 0 and timeline["close"] > 0


def test_a_streaming_process_killed_at_random_moments_leaves_an_exact_prefix(
    tmp_path, reference, timeline
):
    draw = random.Random(20240901)
    counts = []
    for kill in range(12):
        delay = draw.uniform(0, timeline["run"])
        path = tmp_path / f"kill{kill}.db"
        child = Child(path)
        child.wait_for("started")
        time.sleep(delay)
        child.kill()
        counts.append(assert_exact_prefix(path, reference, f"killed {delay:.3f} s in"))
    assert len(set(counts)) >= 3, f"the kills should land at different moments: {counts}"


def test_a_streaming_process_killed_during_a_checkpoint_leaves_an_exact_prefix(
    tmp_path, reference, timeline
):
    draw = random.Random(7)
    inside = 0
    for kill in range(6):
        path = tmp_path / f"checkpoint{kill}.db"
        child = Child(path)
        for _ in range(1 + kill % 2):  # the first or the second checkpoint of the file
            child.wait_for("checkpoint")
        delay = draw.uniform(0, timeline["checkpoint"])
        time.sleep(delay)
        child.kill()
        total = child.said("checkpoint")
        inside += child.said("checkpoint-end") < total
        assert_exact_prefix(path, reference, f"killed {delay * 1000:.2f} ms into checkpoint")
    assert inside >= 2, "most kills should land inside a checkpoint"


def test_a_streaming_process_killed_while_closing_its_file_loses_no_record(
    tmp_path, reference, timeline
):
    draw = random.Random(11)
    inside = 0
    for kill in range(6):
        path = tmp_path / f"close{kill}.db"
        child = Child(path)
        child.wait_for("close")
        delay = draw.uniform(0, timeline["close"])
        time.sleep(delay)
        child.kill()
        inside += child.said("close-end") == 0
        count = assert_exact_prefix(path, reference, f"killed {delay * 1000:.1f} ms into close")
        # every vm.run had returned, and each writes its records before it returns
        assert count == len(reference)
    assert inside >= 3, "most kills should land inside the close"
