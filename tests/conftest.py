"""Shared fixtures.  Tests read as specifications: name them after the rule they prove."""

from __future__ import annotations

import pytest

import counterpoint as cp


@pytest.fixture
def vm():
    """A fresh VM (fifo, seed 0).  After the test, its journal columns must agree."""
    machine = cp.VM()
    yield machine
    machine.journal._check()


def kinds(vm: cp.VM) -> list[str]:
    """The journal's record kinds, in order (handy in assertions)."""
    return [record.kind for record in vm.journal]
