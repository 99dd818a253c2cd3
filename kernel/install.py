"""Installing the kernelspec: ``counterpoint install [--user | --sys-prefix | --prefix P]``."""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

KERNEL_NAME = "counterpoint"
DISPLAY_NAME = "Counterpoint (deterministic VM)"
_SPEC_DIR = Path(__file__).resolve().parent / "kernelspec"


def kernelspec(python: str = "python") -> dict[str, Any]:
    """The kernel.json contents.  ``"python"`` lets Jupyter use its own interpreter
    (as for the copy in the wheel); an installed spec names this one."""
    spec = json.loads((_SPEC_DIR / "kernel.json").read_text())
    spec["argv"][0] = python
    return spec


def install(*, user: bool = False, prefix: str | None = None, sys_prefix: bool = False) -> str:
    """Install the kernelspec (for this Python) and return where it went.

    With no option, into ``sys.prefix`` (this environment); ``user=True`` into the
    user's Jupyter directory; ``prefix`` into ``PREFIX/share/jupyter/kernels``.
    """
    from jupyter_client.kernelspec import KernelSpecManager

    if sum(map(bool, (user, prefix, sys_prefix))) > 1:
        raise ValueError("choose one of user, prefix and sys_prefix")
    if not user and prefix is None:
        prefix = sys.prefix
    with tempfile.TemporaryDirectory() as folder:
        staged = Path(folder) / KERNEL_NAME
        shutil.copytree(_SPEC_DIR, staged)
        (staged / "kernel.json").write_text(json.dumps(kernelspec(sys.executable), indent=2))
        where = KernelSpecManager().install_kernel_spec(
            str(staged), KERNEL_NAME, user=user, prefix=prefix
        )
    install_server_config(user=user, prefix=prefix)
    return where


def install_server_config(*, user: bool = False, prefix: str | None = None) -> Path:
    """Enable the server extension (``counterpoint.kernel.serverext``: kernel websockets
    without Nagle's delay) in ``PREFIX/etc/jupyter`` or the user's Jupyter config."""
    from jupyter_core.paths import jupyter_config_dir

    from .serverext import CONFIG

    base = Path(jupyter_config_dir()) if user else Path(prefix or sys.prefix) / "etc/jupyter"
    path = base / "jupyter_server_config.d" / "counterpoint.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(CONFIG, indent=2) + "\n")
    return path
