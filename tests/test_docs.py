"""The documentation's examples run and show what they claim."""

from __future__ import annotations

import contextlib
import doctest
import importlib
import io
import pkgutil
import re
from pathlib import Path

import pytest

import counterpoint

ROOT = Path(__file__).parent.parent
MODULES = sorted(
    name for _, name, _ in pkgutil.iter_modules(counterpoint.__path__) if name != "__main__"
)


WIDGETS = sorted(
    f"widgets.{name}"
    for _, name, _ in pkgutil.iter_modules(importlib.import_module("counterpoint.widgets").__path__)
)


@pytest.mark.parametrize("name", ["__init__", *MODULES, *WIDGETS])
def test_docstring_examples_run(name):
    module = counterpoint if name == "__init__" else importlib.import_module(f"counterpoint.{name}")
    results = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert results.failed == 0


def test_every_public_name_has_a_docstring_with_an_example():
    missing = []
    for name in counterpoint.__all__:
        obj = getattr(counterpoint, name)
        if isinstance(obj, type) and issubclass(obj, BaseException | Warning):
            assert obj.__doc__, name  # errors: a docstring saying when they happen
            continue
        if ">>>" not in (obj.__doc__ or ""):
            missing.append(name)
    assert missing == []


def python_blocks(markdown: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", markdown, flags=re.S)


def run_block(code: str) -> list[str]:
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "<docs>", "exec"), {})
    return printed.getvalue().splitlines()


DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LITERAL = re.compile(r"^[\[({'\"0-9-]")


def claimed_prints(code: str) -> list[str | None]:
    """For each print() line: the value its comment claims, or None if it claims none."""
    claims = []
    for line in code.splitlines():
        if line.lstrip().startswith("print("):
            comment = line.split("#", 1)[1].strip() if "#" in line else ""
            claims.append(comment if LITERAL.match(comment) else None)
    return claims


@pytest.mark.parametrize(
    "block",
    [
        pytest.param(block, id=f"{path.name}-{index}")
        for path in DOCUMENTS
        for index, block in enumerate(python_blocks(path.read_text()))
        if "print(" in block
    ],
)
def test_documented_examples_print_what_their_comments_say(block):
    printed = run_block(block)
    claims = claimed_prints(block)
    if len(printed) == len(claims):  # (else a print sits in a loop: see the listing tests)
        for line, claim in zip(printed, claims, strict=True):
            if claim is not None:
                assert line == claim
    assert run_block(block) == printed  # and every run prints the same (digests included)


def test_the_journal_page_example_prints_its_listing():
    page = (ROOT / "docs/journal.md").read_text()
    code = python_blocks(page)[0]
    after = page.split(code, 1)[1]
    listing = re.search(r"```\n(.*?)```", after.split("```", 1)[1], flags=re.S)[1].splitlines()
    printed = run_block(code)
    assert printed[:-1] == listing  # the last printed line is the digest
