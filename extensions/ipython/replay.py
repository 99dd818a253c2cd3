"""Replaying a notebook session stand-alone (``counterpoint replay FILE``, ``%replay``).

A session journal holds every executed cell: a ``cell`` record with its source
before the cell's own records, and a ``cell_done`` record with its outcome after
them.  Replay runs the same sources, in the same order, in a fresh headless
IPython shell whose session VM is made like the original (seed, policy, workers'
outcomes and host events from the journal), comparing the new journal with the
old one as it goes: the first difference is a ``cp.NondeterminismError`` naming
the event, the task and the step.

An interrupted cell cannot be replayed (where Ctrl-C landed is not in the
journal), so replay stops before the first interrupted cell and checks the
records up to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from counterpoint import Journal, NondeterminismError, lowlevel
from counterpoint.lowlevel import CELL, CELL_DONE, divergence, first_difference, replaying_vm


def cells_of(journal: Journal, stop: int | None = None) -> list[tuple[int, int, str, Any]]:
    """(index of its ``cell`` record, cell number, source, outcome or None) of each
    cell journaled before record ``stop``; a cell's own records follow its ``cell``
    record."""
    stop = len(journal) if stop is None else stop
    markers = sorted(lowlevel.find(journal, CELL) + lowlevel.find(journal, CELL_DONE))
    cells: list[list] = []
    for index in markers:
        if index >= stop:
            break
        record = next(lowlevel.raw_records(journal, index, index + 1))
        if record.kind == CELL:
            cells.append([index, record.a, record.value, None])
        elif cells and cells[-1][1] == record.a:
            cells[-1][3] = tuple(record.value)
    return [tuple(cell) for cell in cells]  # type: ignore[misc]


@dataclass(frozen=True)
class Plan:
    """What a replay of a session journal covers."""

    cells: list[tuple[int, int, str, Any]]  # every journaled cell (see cells_of)
    replayed: int  # the first `replayed` cells are re-run...
    end: int  # ...and checked against the journal's first `end` records
    why: str  # why the cells after them are not replayed ("" if none are left out)

    def report(self, records: int, digest: str) -> str:
        """The one-line result of a replay that matched."""
        if not self.why:
            return (
                f"replayed {self.replayed} cells on a fresh VM: the same {records} records, "
                f"digest {digest}"
            )
        return (
            f"replayed {self.replayed} of {len(self.cells)} cells on a fresh VM: the same "
            f"{records} records, digest {digest} ({self.why})"
        )


def plan(journal: Journal, stop: int | None = None) -> Plan:
    """What replaying the journal's records before ``stop`` covers (no cells: an empty
    plan).  Replay stops before the first interrupted cell (where the interrupt landed
    is not in the journal), or a last cell still running when the journal was saved."""
    cells = cells_of(journal, stop)
    for i, (start, number, _, outcome) in enumerate(cells):
        if outcome is not None and outcome[0] == "interrupted":
            why = f"cell {number} was interrupted, and an interrupt cannot be replayed"
            return Plan(cells, i, start, why)
        if outcome is None and i == len(cells) - 1:
            why = f"cell {number} was still running when the journal was saved"
            return Plan(cells, i, start, why)
    return Plan(cells, len(cells), len(journal) if stop is None else stop, "")


def _shell() -> Any:
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    if InteractiveShell.initialized():
        raise RuntimeError("a session replay needs a process of its own (no IPython shell yet)")
    config = Config()
    config.HistoryManager.enabled = False
    config.InteractiveShell.colors = "nocolor"
    return InteractiveShell.instance(config=config)


def replay_session(journal: Journal) -> str:
    """Replay a session journal here (a process without an IPython shell); return a
    one-line report, or raise ``NondeterminismError`` at the first difference."""
    from IPython.utils.capture import capture_output

    from .session import Session

    covered = plan(journal)
    if not covered.cells:
        raise ValueError("this journal holds no notebook cells")
    expected = journal if covered.end == len(journal) else lowlevel.prefix(journal, covered.end)
    vm, checker = replaying_vm(expected)
    shell = _shell()
    session = Session(shell, vm=vm, **vm_options(expected))
    session.replaying = True
    session.cells = covered.cells[0][1] - 1  # (a journal saved after `%vm reset` starts at 1)
    for _, _, source, _ in covered.cells[: covered.replayed]:
        with capture_output():
            shell.run_cell(source, store_history=False)
        if checker.error is not None:
            raise checker.error
        checker()
    got = session.vm.journal
    index = first_difference(expected, got)
    if index is not None:
        how = "the replay ended early" if index >= len(got) else "the replay diverged"
        raise divergence(expected, got, index, how)
    session.uninstall()
    return covered.report(len(got), got.digest())


def vm_options(journal: Journal) -> dict[str, Any]:
    """The options a ``%vm reset`` in the replay keeps (as the original session did)."""
    keys = ("seed", "policy", "max_steps")
    return {key: journal.meta[key] for key in keys if key in journal.meta}


__all__ = ["NondeterminismError", "Plan", "cells_of", "plan", "replay_session"]
