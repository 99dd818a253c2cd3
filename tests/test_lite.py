"""The course with no install: ``counterpoint lite build`` makes a static JupyterLite site
from the package registries, and every course notebook runs in it, in Chromium, on the
Pyodide kernel, with the outputs stored in the notebook (the ones nbval checks on the
real kernel), while the browser can reach nothing but the site (docs/jupyterlite.md).
"""

from __future__ import annotations

import configparser
import functools
import hashlib
import http.server
import json
import re
import subprocess
import sys
import threading
import zipfile
from pathlib import Path
from typing import Any

import pytest
from scheduler_programs import lost_update  # (two tasks, one counter, an update lost)

import counterpoint as cp
from counterpoint import lite
from tests.browser import ARTIFACTS, CHROMIUM, need_browser
from tests.lite_kernel_program import CELLS

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
COURSE = sorted((ROOT / "notebooks").glob("*.ipynb"))
#: Chromium resolves no name but the site's address: nothing can be fetched from outside
OFFLINE_ARGS = [
    "--no-sandbox",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
    "--disable-background-networking",
    "--disable-component-update",
]


# -- the site -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def site(tmp_path_factory: Any) -> dict:
    cache = tmp_path_factory.mktemp("lite-cache")
    output = tmp_path_factory.mktemp("lite") / "site"
    return lite.build(output, cache=cache, log=lambda *args, **kwargs: None)


def test_the_site_carries_pyodide_and_a_lock_file_whose_every_wheel_is_in_it(site):
    root = Path(site["output"])
    pyodide = root / "static" / "pyodide"
    lock = json.loads((pyodide / "pyodide-lock.json").read_text())
    assert lock["info"]["python"] == site["python"]
    assert {"counterpoint", "ipython", "micropip", "anywidget", "pyodide-kernel"} <= set(
        lock["packages"]
    )
    for name, entry in lock["packages"].items():
        wheel = pyodide / entry["file_name"]  # (a bare file name: no CDN, no other host)
        assert wheel.is_file(), name
        assert hashlib.sha256(wheel.read_bytes()).hexdigest() == entry["sha256"], name
        assert set(entry["depends"]) <= set(lock["packages"]), name
    # Counterpoint's kernel-only dependencies stay out of the browser
    assert "jupyter-client" not in lock["packages"] and "nbclient" not in lock["packages"]


def test_the_site_preloads_counterpoint_and_never_falls_back_to_pypi(site):
    config = json.loads((Path(site["output"]) / "jupyter-lite.json").read_text())
    kernel = config["jupyter-config-data"]["litePluginSettings"][
        "@jupyterlite/pyodide-kernel-extension:kernel"
    ]
    assert kernel["pyodideUrl"] == "./static/pyodide/pyodide.mjs"
    assert kernel["disablePyPIFallback"] is True
    assert {"counterpoint", "counterpoint-jupyterlite"} <= set(
        kernel["loadPyodideOptions"]["packages"]
    )


def test_the_course_is_in_the_site_on_the_pyodide_kernel(site):
    files = Path(site["output"]) / "files"
    assert sorted(p.name for p in files.glob("*.ipynb")) == [p.name for p in COURSE]
    for path in files.glob("*.ipynb"):
        assert json.loads(path.read_text())["metadata"]["kernelspec"]["name"] == "python"


def test_the_startup_wheel_loads_the_extension_from_ipythons_config(tmp_path):
    wheel = lite.startup_wheel("1.2.3", tmp_path)
    with zipfile.ZipFile(wheel) as archive:
        config = archive.read(
            "counterpoint_jupyterlite-1.2.3.data/data/etc/ipython/ipython_config.py"
        ).decode()
        record = archive.read("counterpoint_jupyterlite-1.2.3.dist-info/RECORD").decode()
    assert 'c.InteractiveShellApp.extensions = ["counterpoint"]' in config
    assert "ipython_config.py,sha256=" in record


def test_the_kernel_only_dependencies_are_left_out_in_pyodide_only():
    environment = lite.marker_environment({"python": "3.14.2"})
    wheel = lite.Wheel(
        Path("x.whl"),
        "counterpoint",
        "0",
        ["ipython>=8.18", "ipykernel>=6.29; sys_platform != 'emscripten'", "pytest; extra == 't'"],
        [],
    )
    assert [name for name, _ in wheel.dependencies(environment)] == ["ipython"]


def test_a_requirement_the_site_cannot_meet_stops_the_build_naming_it(tmp_path):
    def fake(name: str, version: str, requires: list[str]) -> Path:
        path = tmp_path / f"{name}-{version}-py3-none-any.whl"
        with zipfile.ZipFile(path, "w") as archive:
            meta = "".join(f"Requires-Dist: {r}\n" for r in requires)
            archive.writestr(
                f"{name}-{version}.dist-info/METADATA",
                f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n{meta}",
            )
        return path

    environment = lite.marker_environment({"python": "3.14.2"})
    given = {"a": fake("a", "1.0", ["b>=2"]), "b": fake("b", "1.5", [])}
    with pytest.raises(lite.LiteBuildError, match=r"a 1.0 needs b>=2, but the site has b 1.5"):
        lite.resolve(["a"], given, {}, environment, download=None)
    with pytest.raises(lite.LiteBuildError, match=r"a 1.0 needs c, which neither"):
        lite.resolve(["a"], {"a": fake("a", "1.0", ["c"])}, {}, environment, download=None)


def test_the_build_never_replaces_a_folder_that_is_not_a_site(tmp_path):
    home = tmp_path / "home"
    (home / "thesis").mkdir(parents=True)
    (home / "thesis" / "chapter1.tex").write_text("irreplaceable")
    with pytest.raises(lite.LiteBuildError, match="not empty and holds no site"):
        lite.build(home, cache=tmp_path / "cache")
    assert (home / "thesis" / "chapter1.tex").read_text() == "irreplaceable"
    with pytest.raises(lite.LiteBuildError, match="is a file, not a folder"):
        lite.build(home / "thesis" / "chapter1.tex", cache=tmp_path / "cache")
    assert not (tmp_path / "cache").exists()  # (refused before anything was fetched)


def test_a_notebooks_folder_without_notebooks_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(lite.LiteBuildError, match=r"no notebooks \(\*\.ipynb\) in"):
        lite.build(tmp_path / "site", notebooks=tmp_path / "empty", cache=tmp_path / "c")


def test_a_file_that_is_not_a_notebook_is_named(tmp_path):
    (tmp_path / "course").mkdir()
    (tmp_path / "course" / "broken.ipynb").write_text('{"cells": [')
    with pytest.raises(lite.LiteBuildError, match=r"broken.ipynb is not a notebook"):
        lite.notebook_for_lite(tmp_path / "course" / "broken.ipynb", tmp_path / "out.ipynb")
    (tmp_path / "course" / "list.ipynb").write_text("[1, 2]")
    with pytest.raises(lite.LiteBuildError, match=r"list.ipynb is not a notebook"):
        lite.notebook_for_lite(tmp_path / "course" / "list.ipynb", tmp_path / "out.ipynb")


def test_lite_build_on_the_command_line_says_what_is_wrong_and_exits_1(tmp_path, capsys):
    from counterpoint.cli import main

    (tmp_path / "notes.txt").write_text("mine")
    assert main(["lite", "build", "--output", str(tmp_path)]) == 1
    assert "counterpoint lite build: " in capsys.readouterr().err
    assert (tmp_path / "notes.txt").read_text() == "mine"


# -- what runs otherwise in the browser (sys.platform == "emscripten", simulated) ----------------


@cp.worker.task
def _double(x):
    return 2 * x


async def _with_a_worker():
    handle = cp.worker.start("_double", 21, cost=2)
    await cp.worker.wait(handle)
    return cp.worker.result(handle)


def test_in_the_browser_thread_process_and_dask_workers_run_inline_saying_so(monkeypatch):
    with cp.VM(workers="inline") as vm:
        expected = (vm.run(_with_a_worker()), vm.journal.digest())
    monkeypatch.setattr(sys, "platform", "emscripten")
    for workers in ("thread", "process", "dask"):
        note = f"workers='{workers}' cannot run in the browser"
        with pytest.warns(RuntimeWarning, match=note), cp.VM(workers=workers) as vm:
            assert (vm.run(_with_a_worker()), vm.journal.digest()) == expected


def test_in_the_browser_explore_processes_explores_here_with_the_same_report(monkeypatch):
    here = cp.explore(lost_update, progress=False)
    monkeypatch.setattr(sys, "platform", "emscripten")
    with pytest.warns(RuntimeWarning, match="processes=2 cannot run in the browser"):
        there = cp.explore(lost_update, processes=2, progress=False)
    assert there.summary() == here.summary()
    assert there.outcomes == here.outcomes


def test_in_the_browser_replay_says_why_it_cannot(monkeypatch):
    from IPython.core.error import UsageError

    from counterpoint.ipython.magics import CounterpointMagics

    monkeypatch.setattr(sys, "platform", "emscripten")
    with pytest.raises(UsageError, match="the browser has no processes"):
        CounterpointMagics.replay(object.__new__(CounterpointMagics), "")


# -- the session under the Pyodide kernel (simulated on the host) ------------------------------


def _kernel_program(mode: str) -> dict:
    program = Path(__file__).with_name("lite_kernel_program.py")
    done = subprocess.run(
        [sys.executable, str(program), mode], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_cells_the_pyodide_kernel_awaits_itself_run_on_the_session_vm_as_on_a_real_kernel():
    browser, host = _kernel_program("browser"), _kernel_program("host")
    assert browser["results"][:2] == ["3", "3"]  # await reached the VM; time carried on
    assert browser["results"] == host["results"]
    # journaled as typed (the kernel's added newline is not the user's), so the journal
    # is the one a real kernel writes, digest and all
    assert browser["sources"] == host["sources"] == [*CELLS]
    assert browser["digest"] == host["digest"]
    deadlock = browser["errors"][4]
    assert deadlock["ename"] == "Deadlock"  # as a real kernel names it, not "<class ...>"
    assert deadlock["evalue"] == host["errors"][4]["evalue"]
    assert "'napper'  sleeping  until tick 13" in browser["results"][3]  # %tasks, a task
    assert browser["results"][5] == "14"  # that outlived its cell; the VM usable after


# -- the course, run in the browser -------------------------------------------------------------


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def served(site: dict) -> Any:
    handler = functools.partial(_Quiet, directory=site["output"])
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def offline_chromium() -> Any:
    need_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=OFFLINE_ARGS)
        try:
            yield browser
        finally:
            browser.close()


RUN_EVERY_CODE_CELL = """async () => {
    const app = window.jupyterapp, notebook = app.shell.currentWidget.content;
    for (let i = 0; i < notebook.widgets.length; i++) {
        if (notebook.widgets[i].model.type !== 'code') continue;
        notebook.activeCellIndex = i;
        await app.commands.execute('notebook:run-cell');
    }
    return notebook.model.toJSON().cells;
}"""
KERNEL_READY = """() => {
    const panel = window.jupyterapp && window.jupyterapp.shell.currentWidget;
    const kernel = panel && panel.sessionContext && panel.sessionContext.session
        && panel.sessionContext.session.kernel;
    return kernel && kernel.status === 'idle' && kernel.name;
}"""


def run_in_the_browser(browser: Any, base: str, name: str) -> tuple[list, str, list[str]]:
    """Open ``name`` in the site's JupyterLab, run its code cells one by one (as nbval
    does: a cell that raises does not stop the rest), and return the notebook's cells,
    the kernel's name, and every request that tried to leave the site."""
    outside: list[str] = []
    context = browser.new_context(viewport={"width": 1280, "height": 900})

    def route(request_route: Any) -> None:
        url = request_route.request.url
        if not url.startswith(base + "/"):
            outside.append(url)
            request_route.abort()
        elif url.split("?")[0] == f"{base}/jupyter-lite.json":
            # the test's only change: the app as window.jupyterapp, to run its commands
            response = request_route.fetch()
            config = response.json()
            config["jupyter-config-data"]["exposeAppInBrowser"] = True
            request_route.fulfill(response=response, json=config)
        else:
            request_route.continue_()

    context.route("**/*", route)
    page = context.new_page()
    try:
        page.goto(f"{base}/lab/index.html?path={name}")
        page.wait_for_function(KERNEL_READY, timeout=240_000)
        kernel = page.evaluate(KERNEL_READY)
        cells = page.evaluate(RUN_EVERY_CODE_CELL)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"lite-{Path(name).stem}.png"))
    finally:
        context.close()
    return cells, kernel, outside


def _sanitizers() -> list[tuple[re.Pattern, str]]:
    parser = configparser.ConfigParser()
    parser.read(ROOT / "notebooks" / "nbval-sanitize.cfg")
    return [(re.compile(parser[s]["regex"]), parser[s]["replace"]) for s in parser.sections()]


#: the one thing the browser adds: its note that thread and process workers run inline
BROWSER_NOTE = re.compile(
    r"RuntimeWarning: workers='(thread|process)' cannot run in the browser [^\n]*\n"
    r"  Cell In\[\d+\], line \d+: [^\n]*\n"
)


def comparable(outputs: list[dict]) -> list[tuple[str, str]]:
    """A cell's outputs as nbval compares them: streams (coalesced), the plain-text
    form of results and displays, and errors by name and message; sanitized alike.
    The browser's note about workers is left out (docs/jupyterlite.md)."""
    found: list[tuple[str, str]] = []
    for output in outputs:
        kind = output["output_type"]
        if kind == "stream":
            text = "".join(output["text"])
            if found and found[-1][0] == output["name"]:
                found[-1] = (output["name"], found[-1][1] + text)
                continue
            found.append((output["name"], text))
        elif kind in ("execute_result", "display_data"):
            found.append((kind, "".join(output["data"].get("text/plain", ""))))
        elif kind == "error":
            found.append(("error", f"{output['ename']}: {output['evalue']}"))
    found = [(kind, BROWSER_NOTE.sub("", text)) for kind, text in found]
    found = [(kind, text) for kind, text in found if kind != "stderr" or text]
    for regex, replace in _sanitizers():
        found = [(kind, regex.sub(replace, text)) for kind, text in found]
    return found


@pytest.mark.parametrize("notebook", COURSE, ids=lambda path: path.stem)
def test_the_course_notebook_runs_in_the_browser_with_its_stored_outputs(
    notebook, offline_chromium, served
):
    cells, kernel, outside = run_in_the_browser(offline_chromium, served, notebook.name)
    assert kernel == "python"  # the Pyodide kernel: no server runs a kernel
    assert outside == []
    stored = json.loads(notebook.read_text())["cells"]
    assert len(cells) == len(stored)
    different = []
    for number, (ran, kept) in enumerate(zip(cells, stored, strict=True)):
        if kept["cell_type"] != "code":
            continue
        if ran.get("execution_count") is None:
            different.append(f"cell {number} did not run")
        elif comparable(ran["outputs"]) != comparable(kept["outputs"]):
            different.append(
                f"cell {number}: {''.join(kept['source'])[:200]}\n"
                f"  stored:  {comparable(kept['outputs'])}\n"
                f"  browser: {comparable(ran['outputs'])}"
            )
    assert not different, "\n\n".join(different)
