"""Shared fixtures.  Tests read as specifications: name them after the rule they prove."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

import pytest

# Kernels started by the tests (and nbval's, which start after collection) keep their
# IPython profile and history in a directory of their own, not in the user's ~/.ipython.
if "IPYTHONDIR" not in os.environ:
    os.environ["IPYTHONDIR"] = tempfile.mkdtemp(prefix="counterpoint-tests-ipython-")
    atexit.register(shutil.rmtree, os.environ["IPYTHONDIR"], True)

import counterpoint as cp


@pytest.fixture
def vm():
    """A fresh VM (fifo, seed 0).  After the test, its journal columns must agree."""
    machine = cp.VM()
    yield machine
    machine.journal._check()


@pytest.fixture
def new_vm():
    """``cp.VM`` for tests that leave tasks behind: their coroutines are closed after
    the test (a dropped VM's unstarted tasks would warn "never awaited")."""
    made: list[cp.VM] = []

    def make(**options):
        vm = cp.VM(**options)
        made.append(vm)
        return vm

    yield make
    for vm in made:
        vm._dispose()


def kinds(vm: cp.VM) -> list[str]:
    """The journal's record kinds, in order (handy in assertions)."""
    return [record.kind for record in vm.journal]
