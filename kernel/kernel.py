"""The Counterpoint kernel: IPython's kernel, with its cells on one session VM."""

from __future__ import annotations

from typing import Any

from ipykernel.ipkernel import IPythonKernel

import counterpoint as cp
from counterpoint.ipython import load


class CounterpointKernel(IPythonKernel):
    """An ipykernel ``IPythonKernel`` (completion, inspection, history, comms and
    widgets as usual) whose session VM is ``vm``: a cell with a top-level ``await``
    runs as a task on it, and the VM persists from cell to cell."""

    implementation = "counterpoint"
    implementation_version = cp.__version__

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.session_vm = load(self.shell)

    @property
    def banner(self) -> str:  # type: ignore[override]
        return (
            super().banner
            + f"\nCounterpoint {cp.__version__}: cells with `await` run on the session VM "
            "`vm` (deterministic; see %vm, %tasks, %journal, %replay, %%explore)\n"
        )
