"""A stand-in for JupyterLite's Pyodide kernel, run by tests/test_lite.py in a subprocess.

The Pyodide kernel (``pyodide_kernel``) drives IPython its own way: it transforms a cell
first (a newline added at the end), then *awaits* ``shell.run_cell_async`` on the
browser's event loop for a cell with a top-level ``await`` (``shell.run_cell`` for the
others), and names an error ``str(type)`` in ``_showtraceback``.  This does the same on
the host, with ``sys.platform`` left alone and the session told it is in the browser,
and prints what the test checks as JSON (on its last line).  ``host`` as the argument
runs the same cells the way a real kernel does (``shell.run_cell``), to compare.
"""

from __future__ import annotations

import asyncio
import json
import sys

from IPython.core.interactiveshell import InteractiveShell

import counterpoint.ipython.session as session_module


class LiteShell(InteractiveShell):
    """``pyodide_kernel.interpreter.Interpreter``'s error hook."""

    _last_traceback = None

    def _showtraceback(self, etype, evalue, stb):
        self._last_traceback = {"ename": str(etype), "evalue": str(evalue)}


class LiteKernel:
    """``pyodide_kernel.kernel.PyodideKernel.run``, cut down to what reaches the shell."""

    def __init__(self, shell):
        self.interpreter = shell

    async def run(self, code):
        shell = self.interpreter
        shell._last_traceback = None
        lite_cell = code if code.endswith("\n") else code + "\n"
        transformed = shell.transform_cell(lite_cell)
        if shell.should_run_async(
            transformed, transformed_cell=transformed, preprocessing_exc_tuple=None
        ):
            result = await shell.run_cell_async(
                raw_cell=lite_cell,
                transformed_cell=transformed,
                preprocessing_exc_tuple=None,
                store_history=True,
            )
        else:
            result = shell.run_cell(raw_cell=lite_cell, store_history=True)
        return result, shell._last_traceback


CELLS = [
    "await sleep(3)\nnow()",
    "vm.now",
    "async def nap():\n    await sleep(10)\n\nnapper = spawn(nap(), name='napper')\nawait sleep(1)",
    "%tasks",
    "await channel().recv()",
    "await sleep(1)\nnow()",
]


def main(mode: str) -> None:
    session_module.IN_BROWSER = mode == "browser"
    shell = LiteShell.instance()
    shell.kernel = LiteKernel(shell)
    shell.extension_manager.load_extension("counterpoint")
    kernel = shell.kernel  # (in the browser, the session has wrapped its run)

    async def run(code):
        if mode == "browser":
            return await kernel.run(code)
        shell._last_traceback = None
        return shell.run_cell(code, store_history=True), shell._last_traceback

    results, errors = [], []
    for code in CELLS:
        result, error = asyncio.run(run(code))
        results.append(result.result if result.result is None else repr(result.result))
        errors.append(error)
    records = shell.user_ns["vm"].journal.records()
    out = {
        "results": results,
        "errors": errors,
        "sources": [r.data["source"] for r in records if r.kind == "cell"],
        "digest": shell.user_ns["vm"].journal.digest(),
    }
    print("\n" + json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1])
