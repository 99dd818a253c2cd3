"""The static timeline picture (issue 11, "Seeing"): ``cp.widgets.svg(source)`` draws a
journal as one inline ``<svg>`` element -- a lane per task, a mark per record, an arrow per
value passed over a channel, a deadlock marked -- the same bytes on every run and machine."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import counterpoint as cp
from counterpoint import lowlevel

NS = "{http://www.w3.org/2000/svg}"
TESTS = Path(__file__).resolve().parent


def kitchen(waiter_name: str = "waiter") -> cp.VM:
    """Tasks that pass values (a hand-over and a buffer), sleep, block, fail and leave a
    value nobody takes."""

    async def main():
        orders = cp.channel(name="orders")
        plates = cp.channel(2, name="plates")

        async def cook():
            for dish in ("soup", "pie"):
                await cp.sleep(1)
                await orders.send(dish)
            await plates.send("spare")  # (nobody takes it)

        async def waiter():
            got = [await orders.recv(), await orders.recv()]
            await plates.send(got)
            return got

        async def clumsy():
            await cp.sleep(2)
            raise ValueError("dropped a plate")

        cp.spawn(cook(), name="cook")
        w = cp.spawn(waiter(), name=waiter_name)
        c = cp.spawn(clumsy(), name="clumsy")
        with pytest.raises(ValueError):
            await c
        await w
        return await plates.recv()

    vm = cp.VM()
    assert vm.run(main()) == ["soup", "pie"]
    return vm


def deadlocked() -> cp.VM:
    async def main():
        a, b = cp.Lock(), cp.Lock()

        async def one(first, second):
            async with first:
                await cp.sleep(1)
                async with second:
                    pass

        t = cp.spawn(one(a, b), name="left")
        cp.spawn(one(b, a), name="right")
        await t

    vm = cp.VM()
    with pytest.raises(cp.Deadlock):
        vm.run(main())
    return vm


def parse(picture: str) -> ET.Element:
    root = ET.fromstring(picture)
    assert root.tag == f"{NS}svg"
    return root


def groups(root: ET.Element, cls: str) -> list[ET.Element]:
    return [g for g in root.iter(f"{NS}g") if cls in (g.get("class") or "").split()]


def lane_labels(root: ET.Element) -> list[str]:
    return [g.find(f"{NS}text").text for g in groups(root, "lane")]


def marks(root: ET.Element) -> list[ET.Element]:
    return groups(root, "step") + groups(root, "effect")


def test_the_picture_is_one_svg_element_that_parses_as_xml_and_holds_no_script():
    picture = cp.widgets.svg(kitchen())
    root = parse(picture)
    assert picture.startswith("<svg ") and picture.endswith("</svg>")
    assert not list(root.iter(f"{NS}script"))
    assert "href" not in picture  # (no external reference)
    assert root.find(f"{NS}title").text.startswith("journal of ")


def test_there_is_one_lane_per_task_labelled_with_its_name_and_id():
    vm = kitchen()
    root = parse(cp.widgets.svg(vm))
    spawned = [(r.data["child"], r.data["name"]) for r in vm.journal if r.kind == "spawn"]
    assert lane_labels(root) == [f"{name} ({task})" for task, name in sorted(spawned)]
    assert lane_labels(root) == ["main (1)", "cook (2)", "waiter (3)", "clumsy (4)"]


def test_the_host_has_a_lane_only_when_it_acts():
    async def main():
        await cp.sleep(1)

    vm = cp.VM()
    vm.run(main())
    assert "host" not in lane_labels(parse(cp.widgets.svg(vm)))  # (it only spawned the root)
    lowlevel.mark(vm, lowlevel.CELL, 1, "await main()")
    assert lane_labels(parse(cp.widgets.svg(vm))) == ["host", "main (1)"]


def test_every_record_drawn_has_a_mark_whose_hover_text_is_the_record():
    vm = kitchen()
    root = parse(cp.widgets.svg(vm))
    titles = [g.find(f"{NS}title").text for g in marks(root)]
    assert sorted(titles) == sorted(lowlevel.display.record_text(r) for r in vm.journal)
    effects = {g.get("class").split()[1] for g in groups(root, "effect")}
    assert effects == {r.kind for r in vm.journal if r.kind != "step"}


def test_every_value_passed_over_a_channel_is_an_arrow_from_its_send_to_its_recv():
    vm = kitchen()
    root = parse(cp.widgets.svg(vm))
    paired = [m for m in lowlevel.messages(vm.journal) if m.received is not None]
    arrows = groups(root, "message")
    assert len(arrows) == len(paired) == 3  # (soup, pie, the waiter's list; not "spare")
    assert len(lowlevel.messages(vm.journal)) == 4
    xs = {
        int(g.find(f"{NS}title").text.split()[0][1:]): g
        for g in marks(root)  # event id -> its mark
    }
    for arrow, message in zip(arrows, paired, strict=True):
        line = arrow.find(f"{NS}line")
        sent, received = xs[message.sent], xs[message.received]
        assert line.get("x1") == shape_x(sent) and line.get("x2") == shape_x(received)
        assert f"#{message.sent}" in arrow.find(f"{NS}title").text


def shape_x(mark: ET.Element) -> str:
    circle = mark.find(f"{NS}circle")
    return circle.get("cx")


def test_blocked_and_sleeping_spans_failures_and_cancellations_are_marked():
    picture = cp.widgets.svg(kitchen())
    root = parse(picture)
    assert groups(root, "sleeping") and groups(root, "blocked")
    assert [t.text for g in groups(root, "fail") for t in g.iter(f"{NS}text")][-1] == (
        "fails: ValueError"
    )
    root = parse(cp.widgets.svg(deadlocked()))
    assert len(groups(root, "cancel")) == 3


def test_a_deadlocked_run_shows_the_deadlock_marker_and_others_do_not():
    root = parse(cp.widgets.svg(deadlocked()))
    (marker,) = groups(root, "deadlock")
    assert marker.find(f"{NS}text").text == "deadlock"
    assert "vm.run() found a deadlock" in marker.find(f"{NS}title").text
    assert "ended in a deadlock" in root.find(f"{NS}title").text
    assert groups(parse(cp.widgets.svg(kitchen())), "deadlock") == []


def program_picture(x: str = "event") -> str:
    """(run in another process by the determinism test)"""
    return cp.widgets.svg(kitchen(), x=x)


@pytest.mark.parametrize("x", ["event", "tick"])
def test_the_same_journal_gives_the_same_bytes_twice_and_in_another_process(x):
    picture = program_picture(x)
    assert cp.widgets.svg(kitchen(), x=x) == picture
    code = (
        f"import sys; sys.path.insert(0, {str(TESTS)!r}); "
        f"from test_widgets_svg import program_picture; "
        f"sys.stdout.write(program_picture({x!r}))"
    )
    for seed in ("0", "12345"):
        out = subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        assert out.stdout == picture


def test_x_tick_places_records_by_virtual_time():
    vm = kitchen()
    root = parse(cp.widgets.svg(vm, x="tick"))
    ticks = {}
    for g in marks(root):
        title = g.find(f"{NS}title").text
        tick = int(title.split()[1][2:])
        line = g.find(f"{NS}line")
        x = line.get("x1") if line is not None else shape_x_any(g)
        ticks.setdefault(tick, set()).add(int(x))
    assert all(len(xs) == 1 for xs in ticks.values())  # a tick is one vertical line
    order = [min(ticks[t]) for t in sorted(ticks)]
    assert order == sorted(order) and len(set(order)) == len(order)
    axis = [t.text for g in groups(root, "axis") for t in g.iter(f"{NS}text")]
    assert "t=0" in axis and axis[-1] == "tick"
    assert "virtual time" in root.find(f"{NS}title").text


def shape_x_any(g: ET.Element) -> str:
    text = g.find(f"{NS}text")  # (the letter sits at the mark's centre)
    return text.get("x")


def test_last_draws_only_the_last_records_and_the_caption_says_so():
    vm = kitchen()
    total = len(vm.journal)
    root = parse(cp.widgets.svg(vm, last=10))
    titles = sorted(int(g.find(f"{NS}title").text.split()[0][1:]) for g in marks(root))
    assert titles == list(range(total - 9, total + 1))
    assert f"events #{total - 9}\u2013#{total} shown (the last 10; last=10)" in (
        root.find(f"{NS}title").text
    )


def test_a_long_journal_draws_only_the_last_max_records_by_default():
    async def main():
        for _ in range(400):
            await cp.sleep(1)

    vm = cp.VM()
    vm.run(main())
    total = len(vm.journal)
    assert total > cp.widgets.MAX_RECORDS
    root = parse(cp.widgets.svg(vm))
    assert len(marks(root)) == cp.widgets.MAX_RECORDS
    assert f"the last {cp.widgets.MAX_RECORDS}; last=N draws another count" in (
        root.find(f"{NS}title").text
    )
    assert lane_labels(root) == ["main (1)"]  # (its spawn is before the window)


def test_a_vm_a_journal_and_a_saved_file_give_the_same_picture(tmp_path):
    vm = kitchen()
    path = vm.journal.save(tmp_path / "j.db")
    picture = cp.widgets.svg(vm)
    assert cp.widgets.svg(vm.journal) == picture
    assert cp.widgets.svg(path) == picture
    assert cp.widgets.svg(str(path)) == picture


def test_names_and_values_with_markup_are_escaped():
    name = "<b>&\"chef's"
    root = parse(cp.widgets.svg(kitchen(waiter_name=name)))
    assert f"{name} (3)" in lane_labels(root)


def test_an_empty_journal_is_a_picture_that_says_so():
    root = parse(cp.widgets.svg(cp.VM()))
    assert "no records" in root.find(f"{NS}title").text and lane_labels(root) == []


def test_cp_widgets_is_imported_on_first_use_and_is_not_preloaded():
    assert "widgets" not in cp.__all__
    code = "import sys, counterpoint as cp; print('counterpoint.widgets' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "False"
    assert cp.widgets.svg is __import__("counterpoint.widgets").widgets.svg
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        cp.nothing  # noqa: B018


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"source": 42}, TypeError, "draws a cp.VM, a cp.Journal, the path"),
        ({"source": None}, TypeError, "not NoneType"),
        ({"x": 3}, TypeError, '"event" or "tick"'),
        ({"x": "time"}, ValueError, "x axis is"),
        ({"last": 0}, ValueError, "between 1 and 4000"),
        ({"last": 10**6}, ValueError, "a picture stays small"),
        ({"last": 2.5}, TypeError, "number of records"),
        ({"last": True}, TypeError, "number of records"),
    ],
)
def test_bad_source_x_or_last_raise_a_clear_error(kwargs, error, words):
    vm = kitchen()
    source = kwargs.pop("source", vm)
    with pytest.raises(error, match=words):
        cp.widgets.svg(source, **kwargs)
    assert cp.widgets.svg(vm).startswith("<svg")  # (nothing broken)


def test_a_missing_file_or_a_vm_without_journal_is_refused(tmp_path):
    with pytest.raises(cp.JournalError):
        cp.widgets.svg(tmp_path / "missing.db")
    with pytest.raises(ValueError, match="journal=False"):
        cp.widgets.svg(cp.VM(journal=False))


def test_the_docstring_examples_of_the_widgets_run():
    import doctest

    import counterpoint.widgets.static as static

    assert doctest.testmod(static, optionflags=doctest.ELLIPSIS).failed == 0


def test_the_picture_is_wide_enough_for_its_caption():
    root = parse(cp.widgets.svg(deadlocked()))
    caption = root.find(f"{NS}title").text
    assert int(root.get("width")) >= 7 * len(caption)
    assert root.get("viewBox") == f"0 0 {root.get('width')} {root.get('height')}"
