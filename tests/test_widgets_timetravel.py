"""TimeTravel (issue 11, "Seeing"): a scrubber over a journal's event ids showing
``journal.state_at(event)`` -- tasks, channel buffers and waiters, lock holders and
queues, semaphores, events, conditions, barriers, workers -- as plain JSON the browser
draws, with ``.event`` and ``.state``, jumps between a task's effects, and a static
picture that is the same bytes in every process."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import counterpoint as cp
from counterpoint import lowlevel
from counterpoint.widgets import TimeTravel
from counterpoint.widgets import timetravel as module

TESTS = Path(__file__).resolve().parent


@cp.worker.task(name="timetravel_widget_square")
def square(n):
    return n * n


async def everyone_waits():
    """Ends with a task waiting on each kind of object (the root returns meanwhile)."""
    mail = cp.channel(1, name="mail")
    empty = cp.channel(name="empty")
    fork = cp.Lock(name="fork")
    door = cp.Semaphore(1, name="door")
    bell = cp.Event(name="bell")
    cv = cp.Condition(name="cv")
    gate = cp.Barrier(3, name="gate")
    await mail.send({"to": "you", "lines": ["dear", "x"]})
    cp.spawn(mail.send("second"), name="poster")
    cp.spawn(empty.recv(), name="reader")
    await fork.acquire()
    cp.spawn(fork.acquire(), name="hungry")
    cp.spawn(fork.acquire(), name="starving")
    await door.acquire()
    cp.spawn(door.acquire(), name="visitor")
    cp.spawn(bell.wait(), name="listener")

    async def sleeper():
        async with cv:
            await cv.wait()

    cp.spawn(sleeper(), name="sleeper")
    cp.spawn(gate.wait(), name="early")
    handle = cp.worker.start("timetravel_widget_square", 7, cost=5)
    await cp.sleep(1)
    return handle


def waiting_vm() -> cp.VM:
    vm = cp.VM()
    vm.run(everyone_waits())
    return vm


def section(view: dict, title: str) -> dict:
    found = [s for s in view["sections"] if s["title"] == title]
    assert len(found) == 1, [s["title"] for s in view["sections"]]
    return found[0]


def rows_by_first_cell(view: dict, title: str) -> dict[str, list[str]]:
    return {row[0]: row for row in section(view, title)["rows"]}


def ids_of(state, name: str) -> int:
    (task,) = [t.id for t in state.tasks.values() if t.name == name]
    return task


# -- the view states state_at's facts --------------------------------------------------------


def test_the_view_shows_each_waiting_task_where_state_at_says_it_waits():
    vm = waiting_vm()
    travel = TimeTravel(vm)
    state = vm.journal.state_at(len(vm.journal))
    view = travel.view
    assert view["event"] == len(vm.journal) and view["total"] == len(vm.journal)
    tasks = {row[1]: row for row in section(view, "tasks")["rows"]}
    assert set(tasks) == {t.name for t in state.tasks.values()}
    for task in state.tasks.values():
        assert tasks[task.name][:4] == [str(task.id), task.name, task.state, task.waiting_on or ""]

    def who(name):
        return f"{name} ({ids_of(state, name)})"

    channels = rows_by_first_cell(view, "channels")
    assert channels["channel 'mail'"][1:] == [
        "1",
        "{'to': 'you', 'lines': ['dear', 'x']}",
        "",
        who("poster"),
        "open",
    ]
    assert channels["channel 'empty'"][1:] == ["0", "", who("reader"), "", "open"]
    locks = rows_by_first_cell(view, "locks")
    assert locks["lock 'fork'"][1:] == [
        who("everyone_waits"),
        f"{who('hungry')}, {who('starving')}",  # in the order they will get it
    ]
    assert rows_by_first_cell(view, "semaphores")["semaphore 'door'"][1:] == ["0", who("visitor")]
    assert rows_by_first_cell(view, "events")["event 'bell'"][1:] == ["not set", who("listener")]
    (condition,) = state.conditions.values()
    assert rows_by_first_cell(view, "conditions")["condition 'cv'"][1:] == [
        f"lock {condition.lock}",
        who("sleeper"),
    ]
    assert rows_by_first_cell(view, "barriers")["barrier 'gate'"][1:] == [
        "3",
        f"1 of 3: {who('early')}",
    ]
    (worker,) = state.workers.values()
    assert rows_by_first_cell(view, "workers")[f"worker {worker.handle}"][1:] == [
        "timetravel_widget_square",
        "pending",
        f"tick {worker.due}",
    ]


def test_at_every_event_the_view_lists_exactly_the_objects_and_waiters_of_state_at():
    vm = waiting_vm()
    journal = vm.journal
    travel = TimeTravel(journal)
    kinds = {
        "channels": ("channel", "channels"),
        "locks": ("lock", "lock_states"),
        "semaphores": ("semaphore", "semaphore_states"),
        "events": ("event", "event_states"),
        "conditions": ("condition", "conditions"),
        "barriers": ("barrier", "barriers"),
    }
    for event in range(len(journal) + 1):
        travel.event = event
        view, state = travel.view, journal.state_at(event)
        assert view["event"] == event and view["tick"] == state.tick
        assert section(view, "tasks")["ids"] == sorted(state.tasks.keys())
        titles = [s["title"] for s in view["sections"]]
        for title, (kind, field) in kinds.items():
            objects = getattr(state, field)
            assert (title in titles) == bool(objects), (event, title)
            if not objects:
                continue
            shown = [row[0] for row in section(view, title)["rows"]]
            assert shown == [lowlevel.label(kind, o.id, o.name) for o in objects.values()]
            for row, thing in zip(section(view, title)["rows"], objects.values(), strict=True):
                waiting = thing.receivers + thing.senders if kind == "channel" else thing.waiters
                named = re.findall(r"\((\d+)\)", " ".join(row[1:]))
                holder = getattr(thing, "holder", None)
                assert [int(n) for n in named] == ([holder] if holder else []) + waiting


def test_the_record_line_names_the_event_and_its_task():
    vm = waiting_vm()
    travel = TimeTravel(vm, event=3)
    record = vm.journal.records(3, 4)[0]
    assert travel.view["record"] == lowlevel.display.record_text(record)
    assert travel.view["actor"] == record.task
    travel.event = 0
    assert travel.view["record"] == "(before the first record)"
    assert travel.view["actor"] is None
    assert [s["title"] for s in travel.view["sections"]] == ["tasks"]
    assert section(travel.view, "tasks")["rows"] == []


def test_the_ready_line_lists_ready_tasks_in_the_order_fifo_runs_them():
    async def main():
        for name in ("a", "b", "c"):
            cp.spawn(cp.checkpoint(), name=name)
        await cp.checkpoint()

    vm = cp.VM()
    vm.run(main())
    journal = vm.journal
    spawns = lowlevel.find(journal, lowlevel.SPAWN)
    travel = TimeTravel(journal, event=spawns[-1] + 1)
    assert journal.state_at(travel.event).ready == [2, 3, 4, 1]  # (main runs: last)
    assert travel.view["ready"] == "a (2), b (3), c (4), main (1)"


def test_channel_contents_of_any_value_are_text_and_the_view_is_plain_json():
    class Opaque:
        def __repr__(self):
            return "Opaque()"

    async def main():
        box = cp.channel(50, name="box")
        await box.send(b"\x00bytes")
        await box.send(Opaque())
        await box.send("line one\nline two")
        await box.send("x" * 500)
        for n in range(30):
            await box.send(n)

    vm = cp.VM()
    vm.run(main())
    travel = TimeTravel(vm)
    assert json.loads(json.dumps(travel.view)) == travel.view
    contents = rows_by_first_cell(travel.view, "channels")["channel 'box'"][2]
    (stored,) = travel.state.channels.values()  # (as the journal keeps them: plain data)
    first = ", ".join(lowlevel.display.value_text(value) for value in stored.contents[:3])
    assert "\n" in first and contents.startswith(first + ", 'xxx")
    assert ", '" + "x" * (module.MAX_TEXT - 2) + "…, 0, 1," in contents  # MAX_TEXT characters
    assert contents.endswith(f"… {34 - module.MAX_ITEMS} more")


def test_a_task_table_too_long_to_ship_keeps_the_live_tasks_and_counts_the_rest():
    async def main():
        gate = cp.Event()
        for n in range(module.MAX_ROWS + 50):
            cp.spawn(cp.checkpoint(), name=f"quick {n}")
        await cp.sleep(1)
        for n in range(5):
            cp.spawn(gate.wait(), name=f"waiter {n}")
        await cp.sleep(1)

    vm = cp.VM()
    vm.run(main())
    tasks = section(TimeTravel(vm).view, "tasks")
    assert len(tasks["rows"]) == module.MAX_ROWS
    assert tasks["hidden"] == 1 + module.MAX_ROWS + 50 + 5 - module.MAX_ROWS
    waiting = [row[1] for row in tasks["rows"] if row[2] == "blocked"]
    assert waiting == [f"waiter {n}" for n in range(5)]
    assert tasks["ids"] == sorted(tasks["ids"])


def test_long_queues_name_their_first_tasks_and_count_the_rest():
    async def main():
        bell = cp.Event(name="bell")
        for n in range(module.MAX_ITEMS + 10):
            cp.spawn(bell.wait(), name=f"w{n}")
        await cp.checkpoint()  # (all of them ready, then all of them waiting)

    vm = cp.VM()
    vm.run(main())
    journal = vm.journal
    waiting = rows_by_first_cell(TimeTravel(vm).view, "events")["event 'bell'"][2]
    names = ", ".join(f"w{n} ({n + 2})" for n in range(module.MAX_ITEMS))
    assert waiting == f"{names}, … 10 more"
    spawns = lowlevel.find(journal, lowlevel.SPAWN)
    ready = TimeTravel(journal, event=spawns[-1] + 1).view["ready"]
    assert ready == f"{names}, … 11 more"  # (and main, running: last in the queue)


def test_source_lines_are_shown_for_a_live_vm_at_its_last_event_only():
    vm = waiting_vm()
    travel = TimeTravel(vm)
    tasks = section(travel.view, "tasks")
    assert tasks["headers"][-1] == "at"
    where = {row[1]: row[4] for row in tasks["rows"]}
    assert re.fullmatch(r"test_widgets_timetravel\.py:\d+  await cv\.wait\(\)", where["sleeper"])
    infos = {info.name: info for info in vm.tasks()}
    assert where["sleeper"] == f"{infos['sleeper'].where}  {infos['sleeper'].code}"
    travel.event = len(vm.journal) - 1  # the journal records no source lines
    assert section(travel.view, "tasks")["headers"] == ["task", "name", "state", "waiting on"]
    assert "at" not in section(TimeTravel(vm.journal).view, "tasks")["headers"]


# -- event and state --------------------------------------------------------------------------


def test_a_small_journal_opens_at_its_last_event_and_event_picks_another():
    vm = waiting_vm()
    travel = TimeTravel(vm)
    assert travel.event == len(vm.journal) == travel.pane.total
    assert TimeTravel(vm, event=0).view["event"] == 0
    assert TimeTravel(vm, event=7).event == 7


def test_a_journal_bigger_than_quick_start_opens_at_event_zero(monkeypatch):
    vm = waiting_vm()
    monkeypatch.setattr(module, "QUICK_START", len(vm.journal) - 1)
    assert TimeTravel(vm).event == 0
    monkeypatch.setattr(module, "QUICK_START", len(vm.journal))
    assert TimeTravel(vm).event == len(vm.journal)


def test_event_accepts_zero_to_the_journal_length_and_refuses_the_rest_by_name():
    vm = waiting_vm()
    travel = TimeTravel(vm, event=5)
    total = len(vm.journal)
    for bad in (-1, total + 1):
        with pytest.raises(ValueError, match=rf"TimeTravel\.event must be 0\.\.{total}.*got {bad}"):
            travel.event = bad
        assert travel.event == 5 and travel.view["event"] == 5
    with pytest.raises(TypeError, match="an event id"):
        travel.event = True
    with pytest.raises(ValueError, match=r"must be 0\.\."):
        TimeTravel(vm, event=total + 1)
    with pytest.raises(TypeError, match=r"TimeTravel\(\) draws a cp\.VM"):
        TimeTravel(42)
    with pytest.raises(TypeError, match=r"timeline=\.\.\.\) is True or False"):
        TimeTravel(vm, timeline="yes")


def test_state_is_the_journal_state_at_the_event():
    vm = waiting_vm()
    travel = TimeTravel(vm, event=12)
    assert isinstance(travel.state, type(vm.journal.state_at(0)))
    assert travel.state.event_id == 12
    assert travel.state.to_dict() == vm.journal.state_at(12).to_dict()
    travel.event = 30
    assert travel.state.to_dict() == vm.journal.state_at(30).to_dict()


def test_a_live_vm_grows_the_slider_when_the_event_next_changes():
    async def nap():
        await cp.sleep(1)

    vm = cp.VM()
    vm.run(nap())
    travel = TimeTravel(vm)
    before = travel.pane.total
    vm.run(nap())
    travel.event = before + 1
    assert travel.pane.total == len(vm.journal) > before
    travel.event = len(vm.journal)
    assert travel.event == travel.pane.total


def test_a_path_opens_the_saved_journal(tmp_path):
    vm = waiting_vm()
    path = vm.journal.save(tmp_path / "run.db")
    travel = TimeTravel(path)
    assert travel.view["total"] == len(vm.journal)
    assert travel.view["sections"] == TimeTravel(vm.journal).view["sections"]


# -- jumping between effects ------------------------------------------------------------------


def effects(journal: cp.Journal, task: int | None) -> list[int]:
    return [
        r.event_id
        for r in journal.records()
        if r.kind != "step" and (task is None or r.task == task)
    ]


@pytest.mark.parametrize("task", [None, 0, 1, 4, 99])
def test_next_and_previous_effect_visit_exactly_the_tasks_non_step_records(task):
    journal = waiting_vm().journal
    travel = TimeTravel(journal, event=0)
    forward = []
    while (event := travel.next_effect(task)) is not None:
        forward.append(event)
        assert travel.event == event
    assert forward == effects(journal, task)
    backward = []
    travel.event = len(journal)
    while (event := travel.previous_effect(task)) is not None:
        backward.append(event)
    expected = [e for e in effects(journal, task) if e < len(journal)]
    assert backward == expected[::-1]
    assert travel.event == (expected[0] if expected else len(journal))


def test_next_effect_in_the_seam_scans_past_chunk_boundaries_both_ways(monkeypatch):
    journal = waiting_vm().journal
    monkeypatch.setattr(lowlevel, "_SCAN", 3)  # many chunks even in a small journal
    rows = [(r.kind != "step", r.task) for r in journal.records()]
    for task in (None, 1, 2, 6, 50):
        for index in range(-2, len(rows) + 3):
            hits = [i for i, (effect, t) in enumerate(rows) if effect and task in (None, t)]
            after = [i for i in hits if i >= index]
            before = [i for i in hits if i <= index]
            assert lowlevel.next_effect(journal, index, task) == (after[0] if after else None)
            assert lowlevel.next_effect(journal, index, task, backward=True) == (
                before[-1] if before else None
            )


def test_effect_jumps_refuse_a_task_that_is_not_an_id():
    travel = TimeTravel(waiting_vm())
    with pytest.raises(TypeError, match="a task id is an int"):
        travel.next_effect("main")
    with pytest.raises(ValueError, match="0 \\(the host\\) or more"):
        travel.previous_effect(-1)


# -- messages from the browser ----------------------------------------------------------------


def talk(travel: TimeTravel, monkeypatch, **request) -> tuple[dict, list]:
    sent = []
    monkeypatch.setattr(
        travel, "send", lambda content, buffers=None: sent.append((content, buffers))
    )
    travel._on_message(None, {"type": "request", "id": 7, **request}, [])
    (reply,) = sent
    assert reply[0]["type"] == "reply" and reply[0]["id"] == 7
    return reply


def test_a_jump_request_moves_event_and_the_view_follows(monkeypatch):
    journal = waiting_vm().journal
    travel = TimeTravel(journal, event=0)
    first = effects(journal, 2)[0]
    reply, buffers = talk(travel.pane, monkeypatch, what="jump", task=2, direction="next")
    assert reply["event"] == first == travel.event == travel.view["event"] and buffers == []
    assert travel.timeline.cursor == first
    reply, _ = talk(travel.pane, monkeypatch, what="jump", task=2, direction="previous")
    assert reply["event"] is None and travel.event == first
    reply, _ = talk(travel.pane, monkeypatch, what="jump", task=None, direction="sideways")
    assert "error" in reply and "sideways" in travel.pane.error


def test_warm_requests_build_the_snapshots_chunk_by_chunk_until_the_end(monkeypatch):
    journal = waiting_vm().journal
    monkeypatch.setattr(module, "WARM_CHUNK", 10)
    travel = TimeTravel(journal, event=0)
    seen = []
    while True:
        reply, _ = talk(travel.pane, monkeypatch, what="warm")
        seen.append(reply["warmed"])
        if reply["warmed"] >= reply["total"]:
            break
    total = len(journal)
    assert seen == [*range(10, total, 10), total]
    assert travel.event == 0 and travel.view["event"] == 0  # (warming shows nothing new)


def test_the_browser_moving_event_gets_the_view_of_that_event():
    vm = waiting_vm()
    travel = TimeTravel(vm, event=0)
    # what ipywidgets does with the browser's {"event": 9} state update
    travel.pane.set_state({"event": 9})
    assert travel.view["event"] == 9 == travel.event == travel.timeline.cursor
    assert travel.view == TimeTravel(vm, event=9).view


def test_the_timeline_cursor_follows_event_and_a_picked_mark_moves_it():
    vm = waiting_vm()
    travel = TimeTravel(vm, event=4)
    assert travel.children == (travel.timeline, travel.pane)
    assert travel.timeline.cursor == 4
    travel.event = 11
    assert travel.timeline.cursor == 11 == travel.pane.event == travel.view["event"]
    travel.timeline.picked = 17  # (the browser: a mark clicked)
    assert travel.event == 17 == travel.timeline.cursor == travel.view["event"]
    alone = TimeTravel(vm, event=4, timeline=False)
    assert alone.timeline is None and alone.children == (alone.pane,)
    alone.event = 5
    assert alone.view["event"] == 5


def test_a_view_that_fails_sets_error_and_keeps_the_last_view(monkeypatch):
    travel = TimeTravel(waiting_vm(), event=4)

    def broken(event):
        raise RuntimeError("no view today")

    monkeypatch.setattr(travel.pane, "_view", broken)
    travel.event = 5
    assert travel.pane.error == "event 5: RuntimeError: no view today"
    assert travel.view["event"] == 4


# -- what a notebook stores -------------------------------------------------------------------


def test_the_mime_bundle_holds_the_static_picture_and_a_repr_without_addresses():
    vm = waiting_vm()
    travel = TimeTravel(vm, event=20)
    data, _ = travel._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in data
    assert (
        data["text/plain"] == repr(travel) == f"TimeTravel(event 20 of {len(vm.journal)}, tick 0)"
    )
    html = data["text/html"]
    assert html.startswith('<div class="cp-timetravel" data-event="20">')
    assert "<script" not in html and not re.search(r"0x[0-9a-f]{6,}", html + repr(travel))
    assert html.count("<svg") == 1  # the timeline up to the event
    assert "channel &#x27;mail&#x27;" in html and "lock &#x27;fork&#x27;" in html
    assert "<svg" not in TimeTravel(vm, event=0)._picture()


def test_the_static_picture_draws_the_timeline_up_to_the_event():
    vm = waiting_vm()
    picture = TimeTravel(vm, event=20)._picture()
    timeline = cp.widgets.svg(lowlevel.prefix(vm.journal, 20))
    assert timeline in picture


PICTURE = """
import sys
sys.path.insert(0, {tests!r})
from test_widgets_timetravel import waiting_vm
from counterpoint.widgets import TimeTravel
vm = waiting_vm()
sys.stdout.write(TimeTravel(vm)._picture() + TimeTravel(vm, event=17)._picture())
"""


@pytest.mark.slow
def test_the_static_picture_is_the_same_bytes_in_two_processes():
    outputs = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-c", PICTURE.format(tests=str(TESTS))],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=True,
        )
        outputs.append(done.stdout)
    assert outputs[0] == outputs[1] and outputs[0].startswith('<div class="cp-timetravel"')


# -- a million records ----------------------------------------------------------------------------


@pytest.mark.slow
def test_a_million_record_journal_opens_at_zero_and_scrubs_anywhere():
    async def ping_pong(rounds):
        ping, pong = cp.channel(1), cp.channel(1)

        async def player():
            for _ in range(rounds):
                await pong.send(await ping.recv() + 1)

        cp.spawn(player(), name="player")
        total = 0
        for n in range(rounds):
            await ping.send(n)
            total += await pong.recv()
        return total

    vm = cp.VM()
    vm.run(ping_pong(111_112))
    journal = vm.journal
    assert len(journal) > 1_000_000 > module.QUICK_START
    travel = TimeTravel(journal)
    assert travel.event == 0 and travel.view["total"] == len(journal)
    for event in (len(journal), 500_000, 1):
        travel.event = event
        assert travel.view["event"] == event
        assert section(travel.view, "tasks")["ids"] == sorted(journal.state_at(event).tasks.keys())
    travel.event = 999_000
    assert travel.next_effect(2) == effects_after(journal, 999_000, 2)


def effects_after(journal: cp.Journal, event: int, task: int) -> int:
    for record in journal.records(event + 1, event + 50):
        if record.kind != "step" and record.task == task:
            return record.event_id
    raise AssertionError("no effect of the task within 50 records")


@pytest.mark.slow
def test_the_timetravel_magic_scrubs_the_session_vm_in_a_real_kernel():
    from kernels import Kernel

    kernel = Kernel()
    try:
        ran = kernel.execute("await par(sleep(1), sleep(2))")
        assert ran.status == "ok", ran.traceback_text
        shown = kernel.execute("%timetravel 3")
        assert shown.status == "ok", shown.traceback_text
        data = shown.result
        assert data["text/plain"].startswith("TimeTravel(") and "<svg" in data["text/html"]
        assert "widget-view+json" in " ".join(data)
        bad = kernel.execute("%timetravel 999999")
        assert bad.status == "error" and "got 999,999" in bad.evalue
    finally:
        kernel.shutdown()
