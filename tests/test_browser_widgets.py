"""The widgets as a learner sees them: a real ``jupyter lab`` started by the test, a
notebook run there with the Counterpoint kernel, and Debian's Chromium driven by
Playwright looking at the page (``tests/browser.py``).  And the static pictures as a
reader of an exported notebook sees them: nbconvert's HTML opened without a kernel,
without widget JavaScript and without network.  Screenshots go to ``tests/artifacts/``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from browser import (
    KERNEL,
    chromium_fixture,  # noqa: F401  (the fixture "chromium")
    lab_fixture,  # noqa: F401  (the fixture "lab")
    lab_server,  # noqa: F401
    need_browser,
    notebook,
    page_fixture,  # noqa: F401  (the fixture "page")
    screenshot,
)

pytestmark = pytest.mark.slow

RACE = """\
import counterpoint as cp

async def main():
    orders = cp.channel(1, name="orders")

    async def cook():
        for dish in ("soup", "tea"):
            await orders.send(dish)
            await cp.sleep(2)

    cp.spawn(cook(), name="cook")
    return [await orders.recv(), await orders.recv()]

run = cp.VM()
run.run(main())
"""

STATIC = RACE + "\nfrom IPython.display import HTML\nHTML(cp.widgets.svg(run))\n"


def visible_svgs(page) -> list[dict]:
    """Every ``svg.counterpoint-timeline`` on the page: its size, its texts' count."""
    return page.eval_on_selector_all(
        "svg.counterpoint-timeline",
        """(pictures) => pictures.map((svg) => {
            const box = svg.getBoundingClientRect();
            return {width: box.width, height: box.height,
                    texts: Array.from(svg.querySelectorAll('text'))
                        .filter((t) => t.getBBox().width > 0).length,
                    words: svg.textContent};
        })""",
    )


def test_the_static_picture_renders_in_jupyterlab(lab, page):
    lab.write_notebook("static-picture", [STATIC])
    lab.open(page, "static-picture")
    lab.run_all(page)
    page.wait_for_selector(".jp-OutputArea-output svg.counterpoint-timeline")
    shot = screenshot(page, "lab-static-picture")
    [picture] = visible_svgs(page)
    assert picture["width"] > 200 and picture["height"] > 50, picture
    assert picture["texts"] > 0, "the lane names and letters are drawn as text"
    assert "cook" in picture["words"] and "main" in picture["words"]
    assert shot.stat().st_size > 0


# -- export: nbconvert's HTML, no kernel, no widget JavaScript, no network --------------


def export(folder: Path, cells: list[str], *, store_widget_state: bool = True) -> Path:
    """Execute a notebook with nbclient and the Counterpoint kernel (as `jupyter nbconvert
    --execute` would), then `jupyter nbconvert --to html` it; the HTML file's path."""
    import nbclient
    import nbformat

    nb = nbformat.from_dict(notebook(cells))
    nbclient.NotebookClient(
        nb, kernel_name=KERNEL, timeout=120, store_widget_state=store_widget_state
    ).execute()
    source = folder / "exported.ipynb"
    nbformat.write(nb, source)
    subprocess.run(
        [sys.executable, "-m", "jupyter", "nbconvert", "--to", "html", str(source)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return source.with_suffix(".html")


def open_offline(page, html: Path) -> None:
    """Open an exported HTML file the way a reader without widgets sees it: every request
    to the network (CDN scripts: require.js, the widget manager, MathJax) fails."""
    page.route("http*://**", lambda route: route.abort())
    page.goto(html.as_uri(), wait_until="load")


def test_the_static_picture_survives_export_to_html(tmp_path, page):
    need_browser()
    html = export(tmp_path, [STATIC])
    open_offline(page, html)
    page.wait_for_selector("svg.counterpoint-timeline", state="visible")
    screenshot(page, "export-static-picture")
    [picture] = visible_svgs(page)
    assert picture["width"] > 200 and picture["height"] > 50, picture
    assert picture["texts"] > 0 and "cook" in picture["words"]
