"""Exploration is sound: on generated programs, partial-order reduction reaches every
outcome that exploring every interleaving reaches (within the same preemption bound),
and a report never claims a bare "exhaustive" when it missed one.

The programs come from ``explore_programs.generate(seed)`` (see its docstring); the
normal run checks a few hundred seeds, ``-m slow`` thousands more.  A failure prints the
program, which ``explore_programs.generate(seed).describe()`` shows again.
"""

from __future__ import annotations

import gc
import random
import warnings

import pytest
from explore_programs import build, check, check_shared, generate
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import counterpoint as cp
from counterpoint._explore import run_prefix
from counterpoint._reduction import Races, races
from counterpoint._strategies import DepthFirst

SEEDS = range(200)
SLOW_SEEDS = range(200, 1000)


@pytest.fixture(autouse=True)
def _collect_garbage():
    yield
    gc.collect()


@pytest.mark.parametrize("seed", SEEDS)
def test_reduction_reaches_every_outcome_of_exploring_everything(seed):
    assert check(generate(seed)) in ("ok", "skipped")


@pytest.mark.slow
@pytest.mark.parametrize("seed", SLOW_SEEDS)
def test_reduction_reaches_every_outcome_on_thousands_more_programs(seed):
    assert check(generate(seed)) in ("ok", "skipped")


@pytest.mark.parametrize("seed", SEEDS)
def test_shared_only_reaches_every_outcome_when_the_state_is_in_cp_shared(seed):
    assert check_shared(generate(seed)) in ("ok", "skipped")


@pytest.mark.slow
@pytest.mark.parametrize("seed", SLOW_SEEDS)
def test_shared_only_reaches_every_outcome_on_thousands_more_programs(seed):
    assert check_shared(generate(seed)) in ("ok", "skipped")


@pytest.mark.parametrize("seed", range(60))
def test_the_race_finder_a_search_keeps_from_run_to_run_finds_what_a_fresh_one_finds(seed):
    program = generate(seed)
    search = DepthFirst(max_schedules=400, bound=program.preemption_bound, por=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", cp.UnobservedTaskFailure)
        runs = list(search.runs(lambda prefix, expect: run_prefix(program, prefix, expect=expect)))
    shuffled = runs[:]
    random.Random(seed).shuffle(shuffled)  # (whatever ran before: it only saves work)
    for order in (runs, shuffled):
        kept = Races()
        for run in order:
            arguments = (run.footprints, run.barriers, run.left_behind, run.tasks)
            assert kept(*arguments) == races(*arguments), program.describe()


def test_most_generated_programs_are_small_enough_to_explore_everything():
    verdicts = [check(generate(seed)) for seed in range(40)]
    assert verdicts.count("skipped") <= 8, verdicts


def test_the_generator_is_a_pure_function_of_the_seed():
    assert generate(7).describe() == generate(7).describe()
    assert len({generate(seed).describe() for seed in range(30)}) == 30


def test_the_generator_covers_every_feature_it_promises():
    text = "\n".join(generate(seed).describe() for seed in range(300))
    for feature in (
        "start=par",
        "start=scope",
        "start=spawn",
        "start=timeout",
        "preemption_bound=None",
        "preemption_bound=0",
        "preemption_bound=1",
        "preemption_bound=2",
        "add(",
        "read(",
        "send(",
        "recv(",
        "try_send(",
        "try_recv(",
        "close(",
        "select(",
        "locked(",
        "set",
        "wait",
        "require(",
        "require_choice",
        "choose(",
        "raise_if(",
        "cancel(",
        "sleep(",
        "keeps the POR assumption: False",
    ):
        assert feature in text, feature


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.data())
def test_reduction_is_sound_on_programs_hypothesis_draws_and_shrinks(data):
    program = build(lambda n: data.draw(st.integers(0, n - 1)), label="hypothesis")
    assert check(program) in ("ok", "skipped")


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.data())
def test_shared_only_is_sound_on_programs_hypothesis_draws_and_shrinks(data):
    program = build(lambda n: data.draw(st.integers(0, n - 1)), label="hypothesis")
    assert check_shared(program) in ("ok", "skipped")
