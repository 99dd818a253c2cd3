"""Shipping code to other processes (issue 10, "The seam"): ``vm/_shipping.py``.

A program that registers worker tasks runs the same in a fresh process: with
``cp.check_determinism(processes=True)`` the program travels with the worker
registry, so ``cp.worker.start("name")`` finds the task there and the journal
digest is the one of a run here.  Worker functions go to worker processes and
Dask workers by value when they are the user's own code.  What cannot be shipped
is named, with what to do.
"""

from __future__ import annotations

import os
import runpy
import site
import subprocess
import sys
import sysconfig
import textwrap
import threading
import types

import cloudpickle
import pytest

import counterpoint as cp
from counterpoint import _shipping

# ---------------------------------------------------------------------------
# Programs and workers (module level, like a user's script: the decorators run when
# this module is imported, which a fresh process never does).


@cp.worker.task
def ship_square(n):
    return n * n


@cp.worker.task(name="ship_renamed")
def ship_cube(n):
    return n * n * n


async def starts_workers_by_name():
    handles = [cp.worker.start("ship_square", n, cost=n) for n in (3, 1, 2)]
    first = await cp.worker.wait_any(handles)
    statuses = [await cp.worker.wait(h) for h in handles]
    return first, statuses, [cp.worker.result(h) for h in handles], cp.now()


async def starts_workers_by_function():
    handles = [cp.worker.start(ship_square, 4), cp.worker.start(ship_cube, 2, cost=2)]
    return [await cp.worker.wait(h) for h in handles], [cp.worker.result(h) for h in handles]


async def starts_a_custom_name():
    handle = cp.worker.start("ship_renamed", 3)
    return await cp.worker.wait(handle), cp.worker.result(handle)


async def starts_an_unshippable_worker():
    handle = cp.worker.start("ship_locked", 5)
    return await cp.worker.wait(handle), cp.worker.result(handle)


async def starts_a_name_registered_nowhere():
    await cp.sleep(1)
    cp.worker.start("ship_registered_nowhere", 1)


def digest_here(program) -> str:
    vm = cp.VM()
    try:
        vm.run(program())
    except Exception:
        pass
    return vm.journal.digest()


def completes_here(program):
    """The program's result on a VM in this process (it must not fail here)."""
    return cp.VM().run(program())


def locked_worker():
    """A worker function cloudpickle cannot ship: it closes over a lock."""
    lock = threading.Lock()

    def ship_locked(n):
        with lock:
            return n + 1

    return ship_locked


# ---------------------------------------------------------------------------
# A program that starts workers, in fresh processes


@pytest.mark.slow
@pytest.mark.parametrize(
    "program", [starts_workers_by_name, starts_workers_by_function, starts_a_custom_name]
)
def test_a_program_that_registers_workers_has_the_same_digest_in_fresh_processes(program):
    completes_here(program)  # (a run here does not fail)
    assert cp.check_determinism(program, runs=2, processes=True) == digest_here(program)


SCRIPT = """
import counterpoint as cp

OFFSET = 100

@cp.worker.task(name="script_add")
def add(n):
    return n + OFFSET

async def main():
    handles = [cp.worker.start("script_add", n, cost=3 - n) for n in range(3)]
    return [await cp.worker.wait(h) for h in handles], [cp.worker.result(h) for h in handles]
"""


def load_script(tmp_path):
    """``main`` of a script loaded like ``counterpoint run`` loads it (not importable)."""
    path = tmp_path / "program_with_workers.py"
    path.write_text(SCRIPT)
    return path, runpy.run_path(str(path), run_name="__counterpoint__")["main"]


@pytest.mark.slow
def test_a_script_that_registers_workers_has_the_same_digest_in_fresh_processes(tmp_path):
    _, main = load_script(tmp_path)
    assert completes_here(main) == ([1, 1, 1], [100, 101, 102])
    assert cp.check_determinism(main, processes=True) == digest_here(main)


def counterpoint(*arguments: str, hash_seed: int) -> subprocess.CompletedProcess:
    """The ``counterpoint`` command, in a fresh process with hash seed ``hash_seed``."""
    return subprocess.run(
        [sys.executable, "-m", "counterpoint", *arguments],
        env=dict(os.environ, PYTHONHASHSEED=str(hash_seed)),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.slow
def test_run_and_replay_of_a_script_with_workers_agree_across_processes_and_hash_seeds(tmp_path):
    path, main = load_script(tmp_path)
    journal = tmp_path / "run.db"
    ran = counterpoint("run", str(path), "--journal", str(journal), hash_seed=1)
    assert ran.returncode == 0, ran.stderr
    assert cp.Journal.load(journal).digest() == digest_here(main)
    replayed = counterpoint("replay", str(journal), str(path), hash_seed=2)
    assert replayed.returncode == 0, replayed.stderr
    assert "result ([1, 1, 1], [100, 101, 102])" in replayed.stdout


@pytest.fixture(scope="module")
def dask_client():
    """A Dask ``LocalCluster`` with one worker process: a fresh process."""
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(n_workers=1, processes=True, dashboard_address=":0") as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["process", "dask"])
def test_workers_of_a_script_run_in_worker_processes_with_the_inline_digest(
    tmp_path, backend, request
):
    _, main = load_script(tmp_path)
    workers = request.getfixturevalue("dask_client") if backend == "dask" else backend
    with cp.VM(workers=workers) as vm:
        assert vm.run(main()) == ([1, 1, 1], [100, 101, 102])
    assert vm.journal.digest() == digest_here(main)


# ---------------------------------------------------------------------------
# What cannot be shipped


@pytest.mark.slow
def test_an_unshippable_worker_does_not_stop_a_program_that_never_starts_it(monkeypatch):
    monkeypatch.setitem(cp.worker.REGISTRY, "ship_locked", locked_worker())
    program = starts_workers_by_name
    assert cp.check_determinism(program, processes=True) == digest_here(program)


@pytest.mark.slow
def test_starting_a_worker_that_could_not_be_shipped_raises_unknown_worker_task(monkeypatch):
    monkeypatch.setitem(cp.worker.REGISTRY, "ship_locked", locked_worker())
    assert completes_here(starts_an_unshippable_worker) == (1, 6)
    with pytest.raises(cp.UnknownWorkerTask) as caught:
        cp.check_determinism(starts_an_unshippable_worker, processes=True)
    message = str(caught.value)
    assert "'ship_locked'" in message
    assert "could not be shipped" in message
    assert "lock" in message  # cloudpickle's reason
    assert "inside the function" in message  # what to do


@pytest.mark.slow
def test_a_name_registered_nowhere_fails_the_same_way_in_a_fresh_process():
    program = starts_a_name_registered_nowhere
    with pytest.raises(cp.UnknownWorkerTask, match="decorate a plain function"):
        completes_here(program)
    assert cp.check_determinism(program, processes=True) == digest_here(program)


def test_a_program_that_cannot_be_pickled_is_refused_before_any_process_starts():
    lock = threading.Lock()

    async def holds_a_lock():
        with lock:
            await cp.sleep(1)

    with pytest.raises(TypeError, match="lock"):
        cp.check_determinism(holds_a_lock, processes=True)


# ---------------------------------------------------------------------------
# The by-value registration itself


def test_shipping_leaves_a_module_the_user_registered_by_value_registered():
    module = sys.modules[__name__]
    cloudpickle.register_pickle_by_value(module)
    try:
        _shipping.function_bytes(ship_square)
        _shipping.program_bytes(starts_workers_by_name, {})
        assert __name__ in cloudpickle.list_registry_pickle_by_value()
    finally:
        cloudpickle.unregister_pickle_by_value(module)


def test_shipping_leaves_no_module_registered_by_value_behind():
    before = cloudpickle.list_registry_pickle_by_value()
    _shipping.function_bytes(ship_square)
    _shipping.program_bytes(starts_workers_by_name, {})
    assert cloudpickle.list_registry_pickle_by_value() == before


def test_a_user_function_is_shipped_by_value_and_a_library_function_by_reference():
    shipped = cloudpickle.loads(_shipping.function_bytes(ship_square))
    assert shipped is not ship_square and shipped(7) == 49
    assert cloudpickle.loads(_shipping.function_bytes(textwrap.dedent)) is textwrap.dedent


def test_a_program_arrives_with_the_worker_registry_in_name_order():
    data = _shipping.program_bytes(starts_workers_by_name, {"seed": 3})
    program, options, registry, left_behind = cloudpickle.loads(data)
    assert program is not starts_workers_by_name  # a copy, by value
    assert completes_here(program) == completes_here(starts_workers_by_name)
    assert options == {"seed": 3}
    assert list(registry) == sorted(registry)
    assert set(registry) | set(left_behind) == set(cp.worker.REGISTRY)
    assert registry["ship_renamed"](2) == 8 and "ship_renamed" not in left_behind


# ---------------------------------------------------------------------------
# A worker function is shipped with the globals it uses as they are at its start,
# as the inline backend reads them: rebinding one (a notebook cell run again) is seen.

SHIP_OFFSET = 1


@cp.worker.task
def ship_add_offset(n):
    return n + SHIP_OFFSET


def ship_helper(n):
    return n * SHIP_OFFSET


@cp.worker.task
def ship_uses_a_helper(n):
    return ship_helper(n) + 1


@pytest.fixture(scope="module")
def process_pool():
    backend = cp.worker.ProcessBackend(processes=1)
    yield backend
    backend.close()


def run_one(workers, name, payload):
    async def main():
        handle = cp.worker.start(name, payload)
        await cp.worker.wait(handle)
        return cp.worker.result(handle)

    return cp.VM(workers=workers).run(main())


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ship_add_offset", "ship_uses_a_helper"])
def test_the_process_backend_sees_a_global_rebound_after_the_first_start(
    process_pool, monkeypatch, name
):
    assert run_one(process_pool, name, 10) == run_one("inline", name, 10)
    monkeypatch.setattr(sys.modules[__name__], "SHIP_OFFSET", 100)
    assert run_one(process_pool, name, 10) == run_one("inline", name, 10)
    monkeypatch.undo()
    assert run_one(process_pool, name, 10) == run_one("inline", name, 10)


@pytest.mark.slow
def test_the_process_backend_sees_new_defaults_of_a_worker_function(process_pool, monkeypatch):
    def ship_with_default(n, step=1):
        return n + step

    monkeypatch.setitem(cp.worker.REGISTRY, "ship_with_default", None)  # (removed after)
    cp.worker.task(ship_with_default)
    assert run_one(process_pool, "ship_with_default", 1) == 2
    ship_with_default.__defaults__ = (5,)
    assert run_one(process_pool, "ship_with_default", 1) == 6


@pytest.mark.parametrize(
    "folder",
    [site.getusersitepackages(), *site.getsitepackages(), sysconfig.get_paths()["stdlib"]],
)
def test_a_module_installed_in_a_site_packages_folder_goes_by_reference(folder):
    module = types.ModuleType("ship_installed_library")
    module.__file__ = os.path.join(folder, "ship_installed_library", "__init__.py")
    assert not _shipping.is_user_module(module)


def test_a_module_of_the_users_own_goes_by_value(tmp_path):
    module = types.ModuleType("ship_my_module")
    module.__file__ = str(tmp_path / "ship_my_module.py")
    assert _shipping.is_user_module(module)
    assert _shipping.is_user_module(sys.modules[__name__])
