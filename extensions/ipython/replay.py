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

from typing import Any

from counterpoint._errors import NondeterminismError
from counterpoint._journal import CELL, CELL_DONE, Journal
from counterpoint._replay import divergence, first_difference, replaying_vm


def cells_of(journal: Journal) -> list[tuple[int, int, str, Any]]:
    """(index of its ``cell`` record, cell number, source, outcome or None) of each
    journaled cell; a cell's own records follow its ``cell`` record."""
    cells: list[list] = []
    for index, _, _, kind, a, b in journal._iter_raw():
        if kind == CELL:
            cells.append([index, a, b, None])
        elif kind == CELL_DONE and cells and cells[-1][1] == a:
            cells[-1][3] = tuple(b)
    return [tuple(cell) for cell in cells]  # type: ignore[misc]


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

    cells = cells_of(journal)
    if not cells:
        raise ValueError("this journal holds no notebook cells")
    # replay stops before the first interrupted cell, or a last cell still running
    # when the journal was saved (it has no outcome yet)
    stop, why = None, ""
    for i, (_, number, _, outcome) in enumerate(cells):
        if outcome is not None and outcome[0] == "interrupted":
            stop, why = i, f"cell {number} was interrupted, and an interrupt cannot be replayed"
            break
        if outcome is None and i == len(cells) - 1:
            stop, why = i, f"cell {number} was still running when the journal was saved"
    replayed = cells if stop is None else cells[:stop]
    end = len(journal) if stop is None else cells[stop][0]
    expected = journal if stop is None else journal._prefix(end)

    vm, checker = replaying_vm(expected)
    shell = _shell()
    session = Session(shell, vm=vm, **vm_options(expected))
    session.replaying = True
    first = cells[0][1]
    session.cells = first - 1  # a journal saved after `%vm reset` starts at cell 1 anyway
    for _, _, source, _ in replayed:
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
    digest = got.digest()[:16]
    if stop is None:
        return (
            f"replayed {len(replayed)} cells on a fresh VM: the same {len(got)} records, "
            f"digest {digest}"
        )
    return (
        f"replayed {len(replayed)} of {len(cells)} cells on a fresh VM: the same {len(got)} "
        f"records, digest {digest} ({why})"
    )


def vm_options(journal: Journal) -> dict[str, Any]:
    """The options a ``%vm reset`` in the replay keeps (as the original session did)."""
    keys = ("seed", "policy", "max_steps")
    return {key: journal.meta[key] for key in keys if key in journal.meta}


__all__ = ["NondeterminismError", "cells_of", "replay_session"]
