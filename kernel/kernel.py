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

    def do_history(self, hist_access_type: str, output: bool, raw: bool, session: int = 0, **kw):
        """IPython's history, with the current session's entries numbered as the
        session is (IPython numbers them 0 when read from memory, so a ``range``
        request for the session a ``tail`` reply named came back under another)."""
        reply = super().do_history(hist_access_type, output, raw, session=session, **kw)
        current = self.shell.history_manager.session_number
        reply["history"] = [
            (current if entry[0] == 0 else entry[0], *entry[1:]) for entry in reply["history"]
        ]
        return reply

    @property
    def banner(self) -> str:  # type: ignore[override]
        return (
            super().banner
            + f"\nCounterpoint {cp.__version__}: cells with `await` run on the session VM "
            "`vm` (deterministic; see %vm, %tasks, %journal, %replay, %%explore)\n"
        )
