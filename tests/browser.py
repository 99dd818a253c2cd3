"""A real JupyterLab in a real browser, for the tests that look at what a learner sees.

Fixtures (import them under their ``*_fixture`` names; pytest knows them as ``lab``,
``chromium`` and ``page``; ``lab`` needs ``lab_server`` imported too):

* ``lab``: ``jupyter lab`` from the test's own environment on 127.0.0.1 and a
  free port, no token, no password, its root a temporary folder, its settings and
  workspaces in temporary folders too (the user's are never read or written); the app is
  exposed as ``window.jupyterapp`` so that tests run JupyterLab's own commands.  One
  server per session (``lab_server``); the kernels a test started are shut down after
  it.  At the end the server is shut down, and whatever is left of it is killed.
* ``chromium`` (per module): Debian's ``chromium`` (``shutil.which``) driven by Playwright,
  headless.  Playwright's own browser download is never used.
* ``page``: a fresh page (1280 x 900) in it.

Without Playwright or Chromium the tests that use them are skipped, saying why -- unless
``COUNTERPOINT_REQUIRE_BROWSER=1`` (CI sets it when it has installed Chromium), in which
case they fail.  Screenshots go to ``tests/artifacts/`` (not in git).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
KERNEL = "counterpoint"  # kernel/kernelspec/kernel.json, installed as "counterpoint"
VIEWPORT = {"width": 1280, "height": 900}


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed (pip install playwright; no browser download needed)"
    if CHROMIUM is None:
        return "no Chromium on PATH (Debian: apt-get install chromium; .ci/run does it)"
    return None


def need_browser() -> None:
    """Skip the calling test when there is no browser -- fail if CI requires one."""
    reason = browser_missing()
    if reason is None:
        return
    if os.environ.get("COUNTERPOINT_REQUIRE_BROWSER") == "1":
        pytest.fail(f"COUNTERPOINT_REQUIRE_BROWSER=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (Linux /proc), and theirs."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found + [grandchild for child in found for grandchild in _children(child)]


def _kill(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


# The news and update checks go to the internet; the settings turn them off.
_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}


class Lab:
    """A running ``jupyter lab``: its URL, its root folder, and what tests do with it."""

    def __init__(self, folder: Path) -> None:
        self.root = folder / "root"
        self.root.mkdir()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = folder / "lab.log"
        settings = folder / "settings"
        for name, values in _SETTINGS.items():
            (settings / name).parent.mkdir(parents=True, exist_ok=True)
            (settings / name).write_text(json.dumps(values))
        env = dict(
            os.environ,
            JUPYTER_CONFIG_DIR=str(folder / "config"),
            JUPYTER_RUNTIME_DIR=str(folder / "runtime"),
            JUPYTERLAB_SETTINGS_DIR=str(settings),
            JUPYTERLAB_WORKSPACES_DIR=str(folder / "workspaces"),
        )
        command = [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            "--ServerApp.token=",
            "--ServerApp.password=",
            "--ServerApp.disable_check_xsrf=True",
            f"--ServerApp.root_dir={self.root}",
            "--LabApp.expose_app_in_browser=True",
            "--LabApp.news_url=",
        ]
        if os.geteuid() == 0:
            command.append("--allow-root")
        with self.log.open("wb") as output:
            self.process = subprocess.Popen(
                command, cwd=self.root, env=env, stdout=output, stderr=subprocess.STDOUT
            )

    def wait_until_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError("jupyter lab exited:\n" + self.log.read_text())
            try:
                with urllib.request.urlopen(self.url + "/api/status", timeout=5) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("jupyter lab did not answer:\n" + self.log.read_text())
            time.sleep(0.25)

    def stop(self) -> None:
        """Shut the server down with its kernels; kill whatever is left."""
        left = _children(self.process.pid)  # the kernels (they run in sessions of their own)
        if self.process.poll() is None:
            try:
                request = urllib.request.Request(self.url + "/api/shutdown", method="POST")
                urllib.request.urlopen(request, timeout=10).close()
                self.process.wait(timeout=20)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()
        _kill(left)

    def api(self, method: str, path: str) -> Any:
        request = urllib.request.Request(self.url + path, method=method)
        with urllib.request.urlopen(request, timeout=30) as answer:
            body = answer.read()
        return json.loads(body) if body else None

    def shutdown_kernels(self) -> None:
        for session in self.api("GET", "/api/sessions"):
            self.api("DELETE", f"/api/sessions/{session['id']}")
        for kernel in self.api("GET", "/api/kernels"):
            self.api("DELETE", f"/api/kernels/{kernel['id']}")

    # -- notebooks ---------------------------------------------------------------------

    def write_notebook(self, name: str, cells: list[str]) -> Path:
        """``name.ipynb`` in the lab's root: one code cell per source, Counterpoint kernel."""
        path = self.root / f"{name}.ipynb"
        path.write_text(json.dumps(notebook(cells)), encoding="utf-8")
        return path

    def open(self, page: Any, name: str, timeout: float = 60) -> None:
        """Open ``name.ipynb`` in ``page`` and wait until its kernel is ready."""
        page.goto(f"{self.url}/lab/tree/{name}.ipynb")
        page.wait_for_function(
            """(name) => {
                const app = window.jupyterapp;
                const panel = app && app.shell.currentWidget;
                return panel && panel.context && panel.context.path === name + '.ipynb'
                    && panel.sessionContext.session && panel.sessionContext.session.kernel
                    && panel.sessionContext.session.kernel.connectionStatus === 'connected'
                    && panel.sessionContext.session.kernel.status === 'idle';
            }""",
            arg=name,
            timeout=timeout * 1000,
        )

    def run_all(self, page: Any, timeout: float = 120) -> None:
        """Run every cell (JupyterLab's "Run All Cells") and wait until each has run and
        the kernel is idle; a cell that fails fails the test with its error."""
        page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
        state = page.wait_for_function(
            """() => {
                const panel = window.jupyterapp.shell.currentWidget;
                const cells = panel.content.widgets.filter((c) => c.model.type === 'code');
                for (const cell of cells) {
                    for (const output of cell.model.outputs.toJSON()) {
                        if (output.output_type === 'error') {
                            return {error: output.ename + ': ' + output.evalue + '\\n'
                                + (output.traceback || []).join('\\n')};
                        }
                    }
                }
                const kernel = panel.sessionContext.session.kernel;
                if (cells.every((c) => c.model.executionCount) && kernel.status === 'idle') {
                    return {done: cells.length};
                }
                return false;
            }""",
            timeout=timeout * 1000,
        ).json_value()
        assert "error" not in state, "a cell failed:\n" + state["error"]

    def run_notebook(self, page: Any, name: str, cells: list[str]) -> None:
        """Write ``name.ipynb`` (one code cell per source), open it and run all its cells."""
        self.write_notebook(name, cells)
        self.open(page, name)
        self.run_all(page)

    def execute(self, page: Any, index: int, timeout: float = 120) -> None:
        """Run the code cell ``index`` (0-based among all cells) and wait until it is done."""
        page.evaluate(
            """async (index) => {
                const panel = window.jupyterapp.shell.currentWidget;
                panel.content.activeCellIndex = index;
                panel.content.deselectAll();
                await window.jupyterapp.commands.execute('notebook:run-cell');
            }""",
            index,
        )
        page.wait_for_function(
            """(index) => {
                const panel = window.jupyterapp.shell.currentWidget;
                const cell = panel.content.widgets[index];
                return cell.model.executionCount && !cell.node.querySelector(
                    '.jp-InputArea-prompt').textContent.includes('*')
                    && panel.sessionContext.session.kernel.status === 'idle';
            }""",
            arg=index,
            timeout=timeout * 1000,
        )


def notebook(cells: list[str]) -> dict:
    """An nbformat 4 notebook of code cells, for the Counterpoint kernel."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    nb.metadata["kernelspec"] = {
        "name": KERNEL,
        "display_name": "Counterpoint (deterministic VM)",
        "language": "python",
    }
    nbformat.validate(nb)
    return nb


def screenshot(page: Any, name: str, **options: Any) -> Path:
    """Save ``tests/artifacts/NAME.png`` (full page unless told otherwise)."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), **({"full_page": True} | options))
    return path


@pytest.fixture(scope="session")
def lab_server() -> Iterator[Lab]:
    need_browser()
    with tempfile.TemporaryDirectory(prefix="counterpoint-lab-") as folder:
        lab = Lab(Path(folder))
        try:
            lab.wait_until_ready()
            yield lab
        finally:
            lab.stop()


@pytest.fixture(name="lab")
def lab_fixture(lab_server: Lab) -> Iterator[Lab]:
    """The session's JupyterLab; the kernels a test started are shut down after it."""
    yield lab_server
    lab_server.shutdown_kernels()


@pytest.fixture(scope="module", name="chromium")
def chromium_fixture() -> Iterator[Any]:
    need_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        browser = driver.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(name="page")
def page_fixture(chromium: Any) -> Iterator[Any]:
    context = chromium.new_context(viewport=VIEWPORT)
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()
