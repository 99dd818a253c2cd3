"""Every exercise of the course is checked both ways: its starting point (the notebook
as stored) is not solved, and its solution (``notebooks/solutions/``) is.

The convention (notebooks/README.md, "Writing a lesson"): an exercise is a code cell
tagged ``exercise:NAME`` (the code the learner edits) followed by a cell tagged
``check:NAME`` whose output is the verdict of ``counterpoint.course.check`` or
``breaks``.  ``notebooks/solutions/<notebook stem>.py`` holds, for each NAME, the
solved exercise cell after a line ``# exercise: NAME``.  The notebook is executed with
each solution put in place of its exercise cell, on the notebook's kernel.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
SOLUTIONS = NOTEBOOKS / "solutions"
SOLVED = ("Solved", "Broken")  # the first word of a verdict that says solved
UNSOLVED = ("Not yet", "Not proven", "Not broken", "Not this one")


def _tagged(nb, prefix: str) -> dict[str, int]:
    """NAME -> the index of the cell tagged ``prefix:NAME``."""
    found: dict[str, int] = {}
    for index, cell in enumerate(nb.cells):
        for tag in cell.get("metadata", {}).get("tags", []):
            if tag.startswith(prefix + ":"):
                found[tag.split(":", 1)[1]] = index
    return found


def _text(cell) -> str:
    """What a cell printed or showed as text."""
    parts = []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream":
            parts.append(output.get("text", ""))
        elif "data" in output:
            parts.append(output["data"].get("text/plain", ""))
    return "".join(parts)


def solutions_of(stem: str) -> dict[str, str]:
    """NAME -> solved cell source, from notebooks/solutions/<stem>.py."""
    path = SOLUTIONS / f"{stem}.py"
    if not path.exists():
        return {}
    pieces = re.split(r"^# exercise: (\S+)\n", path.read_text(), flags=re.M)
    return {
        name: source.strip("\n") for name, source in zip(pieces[1::2], pieces[2::2], strict=True)
    }


def _lessons() -> list[Path]:
    return [
        path
        for path in sorted(NOTEBOOKS.glob("*.ipynb"))
        if _tagged(nbformat.read(path, as_version=4), "exercise")
    ]


LESSONS = _lessons()


def test_solution_files_belong_to_notebooks_with_those_exercises():
    for path in sorted(SOLUTIONS.glob("*.py")):
        notebook = NOTEBOOKS / f"{path.stem}.ipynb"
        assert notebook.exists(), f"{path.name}: no notebook {notebook.name}"
        nb = nbformat.read(notebook, as_version=4)
        assert set(solutions_of(path.stem)) == set(_tagged(nb, "exercise")), path.name


@pytest.mark.parametrize("path", LESSONS, ids=[path.stem for path in LESSONS])
def test_each_exercise_has_a_check_a_solution_and_is_stored_unsolved(path):
    nb = nbformat.read(path, as_version=4)
    exercises, checks = _tagged(nb, "exercise"), _tagged(nb, "check")
    assert set(exercises) == set(checks), f"{path.name}: an exercise without its check cell"
    solutions = solutions_of(path.stem)
    for name, index in exercises.items():
        assert checks[name] > index, f"{path.name}: check:{name} comes before its exercise"
        assert name in solutions, f"{path.name}: no solution for {name} in solutions/"
        stored = _text(nb.cells[checks[name]]).lstrip()
        assert stored.startswith(UNSOLVED), f"{path.name}: {name} is stored solved: {stored!r}"


@pytest.mark.parametrize("path", LESSONS, ids=[path.stem for path in LESSONS])
def test_each_solution_passes_its_check(path, tmp_path):
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    exercises, checks = _tagged(nb, "exercise"), _tagged(nb, "check")
    for name, source in solutions_of(path.stem).items():
        nb.cells[exercises[name]].source = source
    NotebookClient(
        nb,
        timeout=300,
        kernel_name=nb.metadata.kernelspec.name,
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute()
    for name, index in checks.items():
        verdict = _text(nb.cells[index]).lstrip()
        assert verdict.startswith(SOLVED), f"{path.name}: the solution of {name}: {verdict}"
