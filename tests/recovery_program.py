"""The program of the kill/recover test (tests/test_recovery.py), and its driver.

``python tests/recovery_program.py run FILE`` runs it streaming to FILE;
``python tests/recovery_program.py recover FILE`` recovers FILE and runs it to the end.
Either prints one JSON line ``{"result": ..., "digest": ...}`` when done.

The program has workers (process backend, each taking real time), host events (the
host enqueues them all before the run, as the original host did: a recovering host
gives them again), timers and a seeded random policy.  Chunks are small
(``CP_CHUNK`` records) so that a run of a second writes many of them.

``CP_KILL_AT=STATEMENT:N`` makes the process SIGKILL itself when its journal writer
starts the N-th SQL statement beginning with STATEMENT (``COMMIT``: a chunk written but
not committed; ``PRAGMA wal_checkpoint``: during a checkpoint; ``INSERT INTO records``:
during close).  ``CP_WORKER_MARK=PATH``: each worker touches PATH+handle when it starts
(so the test can kill the run while a worker runs).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import sys
import time
from pathlib import Path

import counterpoint as cp
from counterpoint import _store

SEED = 20261130
EVENTS = [("sensor", {"reading": i * 3 % 11}) for i in range(12)] + [
    ("button", "press") for _ in range(4)
]


@cp.worker.task(name="recovery_square")
def square(payload):
    mark = os.environ.get("CP_WORKER_MARK")
    if mark:
        Path(f"{mark}{payload}").touch()
    time.sleep(0.02)  # a worker takes real time: the run can be killed while it works
    return payload * payload


async def main(rounds: int = 6):
    results = cp.channel(8, name="results")
    total = 0

    async def producer(k):
        for i in range(rounds * 40):
            await results.send((k, i))
            if cp.rng().random() < 0.2:
                await cp.sleep(cp.rng().randrange(1, 4))

    async def listener():
        taken = []
        for _ in range(len(EVENTS)):
            event = await cp.events.next()
            taken.append([event.source, event.payload])
            await cp.sleep(2)
        return taken

    async def computer():
        squares = []
        for i in range(2 * rounds):
            handle = cp.worker.start("recovery_square", i, cost=7 + i % 2)
            await cp.worker.wait(handle)
            squares.append(cp.worker.result(handle))
        return squares

    async with cp.scope() as scope:
        listening = scope.spawn(listener(), name="listener")
        computing = scope.spawn(computer(), name="computer")
        for k in range(3):
            scope.spawn(producer(k), name=f"producer {k}")
        for _ in range(3 * rounds * 40):
            k, i = await results.recv()
            total += k * i + cp.rng().randrange(5)
    return [total, await listening, await computing, cp.now()]


def _killing_connect(statement: str, count: int):
    """``sqlite3.connect`` whose writer connections SIGKILL this process when they start
    their ``count``-th statement beginning with ``statement``."""
    connect = sqlite3.connect
    seen = [0]

    def trace(sql: str) -> None:
        if sql.lstrip().upper().startswith(statement):
            seen[0] += 1
            if seen[0] == count:
                os.kill(os.getpid(), signal.SIGKILL)

    def killing(*args, **kwargs):
        connection = connect(*args, **kwargs)
        if kwargs.get("isolation_level", "") is None:  # (a journal writer's connection)
            connection.set_trace_callback(trace)
        return connection

    return killing


def drive(command: str, path: str) -> None:
    _store.CHUNK = int(os.environ.get("CP_CHUNK", "250"))
    _store.CHECKPOINT_EVERY = 3
    kill_at = os.environ.get("CP_KILL_AT")
    if kill_at:
        statement, _, count = kill_at.rpartition(":")
        sqlite3.connect = _killing_connect(statement.upper(), int(count))
    if command == "run":
        vm = cp.VM(seed=SEED, policy="random", workers="process", journal=path)
    else:
        vm = cp.VM.recover(path, workers="process")
    vm._slice = 100  # slice hooks (and so chunk writes) often: many moments to die at
    for source, payload in EVENTS:
        vm.events.enqueue(source, payload)
    result = vm.run(main())
    vm.close()
    print(json.dumps({"result": result, "digest": vm.journal.digest()}), flush=True)


if __name__ == "__main__":
    drive(sys.argv[1], sys.argv[2])
