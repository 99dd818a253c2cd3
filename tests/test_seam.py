"""The seam (``counterpoint.lowlevel``): tools use it and the public API only, and a
record kind is declared in one place."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import counterpoint as cp
from counterpoint import lowlevel

ROOT = Path(__file__).resolve().parent.parent


def private_imports(folder: Path) -> list[str]:
    found = []
    for path in sorted(folder.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                parts = name.split(".")
                if parts[0] == "counterpoint" and any(p.startswith("_") for p in parts[1:]):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} {name}")
    return found


@pytest.mark.parametrize("folder", ["extensions", "kernel"])
def test_the_kernel_and_the_extension_import_no_private_counterpoint_module(folder):
    assert private_imports(ROOT / folder) == []


def test_every_kind_is_declared_once_with_all_it_needs():
    codes = [kind.code for kind in lowlevel.KINDS.values()]
    assert len(codes) == len(set(codes))
    for code, kind in lowlevel.KINDS.items():
        assert code == kind.code and kind.name == lowlevel.KIND_NAMES[code]
        assert callable(kind.decode) and callable(kind.pack)
        assert kind.value or kind.check is None  # (only value slots are checked)
    assert {"suspend", "resume"} <= set(lowlevel.KIND_CODES)


def test_each_kind_round_trips_through_its_declaration():
    """pack(decode(x)) == x for every record of a program that writes every kind."""
    from test_journal_robustness import run_rich

    journal = run_rich().journal
    for record in lowlevel.raw_records(journal):
        kind = lowlevel.KINDS[record.kind]
        data = kind.decode(record.a, record.value, record.tick)
        public = lowlevel.KIND_CODES[kind.name]  # (block_send/recv are spelled block)
        packed, value = cp_pack(public, record.task, data)
        assert packed == lowlevel.row(record.kind, record.task, record.a)
        assert value == record.value or list(value or ()) == list(record.value or ())
        assert kind.name == journal[record.index].kind


def cp_pack(kind: int, task: int, data: dict):
    from counterpoint._kinds import pack  # (what a file loader calls)

    return pack(kind, task, data)


def test_host_markers_are_checked_and_only_markers_may_be_marked():
    vm = cp.VM()
    lowlevel.mark(vm, lowlevel.CELL, 1, "x = 1")
    lowlevel.mark(vm, lowlevel.CELL_DONE, 1, ("ok",))
    assert [r.kind for r in vm.journal] == ["cell", "cell_done"]
    with pytest.raises(ValueError, match="host markers"):
        lowlevel.mark(vm, lowlevel.SEND, 1, 42)
    with pytest.raises(ValueError):
        lowlevel.mark(vm, lowlevel.CELL, 2, 42)  # a cell's source is a str
    assert len(vm.journal) == 2


def test_a_marker_cannot_be_written_while_the_vm_runs():
    vm = cp.VM()

    async def main():
        lowlevel.mark(vm, lowlevel.CELL, 1, "inside")

    with pytest.raises(cp.VMBusyError):
        vm.run(main())


def test_a_live_wait_as_data_is_the_wait_state_at_reads_from_the_journal():
    async def main():
        jobs = cp.channel(name="jobs")
        lock = cp.Lock(name="fork 1")
        cp.spawn(jobs.recv(), name="reader")

        async def holder():
            async with lock:
                await cp.sleep(5)

        cp.spawn(holder(), name="holder")
        cp.spawn(lock.acquire(), name="waiter")
        await cp.sleep(1)

    vm = cp.VM()
    root = vm.spawn(main())
    for task in (1, 3, 4, 2):  # main spawns; the holder takes the lock; the others wait
        vm.step(task=task)
    view = vm.journal.state_at(len(vm.journal))
    for task in list(vm._live.values()):
        assert lowlevel.wait_of(task) == view.waits.get(task.id), task.name
    assert lowlevel.wait_of(vm._live[2]).name == "jobs"
    waiting = lowlevel.wait_of(vm._live[4])
    assert (waiting.op, waiting.name, waiting.holder_name) == ("acquire", "fork 1", "holder")
    assert lowlevel.wait_of(root).op == "sleep"
    vm._dispose()


def test_a_vm_keeps_under_30_attributes_so_cpython_specializes_its_attribute_loads():
    """Past 29 attributes, CPython 3.11 stops specializing ``self.x`` on a VM: a 30th
    made every VM 4-8% slower on spawn_join and timers (docs/design.md)."""
    vm = cp.VM(journal=False)
    assert len(vars(vm)) <= 29, sorted(vars(vm))
    vm.run(busy_and_suspend())
    assert len(vars(vm)) <= 29, sorted(vars(vm))


async def busy_and_suspend():
    async def child():
        await cp.checkpoint()

    task = cp.spawn(child())
    task.suspend()
    await cp.checkpoint()
    task.resume()
    await task
