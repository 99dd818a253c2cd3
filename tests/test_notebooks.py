"""The notebooks are regression tests: nbval runs them strictly (every stored output is
compared) with the `counterpoint` kernel, and a changed cell fails.  The notebooks
themselves run as part of the suite (pytest collects notebooks/*.ipynb with --nbval);
these tests check that the check really compares."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))


SANITIZE = Path(__file__).resolve().parent.parent / "notebooks" / "nbval-sanitize.cfg"


def run_nbval(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--nbval",
            "--nbval-sanitize-with",
            str(SANITIZE),
            "-p",
            "no:cacheprovider",
            "-q",
            str(path),
        ],
        capture_output=True,
        text=True,
        cwd=path.parent,
        timeout=600,
    )


def test_there_is_a_first_notebook_with_stored_outputs_and_the_counterpoint_kernel():
    assert [path.name for path in NOTEBOOKS][:1] == ["01-tasks-and-time.ipynb"]
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        assert nb.metadata.kernelspec.name == "counterpoint"
        code = [cell for cell in nb.cells if cell.cell_type == "code"]
        # an exercise cell (notebooks/README.md, "Exercises") only defines what the learner edits
        shown = [cell for cell in code if not _tags(cell, "exercise:")]
        assert code and all(cell.outputs for cell in shown), f"{path.name}: run it with nbrun"


def _tags(cell, prefix: str) -> list[str]:
    return [tag for tag in cell.get("metadata", {}).get("tags", []) if tag.startswith(prefix)]


@pytest.mark.slow
def test_a_cell_changed_to_print_something_else_fails_nbval(tmp_path):
    nb = nbformat.read(NOTEBOOKS[0], as_version=4)
    (index,) = [i for i, cell in enumerate(nb.cells) if "def cook(" in cell.source]
    nb.cells[index].source = nb.cells[index].source.replace("is ready", "is done")
    changed = tmp_path / "changed.ipynb"
    nbformat.write(nb, changed)
    done = run_nbval(changed)
    assert done.returncode == 1, done.stdout
    # the changed cell fails (and so do the later cells that call cook), with the difference
    assert "the salad is done" in done.stdout and "the salad is ready" in done.stdout


@pytest.mark.slow
def test_the_unchanged_copy_passes_nbval(tmp_path):
    copy = tmp_path / NOTEBOOKS[0].name
    copy.write_bytes(NOTEBOOKS[0].read_bytes())
    done = run_nbval(copy)
    assert done.returncode == 0, done.stdout


def test_every_digest_a_notebook_shows_is_spelled_as_journal_digest_returns_it():
    """One spelling: 64 hex digits, as ``vm.journal.digest()`` returns, never a prefix
    that a reader would compare with the full one and find different."""
    shown = []
    for path in NOTEBOOKS:
        for cell in nbformat.read(path, as_version=4).cells:
            for output in cell.get("outputs", []):
                texts = [output.get("text", ""), *output.get("data", {}).values()]
                for text in texts:
                    shown += re.findall(r"digest\W+([0-9a-f]{8,})", str(text))
    assert shown, "the first notebook shows the journal's digest"
    assert {len(digest) for digest in shown} == {64}
