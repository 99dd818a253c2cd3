"""``cp.widgets.Timeline``: the windows the kernel computes for the browser, following a
live VM (throttled), the static picture in its output, and how to get one (``vm.show()``,
``journal.show()``, ``%timeline``).  The browser's side is in test_browser_widgets.py."""

from __future__ import annotations

import array
import subprocess
import sys
import time

import pytest

import counterpoint as cp
from counterpoint import lowlevel
from counterpoint.widgets import MAX_WINDOW, Timeline, static
from counterpoint.widgets.timeline import MAX_UPDATES_PER_SECOND


async def kitchen():
    orders = cp.channel(name="orders")

    async def cook(dish, minutes):
        await cp.sleep(minutes)
        await orders.send(dish)

    for dish, minutes in [("soup", 3), ("rice", 1), ("tea", 2)]:
        cp.spawn(cook(dish, minutes), name=f"cook {dish}")
    return [await orders.recv() for _ in range(3)]


def ran(program=kitchen, **options):
    vm = cp.VM(**options)
    vm.run(program())
    return vm


def ask(widget, what="window", **params):
    """Send the widget a request as the browser does; return (reply, buffers)."""
    sent = []
    widget.send = lambda content, buffers=None: sent.append((content, buffers or []))
    widget._on_message(None, {"type": "request", "id": 7, "what": what, **params}, [])
    assert len(sent) == 1 and sent[0][0]["type"] == "reply" and sent[0][0]["id"] == 7
    return sent[0]


def ints(buffer) -> list[int]:
    column = array.array("i")
    column.frombytes(bytes(buffer))
    return column.tolist()


def floats(buffer) -> list[float]:
    column = array.array("d")
    column.frombytes(bytes(buffer))
    return column.tolist()


def test_a_window_holds_one_lane_per_task_and_a_column_entry_per_record():
    vm = ran()
    reply, buffers = ask(Timeline(vm), start=1, count=100)
    records = vm.journal.records()
    assert (reply["start"], reply["stop"], reply["total"]) == (1, len(records) + 1, len(records))
    labels = [lane["label"] for lane in reply["lanes"]]
    assert labels == ["kitchen (1)", "cook soup (2)", "cook rice (3)", "cook tea (4)"]
    lanes, kinds, ticks = ints(buffers[0]), ints(buffers[1]), floats(buffers[2])
    assert [reply["kinds"][k] for k in kinds] == [r.kind for r in records]
    assert ticks == [float(r.tick) for r in records]
    tasks = [reply["lanes"][lane]["task"] for lane in lanes]
    # the host's spawn of the root is drawn on the root's lane
    assert tasks == [r.task or r.data["child"] for r in records]


def test_hover_text_is_the_record_as_the_cli_prints_it_for_every_effect():
    vm = ran()
    reply, _ = ask(Timeline(vm), start=1, count=100)
    for record in vm.journal.records():
        text = reply["texts"].get(str(record.event_id))
        if record.kind == "step":
            assert text is None  # the browser words steps itself: the window stays small
        else:
            assert text == lowlevel.display.record_text(record)


def test_message_arrows_pair_each_send_with_the_recv_that_took_its_value():
    vm = ran()
    _, buffers = ask(Timeline(vm), start=1, count=100)
    pairs = ints(buffers[4])
    expected = [(m.sent, m.received) for m in lowlevel.messages(vm.journal)]
    assert list(zip(pairs[::2], pairs[1::2], strict=True)) == expected
    assert len(expected) == 3


def test_a_window_keeps_the_arrows_that_leave_it_or_come_into_it():
    vm = ran()
    messages = lowlevel.messages(vm.journal)
    first = messages[0]
    cut = (first.sent + first.received) // 2 + 1  # a window that starts between them
    reply, buffers = ask(Timeline(vm), start=cut, count=first.received - cut + 1)
    pairs = ints(buffers[4])
    assert (first.sent, first.received) == (pairs[0], pairs[1])
    assert pairs[0] < reply["start"] <= pairs[1]
    before = Timeline(vm)
    _, buffers = ask(before, start=1, count=cut - 1)
    pairs = ints(buffers[4])
    assert (first.sent, first.received) in list(zip(pairs[::2], pairs[1::2], strict=True))


def test_blocked_and_sleeping_spans_run_from_the_wait_to_the_next_step():
    vm = ran()
    reply, buffers = ask(Timeline(vm), start=1, count=100)
    spans = ints(buffers[3])
    records = {r.event_id: r for r in vm.journal.records()}
    quads = [spans[i : i + 4] for i in range(0, len(spans), 4)]
    assert quads, "the cooks sleep and main blocks"
    for lane, begin, end, sleeping in quads:
        start = records[begin]
        assert start.kind == ("sleep" if sleeping else "block")
        assert reply["lanes"][lane]["task"] == start.task
        assert records[end].task == start.task and records[end].kind == "step"
        assert reply["waits"][str(begin)] == lowlevel.display.data_text(start.data)


def test_failures_are_labelled_and_a_deadlock_is_marked_before_its_cancellations():
    async def stuck():
        lock_a, lock_b = cp.Lock(name="a"), cp.Lock(name="b")

        async def one(first, second):
            async with first:
                await cp.sleep(1)
                async with second:
                    pass

        left = cp.spawn(one(lock_a, lock_b), name="left")
        right = cp.spawn(one(lock_b, lock_a), name="right")
        await left
        await right

    vm = cp.VM()
    with pytest.raises(cp.Deadlock):
        vm.run(stuck())
    reply, _ = ask(Timeline(vm), start=1, count=MAX_WINDOW)
    deadlock = reply["deadlock"]
    assert deadlock is not None and "left" in deadlock["text"] and "right" in deadlock["text"]
    assert vm.journal.records(deadlock["event"], deadlock["event"] + 1)[0].kind == "cancel"

    async def fails():
        raise ValueError("no soup")

    vm = cp.VM()
    with pytest.raises(ValueError):
        vm.run(fails())
    reply, _ = ask(Timeline(vm), start=1, count=10)
    assert "fails: ValueError" in reply["notes"].values()


def test_windows_are_clipped_to_the_journal_and_to_the_most_drawn_at_once():
    vm = ran()
    total = len(vm.journal)
    reply, _ = ask(Timeline(vm), start=total + 50, count=5)
    assert (reply["start"], reply["stop"]) == (total - 4, total + 1)  # the last five
    reply, _ = ask(Timeline(vm), start=-3, count=10**6)
    assert (reply["start"], reply["stop"]) == (1, total + 1)

    async def busy():
        for _ in range(3000):
            await cp.sleep(0)

    big = ran(busy)
    reply, _ = ask(Timeline(big), start=1, count=10**6)
    assert reply["stop"] - reply["start"] == MAX_WINDOW


def test_the_window_last_sent_is_kept_in_shown():
    vm = ran()
    timeline = Timeline(vm)
    ask(timeline, start=3, count=5)
    assert (timeline.shown, timeline.total) == ((3, 8), len(vm.journal))


def test_a_bad_request_is_answered_with_an_error_and_the_widget_goes_on():
    timeline = Timeline(ran())
    reply, _ = ask(timeline, start="one", count=5)
    assert "start and count" in reply["error"] and timeline.error == reply["error"]
    reply, _ = ask(timeline, what="nonsense")
    assert "nonsense" in reply["error"]
    reply, _ = ask(timeline, start=1, count=5)
    assert "error" not in reply and reply["stop"] == 6


def test_an_empty_journal_has_an_empty_window():
    reply, buffers = ask(Timeline(cp.VM()), start=1, count=10)
    assert reply["total"] == 0 and reply["lanes"] == [] and ints(buffers[0]) == []


def test_a_saved_journal_opens_by_path(tmp_path):
    vm = ran()
    path = vm.journal.save(tmp_path / "run.db")
    timeline = Timeline(str(path))
    assert not timeline.live and timeline.total == len(vm.journal)
    reply, _ = ask(timeline, start=1, count=100)
    assert len(reply["lanes"]) == 4


def test_bad_arguments_say_what_is_expected():
    with pytest.raises(TypeError, match=r"cp\.VM, a cp\.Journal, the path"):
        Timeline(42)
    with pytest.raises(ValueError, match=r'"event" .* or "tick"'):
        Timeline(ran(), x="seconds")
    with pytest.raises(ValueError, match=f"between 1 and {MAX_WINDOW}"):
        Timeline(ran(), last=0)
    with pytest.raises(TypeError, match="number of records"):
        Timeline(ran(), last="all")
    with pytest.raises(ValueError, match="journal=False"):
        Timeline(cp.VM(journal=False))


def test_its_output_holds_the_static_picture_and_a_repr_without_addresses():
    vm = ran()
    data, _ = Timeline(vm, last=20)._repr_mimebundle_()
    assert data["text/html"] == static.svg(vm, last=20)
    assert "application/vnd.jupyter.widget-view+json" in data
    assert data["text/plain"] == "Timeline(following a VM, journal of 35 records, x='event')"
    assert "0x" not in repr(Timeline(vm.journal, x="tick"))


def test_the_static_picture_is_the_same_bytes_in_another_process():
    code = (
        "import sys; sys.path.insert(0, 'tests');"
        "from test_widgets_timeline import ran, Timeline;"
        "print(Timeline(ran())._repr_mimebundle_()[0]['text/html'])"
    )
    here = Timeline(ran())._repr_mimebundle_()[0]["text/html"]
    for seed in ("1", "2"):
        there = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed, "PATH": ""},
        ).stdout
        assert there == here + "\n"


def test_vm_show_and_journal_show_return_timelines():
    vm = ran()
    assert isinstance(vm.show(), Timeline) and vm.show().live
    shown = vm.journal.show(x="tick", last=10)
    assert isinstance(shown, Timeline) and not shown.live and shown.x == "tick"


# -- following a live VM ----------------------------------------------------------


class Pushes:
    """Capture a live timeline's pushes (as the comm would send them)."""

    def __init__(self, timeline):
        self.sent = []
        timeline.send = lambda content, buffers=None: self.sent.append(content)

    @property
    def pushes(self):
        return [c for c in self.sent if c["type"] == "push"]


def test_a_live_timeline_pushes_the_newest_records_as_the_vm_runs():
    vm = cp.VM()
    timeline = Timeline(vm)
    seen = Pushes(timeline)
    vm.run(kitchen())
    assert seen.pushes == [], "a short run is not pushed while it runs..."
    timeline.flush()  # (IPython's post_execute: the cell ended)
    assert seen.pushes, "...but when its cell ends"
    last = seen.pushes[-1]
    assert last["stop"] == len(vm.journal) + 1 and timeline.total == len(vm.journal)
    assert timeline.updates == len(seen.pushes)


def test_a_live_timeline_sends_at_most_30_updates_a_second():
    async def busy():
        async def spin():
            for _ in range(20_000):
                await cp.sleep(0)

        await cp.par(spin(), spin())

    vm = cp.VM()
    timeline = Timeline(vm)
    seen = Pushes(timeline)
    began = time.monotonic()
    vm.run(busy())
    elapsed = time.monotonic() - began
    assert len(seen.pushes) <= MAX_UPDATES_PER_SECOND * elapsed + 1
    timeline.flush()  # what a cell's end does: the last records are pushed
    assert seen.pushes[-1]["total"] == len(vm.journal)


def test_a_closed_timeline_stops_following():
    vm = cp.VM()
    timeline = Timeline(vm)
    seen = Pushes(timeline)
    timeline.close()
    vm.run(kitchen())
    assert seen.pushes == []


def late_messages(kernel, seconds=1.0):
    """The iopub messages that come after a cell ended (a trailing push)."""
    found = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            found.append(kernel.client.get_iopub_msg(timeout=0.1))
        except Exception:  # queue.Empty
            continue
    return found


@pytest.mark.slow
def test_the_timeline_magic_follows_the_session_vm_in_a_real_kernel():
    from kernels import Kernel

    kernel = Kernel()
    try:
        shown = kernel.execute("%timeline --last 50")
        assert shown.status == "ok", shown.traceback_text
        data = shown.result
        assert data["text/html"].startswith("<svg") and "widget-view+json" in " ".join(data)
        assert data["text/plain"].startswith("Timeline(following a VM, journal of")
        cell = kernel.execute(
            "async def spin():\n"
            "    for _ in range(2000):\n"
            "        await sleep(0)\n"
            "await par(spin(), spin())"
        )
        assert cell.status == "ok", cell.traceback_text
        contents = [
            m["content"]["data"]["content"]
            for m in cell.outputs + late_messages(kernel)
            if m["msg_type"] == "comm_msg" and m["content"]["data"].get("method") == "custom"
        ]
        pushes = [c for c in contents if c.get("type") == "push"]
        assert pushes, "the running cell's records are pushed to the browser"
        total = kernel.value("len(vm.journal)") - 1  # (less this cell's own cell marker)
        assert pushes[-1]["total"] == total and pushes[-1]["stop"] == total + 1
        bad = kernel.execute("%timeline --last 0")
        assert bad.status == "error" and "between 1 and 4000" in bad.evalue
    finally:
        kernel.shutdown()


def test_a_live_timeline_that_fails_to_push_never_breaks_the_run_it_follows():
    vm = cp.VM()
    timeline = Timeline(vm)

    def broken(content, buffers=None):
        raise OSError("the comm is gone")

    timeline.send = broken
    timeline._last_seen = time.monotonic()  # (no pause: the next records are pushed)
    assert vm.run(kitchen()) == ["rice", "tea", "soup"]
    assert "OSError: the comm is gone" in timeline.error


def test_the_lanes_of_a_live_vm_say_where_its_tasks_are_paused_now():
    vm = cp.VM()

    async def waiter():
        await cp.sleep(100)

    vm.spawn(waiter(), name="waiter")
    vm.step(1)  # it runs to its sleep
    reply, _ = ask(Timeline(vm), start=1, count=100)
    (lane,) = [lane for lane in reply["lanes"] if lane["label"] == "waiter (1)"]
    assert lane["now"].startswith("test_widgets_timeline.py:") and "cp.sleep(100)" in lane["now"]
    reply, _ = ask(Timeline(vm.journal), start=1, count=100)  # a journal: no live tasks
    assert all("now" not in lane for lane in reply["lanes"])


def test_a_deadlock_names_the_tasks_it_left_stuck():
    async def stuck():
        first, second = cp.Lock(name="a"), cp.Lock(name="b")

        async def one(x, y):
            async with x:
                await cp.sleep(1)
                async with y:
                    pass

        await cp.par(one(first, second), one(second, first))

    vm = cp.VM()
    with pytest.raises(cp.Deadlock):
        vm.run(stuck())
    reply, _ = ask(Timeline(vm), start=1, count=MAX_WINDOW)
    cancelled = [r.task for r in vm.journal.records() if r.kind == "cancel"]
    assert reply["deadlock"]["tasks"] == cancelled and len(cancelled) >= 2


def test_a_vm_running_on_another_thread_is_pushed_by_the_loop_the_timeline_was_made_on():
    import asyncio
    import threading

    async def in_a_loop():
        vm = cp.VM()
        timeline = Timeline(vm)  # made while the loop runs (as in the kernel)
        seen = Pushes(timeline)
        worker = threading.Thread(target=vm.run, args=(kitchen(),))
        worker.start()
        while worker.is_alive():
            await asyncio.sleep(0.01)
        for _ in range(100):  # the trailing push: about 1/30 s after the records
            if seen.pushes and seen.pushes[-1]["total"] == len(vm.journal):
                break
            await asyncio.sleep(0.01)
        return seen.pushes, len(vm.journal)

    pushes, total = asyncio.run(in_a_loop())
    assert pushes and pushes[-1]["total"] == total
