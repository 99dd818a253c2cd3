"""Distributed search: ``cp.explore(..., client=CLIENT)`` and ``processes=N``.

The report must be the one a single process makes, so the search itself is not
distributed: the master (the process that called ``explore``) runs the ordinary
strategy (:class:`~._strategies.DepthFirst` or :class:`~._strategies.RandomSearch`)
with a ``run`` that looks each execution up in a cache filled by Dask workers
(:class:`Master`).  Every execution is a pure function of the arguments the strategy
calls ``run`` with, so a result computed anywhere is the result the master would have
computed; the master's bookkeeping (the dfs stack, the tally, ``max_schedules``) is
the one-process code, and the report follows.

What workers compute ahead (:func:`_job`):

* ``random`` / ``pct``: chunks of run numbers (each run has its own seed);
* ``dfs``: a *subtree*: a :class:`~._strategies.Cursor` (a stack of frames and the
  next prefix) whose first ``floor`` frames are frozen; the worker runs the same
  ``DepthFirst`` code from it, so it explores the subtree in the order the master will
  ask for its runs.  A job runs for about ``_SLICE`` seconds, then stops before its
  next run and returns its cursor (the rest of the subtree); the master splits the
  options still to try off that cursor into more subtree jobs (each option goes to
  exactly one job) and sends the rest on.  Jobs wait in the order the master will need
  them (the order of their prefixes), and at most two per worker are out at once.

A worker returns, per execution, the key (the ``run`` arguments but ``expect``, which
only checks), what the master reads of the summary, and for dfs the precomputed
``backtrack_points``.  A ``cp.NondeterminismError`` a worker meets is returned under
its key and raised by the master when (and only if) its search gets there.
"""

from __future__ import annotations

import atexit
import contextlib
import copyreg
import hashlib
import heapq
import io
import itertools
import pickle
import time
import types
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any

from ._errors import NondeterminismError, WorkerLost
from ._interrupts import safe_to_interrupt
from ._reduction import backtrack_points, source_sets
from ._strategies import DEFAULT, Cursor, DepthFirst, Expected

_SLICE = 0.25  # CPU seconds a dfs job runs before it hands back the rest of its subtree
_FIRST_SLICE = 0.05  # (the first job: the sooner its subtree is split, the sooner all work)
_HEIGHT = 4  # options are split off frames at least this far above the job's deepest frame
_PER_WORKER = 2  # jobs out at once per worker
_CHUNK = 256  # results a worker pickles together


# -- checking the arguments ---------------------------------------------------------------------


def resolve(client: Any, processes: Any) -> Any:
    """The ``distributed.Client`` to run on for ``explore(client=, processes=)``, or None
    for this process alone; a clear error for anything else."""
    if client is None and processes is None:
        return None
    if client is not None and processes is not None:
        raise ValueError(
            "cp.explore() takes client= (a Dask cluster you made) or processes=N (local "
            "processes it makes), not both"
        )
    if processes is not None:
        if isinstance(processes, bool) or not isinstance(processes, int) or processes < 1:
            raise ValueError(
                f"processes= is how many local worker processes to explore on, a positive "
                f"int, not {processes!r}"
            )
        return _local_client(processes)
    try:
        from distributed import Client
    except ImportError:  # pragma: no cover - the dask extra is installed where tested
        raise TypeError(
            "cp.explore(client=...) needs Dask: pip install 'counterpoint[dask]'"
        ) from None
    if not isinstance(client, Client):
        raise TypeError(
            f"client= is a distributed.Client (a Dask cluster), not {type(client).__name__}; "
            "pass processes=N to explore on N local processes"
        )
    return client


_CLIENTS: dict[int, Any] = {}  # processes -> the Client of a LocalCluster this process made


def _local_client(processes: int) -> Any:
    """One ``LocalCluster`` of ``processes`` single-threaded worker processes per
    process, made on first use and closed when the process exits."""
    client = _CLIENTS.get(processes)
    if client is not None and client.status == "running":
        return client
    try:
        from distributed import Client, LocalCluster
    except ImportError:  # pragma: no cover
        raise TypeError(
            "cp.explore(processes=...) needs Dask: pip install 'counterpoint[dask]'"
        ) from None
    cluster = LocalCluster(
        n_workers=processes,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",  # (any free port: never a clash)
        silence_logs=40,  # (logging.ERROR)
    )
    client = _CLIENTS[processes] = Client(cluster)
    return client


@atexit.register
def _close_clients() -> None:
    for client in _CLIENTS.values():
        cluster = client.cluster
        client.close()
        if cluster is not None:
            cluster.close()
    _CLIENTS.clear()


# -- what crosses -------------------------------------------------------------------------------


def _key(prefix: Sequence[int], then: Any, extra: tuple, named: dict) -> tuple:
    """Everything ``run`` is called with but ``expect`` (which only checks the run)."""
    return (tuple(prefix), then, extra, tuple(sorted(named.items())) if named else ())


def _lite(summary: Any, known: int, sleepy: bool) -> Any:
    """What the master reads of a summary: not the rows or journal, nor the footprints
    but (with sleep sets) those of the steps chosen at new choice points; of the choice
    points only those past the ``known`` ones the master has on its stack (a run that
    fails or deadlocks keeps them all: its schedule is reported)."""
    points = summary.points
    if summary.kind in ("ok", "pruned", "blocked") and known:
        points = (None,) * known + points[known:]
    footprints = None
    if sleepy and summary.footprints is not None:  # (what _note_sleep reads)
        first = max(known - 1, 0)
        footprints = tuple(
            step for step in summary.footprints if step[1] is not None and step[1] >= first
        )
    return summary._replace(
        points=points,
        footprints=footprints,
        rows=(),
        barriers=frozenset(),
        left_behind=(),
        journal=None,
    )


def _as_tuple(obj: tuple) -> tuple:
    """Pickle a named tuple as ``tuple.__new__(cls, fields)``: a C call to unpickle."""
    return tuple.__new__, (type(obj), tuple(obj))


def _dumps(obj: Any) -> bytes:
    """Pickled (named tuples of exploration unpickle without a Python call): plainly
    when it can be, else by cloudpickle (an outcome of a class the program defines)."""
    from ._explore import Point, RunSummary

    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.dispatch_table = {Point: _as_tuple, RunSummary: _as_tuple, **copyreg.dispatch_table}
    try:
        pickler.dump(obj)
        return buffer.getvalue()
    except Exception:
        import cloudpickle

        return cloudpickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)


@contextlib.contextmanager
def _keeping_filenames() -> Iterator[None]:
    """Code shipped by value keeps its file name (cloudpickle writes "<dynamic-code>"):
    what a run reports of its source lines (the lint's warnings, ``where``) must read
    on a worker as it reads here."""
    import cloudpickle.cloudpickle as module

    from ._shipping import _LOCK

    base = module.Pickler

    class Pickler(base):  # type: ignore[misc, valid-type]
        def reducer_override(self, obj: Any) -> Any:
            if type(obj) is types.CodeType:
                make, args = module._code_reduce(obj)
                return make, tuple(
                    obj.co_filename if arg == "<dynamic-code>" else arg for arg in args
                )
            return super().reducer_override(obj)

    with _LOCK:
        module.Pickler = Pickler
        try:
            yield
        finally:
            module.Pickler = base


# -- the worker side ----------------------------------------------------------------------------

_PROGRAMS: dict[bytes, tuple] = {}  # sha256 of a shipment -> (program, run options)


def _program(data: bytes) -> tuple:
    from ._explore import RunOptions
    from ._shipping import load_program

    digest = hashlib.sha256(data).digest()
    loaded = _PROGRAMS.get(digest)
    if loaded is None:
        if len(_PROGRAMS) >= 8:
            _PROGRAMS.clear()
        program, options = load_program(data)
        loaded = (program, RunOptions(*options["run"]), options["warnings"])
        _PROGRAMS[digest] = loaded
    return loaded


def _warning_filters() -> list[tuple]:
    """This process's warning filters, as plain data: a program's warnings (which the
    filters may turn into exceptions, as pytest's ``error`` does) must end a run on a
    worker as they would here."""
    return [
        (action, _pattern(message), category, _pattern(module), lineno)
        for action, message, category, module, lineno in warnings.filters
    ]


def _pattern(regex: Any) -> str:
    """A filter's message or module: a compiled regex, a string, or None (any)."""
    return getattr(regex, "pattern", regex) or ""


def _use_warning_filters(filters: list[tuple]) -> None:
    warnings.resetwarnings()
    for action, message, category, module, lineno in reversed(filters):
        warnings.filterwarnings(action, message, category, module, lineno)


def _used(began: tuple[float, float]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the job's thread) since ``began``: how busy a job kept
    its worker."""
    return time.perf_counter() - began[0], time.thread_time() - began[1]


class _Pause(Exception):
    """A dfs job's slice is over: it stops before its next run."""


class _Recording:
    """A worker's ``run``: runs (the first one twice, when asked), and records each
    result under its key; pauses a dfs job at the end of its slice."""

    def __init__(self, run: Any, deadline: float | None) -> None:
        self.search: Any = None
        self.run = run
        self.deadline = deadline
        self.results: list[list] = []  # [key, summary, backtrack points] of the last runs
        self.chunks: list[bytes] = []  # the earlier ones, pickled (no work for the GC)
        self.runs = 0

    def pickled(self) -> list[bytes]:
        """Every result so far, as pickled chunks."""
        if self.results:
            self.chunks.append(_dumps(self.results))
            self.results = []
        return self.chunks

    def __call__(
        self, prefix: Sequence[int], expect: Any = None, then: Any = DEFAULT, *extra, **named
    ) -> Any:
        if self.deadline is not None and self.runs and time.thread_time() > self.deadline:
            raise _Pause
        if len(self.results) >= _CHUNK:
            self.pickled()
        self.runs += 1
        key = _key(prefix, then, extra, named)
        try:
            summary = self.run(prefix, expect, then, *extra, **named)
        except NondeterminismError as error:
            self.results.append([key, error, None])
            raise
        self.results.append([key, _lite(summary, len(prefix), "sleep" in named), None])
        return summary

    def backtrack_points(self, summary: Any, bounded: bool, shared_only: bool) -> list:
        """The run's backtrack points; the master gets only those that add an option to
        try: the rest add nothing on the master either (its frames have every option
        these frames have, and more)."""
        points = backtrack_points(summary, bounded, shared_only)
        stack = self.search.at.stack
        effective = []
        for point, task in points:
            if point is None or task in stack[point].backtrack:
                continue  # (the common case: nothing new)
            frame = stack[point]
            before = len(frame.backtrack)
            frame.add(task)
            if len(frame.backtrack) != before:
                effective.append((point, task))
        self.results[-1][2] = effective
        return points

    def source_sets(self, summary: Any) -> list:
        """The run's races with sleep sets (shipped whole)."""
        found = self.results[-1][2] = source_sets(summary)
        return found


def _job(data: bytes, job: bytes) -> tuple[list[bytes], bytes]:
    """Run one job (on a worker): its results in pickled chunks, and (the rest of the
    subtree or None, the seconds it took) pickled."""
    began = (time.perf_counter(), time.thread_time())
    program, options, filters = _program(data)
    with warnings.catch_warnings():
        _use_warning_filters(filters)
        return _run_job(program, options, pickle.loads(job), began)


def _run_job(program: Callable, options: Any, job: tuple, began: tuple) -> tuple:
    from ._explore import _Checked

    kind, checked, spec = job
    run = _Checked(program, options)
    run.first = checked
    if kind == "runs":
        recording = _Recording(run, None)
        try:
            for prefix, then in spec:
                recording(prefix, None, then)
        except NondeterminismError:
            pass
        return recording.pickled(), _dumps((None, _used(began)))
    cursor, bound, por, shared_only, max_schedules, seconds = spec
    recording = _Recording(run, time.thread_time() + seconds)
    search = DepthFirst(max_schedules, bound, por, shared_only)
    search.backtrack_points = recording.backtrack_points
    search.source_sets = recording.source_sets
    recording.search = search
    rest = None
    try:
        for _ in search.runs(recording, cursor):
            pass
    except _Pause:
        rest = cursor
    except NondeterminismError:
        pass
    return recording.pickled(), _dumps((rest, _used(began)))


# -- the master side ----------------------------------------------------------------------------


class Master:
    """``run`` for a strategy on the master: each execution's result from the cache the
    workers fill, asking them for it when no job will bring it."""

    def __init__(self, client: Any, program: Callable, options: Any, search: Any) -> None:
        from ._shipping import program_bytes

        self.client = client
        self.search = search
        self.workers = max(1, len(client.scheduler_info().get("workers", {})))
        # (sent with every job, not scattered once: scattered data dies with its worker)
        with _keeping_filenames():
            self.program = program_bytes(
                program, {"run": tuple(options), "warnings": _warning_filters()}
            )
        self.cache: dict[tuple, Any] = {}
        self.queue: list[tuple] = []  # (order, number, job bytes): in the order needed
        self.numbers = itertools.count()
        self.running: dict[Any, tuple] = {}  # future -> (order, job bytes)
        self.first = True  # the first execution is made twice (see _Checked)
        self.slice = _FIRST_SLICE
        self.bt: list = []
        self.used: list[tuple[float, float]] = []  # each job's (wall, CPU) seconds
        from distributed import as_completed

        self.done = as_completed(loop=client.loop, with_results=True)
        if isinstance(search, DepthFirst):
            search.backtrack_points = self._backtrack_points
            search.source_sets = self._source_sets

    def _backtrack_points(self, summary: Any, bounded: bool, shared_only: bool) -> list:
        return self.bt

    def _source_sets(self, summary: Any) -> list:
        return self.bt

    def __call__(
        self, prefix: Sequence[int], expect: Any = None, then: Any = DEFAULT, *extra, **named
    ) -> Any:
        key = _key(prefix, then, extra, named)
        cache = self.cache
        while key not in cache:
            if not self.running and not self.queue:
                self._uncovered(prefix, then)
                self._submit()
            self._wait()
        got = cache.pop(key)
        if isinstance(got, BaseException):
            raise got
        summary, self.bt = got
        return summary

    # -- jobs ----------------------------------------------------------------------------------

    def _uncovered(self, prefix: Sequence[int], then: Any) -> None:
        """No job brings the run the search asks for: ask for it (for dfs, its subtree;
        for random and pct, every run from here)."""
        search = self.search
        checked, self.first = self.first, False
        if isinstance(search, DepthFirst):
            at = search.at
            expect = Expected(list(at.offers), (), 0)  # (the master keeps no rows)
            cursor = Cursor(list(at.stack), list(at.offers), list(at.choices), expect)
            cursor.floor, cursor.sleep = len(cursor.stack), at.sleep
            self._dispatch_cursor(cursor, checked)
            return
        if then == DEFAULT:  # pct's first run, which tells how long a run is
            self._push(0, ("runs", checked, [(list(prefix), then)]))
            return
        number = next(i for i, t in enumerate(search.thens(getattr(then, "steps", 1))) if t == then)
        total = search.max_schedules - number
        size = max(1, min(500, total // (8 * self.workers)))
        steps = getattr(then, "steps", 1)
        for start in range(number, search.max_schedules, size):
            stop = min(start + size, search.max_schedules)
            calls = [([], t) for t in search.thens(steps, start, stop)]
            self._push(start, ("runs", checked and start == number, calls))

    def _dispatch_cursor(self, cursor: Cursor, checked: bool) -> None:
        search = self.search
        spec = (
            cursor,
            search.bound,
            search.por,
            search.shared_only,
            search.max_schedules,
            self.slice,
        )
        self._push(tuple(cursor.choices), ("dfs", checked, spec))

    def _push(self, order: Any, job: tuple) -> None:
        data = pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL)
        heapq.heappush(self.queue, (order, next(self.numbers), data))

    def _submit(self) -> None:
        while self.queue and len(self.running) < _PER_WORKER * self.workers:
            order, _, data = heapq.heappop(self.queue)
            future = self.client.submit(_job, self.program, data, pure=False)
            self.running[future] = (order, data)
            self.done.add(future)

    def _wait(self) -> None:
        try:  # (results are fetched as jobs end, while this process goes on)
            future, (chunks, tail) = next(self.done)
        except Exception as error:
            if type(error).__name__ == "KilledWorker":
                raise WorkerLost(
                    "a Dask worker process died again and again while running part of the "
                    f"search ({error}); the search was abandoned. A program that ends its "
                    "process (os._exit, a crash in an extension) cannot be explored on "
                    "workers: explore it in this process to see the failure"
                ) from None
            raise
        self.running.pop(future)
        cache = self.cache
        for chunk in chunks:
            for key, lite, bt in pickle.loads(chunk):
                cache[key] = lite if isinstance(lite, BaseException) else (lite, bt)
        rest, used = pickle.loads(tail)
        self.used.append(used)
        if rest is not None:
            self.slice = _SLICE
            self._split(rest)
        self._submit()

    def _split(self, cursor: Cursor) -> None:
        """Send on the rest of a subtree: the options still to try at its frames, one
        job each while workers would otherwise wait (the shallowest first: the largest), and the
        cursor with those options marked done."""
        stack, bound = cursor.stack, self.search.bound
        wanted = _PER_WORKER * self.workers + 1 - len(self.running) - len(self.queue)
        if self.search.sleepy:
            wanted = 0  # (a branch's sleep set needs the steps its earlier siblings took)
        for depth in range(cursor.floor, len(stack) - _HEIGHT):
            if wanted <= 0:
                break
            frame = stack[depth]
            pending = frame.backtrack - frame.done
            if bound is not None and frame.kind == "sched":
                spent = sum(f.preempts(f.chosen) for f in stack[:depth])
                pending = {r for r in pending if spent + frame.preempts(r) <= bound}
            for option in sorted(pending):
                frame.done.add(option)
                branch = replace(frame, chosen=option, done=set(frame.done))
                choices = [*cursor.choices[:depth], branch.index()]
                offers = cursor.offers[: depth + 1]
                expect = Expected(offers, frame.rows, frame.position)
                job = Cursor([*stack[:depth], branch], offers, choices, expect, depth + 1)
                self._dispatch_cursor(job, False)
                wanted -= 1
        self._dispatch_cursor(cursor, False)

    def close(self) -> None:
        """Cancel what is still out (the search stopped at ``max_schedules`` or failed)."""
        if self.running:
            self.client.cancel(list(self.running))
        self.running.clear()
        self.queue.clear()
        self.cache.clear()


# Ctrl-C while the master waits for a job ends the search there (nothing is half-done)
safe_to_interrupt(Master._wait)
