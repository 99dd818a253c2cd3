"""The Counterpoint session: one VM per IPython shell, and cells that run on it.

``Session(shell)`` makes the VM (``vm`` in the user namespace, with the contract
names preloaded), installs itself as IPython's loop runner so that a cell with a
top-level ``await`` runs as a task on that VM, journals every executed cell (its
source, then its outcome), trims the VM's own frames from tracebacks, and
registers the magics (``%vm``, ``%tasks``, ``%journal``, ``%replay``,
``%%explore``).  The kernel and ``%load_ext counterpoint`` both use it.
"""

from __future__ import annotations

import atexit
import linecache
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import counterpoint as cp
from counterpoint import lowlevel
from counterpoint.lowlevel import CELL, CELL_DONE, is_internal, source_dirs, user_traceback
from counterpoint.lowlevel import session as vm_session

from .cells import run_cell

#: the names a session preloads into the user namespace (besides ``cp`` and ``vm``)
PRELOADED = tuple(cp.__all__)

#: a session VM's default ``max_steps`` per cell: a livelocked cell stops with
#: StepLimitExceeded after ~2 s and some tens of MB of journal, not when the kernel runs out
#: of memory (every step is a journal record).  ``%vm reset --max-steps N|none``.
SESSION_MAX_STEPS = 5_000_000

#: in the browser (JupyterLite's Pyodide kernel), which awaits ``run_cell_async`` itself
IN_BROWSER = sys.platform == "emscripten"


def outcome_of(error: BaseException | None) -> tuple:
    """The value of a ``cell_done`` record: ("ok",), or (outcome, type, message)."""
    if error is None:
        return ("ok",)
    how = "interrupted" if isinstance(error, KeyboardInterrupt) else "error"
    return (how, type(error).__name__, str(error))


_HERE = source_dirs(__file__)


def _not_users(filename: str) -> bool:
    """The VM's files, and this extension's own (the session, the magics)."""
    return is_internal(filename) or os.path.dirname(filename) in _HERE


def trim_vm_frames(error: BaseException | None) -> None:
    """Drop the VM's and the session's own frames from ``error`` and the exceptions
    chained to it (for display: what the user sees is their code)."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        user_traceback(error, _not_users)
        if isinstance(error, BaseExceptionGroup):
            for inner in error.exceptions:
                trim_vm_frames(inner)
        error = error.__cause__ or error.__context__


async def _keep(coro: Any, out: list) -> None:
    """The cell's task: IPython's ``run_cell_async``, its result kept on the side (so
    the journal's ``done`` record holds None, not IPython's ExecutionResult)."""
    out.append(await coro)


class Session:
    """The VM of one IPython shell, and the glue that runs its cells on it."""

    def __init__(
        self,
        shell: Any,
        *,
        seed: int = 0,
        policy: str = "fifo",
        max_steps: int | None = SESSION_MAX_STEPS,
        vm: cp.VM | None = None,
        **options: Any,
    ):
        self.shell = shell
        self.journal_path = options.pop("journal", None)  # this VM's streamed journal
        self.options: dict[str, Any] = {
            "seed": seed,
            "policy": policy,
            "max_steps": max_steps,
            **options,
        }
        self.vm: cp.VM = vm if vm is not None else self._make_vm(self.options, self.journal_path)
        self.cells = 0  # cells journaled on this VM
        self.running_cell: int | None = None  # the number of the journaled cell running
        self.replaying = False  # True while `counterpoint replay` drives the shell
        self._showtraceback = shell.showtraceback
        self._installed = False
        self._in_run_cell = 0  # (nested) shell.run_cell calls under way
        self._typed: str | None = None  # in the browser: the cell as typed (not transformed)
        self._kernel_run: Any = None  # in the browser: the Pyodide kernel's own ``run``
        self.install()

    # -- installing and removing ---------------------------------------------------------

    def install(self) -> None:
        shell = self.shell
        shell.push({"cp": cp, **{name: getattr(cp, name) for name in PRELOADED}})
        shell.push({"vm": self.vm})
        vm_session.vm = self.vm
        shell.loop_runner = self.run_cell_coroutine
        shell.autoawait = True
        self._run_cell = shell.run_cell
        shell.run_cell = self._run_journaled_cell
        if IN_BROWSER:
            self._run_cell_async = shell.run_cell_async
            shell.run_cell_async = self._run_cell_async_in_browser
            self._lite_showtraceback = shell._showtraceback
            shell._showtraceback = self._show_traceback_in_browser
            kernel = getattr(shell, "kernel", None)
            if kernel is not None and hasattr(kernel, "run"):
                self._kernel_run = kernel.run
                kernel.run = self._kernel_run_in_browser
        shell.showtraceback = self._show_user_traceback
        from .magics import CounterpointMagics

        shell.register_magics(CounterpointMagics(shell, session=self))
        atexit.register(self.close)  # a streamed journal file is completed at exit
        self._showwarning = warnings.showwarning
        warnings.showwarning = self._show_warning
        self._unname = lowlevel.add_source_namer(self._cell_name)  # TaskInfo.where
        self._installed = True

    def _cell_name(self, filename: str) -> str | None:
        """How ``TaskInfo.where`` names a cell's code: ``Cell In[5]`` (as tracebacks)."""
        label = self.shell.compile.format_code_name(filename)
        return None if label is None else f"{label[0]} {label[1]}"

    def uninstall(self) -> None:
        """Undo :meth:`install` (``%unload_ext counterpoint``); the VM is closed."""
        if not self._installed:
            return
        shell = self.shell
        if shell.run_cell == self._run_journaled_cell:
            if self._run_cell == type(shell).run_cell.__get__(shell):
                del shell.run_cell  # the class's method again
            else:
                shell.run_cell = self._run_cell  # someone else's wrapper
        if IN_BROWSER and shell.run_cell_async == self._run_cell_async_in_browser:
            shell.run_cell_async = self._run_cell_async
            shell._showtraceback = self._lite_showtraceback
            if self._kernel_run is not None:
                shell.kernel.run = self._kernel_run
        shell.showtraceback = self._showtraceback
        shell.loop_runner = "asyncio"
        if vm_session.vm is self.vm:
            vm_session.vm = None
        atexit.unregister(self.close)
        if warnings.showwarning == self._show_warning:
            warnings.showwarning = self._showwarning
        self._unname()
        self.close()
        self._installed = False

    def close(self) -> None:
        """Close the session VM (its workers; a streamed journal file is completed)."""
        self.vm.close()

    # -- the VM ---------------------------------------------------------------------------

    @staticmethod
    def _make_vm(options: dict[str, Any], journal: Any) -> cp.VM:
        if journal is None:
            return cp.VM(**options)
        return cp.VM(**options, journal=Path(journal).expanduser())

    def reset(self, **options: Any) -> cp.VM:
        """A fresh VM (with ``options`` changed), bound to ``vm``; the old one is closed
        (which completes its journal file, if it streamed to one).  ``journal=PATH``
        streams the new VM's journal; it is not kept for later resets."""
        journal = options.pop("journal", None)
        merged = {**self.options, **options}
        fresh = self._make_vm(merged, journal)  # (raises on bad options, keeping the old VM)
        self.vm.close()
        self.journal_path = journal
        self.options = merged
        self.vm = fresh
        self.cells = 0
        self.shell.push({"vm": fresh})
        vm_session.vm = fresh
        return fresh

    def swap_vm(self, vm: cp.VM, journal_path: Any, options: dict[str, Any]) -> tuple:
        """Bind ``vm`` (made elsewhere: ``%recover``), made with ``options``, to the
        session; the old one is not closed.  Returns the arguments that swap back."""
        previous = (self.vm, self.journal_path, self.options)
        self.vm, self.journal_path, self.options = vm, journal_path, options
        self.shell.push({"vm": vm})
        vm_session.vm = vm
        return previous

    def run_cell_coroutine(self, coro: Any) -> Any:
        """IPython's loop runner: run a cell (``run_cell_async``) as a task on the VM."""
        result: list = []
        number = self.running_cell
        name = f"cell {number}" if number is not None else "silent cell"
        run = run_cell(self.vm, _keep(coro, result), name)
        problem = run.problem
        if problem is not None and problem.__traceback__ is None:
            # delivered, but the cell's code never reached a checkpoint to raise it
            raise problem
        return result[0]

    # -- journaling cells -------------------------------------------------------------------

    def _run_journaled_cell(self, raw_cell: str, *args: Any, **kwargs: Any) -> Any:
        """``shell.run_cell``, with the cell journaled: a ``cell`` record (its source)
        before anything the cell does, a ``cell_done`` record (its outcome) after.
        Silent executions (a front end's own requests) are not journaled."""
        self._in_run_cell += 1
        try:
            return self._journaled(raw_cell, *args, **kwargs)
        finally:
            self._in_run_cell -= 1

    def _journaled(self, raw_cell: str, *args: Any, **kwargs: Any) -> Any:
        silent = kwargs.get("silent", args[1] if len(args) > 1 else False)
        run = self._run_cell
        if silent:
            return run(raw_cell, *args, **kwargs)
        vm = self.vm
        self.cells += 1
        number = self.cells
        typed, self._typed = self._typed, None
        lowlevel.mark(vm, CELL, number, raw_cell if typed is None else typed)
        self.running_cell = number
        try:
            result = run(raw_cell, *args, **kwargs)
        finally:
            self.running_cell = None
        if self.vm is vm:  # (not after a `%vm reset` in this very cell)
            outcome = outcome_of(result.error_before_exec or result.error_in_exec)
            lowlevel.mark(vm, CELL_DONE, number, outcome)
        return result

    async def _run_cell_async_in_browser(
        self,
        raw_cell: str,
        store_history: bool = False,
        silent: bool = False,
        shell_futures: bool = True,
        **kwargs: Any,
    ) -> Any:
        """``shell.run_cell_async`` in JupyterLite.  Its Pyodide kernel awaits this
        itself, on the browser's event loop, where a real kernel calls ``run_cell``:
        that would bypass the session's loop runner (``await`` would not reach the VM)
        and the journal.  So the cell goes through ``shell.run_cell``, as on a real
        kernel; IPython's own ``run_cell`` then calls this again for the coroutine it
        hands to the loop runner, and that call is passed through."""
        if self._in_run_cell:
            return await self._run_cell_async(
                raw_cell, store_history, silent, shell_futures, **kwargs
            )
        cell_id = kwargs.get("cell_id")
        return self.shell.run_cell(
            raw_cell,
            store_history=store_history,
            silent=silent,
            shell_futures=shell_futures,
            cell_id=cell_id,
        )

    async def _kernel_run_in_browser(self, code: str) -> Any:
        """The Pyodide kernel's ``run``: it transforms a cell before IPython does (a
        newline added at the end, ``%pip`` made ``piplite``), so the source to journal,
        the one a real kernel would journal, is noted here."""
        self._typed = code
        try:
            return await self._kernel_run(code)
        finally:
            self._typed = None

    def _show_traceback_in_browser(self, kind: Any, error: Any, lines: Any) -> Any:
        """The Pyodide kernel names an error ``str(kind)`` ("<class 'counterpoint.Deadlock'>");
        a real kernel, and so the stored notebooks, name it ``kind.__name__``."""
        shown = self._lite_showtraceback(kind, error, lines)
        last = getattr(self.shell, "_last_traceback", None)
        if isinstance(last, dict) and isinstance(kind, type):
            last["ename"] = kind.__name__
        return shown

    # -- warnings -----------------------------------------------------------------------------

    def _show_warning(self, message, category, filename, lineno, file=None, line=None):
        """A warning at a cell's line (``UnobservedTaskFailure``, the browser's note on
        workers, the user's own) reads "Cell In[5], line 2" (as tracebacks do), not the
        cell's temporary file name, which changes from run to run, so notebooks that
        show one still compare equal under nbval."""
        label = self.shell.compile.format_code_name(filename)
        if label is None:
            return self._showwarning(message, category, filename, lineno, file, line)
        source = line if line is not None else linecache.getline(filename, lineno)
        text = f"{category.__name__}: {message}\n  {label[0]} {label[1]}, line {lineno}"
        text += f": {source.strip()}\n" if source.strip() else "\n"
        (file or sys.stderr).write(text)
        return None

    # -- tracebacks ---------------------------------------------------------------------------

    def _show_user_traceback(self, exc_tuple: Any = None, *args: Any, **kwargs: Any) -> Any:
        try:
            kind, error, _ = self.shell._get_exc_info(exc_tuple)
        except ValueError:  # no exception to show: IPython says so itself
            return self._showtraceback(exc_tuple, *args, **kwargs)
        trim_vm_frames(error)
        return self._showtraceback((kind, error, error.__traceback__), *args, **kwargs)
