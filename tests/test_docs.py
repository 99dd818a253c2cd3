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


@pytest.mark.parametrize("name", ["__init__", *MODULES])
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


def test_the_readme_taste_prints_what_its_comments_say():
    code = python_blocks((ROOT / "README.md").read_text())[0]
    printed = run_block(code)
    claimed = re.findall(r"print\(vm\.run\(main\(\)\)\)\s+# (.*)", code)
    assert printed[0] == claimed[0]
    assert re.fullmatch(r"[0-9a-f]{64}", printed[1])
    assert run_block(code) == printed  # and the digest is the same on every run


def test_the_journal_page_example_prints_its_listing():
    page = (ROOT / "docs/journal.md").read_text()
    code = python_blocks(page)[0]
    after = page.split(code, 1)[1]
    listing = re.search(r"```\n(.*?)```", after.split("```", 1)[1], flags=re.S)[1].splitlines()
    printed = run_block(code)
    assert printed[:-1] == listing  # the last printed line is the digest
