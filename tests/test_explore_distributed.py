"""Distributed search on Dask (issue 12, item 6): ``cp.explore(..., client=CLIENT)`` and
``processes=N`` give the report one process gives (``vm/_distributed.py``).

A 2-process ``LocalCluster`` serves the module.  Most searches run with *tiny slices*:
every dfs job stops after one execution and hands back the rest of its subtree, and
every option still to try is split off into a job of its own, so a small program
exercises all the machinery (pauses, splits, jobs finishing out of order, the master
waiting for the job it needs) that a long search meets at its scale.
"""

from __future__ import annotations

import copy
import os

import explore_programs
import pytest

import counterpoint as cp
from counterpoint import _distributed
from counterpoint._explore import RunOptions, _Checked, decode_schedule
from counterpoint._strategies import DepthFirst

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client():
    """A 2-process Dask ``LocalCluster`` (one thread each) and its ``Client``."""
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    )
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


@pytest.fixture(scope="module", autouse=True)
def _no_cluster_outlives_the_module():
    """``processes=N`` keeps its cluster for the life of the process: close it when this
    module is done, so that its threads do not run on beside the rest of the suite."""
    yield
    _distributed._close_clients()


@pytest.fixture
def tiny_slices(monkeypatch):
    """Each dfs job runs one execution, and every option still to try becomes a job."""
    monkeypatch.setattr(_distributed, "_FIRST_SLICE", 0.0)
    monkeypatch.setattr(_distributed, "_SLICE", 0.0)
    monkeypatch.setattr(_distributed, "_HEIGHT", 0)


def everything_but_seconds(report: cp.ExploreReport) -> dict:
    """A report as the fields a reader sees, in order; only the seconds are left out."""
    return {
        "strategy": report.strategy,
        "schedules": report.schedules,
        "outcomes": list(report.outcomes.items()),  # (in the order first seen)
        "failures": [(f, f.replay) for f in report.failures],
        "deadlocks": [(f, f.replay) for f in report.deadlocks],
        "first_finding": report.first_finding,
        "exhaustive": report.exhaustive,
        "assumptions": report.assumptions,
        "pruned": report.pruned,
        "summary": report.summary(),
        "repr": repr(report),
    }


def assert_same_report(program, **options) -> cp.ExploreReport:
    """Explore ``program`` in this process and with ``options`` (client= or processes=):
    the two reports are equal field by field but for the seconds."""
    distributed_options = {k: options.pop(k) for k in ("client", "processes") if k in options}
    one = cp.explore(program, progress=False, **options)
    other = cp.explore(program, progress=False, **distributed_options, **options)
    assert everything_but_seconds(other) == everything_but_seconds(one)
    return other


# -- programs (defined here: they travel to the workers by value) ---------------------------------


def lost_update(tasks: int, check: bool = False):
    """A program made by a closure: ``tasks`` tasks read, checkpoint, write back + 1."""

    async def main():
        box = {"n": 0}

        async def add():
            seen = box["n"]
            await cp.checkpoint()
            box["n"] = seen + 1

        await cp.par(*[add() for _ in range(tasks)])
        if check:
            assert box["n"] == tasks, "an update was lost"
        return box["n"]

    return main


async def philosophers():
    forks = [cp.Lock(name=f"fork {i}") for i in range(3)]

    async def eat(seat):
        async with forks[seat], forks[(seat + 1) % 3]:
            await cp.sleep(1)

    await cp.par(*[eat(seat) for seat in range(3)])
    return "everyone ate"


async def chosen_pair():
    """``cp.choose`` before and inside tasks, pruning by ``cp.require``, a failure."""
    first = cp.choose(range(3))
    box = []

    async def put(value):
        box.append(value + cp.choose(range(2)))
        await cp.checkpoint()
        cp.require(box[0] != 2)

    await cp.par(put(first), put(1))
    if box == [1, 2]:
        raise ValueError("an ordered box")
    return tuple(box)


async def messages():
    """Channels and a lock: partial-order reduction prunes here."""
    inbox = cp.channel(1, name="inbox")
    lock = cp.Lock(name="log")
    log = []

    async def producer(tag, count):
        for i in range(count):
            await inbox.send((tag, i))

    async def consumer():
        for _ in range(3):
            item = await inbox.recv()
            async with lock:
                log.append(item)

    await cp.par(producer("a", 2), producer("b", 1), consumer())
    return tuple(log)


def shared_counter(tasks: int):
    """The lost update on a ``cp.shared`` dict, for ``shared_only=True`` (sleep sets)."""

    async def main():
        box = cp.shared({"n": 0, "seen": 0}, name="box")

        async def add():
            seen = box["n"]
            await cp.checkpoint()
            box["n"] = seen + 1
            box["seen"] += 0 if seen else 1

        await cp.par(*[add() for _ in range(tasks)])
        return box["n"], box["seen"]

    return main


# -- the same report ------------------------------------------------------------------------------


@pytest.mark.parametrize("por", [True, False])
def test_dfs_on_a_cluster_reports_what_one_process_reports(client, tiny_slices, por):
    assert_same_report(lost_update(3), client=client, por=por)


@pytest.mark.parametrize("program", [philosophers, chosen_pair, messages], ids=lambda p: p.__name__)
def test_deadlocks_failures_choices_and_channels_report_the_same_on_a_cluster(
    client, tiny_slices, program
):
    report = assert_same_report(program, client=client)
    assert report.exhaustive


@pytest.mark.parametrize("bound", [None, 1])
def test_shared_only_searches_report_the_same_on_a_cluster(client, tiny_slices, bound):
    """With sleep sets (no bound: runs are given a sleep set, some end "blocked") and
    without (a bound)."""
    report = assert_same_report(
        shared_counter(3), client=client, shared_only=True, preemption_bound=bound
    )
    assert report.exhaustive


def test_a_failure_found_on_a_cluster_replays_here(client, tiny_slices):
    report = assert_same_report(lost_update(3, check=True), client=client)
    finding = report.failures[0]
    assert finding.outcome == "AssertionError" and report.first_finding is not None
    vm = finding.run()  # the program is this process's: the finding runs again here
    assert vm.journal is not None


@pytest.mark.parametrize("bound", [0, 1, 2])
def test_a_preemption_bound_reports_the_same_on_a_cluster(client, tiny_slices, bound):
    report = assert_same_report(lost_update(4), client=client, preemption_bound=bound)
    assert report.assumptions  # the bound left branches out, and both reports say so


@pytest.mark.parametrize("cap", [1, 7, 150])
def test_a_max_schedules_cap_stops_the_cluster_search_at_the_same_run(client, tiny_slices, cap):
    report = assert_same_report(lost_update(4), client=client, max_schedules=cap)
    assert report.schedules == cap and not report.exhaustive


@pytest.mark.parametrize("seed", [0, 15, 16, 23, 26, 57, 59, 73, 106, 111])
def test_generated_programs_report_the_same_on_a_cluster(client, tiny_slices, seed):
    """The soundness suite's generator: channels, select, cancellation, timeouts..."""
    program = explore_programs.generate(seed)
    assert_same_report(program, client=client, preemption_bound=program.preemption_bound)


def test_long_slices_report_the_same_as_tiny_ones(client):
    """Without tiny slices (the defaults), a search of a few hundred schedules."""
    assert_same_report(lost_update(4), client=client, max_schedules=400)


@pytest.mark.parametrize("strategy", ["random", "pct"])
def test_random_and_pct_on_a_cluster_report_what_one_process_reports(client, strategy):
    assert_same_report(chosen_pair, client=client, strategy=strategy, max_schedules=300, seed=5)
    assert_same_report(lost_update(3), client=client, strategy=strategy, max_schedules=40)


def test_processes_n_makes_one_local_cluster_and_reuses_it():
    assert_same_report(philosophers, processes=1)
    made = _distributed._CLIENTS[1]
    assert_same_report(lost_update(3), processes=1, max_schedules=20)
    assert _distributed._CLIENTS[1] is made
    workers = made.scheduler_info()["workers"].values()
    assert [worker["nthreads"] for worker in workers] == [1]


# -- folded per subtree -------------------------------------------------------------------------


def late_failure(tasks: int, shared: bool = False):
    """A lost update that fails only under the last of three choices: the first
    finding comes two thirds of the way through the search, deep in a subtree."""

    async def main():
        which = cp.choose(range(3))
        box = {"n": 0}
        if shared:
            box = cp.shared(box, name="box")

        async def add():
            seen = box["n"]
            await cp.checkpoint()
            box["n"] = seen + 1

        await cp.par(*[add() for _ in range(tasks)])
        assert which < 2 or box["n"] == tasks, "an update was lost"
        return which, box["n"]

    return main


@pytest.fixture
def count_calls(monkeypatch):
    """``count_calls(cls, name)``: a list that grows by one item per call of that method."""

    def spy(cls, name):
        calls = []
        original = getattr(cls, name)

        def counted(self, *args, **kwargs):
            calls.append(args)
            return original(self, *args, **kwargs)

        monkeypatch.setattr(cls, name, counted)
        return calls

    return spy


@pytest.mark.parametrize("first", [1000, 2517])
def test_a_cap_inside_a_subtree_job_stops_at_the_same_run(client, count_calls, first):
    """Default slices: a job explores hundreds of runs and hands back their tally; when
    the cap falls inside one, that job is run again to the cap, and the report (its
    verdict too: the 2,519th run is the last but one) is one process's.  (Three caps in a
    row: at most two can fall where a job ends.)"""
    again = count_calls(_distributed.Subtrees, "_again")
    for cap in range(first, first + 3):
        report = assert_same_report(lost_update(4), client=client, max_schedules=cap)
        assert report.schedules == cap and not report.exhaustive
    assert again


def test_a_cap_inside_a_subtree_job_with_sleep_sets_stops_at_the_same_run(client, count_calls):
    """1,728 schedules with sleep sets, failures from the 1,154th on."""
    again = count_calls(_distributed.Subtrees, "_again")
    for cap in (1500, 1501, 1502):
        report = assert_same_report(
            late_failure(4, shared=True), client=client, shared_only=True, max_schedules=cap
        )
        assert report.schedules == cap and report.failures
    assert again


@pytest.mark.parametrize("shared", [False, True], ids=["plain", "shared_only"])
@pytest.mark.parametrize("slices", ["tiny", "default"])
def test_stop_on_first_inside_a_subtree_stops_at_the_same_run(client, request, shared, slices):
    """The first failure is deep in a subtree a job explores: the job stops there, and
    the master stops folding there (the runs after it are never counted)."""
    if slices == "tiny":
        request.getfixturevalue("tiny_slices")
    one = cp.explore(late_failure(3, shared), progress=False, shared_only=shared)
    report = assert_same_report(
        late_failure(3, shared), client=client, shared_only=shared, stop_on_first=True
    )
    assert report.stopped_at_first and report.failures
    assert 1 < report.schedules == report.first_finding < one.schedules


def test_a_subtree_sent_ahead_with_a_sleep_set_the_search_does_not_reach_is_run_again(
    client, tiny_slices, monkeypatch, count_calls
):
    """With sleep sets a subtree's runs depend on the sleep set it starts with: the
    master guesses it for subtrees it sends ahead (every sibling tried before it takes
    its step asleep), and when an option added later makes the search reach the
    subtree with another sleep set, the guess is dropped and the subtree explored
    again.  (Many jobs out at once: the master sends ahead all it can.)"""
    monkeypatch.setattr(_distributed, "_PER_WORKER", 20)
    dropped = count_calls(_distributed.Subtrees, "_drop")
    report = assert_same_report(shared_counter(4), client=client, shared_only=True)
    assert report.exhaustive and dropped


def test_a_subtrees_operations_replayed_in_order_leave_the_frames_above_as_the_full_search_does():
    """What a worker hands back with sleep sets: the ``_add_source`` calls its runs made
    on the frozen frames, in order, and the step its entry frame's task took.  Replayed
    on the frames as they were when the subtree began, they leave them (backtrack sets,
    steps taken) as the full search leaves them when it comes back up out of the
    subtree -- the master keeps its frames so, from subtrees explored anywhere."""
    import pickle
    import time

    from counterpoint._strategies import _add_source

    program = shared_counter(4)
    checked = _Checked(program, RunOptions())
    search = DepthFirst(10_000, None, True, shared_only=True)
    cursors = []

    def run(prefix, expect=None, sleep=None):
        cursors.append(copy.deepcopy(search.at))
        return checked(prefix, expect, sleep=sleep)

    full = [summary.schedule for summary in search.runs(run)]
    replayed = compared = 0
    for k in range(1, len(full), 7):
        cursor = copy.deepcopy(cursors[k])
        floor = len(cursor.stack) - 2
        if floor < 1:
            continue
        cursor.floor = floor
        frames = copy.deepcopy(cursor.stack[:floor])  # the master's, at the subtree's start
        spec = (cursor, None, True, True, 10_000, None, False)
        part, ops, _, state, _, took, error, _ = pickle.loads(
            _distributed._subtree(_Checked(program, RunOptions()), spec, (0, time.thread_time()))
        )
        assert state == "ended" and error is None
        if took is not None:
            frames[-1].took = {**(frames[-1].took or {}), frames[-1].chosen: took}
        for point, initials, task in ops:
            _add_source(frames[point], initials, task)
        replayed += len(ops)
        if k + part[0] + part[2] == len(cursors):
            continue  # (the search ended with the subtree)
        after = cursors[k + part[0] + part[2]].stack  # before its next run, outside
        kept = len(after)  # (the frames below the one that took its next option are popped)
        assert [f.chosen for f in after[:-1]] == [f.chosen for f in frames[: kept - 1]]
        for mine, theirs in zip(frames[:kept], after, strict=True):
            assert (mine.backtrack, mine.took) == (theirs.backtrack, theirs.took)
            compared += 1
    assert replayed and compared > 10  # (the subtrees did add options above them)


def test_the_master_replays_a_subtrees_source_set_additions_in_the_order_they_were_made():
    """``_add_source`` reads the frame it adds to: a race whose initials are {2, 3} adds
    2 (none of them was to be tried), and then one whose initials are {3} adds 3 (it
    still is not); the other way round, {3} adds 3 and {2, 3} then adds nothing.  The
    master keeps the order the job made them in."""
    from counterpoint._report import Tally
    from counterpoint._strategies import Frame

    master = object.__new__(_distributed.Subtrees)  # (its folding alone: no cluster)
    master.search = DepthFirst(100, None, True, shared_only=True)
    master.tally, master.bar, master.stop = Tally(), None, False
    master.reduced = master.bounded = master.cut_short = False
    frame = Frame("sched", (1, 2, 3), 1, 1, {1}, {1}, 0, ())
    master.stack = [_distributed._Node(frame, None, 0, 0)]
    part = (1, 0, 0, {"done": 1}, {}, None, ())  # (one run, returning "done")
    ops = [(0, frozenset({2, 3}), 3), (0, frozenset({3}), 3)]
    assert master._fold((part, ops, (False, False), "paused", None, None, None)) is False
    assert frame.backtrack == {1, 2, 3}
    assert master.tally.schedules == 1 and master.tally.outcomes == {"done": 1}


# -- the search from a cursor (what a worker runs) ------------------------------------------------


@pytest.mark.parametrize("floor", [0, 1, 2, 3])
def test_a_search_from_a_cursor_makes_the_runs_of_its_subtree_in_the_full_order(floor):
    """What a worker computes: from a cursor taken in the middle of a search, with its
    first ``floor`` frames frozen, exactly the full search's next runs that share the
    cursor's first ``floor`` choices, in the same order -- and then it stops."""
    program = explore_programs.generate(71)
    cursors = []

    def run(prefix, expect=None, then=None):
        cursors.append(copy.deepcopy(search.at))
        return checked(prefix, expect)

    checked = _Checked(program, RunOptions())
    search = DepthFirst(10_000, None, True)
    full = [summary.schedule for summary in search.runs(run)]
    k = next(k for k in range(len(full) // 2, len(full)) if len(cursors[k].stack) > 3)
    cursor = cursors[k]
    cursor.floor = floor
    frozen = cursor.choices[:floor]
    sub = [s.schedule for s in DepthFirst(10_000, None, True).runs(checked, cursor)]
    assert sub == full[k : k + len(sub)] and len(sub) > 1
    assert all(decode_schedule(schedule)[:floor] == frozen for schedule in sub)
    if k + len(sub) < len(full):  # the next run of the full search is outside the subtree
        assert decode_schedule(full[k + len(sub)])[:floor] != frozen


# -- errors ---------------------------------------------------------------------------------------


def test_client_must_be_a_dask_client():
    with pytest.raises(TypeError, match=r"client= is a distributed\.Client"):
        cp.explore(philosophers, client="tcp://127.0.0.1:8786")
    assert cp.explore(philosophers, progress=False).exhaustive  # still usable


@pytest.mark.parametrize("processes", [0, -1, 1.5, True, "2"])
def test_processes_must_be_a_positive_int(processes):
    with pytest.raises(ValueError, match="processes= is how many local worker processes"):
        cp.explore(philosophers, processes=processes)


def test_client_and_processes_together_are_refused(client):
    with pytest.raises(ValueError, match="not both"):
        cp.explore(philosophers, client=client, processes=2)


def test_a_nondeterministic_program_raises_on_a_cluster_as_in_one_process(client):
    import random

    async def noisy():
        return random.random()  # host randomness: the first run, made twice, differs

    with pytest.raises(cp.NondeterminismError, match="not deterministic"):
        cp.explore(noisy, progress=False)
    with pytest.raises(cp.NondeterminismError, match="not deterministic"):
        cp.explore(noisy, progress=False, client=client)


def test_a_worker_that_dies_mid_search_is_replaced_and_the_report_is_the_same(
    client, tiny_slices, tmp_path
):
    """Dask runs the job of a dead worker again elsewhere; jobs are pure, so nothing
    changes.  Here the worker running one schedule ends its process the first time."""
    died = tmp_path / "died"

    def dies_once():
        async def main():
            first = cp.choose(range(3))
            if first == 2 and not os.path.exists(died):
                died.write_text("once")
                os._exit(1)  # the worker process ends, mid-search
            return await lost_update(2)() + first

        return main

    program = dies_once()
    died.write_text("not here")  # (the run in this process must not die)
    one = cp.explore(program, progress=False)
    died.unlink()
    other = cp.explore(program, progress=False, client=client)
    assert died.read_text() == "once"  # a worker did die
    assert everything_but_seconds(other) == everything_but_seconds(one)


def test_a_job_that_keeps_killing_its_workers_raises_worker_lost():
    """Dask gives up on a job whose workers die more often than it allows (here: at
    once); the search says so, and this process stays usable."""
    import dask

    async def kills():
        if cp.choose(range(2)) == 1:
            os._exit(1)

    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = distributed.LocalCluster(
            n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0"
        )
    try:
        with (
            distributed.Client(cluster) as lost,
            pytest.raises(cp.WorkerLost, match="died again and again"),
        ):
            cp.explore(kills, progress=False, client=lost)
    finally:
        cluster.close()
    assert cp.explore(philosophers, progress=False).exhaustive


def test_ctrl_c_while_waiting_for_workers_ends_the_search(client):
    """The master waits for jobs outside any VM: Ctrl-C there raises at once (it is not
    deferred to a VM step that never comes), and what is out is cancelled."""
    import signal
    import threading
    import time

    async def slow():
        time.sleep(0.2)  # host time only: the program's behaviour does not depend on it
        return cp.choose(range(100))

    timer = threading.Timer(1.5, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    started = time.perf_counter()
    try:
        with pytest.raises(KeyboardInterrupt):
            cp.explore(slow, progress=False, client=client)
    finally:
        timer.cancel()
    assert time.perf_counter() - started < 10  # (the whole search takes 20 s)
    assert cp.explore(philosophers, progress=False, client=client).exhaustive


def test_a_cluster_search_shows_the_progress_bar(client, capsys):
    async def slow():
        import time

        time.sleep(0.05)  # host time only: the program's behaviour does not depend on it
        return cp.choose(range(40))

    report = cp.explore(slow, max_schedules=40, client=client)
    assert report.schedules == 40
    captured = capsys.readouterr()
    assert "exploring (dfs)" in captured.err and "40/40" in captured.err


# -- the benchmark -------------------------------------------------------------------------------


def test_the_benchmark_rewrites_only_its_readme_curve(tmp_path):
    from benchmarks import explore_distributed as bench

    readme = tmp_path / "README.md"
    readme.write_text(
        "intro\n<!-- explore-distributed-table -->\nold\n<!-- /explore-distributed-table -->\nend\n"
    )
    row = {"seconds": 2.0, "schedules_per_second": 10_080.0, "speedup": 1.8}
    results = {"schedules": 20_160, "cores": 2, "load_average": 0.4, "rows": {"processes=2": row}}
    bench.update_readme(readme, bench.table(results), results, rounds=3)
    text = readme.read_text()
    assert "old" not in text and "| processes=2 | 2.00 s | 10,080 | **1.80x** |" in text
    assert "load average 0.4" in text and text.endswith(
        "<!-- /explore-distributed-table -->\nend\n"
    )
