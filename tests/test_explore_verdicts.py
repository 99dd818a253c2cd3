"""``report.assert_ok()``: a search is a pass only when it found nothing and covered every
schedule (or the caller accepts a partial search); ``report.first_finding``: how far the
search went before its first failure."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from scheduler_programs import lost_update  # (the lost update: two adds, one assert)

import counterpoint as cp


async def locked():
    box = {"n": 0}
    lock = cp.Lock()

    async def add():
        async with lock:
            seen = box["n"]
            await cp.checkpoint()
            box["n"] = seen + 1

    await cp.par(add(), add(), add())
    return box["n"]


def test_an_exhaustive_search_that_found_nothing_is_a_pass():
    report = cp.explore(locked)
    assert report.exhaustive and not report.failures
    assert report.assert_ok() is None
    assert report.first_finding is None and report.first_finding_seconds is None


def test_a_finding_fails_with_its_outcome_message_and_replay_line():
    report = cp.explore(lost_update)
    with pytest.raises(AssertionError) as raised:
        report.assert_ok()
    text = str(raised.value)
    first = report.failures[0]
    assert "AssertionError" in text and "an update was lost" in text
    assert f"replay it: {first.replay}" in text
    with pytest.raises(AssertionError):  # a finding fails even a partial search
        report.assert_ok(allow_partial=True)


def test_a_search_that_stopped_early_is_not_a_pass_unless_partial_is_allowed():
    report = cp.explore(locked, max_schedules=3)
    assert not report.exhaustive and not report.failures
    with pytest.raises(AssertionError, match=r"not exhaustive.*allow_partial=True"):
        report.assert_ok()
    report.assert_ok(allow_partial=True)
    with pytest.raises(TypeError, match="True or False"):
        report.assert_ok(allow_partial="yes")


def test_the_first_finding_is_the_number_of_the_first_run_that_failed():
    report = cp.explore(lost_update)
    assert report.first_finding is not None and 1 <= report.first_finding <= report.schedules
    assert 0 <= report.first_finding_seconds <= report.seconds
    # the runs before it did not fail: a search capped just before it finds nothing
    assert report.first_finding > 1  # (dfs runs the serial order first: it passes)
    before = cp.explore(lost_update, max_schedules=report.first_finding - 1)
    assert not before.failures and not before.deadlocks
    # the same search finds it at the same run: here, and in other processes
    assert cp.explore(lost_update).first_finding == report.first_finding
    code = (
        "from scheduler_programs import lost_update; import counterpoint as cp; "
        "print(cp.explore(lost_update).first_finding)"
    )
    for seed in ("1", "2"):
        there = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parent,
            env={"PYTHONHASHSEED": seed, "PATH": ""},
        ).stdout
        assert int(there) == report.first_finding
