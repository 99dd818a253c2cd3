"""Our HTML tables as JupyterLab shows them, checked in a real browser (Chromium, driven
by Playwright): the page carries JupyterLab's own stylesheet -- taken from the installed
``jupyterlab`` package, including its ``:not(.jp-RenderedMarkdown).jp-RenderedHTMLCommon
td {text-align: right}`` -- and the light theme, and each table sits in an output area
as JupyterLab renders one.  Screenshots go to ``tests/artifacts/`` (not in git).

Skipped, saying why, without Chromium (Debian's ``chromium`` package) or Playwright
(``pip install playwright``; its own browser download is not needed) -- failed instead
when ``COUNTERPOINT_REQUIRE_BROWSER=1`` (see ``tests/browser.py``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from browser import ARTIFACTS, chromium_fixture  # noqa: F401  (the fixture "chromium")

import counterpoint as cp

pytestmark = pytest.mark.slow

RULE = ":not(.jp-RenderedMarkdown).jp-RenderedHTMLCommon td"


def _template_literal_around(text: str, index: int) -> str:
    """The JavaScript template literal (a CSS module in the bundle) that holds ``index``."""

    def unescaped(position: int) -> bool:
        backslashes = 0
        while text[position - 1 - backslashes] == "\\":
            backslashes += 1
        return backslashes % 2 == 0

    start = index
    while not (text[start] == "`" and unescaped(start)):
        start -= 1
    end = index
    while not (text[end] == "`" and unescaped(end)):
        end += 1
    return text[start + 1 : end].replace("\\`", "`").replace("\\\\", "\\")


def jupyterlab_css() -> str:
    """JupyterLab's rendermime and output-area stylesheet, and its light theme."""
    import jupyterlab

    static = Path(jupyterlab.__file__).parent / "static"
    sheets = []
    for bundle in sorted(static.glob("*.js")):
        text = bundle.read_text(encoding="utf-8", errors="replace")
        for needle in (RULE, ".jp-OutputArea-output.jp-RenderedHTMLCommon table"):
            index = text.find(needle)
            if index >= 0:
                sheets.append(_template_literal_around(text, index))
    assert any(RULE in sheet for sheet in sheets), f"JupyterLab's {RULE!r} not found in {static}"
    theme = Path(sys.prefix) / "share/jupyter/lab/themes/@jupyterlab/theme-light-extension"
    if (theme / "index.css").is_file():
        sheets.append((theme / "index.css").read_text(encoding="utf-8"))
    return "\n".join(dict.fromkeys(sheets))


def page(outputs: dict[str, str]) -> str:
    """A page with each HTML output in a JupyterLab output area, as JupyterLab renders it."""
    areas = "".join(
        f'<h4>{title}</h4><div id="{title}" class="jp-OutputArea-output jp-RenderedHTMLCommon '
        f'jp-RenderedHTML" data-mime-type="text/html">{html}</div>'
        for title, html in outputs.items()
    )
    return (
        f"<!doctype html><html><head><style>{jupyterlab_css()}</style></head>"
        f'<body class="jp-ThemedContainer" style="font-family:sans-serif;padding:12px">'
        f"{areas}</body></html>"
    )


def session_outputs() -> dict[str, str]:
    """The tables a learner sees: %journal (with a multi-line value), vm.tasks(), a
    channel and time travel's state, made by a run with a deadlock."""
    from counterpoint.ipython.magics import JournalTail

    async def main():
        orders = cp.channel(1)

        async def waiter():
            await orders.send("soup,\nno salt")
            await orders.send("tea")

        cp.spawn(waiter(), name="waiter")
        await orders.recv()
        await cp.sleep(3)
        await cp.channel().recv()  # nobody sends: a deadlock, with a multi-line message

    vm = cp.VM()
    with pytest.raises(cp.Deadlock):
        vm.run(main())
    journal = vm.journal
    return {
        "journal": JournalTail(journal, 12)._repr_html_(),
        "journal-all": JournalTail(journal, 6, steps=True)._repr_html_(),
        "tasks": vm.tasks()._repr_html_(),
        "state": journal.state_at(len(journal) - 1)._repr_html_(),
    }


@pytest.fixture(scope="module")
def browser(chromium):
    """The session's Chromium (``tests/browser.py``): one Playwright per process."""
    return chromium


CELLS = """(area) => Array.from(document.getElementById(area).querySelectorAll('th, td'))
    .map((cell) => {
        const table = cell.closest('table');
        const column = Array.from(table.querySelectorAll('td'))
            .filter((other) => other.cellIndex === cell.cellIndex)
            .map((other) => other.innerText);
        return {
            table: Array.from(document.querySelectorAll('table')).indexOf(table),
            column: table.querySelectorAll('th')[cell.cellIndex].textContent,
            numbers: column.length > 0 && column.every((text) => /^-?[0-9]+$/.test(text)),
            align: getComputedStyle(cell).textAlign,
            text: cell.innerText,
            lines: (() => {  // the lines the cell's text takes, whatever the row's height
                const range = document.createRange();
                range.selectNodeContents(cell);
                return new Set(Array.from(range.getClientRects())
                    .filter((box) => box.width > 0).map((box) => Math.round(box.top))).size;
            })(),
        };
    })"""


def test_table_cells_keep_our_alignment_under_jupyterlabs_right_align_rule(browser):
    outputs = session_outputs()
    outputs["plain"] = "<table><tr><th>plain</th></tr><tr><td>a plain table</td></tr></table>"
    view = browser.new_page(viewport={"width": 1100, "height": 900})
    view.set_content(page(outputs))
    ARTIFACTS.mkdir(exist_ok=True)
    view.screenshot(path=str(ARTIFACTS / "browser-tables.png"), full_page=True)
    # the page really applies JupyterLab's rule: a table without our styles goes right
    assert {c["align"] for c in view.evaluate(CELLS, "plain")} == {"right"}
    for area in ("journal", "journal-all", "tasks", "state"):
        cells = view.evaluate(CELLS, area)
        assert cells, area
        for c in cells:
            expected = "right" if c["numbers"] else "left"
            assert c["align"] == expected, (area, c)
        if area.startswith("journal"):
            aligns = {(c["column"], c["align"]) for c in cells}
            assert {("event", "right"), ("kind", "left"), ("data", "left")} <= aligns
    view.close()


def test_multi_line_values_show_as_line_breaks_never_a_literal_backslash_n(browser):
    outputs = session_outputs()
    view = browser.new_page(viewport={"width": 1100, "height": 900})
    view.set_content(page(outputs))
    assert "\\n" not in view.inner_text("body")
    sent = [c for c in view.evaluate(CELLS, "journal") if "soup," in c["text"]]
    assert sent, "the send of the two-line order is among the shown records"
    for c in sent:
        assert "soup,\nno salt" in c["text"] and c["lines"] >= 2, c
    view.close()


def test_the_notebooks_stored_tables_look_right_in_jupyterlab(browser):
    """What a reader of notebooks/*.ipynb sees, stored outputs as they are."""
    import nbformat

    outputs = {}
    for path in sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb")):
        for number, nb_cell in enumerate(nbformat.read(path, as_version=4).cells):
            for output in nb_cell.get("outputs", []):
                html = output.get("data", {}).get("text/html")
                if html and "<table" in html:  # (pictures are checked elsewhere)
                    outputs[f"{path.stem}-cell-{number}"] = html
    assert outputs, "the notebooks store HTML tables"
    view = browser.new_page(viewport={"width": 1100, "height": 900})
    view.set_content(page(outputs))
    ARTIFACTS.mkdir(exist_ok=True)
    view.screenshot(path=str(ARTIFACTS / "notebook-tables.png"), full_page=True)
    assert "\\n" not in view.inner_text("body")
    for area in outputs:
        cells = view.evaluate(CELLS, area)
        assert cells, area
        for c in cells:
            assert c["align"] == ("right" if c["numbers"] else "left"), (area, c)
            if c["column"] in ("kind", "name", "state"):  # a word is never broken
                assert c["lines"] == 1, (area, c)
    view.close()
