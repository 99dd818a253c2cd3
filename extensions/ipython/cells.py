"""A notebook cell's task on the session VM: a root that is never abandoned.

IPython runs a cell with a top-level ``await`` through the session's loop runner,
which hands IPython's ``run_cell_async`` coroutine to :func:`run_cell`: a root task
on the VM that ``counterpoint.lowlevel.run_root`` never abandons.  A deadlock, a step
limit or an interrupt is raised inside the cell, at its ``await``, the other tasks
the cell started are cancelled (journaled "the cell deadlocked" ...), and the VM is
consistent for the next cell.
"""

from __future__ import annotations

from typing import Any

from counterpoint import lowlevel

CELL_HINT = (
    "If the cell really needs more steps, raise the limit with `%vm reset --max-steps N` "
    "(or `none`)."
)
CELL_WORDS = lowlevel.Words(
    label="the cell", role="the notebook cell", what="a notebook cell", hint=CELL_HINT
)


def run_cell(vm: Any, coro: Any, name: str) -> lowlevel.RootRun:
    """Run ``coro`` (a cell's ``run_cell_async``) as the root task ``name``."""
    return lowlevel.run_root(vm, coro, name, CELL_WORDS)
