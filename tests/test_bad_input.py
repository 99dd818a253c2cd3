"""Every kind of bad input gets a named error whose message says what happened and what to
do, and the VM stays usable afterwards (the catalogue is ``tests/badinput.py``; its table is
in docs/reliability.md)."""

from __future__ import annotations

import warnings

import badinput
import pytest

import counterpoint as cp


@pytest.mark.parametrize("case", badinput.CASES, ids=lambda c: f"{c.area}: {c.what}")
def test_bad_input_gets_its_named_error_and_the_vm_stays_usable(case):
    badinput.LAST_VM.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (an unobserved failure may warn as well)
        with pytest.raises(case.error) as caught:
            case.provoke()
    assert type(caught.value) is case.error or case.error in type(caught.value).__mro__
    message = str(caught.value)
    assert case.says in message, message
    assert len(message) > 20  # a sentence, not a bare value
    for vm in badinput.LAST_VM:  # every VM the case used still runs a program

        async def after():
            await cp.sleep(1)
            return "usable"

        assert vm.run(after()) == "usable"


def test_there_are_at_least_sixty_kinds_of_bad_input_and_no_two_alike():
    assert len(badinput.CASES) >= 60
    assert len({(c.area, c.what) for c in badinput.CASES}) == len(badinput.CASES)


def test_the_table_in_docs_reliability_is_the_catalogue():
    assert badinput.documented() == badinput.table(), (
        "docs/reliability.md is out of date: run `python tests/badinput.py --update-docs`"
    )
