"""Distributed search: ``cp.explore(..., client=CLIENT)`` and ``processes=N``.

The report must be the one a single process makes.

``random`` / ``pct`` (:class:`Master`): the master (the process that called
``explore``) runs the ordinary :class:`~._strategies.RandomSearch` with a ``run`` that
looks each execution up in a cache that Dask workers fill with chunks of run numbers
(each run has its own seed): an execution is a pure function of what ``run`` is called
with, so a result computed anywhere is the one the master would have computed.

``dfs`` (:class:`Subtrees`): the master works per *subtree*, not per run.  The
sequential search explores the subtree under (frame f, option o) completely before it
looks at f's other options again, and what happens inside it is a pure function of its
entry: its path (the options taken above it) and, with sleep sets, the sleep set it
starts with.  So a worker (:func:`_subtree`) runs the ordinary ``DepthFirst`` from a
:class:`~._strategies.Cursor` whose frames above the subtree are frozen, and hands back
what the master needs to go on exactly as the sequential search would: its runs folded
into a tally (:func:`_merge` adds it to the master's as if each run had been added in
turn), the operations its runs made on the frozen frames in order (backtrack additions;
with sleep sets the ``_add_source`` calls, which read the frame, and the step the entry
frame's task took), the verdict's flags, and whether the subtree ended or the job's time
(``_SLICE`` CPU seconds) was up, then with its cursor.

The master keeps only the frames above the subtrees (:class:`_Node`, a tree: frames
found in subtrees sent ahead hang under their path) and makes the sequential choices at
them (least option left, bound, sleep set); it folds each subtree's results, and
replays its operations, when the sequential search would have made its runs -- the
report follows.  Around that it keeps the workers busy: options left at its frames are
sent ahead as subtrees of their own (shallowest first: the largest; with sleep sets with
the sleep set the search will give them if nothing is added before; a subtree reached
with another sleep set is sent again), and a job whose time is up hands back its
cursor: the master takes over its frames ``_HEIGHT`` or more above the deepest (their
options become subtrees to send ahead) and sends the rest on as one job.  A cap
(``max_schedules``) that falls inside a job is met by running that job again to the cap;
with ``stop_on_first`` a job stops at its first finding.  A ``cp.NondeterminismError``
a worker meets is raised by the master when (and only if) its search gets there.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import copyreg
import hashlib
import heapq
import io
import itertools
import pickle
import sys
import time
import types
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any

from ._errors import NondeterminismError, WorkerLost
from ._interrupts import safe_to_interrupt
from ._reduction import source_sets
from ._report import Tally
from ._strategies import (
    DEFAULT,
    Cursor,
    DepthFirst,
    Expected,
    Frame,
    Verdict,
    _add_source,
    _sleep_for,
)

_SLICE = 0.25  # CPU seconds a dfs job runs before it hands back the rest of its subtree
_FIRST_SLICE = 0.05  # (the first job, and jobs sent while a worker would otherwise wait: the
# sooner their subtrees are split, the sooner every worker has work)
_HEIGHT = 6  # the master takes over frames at least this far above a paused job's deepest
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
        if sys.platform == "emscripten":  # (JupyterLite: docs/jupyterlite.md)
            from ._backends import in_the_browser

            in_the_browser(
                f"processes={processes} cannot run in the browser (Pyodide has no "
                f"processes); exploring in this process, which gives the same report"
            )
            return None
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
        import dask
        from distributed import Client, LocalCluster
    except ImportError:  # pragma: no cover
        raise TypeError(
            "cp.explore(processes=...) needs Dask: pip install 'counterpoint[dask]'"
        ) from None
    with dask.config.set(_QUIET):
        cluster = LocalCluster(
            n_workers=processes,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",  # (any free port: never a clash)
            silence_logs=40,  # (logging.ERROR)
        )
        client = _CLIENTS[processes] = Client(cluster)
    return client


# What the processes of a processes=N cluster do besides the jobs takes a core from them:
# Dask's event-loop watchdog wakes every process 50 times a second, and each worker's
# statistical profiler samples the job's thread (taking the GIL) 100 times a second.
_QUIET = {"distributed.admin.tick.interval": "1s", "distributed.worker.profile.enabled": False}


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


def _lite(summary: Any) -> Any:
    """What the master's tally reads of a summary: not the rows, footprints or journal."""
    return summary._replace(
        footprints=None,
        rows=(),
        positions=(),
        barriers=frozenset(),
        left_behind=(),
        journal=None,
        sleeps=(),
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


# -- the worker side: random and pct --------------------------------------------------------------


class _Recording:
    """A worker's ``run`` for random and pct: runs (the first one twice, when asked) and
    records each result under its key."""

    def __init__(self, run: Any) -> None:
        self.run = run
        self.results: list[tuple] = []  # (key, summary) of the last runs
        self.chunks: list[bytes] = []  # the earlier ones, pickled (no work for the GC)

    def pickled(self) -> list[bytes]:
        """Every result so far, as pickled chunks."""
        if self.results:
            self.chunks.append(_dumps(self.results))
            self.results = []
        return self.chunks

    def __call__(
        self, prefix: Sequence[int], expect: Any = None, then: Any = DEFAULT, *extra, **named
    ) -> Any:
        if len(self.results) >= _CHUNK:
            self.pickled()
        key = _key(prefix, then, extra, named)
        try:
            summary = self.run(prefix, expect, then, *extra, **named)
        except NondeterminismError as error:
            self.results.append((key, error))
            raise
        self.results.append((key, _lite(summary)))
        return summary


def _job(data: bytes, job: bytes) -> Any:
    """Run one job (on a worker): a dfs subtree (:func:`_subtree`), or random and pct
    runs (their results in pickled chunks, and the seconds it took, pickled)."""
    from ._explore import _Checked

    began = (time.perf_counter(), time.thread_time())
    program, options, filters = _program(data)
    kind, checked, spec = pickle.loads(job)
    run = _Checked(program, options)
    run.first = checked
    with warnings.catch_warnings():
        _use_warning_filters(filters)
        if kind == "dfs":
            return _subtree(run, spec, began)
        recording = _Recording(run)
        try:
            for prefix, then in spec:
                recording(prefix, None, then)
        except NondeterminismError:
            pass
        return recording.pickled(), _dumps((None, _used(began)))


# -- the worker side: a dfs subtree ---------------------------------------------------------------


def _subtree(run: Any, spec: tuple, began: tuple) -> bytes:
    """Explore a subtree (the ordinary ``DepthFirst`` from the job's cursor, whose first
    ``floor`` frames are frozen) for about ``seconds`` of CPU (None: to its end, or to
    ``max_schedules``), and return, pickled, what the master needs to go on as the
    sequential search would:

    * its runs folded into a :class:`~._report.Tally`'s fields (:func:`_merge`), ended at
      the first finding with ``stop`` (``stop_on_first``);
    * the operations its runs made on the frozen frames, in order: without sleep sets
      the (frame, task) backtrack additions that added something to the job's copy
      (set unions: any order); with sleep sets every (frame, initials, task) of
      ``_add_source`` (which reads the frame: the master replays them in order), and the
      step the entry frame's chosen task took (``took``, for its siblings' sleep sets);
    * the verdict's flags so far (``reduced``, ``bounded``: branches left out by the
      frames popped in the job) and its state: ``"paused"`` (its time is up: the rest
      of the subtree is the cursor returned), ``"ended"`` (it went back up to its
      frozen frames: the subtree is done) or ``"over"`` (``max_schedules`` or
      ``stop``); a ``cp.NondeterminismError`` met, if any."""
    cursor, bound, por, shared_only, max_schedules, seconds, stop = spec
    search = DepthFirst(max_schedules, bound, por, shared_only)
    floor, stack = cursor.floor, cursor.stack
    ops: list[tuple] = []
    if search.sleepy:

        def sources(summary: Any) -> list:
            found = source_sets(summary)
            ops.extend(race for race in found if race[0] is not None and race[0] < floor)
            return found

        search.source_sets = sources
    else:
        backtracking = search.backtrack_points  # (its race finder goes from run to run)

        def points(summary: Any, bounded: bool, shared: bool) -> list:
            found = backtracking(summary, bounded, shared)
            for point, task in found:
                if point is not None and point < floor and task not in stack[point].backtrack:
                    frame = stack[point]
                    before = len(frame.backtrack)
                    frame.add(task)
                    if len(frame.backtrack) != before:  # (what the copy had, the master has)
                        ops.append((point, task))
            return found

        search.backtrack_points = points
    deadline = None if seconds is None else time.thread_time() + seconds
    made, paused = 0, False

    def timed(prefix: Sequence[int], expect: Any, **named: Any) -> Any:
        nonlocal made, paused
        if deadline is not None and made and time.thread_time() > deadline:
            paused = True
            return None  # (DepthFirst pauses before this run)
        made += 1
        return run(prefix, expect, **named)

    tally = Tally()
    error = None
    try:
        for summary in search.runs(timed, cursor):
            tally.add(summary)
            if stop and tally.first_finding is not None:
                break
    except NondeterminismError as raised:
        error = raised
    state, rest = "over", None
    if error is None and paused:
        state, rest = "paused", cursor
    elif error is None and len(stack) <= floor:
        state = "ended"
    took = None
    if floor and search.sleepy and stack[floor - 1].took:
        took = stack[floor - 1].took.get(stack[floor - 1].chosen)
    part = (
        tally.schedules,
        tally.pruned,
        tally.redundant,
        tally.outcomes,
        tally.found,
        tally.first_finding,
        tuple(tally.warnings),
    )
    flags = (search.verdict.reduced, search.verdict.bounded)
    return _dumps((part, ops, flags, state, rest, took, error, _used(began)))


def _merge(tally: Tally, part: tuple) -> None:
    """Fold a job's tally (its runs, in order) into ``tally`` as if ``tally.add`` had been
    given each of those runs: counts add up, new outcomes, warnings and problems come in
    the order the job first met them, and a problem's schedule is the job's only when it
    is strictly simpler (fewer preemptions, then steps) than the one found before."""
    schedules, pruned, redundant, outcomes, found, first_finding, warned = part
    if first_finding is not None and tally.first_finding is None:
        tally.first_finding = tally.schedules + first_finding
        tally.first_finding_clock = time.perf_counter()
    tally.schedules += schedules
    tally.pruned += pruned
    tally.redundant += redundant
    for warning in warned:
        tally.warnings.setdefault(warning, None)
    counts = tally.outcomes
    for outcome, count in outcomes.items():
        counts[outcome] = counts.get(outcome, 0) + count
    known = tally.found
    for key, best in found.items():
        before = known.get(key)
        if before is None:
            known[key] = best._replace(order=len(known))
        elif (best.preemptions, best.steps) < (before.preemptions, before.steps):
            known[key] = best._replace(count=before.count + best.count, order=before.order)
        else:
            known[key] = before._replace(count=before.count + best.count)


# -- the master side ------------------------------------------------------------------------------


class _Jobs:
    """What both masters do with the cluster: ship the program with every job, keep at
    most ``_PER_WORKER`` jobs per worker out, fetch their results as they end."""

    def __init__(self, client: Any, program: Callable, options: Any, search: Any) -> None:
        from distributed import as_completed

        from ._shipping import program_bytes

        self.client = client
        self.search = search
        self.workers = max(1, len(client.scheduler_info().get("workers", {})))
        # (sent with every job, not scattered once: scattered data dies with its worker)
        with _keeping_filenames():
            self.program = program_bytes(
                program, {"run": tuple(options), "warnings": _warning_filters()}
            )
        self.queue: list[tuple] = []  # (order, number, job): in the order needed
        self.numbers = itertools.count()
        self.running: dict[Any, Any] = {}  # future -> job
        self.used: list[tuple[float, float]] = []  # each job's (wall, CPU) seconds
        self.done = as_completed(loop=client.loop, with_results=True)

    def _submit(self, data: bytes) -> Any:
        future = self.client.submit(_job, self.program, data, pure=False)
        self.done.add(future)
        return future

    def _next(self) -> tuple[Any, Any]:
        """The next job to end, and its result."""
        try:  # (results are fetched as jobs end, while this process goes on)
            return next(self.done)
        except Exception as error:
            if type(error).__name__ == "KilledWorker":
                raise WorkerLost(
                    "a Dask worker process died again and again while running part of the "
                    f"search ({error}); the search was abandoned. A program that ends its "
                    "process (os._exit, a crash in an extension) cannot be explored on "
                    "workers: explore it in this process to see the failure"
                ) from None
            raise

    def close(self) -> None:
        """Cancel what is still out (the search stopped at ``max_schedules`` or failed)."""
        if self.running:
            self.client.cancel(list(self.running))
        self.running.clear()
        self.queue.clear()


def master(client: Any, program: Callable, options: Any, search: Any) -> Any:
    """The master of a search on ``client``: :class:`Subtrees` for dfs, :class:`Master`
    (a ``run`` for the ordinary strategy) for random and pct."""
    if isinstance(search, DepthFirst):
        return Subtrees(client, program, options, search)
    return Master(client, program, options, search)


class Master(_Jobs):
    """random and pct: ``run`` for the strategy on the master, each execution's result
    from the cache the workers fill, asking them for it when no job will bring it."""

    def __init__(self, client: Any, program: Callable, options: Any, search: Any) -> None:
        super().__init__(client, program, options, search)
        self.cache: dict[tuple, Any] = {}
        self.first = True  # the first execution is made twice (see _Checked)

    def __call__(
        self, prefix: Sequence[int], expect: Any = None, then: Any = DEFAULT, *extra, **named
    ) -> Any:
        key = _key(prefix, then, extra, named)
        cache = self.cache
        while key not in cache:
            if not self.running and not self.queue:
                self._uncovered(prefix, then)
                self._fill()
            self._wait()
        got = cache.pop(key)
        if isinstance(got, BaseException):
            raise got
        return got

    def _uncovered(self, prefix: Sequence[int], then: Any) -> None:
        """No job brings the run the search asks for: ask for every run from here."""
        search = self.search
        checked, self.first = self.first, False
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

    def _push(self, order: Any, job: tuple) -> None:
        data = pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL)
        heapq.heappush(self.queue, (order, next(self.numbers), data))

    def _fill(self) -> None:
        while self.queue and len(self.running) < _PER_WORKER * self.workers:
            _, _, data = heapq.heappop(self.queue)
            self.running[self._submit(data)] = data

    def _wait(self) -> None:
        future, (chunks, tail) = self._next()
        self.running.pop(future)
        cache = self.cache
        for chunk in chunks:
            for key, lite in pickle.loads(chunk):
                cache[key] = lite
        self.used.append(pickle.loads(tail)[1])
        self._fill()

    def close(self) -> None:
        super().close()
        self.cache.clear()


class _Node:
    """A frame of the dfs stack that the master owns: ``frame`` (its backtrack and done
    sets are the sequential search's, kept up to date by the master), the subtree it was
    found in (``sub``: its path), its ``depth``, the preemptions the frames above it on
    its path make (``spent``), and the subtrees under its options made so far."""

    __slots__ = ("depth", "frame", "spent", "sub", "subs")

    def __init__(self, frame: Frame, sub: _Sub, depth: int, spent: int) -> None:
        self.frame = frame
        self.sub = sub
        self.depth = depth
        self.spent = spent
        self.subs: dict[int, _Sub] = {}


class _Sub:
    """The subtree the sequential search explores once ``node`` takes ``option`` (the
    whole tree: no node): the results of its jobs not folded yet (``pieces``, in order);
    ``over`` once no more come, and then ``child``, the frame found below it (the search
    goes on into that frame's chosen option) or None (the subtree is done).  ``key`` is
    its path (the options' indices), ``sleep`` the sleep set its jobs start with (sleep
    sets; None for a subtree the search enters without choosing), ``took`` the step its
    first run took at ``node``."""

    __slots__ = ("child", "job", "key", "node", "option", "over", "pieces", "sleep", "took")

    def __init__(self, node: _Node | None, option: Any, key: tuple, sleep: Any) -> None:
        self.node = node
        self.option = option
        self.key = key
        self.sleep = sleep
        self.pieces: collections.deque = collections.deque()
        self.job: _Job | None = None
        self.over = False
        self.child: _Node | None = None
        self.took: Any = None


class _Job:
    """A dfs job: the subtree it explores (part of), the job as sent, its future."""

    __slots__ = ("checked", "data", "future", "result", "sub")

    def __init__(self, sub: _Sub, data: bytes, checked: bool) -> None:
        self.sub = sub
        self.data = data
        self.checked = checked
        self.future: Any = None
        self.result: Any = None  # (a job run again to a cap: its result, when it is in)


_UNKNOWN = object()  # a sleep set that cannot be known yet

# What the last dfs search on workers in this process did (benchmarks/explore_distributed.py
# reports it): runs folded, jobs, the jobs' CPU seconds, the master's (this thread's: not
# Dask's), the part of it spent folding results and choosing, subtrees sent again
last_search: dict[str, float] = {}


class Subtrees(_Jobs):
    """dfs on workers, folded per subtree.

    The master keeps the frames above the subtrees (:class:`_Node`) and makes the
    sequential search's choices at them: the subtree under (frame, option) is a pure
    function of its path (and, with sleep sets, of the sleep set it starts with), so a
    worker explores it (:func:`_subtree`) and the master folds its tally, replays its
    operations on the frames above it, and takes its verdict flags, at the moment the
    sequential search would have made its runs.  Subtrees it will need later are sent
    ahead (the options still to try at its frames, shallowest first: the largest); a job
    whose time is up hands back its cursor, whose shallower frames the master takes over
    (their options become subtrees of their own) while the rest goes on as one job."""

    def __init__(self, client: Any, program: Callable, options: Any, search: Any) -> None:
        super().__init__(client, program, options, search)
        self.starving = True  # a worker waits: no job queued, nothing left to send ahead
        self.stack: list[_Node] = []  # the sequential search's frames above its subtree
        self.nodes: dict[_Node, None] = {}  # every frame the master owns, not yet popped
        self.reduced = self.bounded = self.cut_short = False
        self.discarded = 0  # subtrees sent ahead with a sleep set the search did not reach
        self.folding = 0.0  # CPU seconds this process spent folding and choosing

    def explore(self, tally: Tally, bar: Any, stop: bool) -> None:
        """Run the search, folding every run into ``tally`` (and ``bar``); ``stop``: end
        at the first finding (``stop_on_first``).  Sets the search's verdict as the
        sequential search would."""
        began = time.thread_time()
        try:
            self._explore(tally, bar, stop)
        finally:
            last_search.clear()
            last_search.update(
                runs=tally.schedules + tally.redundant,
                jobs=len(self.used),
                job_cpu=sum(cpu for _, cpu in self.used),
                master_cpu=time.thread_time() - began,  # (this thread: not Dask's own)
                folding_cpu=self.folding,
                sent_again=self.discarded,
            )

    def _explore(self, tally: Tally, bar: Any, stop: bool) -> None:
        self.tally, self.bar, self.stop = tally, bar, stop
        root = sub = _Sub(None, None, (), None)
        self._send(root, Cursor([], [], []), True)
        while True:
            while sub.pieces or not sub.over:
                if not sub.pieces:
                    self._need(sub)
                    continue
                began = time.thread_time()
                ends = self._fold(sub.pieces.popleft())
                self.folding += time.thread_time() - began
                if ends:
                    return
            if sub.child is not None:  # the search goes on into the frame found below
                node = sub.child
                self.stack.append(node)
                sub = node.subs[node.frame.chosen]
                continue
            began = time.thread_time()
            sub = self._select()
            self.folding += time.thread_time() - began
            if sub is None:
                self.search.verdict = Verdict(not self.cut_short, self.reduced, self.bounded)
                return

    def _fold(self, piece: tuple) -> bool:
        """Fold a subtree's next result, as the sequential search makes those runs;
        True when the search ends there."""
        part, ops, flags, state, took, error, job = piece
        tally, search = self.tally, self.search
        left = search.max_schedules - tally.schedules
        if part[0] > left or (error is not None and part[0] >= left):
            # the cap falls inside this job: run it again, to the cap
            part, ops, flags, state, took, error, job = self._again(job, left)
        if error is not None:
            raise error
        _merge(tally, part)
        stack = self.stack
        if took is not None:
            frame = stack[-1].frame
            if frame.took is None:
                frame.took = {}
            frame.took[frame.chosen] = took
        if search.sleepy:
            for point, initials, task in ops:
                _add_source(stack[point].frame, initials, task)
        else:
            for point, task in ops:
                stack[point].frame.add(task)
        self.reduced = self.reduced or flags[0]
        self.bounded = self.bounded or flags[1]
        self.cut_short = self.cut_short or "StepLimitExceeded" in part[3]
        if self.bar is not None:
            self.bar.update(part[0] + part[2])
        if self.stop and tally.first_finding is not None:
            return True  # (the verdict stays "not covered", as explore's loop leaves it)
        if tally.schedules >= search.max_schedules:
            covered = state == "ended" and self._select() is None
            search.verdict = Verdict(covered and not self.cut_short, self.reduced, self.bounded)
            return True
        return False

    def _select(self) -> _Sub | None:
        """The sequential search's next choice at the master's frames (``DepthFirst``'s):
        the deepest frame with an option left takes the least; frames with none are
        popped.  The subtree it enters, or None: the search is over."""
        stack, bound, sleepy = self.stack, self.search.bound, self.search.sleepy
        while stack:
            node = stack[-1]
            frame = node.frame
            remaining = frame.backtrack - frame.done
            if sleepy and frame.sleep:
                remaining = remaining.difference(frame.sleep)
            if bound is not None and frame.kind == "sched":
                over = {r for r in frame.options if node.spent + frame.preempts(r) > bound}
                if over:
                    self.bounded = True
                    remaining -= over
            if remaining:
                option = frame.chosen = min(remaining)
                frame.done.add(option)
                sleep = _sleep_for(frame) if sleepy else None
                sub = node.subs.get(option)
                if sub is not None and sub.sleep != sleep:  # sent ahead on a wrong guess
                    self.discarded += 1
                    self._drop(sub)
                    sub = None
                return sub if sub is not None else self._open(node, option, sleep)
            self.reduced = self.reduced or len(frame.backtrack) < len(frame.options)
            stack.pop()
            self.nodes.pop(node, None)
        return None

    # -- jobs ----------------------------------------------------------------------------------

    def _open(self, node: _Node, option: int, sleep: Any) -> _Sub:
        """The subtree under ``node``'s ``option``, and a job to explore it."""
        frame = node.frame
        index = frame.options.index(option) if frame.kind == "sched" else option
        sub = node.subs[option] = _Sub(node, option, (*node.sub.key, index), sleep)
        frames = []
        at: _Node | None = node
        while at is not None:  # the frames of its path, each with the option taken
            frames.append(replace(at.frame, chosen=option))
            option, at = at.sub.option, at.sub.node
        frames.reverse()
        offers = [(f.kind, f.options) for f in frames]
        choices = [f.index() for f in frames]
        expect = Expected(offers, frames[-1].rows, frames[-1].position)
        self._send(sub, Cursor(frames, offers, choices, expect, len(frames), sleep), False)
        return sub

    def _send(self, sub: _Sub, cursor: Cursor, checked: bool) -> _Job:
        search = self.search
        seconds = _FIRST_SLICE if checked or self.starving else _SLICE
        spec = (
            cursor,
            search.bound,
            search.por,
            search.shared_only,
            search.max_schedules,
            seconds,
            self.stop,
        )
        job = sub.job = _Job(sub, pickle.dumps(("dfs", checked, spec), _PROTOCOL), checked)
        heapq.heappush(self.queue, (sub.key, next(self.numbers), job))
        return job

    def _need(self, sub: _Sub) -> None:
        """The search needs ``sub``'s next result: its job goes first; wait for a job."""
        job = sub.job
        if job is not None and job.future is None:
            heapq.heappush(self.queue, ((), next(self.numbers), job))
        self._fill()
        self._wait()

    def _fill(self) -> None:
        """Keep ``_PER_WORKER`` jobs out per worker: those queued in the order the search
        needs them, then subtrees sent ahead."""
        while len(self.running) < _PER_WORKER * self.workers:
            if not self.queue:
                self._ahead(_PER_WORKER * self.workers - len(self.running))
                if not self.queue:
                    self.starving = True
                    return
            job = heapq.heappop(self.queue)[2]
            if job.future is None and job.sub.job is job:
                job.future = self._submit(job.data)
                self.running[job.future] = job
        self.starving = False

    def _ahead(self, wanted: int) -> None:
        """Send ahead up to ``wanted`` subtrees the search will enter later: options left
        to try at the master's frames, the shallowest (largest) first."""
        bound, sleepy = self.search.bound, self.search.sleepy
        found = []
        for node in self.nodes:
            frame = node.frame
            pending = frame.backtrack - frame.done
            if sleepy and frame.sleep:
                pending = pending.difference(frame.sleep)
            if bound is not None and frame.kind == "sched":
                pending = {r for r in pending if node.spent + frame.preempts(r) <= bound}
            for option in sorted(pending):
                if option not in node.subs:
                    found.append((node.depth, node.sub.key, option, node, pending))
        for _, _, option, node, pending in heapq.nsmallest(wanted, found, key=_shallowest):
            sleep = self._guess_sleep(node, option, pending) if sleepy else None
            if sleep is not _UNKNOWN:
                self._open(node, option, sleep)

    def _guess_sleep(self, node: _Node, option: int, pending: set) -> Any:
        """The sleep set the search will give ``node``'s ``option`` if no other option is
        added before it: the steps of every option tried there before it (known once their
        subtrees' first runs are in); ``_UNKNOWN`` while one is missing."""
        frame = node.frame
        done = frame.done | {p for p in pending if p < option} | {option}
        took = dict(frame.took or {})
        if frame.kind == "sched":
            for task in done:
                if task != option and task not in took:
                    sub = node.subs.get(task)
                    if sub is None or sub.took is None:
                        return _UNKNOWN
                    took[task] = sub.took
        return _sleep_for(replace(frame, chosen=option, done=done, took=took))

    def _drop(self, sub: _Sub) -> None:
        """Forget a subtree sent ahead (its results are ignored) and the frames found in it."""
        sub.job = None
        sub.over = True
        sub.pieces.clear()
        if sub.node is not None and sub.node.subs.get(sub.option) is sub:
            del sub.node.subs[sub.option]
        node, sub.child = sub.child, None
        if node is not None:
            self.nodes.pop(node, None)
            for below in list(node.subs.values()):
                self._drop(below)

    def _wait(self) -> None:
        """Take in the next job to end: its result joins its subtree's, and a job whose
        time was up goes on (:meth:`_adopt`)."""
        future, result = self._next()
        job = self.running.pop(future)
        piece = pickle.loads(result)
        part, ops, flags, state, rest, took, error, used = piece
        self.used.append(used)
        if job.result is _UNKNOWN:  # a job run again to the cap
            job.result = (part, ops, flags, state, took, error, job)
            return
        sub = job.sub
        if sub.job is not job:  # (dropped)
            return
        sub.job = None
        if took is not None and sub.took is None:
            sub.took = took
        sub.pieces.append((part, ops, flags, state, took, error, job))
        if state == "paused":
            self._adopt(sub, rest)
        else:
            sub.over = True
        self._fill()

    def _adopt(self, sub: _Sub, rest: Cursor) -> None:
        """A job's time is up: the master takes over the frames of its cursor that are
        ``_HEIGHT`` or more above its deepest (their other options become subtrees of their
        own), and the rest of the subtree under them goes on as one job."""
        stack = rest.stack
        spent = 0
        if self.search.bound is not None:
            spent = sum(frame.preempts(frame.chosen) for frame in stack[: rest.floor])
        for depth in range(rest.floor, len(stack) - _HEIGHT):
            frame = stack[depth]
            node = _Node(frame, sub, depth, spent)
            spent += frame.preempts(frame.chosen)
            self.nodes[node] = None
            sub.child, sub.over = node, True
            key = (*sub.key, frame.index())
            sub = node.subs[frame.chosen] = _Sub(node, frame.chosen, key, None)
            rest.floor = depth + 1
        self._send(sub, rest, False)

    def _again(self, job: _Job, left: int) -> tuple:
        """Run ``job`` again with ``left`` schedules to go (no time limit): the result the
        sequential search folds when its cap falls inside the job."""
        kind, checked, spec = pickle.loads(job.data)
        spec = (*spec[:4], left, None, spec[6])
        again = _Job(job.sub, pickle.dumps((kind, checked, spec), _PROTOCOL), checked)
        again.result = _UNKNOWN
        again.future = self._submit(again.data)
        self.running[again.future] = again
        while again.result is _UNKNOWN:
            self._wait()
        return again.result


def _shallowest(item: tuple) -> tuple:
    return item[:3]


_PROTOCOL = pickle.HIGHEST_PROTOCOL


# Ctrl-C while the master waits for a job ends the search there (nothing is half-done)
safe_to_interrupt(_Jobs._next)
