"""The Jupyter side of the ``counterpoint`` command: ``install``, ``lab``, ``nbrun``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .install import KERNEL_NAME, install


def install_command(*, user: bool = False, prefix: str | None = None) -> int:
    where = install(user=user, prefix=prefix)
    print(f"installed the {KERNEL_NAME!r} kernelspec in {where}")
    return 0


def ensure_kernelspec() -> str:
    """The kernelspec's directory, installed into this environment if Jupyter cannot
    find one (an editable install does not carry the wheel's data files)."""
    from jupyter_client.kernelspec import KernelSpecManager

    found = KernelSpecManager().find_kernel_specs().get(KERNEL_NAME)
    if found is not None:
        return found
    where = install()
    print(f"installed the {KERNEL_NAME!r} kernelspec in {where}")
    return where


def lab(directory: Path | None, *, no_browser: bool = False, port: int | None = None) -> int:
    """Open JupyterLab on ``directory`` (default ``./notebooks`` if there is one)."""
    try:
        import jupyterlab  # noqa: F401
    except ImportError:
        print(
            "counterpoint lab: JupyterLab is not installed here; "
            "install it with `pip install 'counterpoint[lab]'` (or `pip install jupyterlab`)",
            file=sys.stderr,
        )
        return 2
    if directory is None:
        directory = Path("notebooks") if Path("notebooks").is_dir() else Path(".")
    if not directory.is_dir():
        print(f"counterpoint lab: no such directory: {directory}", file=sys.stderr)
        return 2
    ensure_kernelspec()
    command = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={directory.resolve()}"]
    if no_browser:
        command.append("--no-browser")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # in a container, as root: Jupyter insists on it
    if port is not None:
        command.append(f"--port={port}")
    print("starting JupyterLab:", " ".join(command[2:]), flush=True)
    try:
        return subprocess.call(command)
    except KeyboardInterrupt:  # Ctrl-C stops the server, as with `jupyter lab`
        return 0


def nbrun(
    notebook: Path, *, output: Path | None = None, timeout: int = 600, kernel: str | None = None
) -> int:
    """Execute ``notebook`` headless with its kernel (``counterpoint`` by default) and
    write it back with the outputs.  Exit status 1 if a cell raised."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    if not notebook.is_file():
        print(f"counterpoint nbrun: no such notebook: {notebook}", file=sys.stderr)
        return 2
    ensure_kernelspec()
    nb = nbformat.read(notebook, as_version=4)
    name = kernel or nb.metadata.get("kernelspec", {}).get("name") or KERNEL_NAME
    for cell in nb.cells:  # no wall-clock timings: the same notebook, byte for byte
        cell.metadata.pop("execution", None)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name=name,
        record_timing=False,
        # no widget state in the file: it holds random model ids (a diff on every run),
        # and an HTML export would draw widgets from it (with JavaScript fetched from a
        # CDN) instead of the static pictures every widget's output carries
        store_widget_state=False,
        resources={"metadata": {"path": str(notebook.resolve().parent)}},
    )
    status = 0
    try:
        client.execute()
    except CellExecutionError as error:
        print(f"counterpoint nbrun: a cell failed:\n{error}", file=sys.stderr)
        status = 1
    target = output or notebook
    nbformat.write(nb, target)
    cells = sum(1 for cell in nb.cells if cell.cell_type == "code")
    print(f"executed {cells} code cells of {notebook} with kernel {name!r}; wrote {target}")
    return status
