"""ExploreView (issue 11, "Seeing"): what ``cp.explore`` found as an outcome bar chart and
the findings grouped by outcome; picking a finding runs it again and shows that run.
``report.show()`` and ``finding.show()`` return these; ``%%explore`` shows the view."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import counterpoint as cp
from counterpoint.widgets import ExploreView
from counterpoint.widgets.explore import MAX_BARS, bars, grouped, picture

TESTS = Path(__file__).resolve().parent


async def lost_update():
    box = {"n": 0}

    async def add():
        seen = box["n"]
        await cp.checkpoint()
        box["n"] = seen + 1

    await cp.par(add(), add())
    assert box["n"] == 2, "an update was lost"
    return box["n"]


async def troubles():
    """A deadlock (two locks taken in opposite orders), a ValueError, a returned
    value and runs pruned by cp.require."""
    a, b = cp.Lock(), cp.Lock()

    async def take(x, y):
        async with x:
            await cp.checkpoint()
            async with y:
                pass

    await cp.par(take(a, b), take(b, a))
    k = cp.choose(range(3))
    if k == 2:
        raise ValueError("two was chosen")
    cp.require(k != 1)
    return k


def sent_by(widget, monkeypatch) -> list:
    messages = []
    monkeypatch.setattr(widget, "send", lambda content, buffers=None: messages.append(content))
    return messages


# -- the chart ------------------------------------------------------------------------------------


def test_the_bars_count_each_outcome_as_the_report_does_and_the_pruned_runs_last():
    report = cp.explore(troubles, preemption_bound=2)
    drawn = bars(report)
    assert {bar.label: bar.count for bar in drawn[:-1]} == {
        "deadlock": report.outcomes["Deadlock"],
        "raises ValueError": report.outcomes["ValueError"],
        "returns 0": report.outcomes[0],
    }
    assert (drawn[-1].kind, drawn[-1].count) == ("pruned", report.pruned) and report.pruned
    assert {bar.kind for bar in drawn[:-1]} == {"deadlock", "failure", "ok"}
    assert sum(bar.count for bar in drawn) == report.schedules


def test_bars_go_by_count_then_label_so_every_process_draws_them_in_one_order():
    report = cp.ExploreReport("dfs")
    report.outcomes = {"b": 2, "a": 2, "c": 5, "KeyError": 1}
    report.failures = [cp.Finding("KeyError", "'k'", "cp1:0", 0, 1, "...")]
    assert [(bar.label, bar.count) for bar in bars(report)] == [
        ("returns 'c'", 5),
        ("returns 'a'", 2),
        ("returns 'b'", 2),
        ("raises KeyError", 1),
    ]


def test_the_picture_draws_a_bar_with_its_count_and_a_word_not_colour_alone():
    report = cp.explore(lost_update)
    svg = picture(report)
    assert svg.count('<g class="bar ') == len(report.outcomes) == 2
    assert '<g class="bar failure"><title>raises AssertionError: 4 schedules (failure)' in svg
    assert ">4 (failure)</text>" in svg and ">2</text>" in svg
    assert 'fill="#D55E00"' in svg and 'fill="#0072B2"' in svg  # vermillion, blue


def test_a_report_with_many_outcomes_draws_the_first_bars_and_counts_the_rest():
    async def many():
        return cp.choose(range(MAX_BARS + 5))

    report = cp.explore(many)
    svg = picture(report)
    assert svg.count('<g class="bar ') == MAX_BARS
    assert "… 5 more outcomes in 5 schedules" in svg


# -- the findings ---------------------------------------------------------------------------------


def test_findings_are_grouped_by_outcome_in_the_charts_order_fewest_preemptions_first():
    report = cp.ExploreReport("dfs")
    report.outcomes = {"ValueError": 3, "Deadlock": 5, 7: 1}
    report.failures = [
        cp.Finding("ValueError", "late", "cp1:3", 2, 1, "r1"),
        cp.Finding("ValueError", "early", "cp1:1", 0, 2, "r2"),
    ]
    report.deadlocks = [cp.Finding("Deadlock", "stuck", "cp1:2", 1, 5, "r3")]
    findings, groups = grouped(report)
    assert [f.message for f in findings] == ["stuck", "early", "late"]
    assert [(g.label, g.kind, g.first, g.stop) for g in groups] == [
        ("deadlock", "deadlock", 0, 1),
        ("raises ValueError", "failure", 1, 3),
    ]
    svg = picture(report)
    assert "raises ValueError: 2 findings in 3 schedules" in svg
    assert svg.index("[1] 0 preemptions, in 2 schedules: early") < svg.index("[2] 2 preemptions")
    assert "schedule cp1:1  replay: r2" in svg


def test_the_browser_asks_for_the_findings_in_windows(monkeypatch):
    view = cp.explore(troubles, preemption_bound=2).show()
    sent = sent_by(view.chart, monkeypatch)
    view.chart._on_message(
        None, {"type": "request", "id": 7, "what": "findings", "lo": 1, "hi": 50}, []
    )
    (reply,) = sent
    assert (reply["type"], reply["id"], reply["lo"], reply["hi"]) == ("reply", 7, 1, 2)
    (row,) = reply["rows"]
    finding = view.findings[1]
    assert row["index"] == 1 and row["replay"] == finding.replay
    assert (row["preemptions"], row["count"], row["schedule"]) == (
        finding.preemptions,
        finding.count,
        finding.schedule,
    )
    assert view.chart.chart["groups"][0][:4] == ["deadlock", "deadlock", 0, 1]
    assert view.chart.chart["findings"] == 2


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"lo": "0", "hi": 5}, "TypeError: findings: lo and hi are ints"),
        ({"lo": 5, "hi": 2}, "ValueError: findings: ask for 0 <= lo <= hi"),
        ({"lo": 0, "hi": 5000}, "with at most 1000 at once"),
    ],
)
def test_a_bad_findings_request_is_answered_with_an_error(monkeypatch, params, words):
    view = cp.explore(lost_update).show()
    sent = sent_by(view.chart, monkeypatch)
    view.chart._on_message(None, {"type": "request", "id": 1, "what": "findings", **params}, [])
    assert words in sent[0]["error"] and words in view.chart.error


# -- picking a finding ----------------------------------------------------------------------------


def test_selecting_a_finding_runs_its_schedule_again_and_shows_that_run():
    report = cp.explore(lost_update)
    view = ExploreView(report)
    assert view.selected == -1 and view.vm is None and view.detail.children == ()
    view.select(0)
    finding = view.findings[0]
    replayed = cp.VM(schedule=finding.schedule, seed=0)
    with pytest.raises(AssertionError, match="an update was lost"):
        replayed.run(lost_update())
    assert view.vm.journal.digest() == replayed.journal.digest()
    fail = [r for r in view.vm.journal.records() if r.kind == "fail"][-1]
    assert fail.data["error"] == finding.outcome == "AssertionError"
    header, travel = view.detail.children
    assert "finding 0: AssertionError" in header.value and finding.schedule in header.value
    assert isinstance(travel, cp.widgets.TimeTravel) and travel is view.travel
    assert travel.journal is view.vm.journal and travel.event == len(view.vm.journal)
    assert travel.state.tasks[1].state == "failed"  # (the root, at the end)
    timeline = travel.timeline
    assert timeline.total == len(view.vm.journal) and timeline.cursor == travel.event
    assert timeline._picture() == cp.widgets.svg(view.vm)
    assert view.chart.selected == 0  # the browser's copy follows


def test_a_deadlock_findings_run_ends_in_the_deadlock():
    view = cp.explore(troubles, preemption_bound=2).show()
    view.select(view.findings[0])
    assert view.selected == 0 and view.findings[0].outcome == "Deadlock"
    assert view.vm.journal.records()[-1].data["reason"] == "vm.run() found a deadlock"
    shown = view.travel
    view.select(-1)
    assert view.vm is None and view.travel is None and view.detail.children == ()
    assert shown.comm is None and shown.timeline.comm is None  # (closed: no comm left open)


def test_a_click_in_the_browser_selects_through_the_synced_trait():
    view = cp.explore(lost_update).show()
    view.chart.set_state({"selected": 0})  # what ipywidgets does with the browser's update
    assert view.selected == 0 and view.vm is not None and len(view.detail.children) == 2


@pytest.mark.parametrize(
    ("pick", "error", "words"),
    [
        (1, ValueError, r"select\(1\): this view lists 1 finding; pick 0 to 0, or -1"),
        (-2, ValueError, "or -1 for none"),
        (True, TypeError, "a finding's index or the cp.Finding"),
        ("0", TypeError, "a finding's index or the cp.Finding"),
        (cp.Finding("KeyError", "", "cp1:0", 0, 1, ""), ValueError, "lists no finding KeyError"),
    ],
)
def test_selecting_what_the_view_does_not_list_says_what_to_pick(pick, error, words):
    view = cp.explore(lost_update).show()
    with pytest.raises(error, match=words):
        view.select(pick)
    assert view.selected == -1


def test_without_the_program_selecting_says_to_pass_it_and_the_view_shows_why():
    report = pickle.loads(pickle.dumps(cp.explore(lost_update)))  # (from another process)
    assert report.program is None
    view = report.show()
    with pytest.raises(ValueError, match=r"does not know its program .* pass it"):
        view.select(0)
    assert "does not know its program" in view.chart.error
    assert "cannot be shown" in view.detail.children[0].value
    ExploreView(report, program=lost_update).select(0)  # given, it runs
    view.program = lost_update
    view.select(0)  # and a failed pick can be retried
    assert view.vm is not None and view.chart.error == ""


def test_a_program_that_no_longer_does_what_was_explored_is_a_nondeterminism_error():
    report = cp.explore(lost_update)

    async def fixed():
        return 2

    with pytest.raises(
        cp.NondeterminismError, match="ran again ended returned 2, not AssertionError"
    ):
        report.failures[0].run(fixed)


def test_bad_arguments_are_named():
    with pytest.raises(TypeError, match=r"shows what cp.explore\(\) returns .* not int"):
        ExploreView(3)
    report = cp.explore(lost_update)
    with pytest.raises(TypeError, match="not `main\\(\\)`"):
        ExploreView(report, program=lost_update())
    with pytest.raises(TypeError, match="not coroutine"):
        report.failures[0].run(lost_update())


# -- report.show(), finding.show(), and a finding as data -----------------------------------------


def test_report_show_is_an_explore_view_and_finding_show_the_findings_run():
    report = cp.explore(lost_update)
    assert isinstance(report.show(), ExploreView) and report.show().report is report
    finding = report.failures[0]
    shown = finding.show()
    assert isinstance(shown, cp.widgets.Timeline)
    assert shown._picture() == cp.widgets.svg(finding.run()) == cp.widgets.svg(finding)
    unpickled = pickle.loads(pickle.dumps(finding))
    with pytest.raises(ValueError, match=r"finding.show\(program=main\)"):
        unpickled.show()
    assert unpickled.show(program=lost_update)._picture() == shown._picture()
    assert cp.widgets.Timeline(finding).total == shown.total  # a finding is a source too


def test_a_finding_compares_prints_and_pickles_as_its_six_fields_only():
    report = cp.explore(lost_update)
    finding = report.failures[0]
    outcome, message, schedule, preemptions, count, replay = finding
    plain = cp.Finding(outcome, message, schedule, preemptions, count, replay)
    assert finding == plain and hash(finding) == hash(plain) and repr(finding) == repr(plain)
    assert "0x" not in repr(finding) and finding[2] == schedule
    again = pickle.loads(pickle.dumps(finding))
    assert again == finding and type(again) is cp.Finding
    assert finding._replace(count=9).run().journal.digest() == finding.run().journal.digest()
    assert pickle.loads(pickle.dumps(report)).failures == report.failures


def test_a_report_of_a_program_that_does_not_pickle_still_pickles():
    async def local():  # (pickle refuses a local function)
        if cp.choose([0, 1]):
            raise KeyError("one")

    report = cp.explore(local)
    with pytest.raises((pickle.PicklingError, AttributeError)):
        pickle.dumps(local)
    again = pickle.loads(pickle.dumps(report))
    assert (again.program, again.failures, again.outcomes) == (
        None,
        report.failures,
        report.outcomes,
    )
    assert report.program is local and report.failures[0].run(local) is not None


def test_the_run_again_uses_the_seed_and_max_steps_explore_used():
    async def seeded():
        await cp.par(cp.sleep(1), cp.sleep(1))
        if cp.choose([0, 1]):
            raise ValueError(f"seeded {cp.rng().randrange(10**9)}")
        for _ in range(200):  # (more steps than max_steps=100 allows)
            await cp.checkpoint()

    report = cp.explore(seeded, seed=7, max_steps=100)
    (value_error,) = [f for f in report.failures if f.outcome == "ValueError"]
    assert value_error.message == value_error.run().journal.records()[-1].data["message"]
    with pytest.raises(ValueError) as seed_0:  # (another seed, another message)
        cp.VM(schedule=value_error.schedule, seed=0).run(seeded())
    assert str(seed_0.value) != value_error.message
    (limit,) = [f for f in report.failures if f.outcome == "StepLimitExceeded"]
    assert isinstance(limit.run(), cp.VM)  # (100,000 steps would not end it so)
    with pytest.raises(cp.NondeterminismError, match="ended returned None"):
        cp.Finding(*limit).run(seeded)  # (a finding without explore's max_steps: the default)


# -- what a notebook stores -----------------------------------------------------------------------


def test_the_mime_bundle_holds_the_picture_the_widget_and_the_report_as_text():
    report = cp.explore(lost_update)
    view = report.show()
    data, _ = view._repr_mimebundle_()
    assert data["text/html"] == picture(report) and "<script" not in data["text/html"]
    assert data["application/vnd.jupyter.widget-view+json"]["model_id"] == view.model_id
    assert data["text/plain"] == repr(report)
    view.select(0)
    for text in (data["text/plain"], repr(view), repr(view.chart)):
        assert "0x" not in text
    assert repr(view) == f"ExploreView({report.summary()}; selected 0)"


def test_the_picture_shows_no_wall_clock_time():
    report = cp.explore(lost_update)
    before = picture(report)
    report.seconds *= 1000
    assert picture(report) == before
    assert view_chart_seconds(report) == round(report.seconds, 3)  # the live view may


def view_chart_seconds(report) -> float:
    return report.show().chart.chart["seconds"]


PICTURE = textwrap.dedent(
    """\
    import sys
    sys.path.insert(0, {tests!r})
    import counterpoint as cp
    from test_widgets_explore import troubles
    from counterpoint.widgets.explore import picture
    sys.stdout.write(picture(cp.explore(troubles, preemption_bound=2)))
    """
)


def test_the_picture_is_byte_identical_in_two_processes():
    code = PICTURE.format(tests=str(TESTS))
    pictures = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
        )
        assert done.returncode == 0, done.stderr
        pictures.append(done.stdout)
    assert pictures[0] == pictures[1] == picture(cp.explore(troubles, preemption_bound=2))
    assert (
        pictures[0].startswith("<svg") and "assumes: Only schedules with at most 2" in pictures[0]
    )


# -- %%explore ------------------------------------------------------------------------------------


def test_explore_magic_shows_the_view_and_binds_the_report():
    from kernels import Kernel

    kernel = Kernel()
    try:
        code = textwrap.dedent(
            """\
            %%explore --name race
            box = {"n": 0}
            async def add():
                seen = box["n"]
                await checkpoint()
                box["n"] = seen + 1
            await par(add(), add())
            assert box["n"] == 2, "an update was lost"
            """
        )
        reply = kernel.execute(code)
        assert reply.status == "ok", reply.traceback_text
        data = reply.result
        assert "application/vnd.jupyter.widget-view+json" in data
        assert data["text/html"].startswith(
            '<svg xmlns="http://www.w3.org/2000/svg" class="counterpoint-explore"'
        )
        assert data["text/plain"].startswith(
            "<ExploreReport dfs: 6 schedules (exhaustive), 1 failure"
        )
        assert kernel.value("view = _\ntype(view).__name__, view.report is race_report") == (
            "ExploreView",
            True,
        )
        assert kernel.value("view.select(0)\nview.vm.journal.records()[-1].data['error']") == (
            "AssertionError"
        )
        shared = code.replace("--name race", "--name counted --shared-only").replace(
            'box = {"n": 0}', 'box = shared({"n": 0}, name="box")'
        )
        reply = kernel.execute(shared)
        assert reply.status == "ok", reply.traceback_text
        assert reply.result["text/plain"].startswith("<ExploreReport dfs: 4 schedules")
        reply = kernel.execute("%%explore --invariant nowhere\nawait checkpoint()")
        assert "--invariant names a function" in reply.evalue
    finally:
        kernel.shutdown()


def test_a_search_without_findings_says_there_is_nothing_to_pick():
    async def fine():
        return 1

    view = cp.explore(fine).show()
    with pytest.raises(ValueError, match="found no failure or deadlock"):
        view.select(0)
    view.select(-1)
    assert view.selected == -1
