"""The journal: records, their kinds and data, plain values, the canonical
encoding and the digest (docs/journal.md; docs/design.md "Determinism")."""

from __future__ import annotations

import hashlib
import json
import math
import re
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import counterpoint as cp

FIELDS = ("event_id", "tick", "lane", "task", "kind", "data")
ADDRESS = re.compile(r"0x[0-9a-f]+")


def canonical(record: cp.Record) -> str:
    return json.dumps(record.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def fresh_digest(journal: cp.Journal) -> str:
    text = "".join(line + "\n" for line in journal.iter_lines())
    return hashlib.sha256(text.encode()).hexdigest()


class Point:
    def __init__(self, x, y):
        self.x, self.y = x, y


async def everything():
    """A program that writes a record of every kind."""
    ch = cp.channel()
    buffered = cp.channel(2)
    lock = cp.Lock()
    semaphore = cp.Semaphore(1)
    event = cp.Event()
    condition = cp.Condition()
    barrier = cp.Barrier(1)

    async def producer():
        await ch.send({"k": (1, 2)})
        await cp.sleep(2)
        ch.close()

    async def failing():
        await cp.sleep(1)
        raise ValueError("no good")

    async def holder():
        async with lock:
            await cp.sleep(1)

    async def waiter():
        await event.wait()

    cp.spawn(producer(), name="producer")
    got = await ch.recv()  # block, then recv as the wake-up
    selected = await cp.select(ch)  # block on select; the close wins
    await buffered.send(3)
    await buffered.recv()
    held = cp.spawn(holder(), name="holder")
    await cp.checkpoint()
    async with lock:  # blocks until the holder hands the lock over
        pass
    await held
    async with semaphore:
        pass
    waiting = cp.spawn(waiter(), name="waiter")
    await cp.checkpoint()
    event.set()
    event.clear()
    await waiting
    async with condition:
        condition.notify()
    await barrier.wait()
    victim = cp.spawn(cp.sleep(100), name="victim")
    await cp.checkpoint()
    victim.cancel()
    try:
        async with cp.scope() as s:
            s.spawn(failing(), name="failing")
    except ExceptionGroup:
        pass
    try:
        async with cp.scope(timeout=3):
            await cp.sleep(10)
    except TimeoutError:
        pass
    await buffered.send(Point(1, 2))
    return got, selected.tag.name


ALL_KINDS = {
    "spawn",
    "step",
    "block",
    "wake",
    "send",
    "recv",
    "close",
    "sleep",
    "timer",
    "cancel",
    "done",
    "fail",
    "cancelled",
    "select",
    "acquire",
    "release",
    "set",
    "clear",
    "notify",
    "create",
    "scope",
    "timeout",
}


@pytest.fixture
def full(vm):
    """``vm`` after running :func:`everything`."""
    assert vm.run(everything()) == ({"k": (1, 2)}, "CLOSED")
    return vm


# ---------------------------------------------------------------------------
# Records


def test_every_record_has_the_six_fields(full):
    for record in full.journal:
        assert record._fields == FIELDS
        assert type(record.event_id) is int
        assert type(record.tick) is int
        assert record.lane == 0
        assert type(record.task) is int and record.task >= 0
        assert record.kind in ALL_KINDS
        assert type(record.data) is dict


def test_event_ids_start_at_one_and_have_no_gaps(full):
    ids = [record.event_id for record in full.journal]
    assert ids == list(range(1, len(full.journal) + 1))


def test_event_ids_continue_without_gaps_across_runs(vm):
    async def main():
        await cp.sleep(1)

    vm.run(main())
    first = len(vm.journal)
    vm.run(main())
    assert vm.journal[first].event_id == first + 1
    assert [r.event_id for r in vm.journal] == list(range(1, len(vm.journal) + 1))


def test_len_counts_the_records(full):
    assert len(full.journal) == len(list(full.journal)) > 50


def test_index_zero_is_event_one_and_negative_indexes_count_from_the_end(full):
    journal = full.journal
    records = list(journal)
    assert journal[0].event_id == 1
    assert journal[0] == records[0]
    assert journal[-1] == records[-1]
    assert journal[-1].event_id == len(journal)
    assert journal[-2] == records[-2]
    assert journal[5] == records[5]


def test_slices_of_the_journal_are_lists_of_records(full):
    journal = full.journal
    records = list(journal)
    assert journal[2:5] == records[2:5]
    assert [r.event_id for r in journal[2:5]] == [3, 4, 5]
    assert journal[::7] == records[::7]
    assert journal[-3:] == records[-3:]
    assert journal[10:3] == []


def test_indexing_past_the_end_is_an_index_error(full):
    with pytest.raises(IndexError, match="out of range"):
        full.journal[len(full.journal)]
    with pytest.raises(IndexError):
        full.journal[-len(full.journal) - 1]


def test_indexing_agrees_with_iteration_in_a_long_journal(vm):
    async def main():
        ch = cp.channel(1)
        for i in range(1500):
            await ch.send(i)  # a record with a value
            await cp.checkpoint()  # a bare step only
            await ch.recv()

    vm.run(main())
    records = list(vm.journal)
    assert len(records) > 3 * 1024
    for index in (0, 1023, 1024, 1025, 2047, 2048, 3000, len(records) - 1):
        assert vm.journal[index] == records[index]


def test_to_records_gives_dicts_with_exactly_the_six_fields(full):
    dicts = full.journal.to_records()
    assert len(dicts) == len(full.journal)
    for as_dict, record in zip(dicts, full.journal, strict=True):
        assert type(as_dict) is dict
        assert tuple(as_dict) == FIELDS
        assert as_dict == record._asdict()


def test_a_program_writes_every_documented_kind(full):
    assert {record.kind for record in full.journal} == ALL_KINDS


# ---------------------------------------------------------------------------
# Data shapes, kind by kind


def only(vm: cp.VM, kind: str, **data) -> cp.Record:
    """The one record of ``kind`` whose data contains ``data``."""
    found = [
        r
        for r in vm.journal.filter(kind=kind)
        if all(r.data.get(key) == value for key, value in data.items())
    ]
    assert len(found) == 1, found
    return found[0]


def test_every_record_of_a_kind_has_that_kinds_data_keys(full):
    shapes = {
        "spawn": {"child", "name"},
        "step": set(),
        "wake": {"by"},
        "send": {"channel", "value"},
        "recv": {"channel", "value"},
        "close": {"channel"},
        "sleep": {"ticks", "until"},
        "timer": set(),
        "cancel": {"by", "reason"},
        "done": {"value"},
        "fail": {"error", "message"},
        "cancelled": set(),
        "select": {"index", "tag"},
        "notify": {"condition", "woken"},
        "timeout": {"scope"},
    }
    for record in full.journal:
        if record.kind in shapes:
            assert set(record.data) == shapes[record.kind], record
        elif record.kind in ("acquire", "release"):
            assert set(record.data) in ({"lock"}, {"semaphore"}), record
        elif record.kind in ("set", "clear"):
            assert set(record.data) == {"event"}, record
        elif record.kind == "block":
            assert "op" in record.data and len(record.data) == 2, record
        elif record.kind == "scope":
            assert {"scope", "event"} <= set(record.data), record


def test_spawn_records_the_spawner_the_child_and_its_name(full):
    assert full.journal[0].to_dict() == {
        "event_id": 1,
        "tick": 0,
        "lane": 0,
        "task": 0,
        "kind": "spawn",
        "data": {"child": 1, "name": "everything"},
    }
    producer = only(full, "spawn", name="producer")
    assert producer.task == 1
    assert producer.data == {"child": 2, "name": "producer"}


def test_step_records_name_the_resumed_task(full):
    steps = full.journal.filter(kind="step")
    assert steps[0].task == 1 and steps[0].data == {}
    spawned = {record.data["child"] for record in full.journal.filter(kind="spawn")}
    assert spawned == {1, 2, 3, 4, 5, 6}
    assert {record.task for record in steps} == spawned  # every task ran, nobody else


def test_block_records_say_what_the_task_waits_on(full):
    blocks = [(r.task, r.data) for r in full.journal.filter(kind="block")]
    assert (1, {"op": "recv", "channel": 1}) in blocks
    assert (1, {"op": "select", "cases": ["channel 1"]}) in blocks
    assert (1, {"op": "acquire", "lock": 1}) in blocks
    assert (4, {"op": "wait", "event": 1}) in blocks
    assert (1, {"op": "join", "task": 4}) in blocks
    assert (1, {"op": "exit", "scope": 1}) in blocks


def test_send_and_recv_records_carry_the_channel_and_the_value(full):
    assert only(full, "send", channel=1).data == {"channel": 1, "value": {"k": [1, 2]}}
    assert only(full, "recv", channel=1).task == 1
    assert only(full, "recv", channel=1).data == {"channel": 1, "value": {"k": [1, 2]}}
    assert only(full, "send", value=3).data == {"channel": 2, "value": 3}
    assert only(full, "recv", value=3).data == {"channel": 2, "value": 3}


def test_close_select_and_wake_records(full):
    close = only(full, "close")
    assert (close.task, close.data) == (2, {"channel": 1})
    select = only(full, "select")
    assert (select.task, select.data) == (1, {"index": 0, "tag": "CLOSED"})
    following = full.journal[select.event_id]  # the record after the select
    assert (following.kind, following.task, following.data) == ("wake", 1, {"by": 2})


def test_sleep_and_timer_records(full):
    sleep = only(full, "sleep", until=2)
    assert (sleep.task, sleep.tick, sleep.data) == (2, 0, {"ticks": 2, "until": 2})
    timers = [r for r in full.journal.filter(task=2, kind="timer")]
    assert [(r.tick, r.data) for r in timers] == [(2, {})]


def test_acquire_and_release_records(full):
    acquires = [(r.task, r.data) for r in full.journal.filter(kind="acquire")]
    releases = [(r.task, r.data) for r in full.journal.filter(kind="release")]
    assert acquires[:2] == [(3, {"lock": 1}), (1, {"lock": 1})]
    assert releases[:2] == [(3, {"lock": 1}), (1, {"lock": 1})]
    assert (1, {"semaphore": 1}) in acquires
    assert (1, {"semaphore": 1}) in releases


def test_event_and_condition_records(full):
    assert only(full, "set").data == {"event": 1}
    assert only(full, "clear").data == {"event": 1}
    assert only(full, "notify").data == {"condition": 1, "woken": 0}


def test_create_records_number_objects_per_kind(full):
    creates = [r.data for r in full.journal.filter(kind="create")]
    assert {"channel": 1, "capacity": 0} in creates
    assert {"channel": 2, "capacity": 2} in creates
    assert {"semaphore": 1, "value": 1} in creates
    assert {"barrier": 1, "parties": 1} in creates
    assert {"event": 1} in creates
    assert {"lock": 1} in creates
    assert {"condition": 1, "lock": 2} in creates


def test_cancel_and_cancelled_records(full):
    victim = only(full, "spawn", name="victim").data["child"]
    cancel = full.journal.filter(task=victim, kind="cancel")
    assert [r.data for r in cancel] == [{"by": 1, "reason": "task.cancel() by task 1"}]
    assert [r.data for r in full.journal.filter(task=victim, kind="cancelled")] == [{}]


def test_scope_and_timeout_records(full):
    scopes = [r.data for r in full.journal.filter(kind="scope")]
    assert {"scope": 1, "event": "open"} in scopes
    assert {"scope": 1, "event": "close", "outcome": "failed"} in scopes
    assert {"scope": 2, "event": "open", "timeout": 3} in scopes
    assert {"scope": 2, "event": "close", "outcome": "timed out"} in scopes
    timeout = only(full, "timeout")
    assert (timeout.task, timeout.data) == (1, {"scope": 2})


def test_done_records_carry_the_return_value_as_plain_data(full):
    assert full.journal[-1].kind == "done"
    assert full.journal[-1].task == 1
    assert full.journal[-1].data == {"value": [{"k": [1, 2]}, "CLOSED"]}


def test_a_failed_task_has_a_fail_record_with_error_type_and_message(full):
    failing = only(full, "spawn", name="failing").data["child"]
    (fail,) = full.journal.filter(task=failing, kind="fail")
    assert fail.data == {"error": "ValueError", "message": "no good"}


def test_a_failed_root_has_a_fail_record(vm):
    class Oops(Exception):
        pass

    async def main():
        raise Oops("it's 'quoted'")

    with pytest.raises(Oops):
        vm.run(main())
    assert vm.journal[-1].kind == "fail"
    assert vm.journal[-1].data == {"error": "Oops", "message": "it's 'quoted'"}


# ---------------------------------------------------------------------------
# Time and filters


def test_ticks_in_records_follow_virtual_time(vm):
    async def main():
        out = cp.channel(10)
        for ticks in (3, 0, 2, 5):
            await cp.sleep(ticks)
            await out.send(cp.now())

    vm.run(main())
    ticks = [r.tick for r in vm.journal]
    assert ticks == sorted(ticks)
    assert ticks[-1] == vm.now == 10
    for send in vm.journal.filter(kind="send"):
        assert send.tick == send.data["value"]
    for sleep in vm.journal.filter(kind="sleep"):
        assert sleep.tick + sleep.data["ticks"] == sleep.data["until"]
    assert [r.tick for r in vm.journal.filter(kind="timer")] == [3, 5, 10]


def test_filter_by_task_and_by_kind(full):
    records = list(full.journal)
    assert full.journal.filter(task=2) == [r for r in records if r.task == 2]
    assert full.journal.filter(kind="send") == [r for r in records if r.kind == "send"]
    both = full.journal.filter(task=1, kind="step")
    assert both == [r for r in records if r.task == 1 and r.kind == "step"]
    assert both != []
    assert full.journal.filter() == records


def test_filter_with_an_unknown_kind_is_a_value_error(full):
    with pytest.raises(ValueError, match="unknown record kind 'stepp'") as info:
        full.journal.filter(kind="stepp")
    assert "step" in str(info.value)


# ---------------------------------------------------------------------------
# Canonical encoding and digest


def test_digest_is_64_hex_characters(full):
    assert re.fullmatch(r"[0-9a-f]{64}", full.journal.digest())


def test_digest_is_sha256_of_the_canonical_lines(full):
    assert full.journal.digest() == fresh_digest(full.journal)


def test_each_line_is_the_sorted_compact_json_of_its_record(full):
    lines = list(full.journal.iter_lines())
    assert len(lines) == len(full.journal)
    for line, record in zip(lines, full.journal, strict=True):
        assert line == canonical(record)
        assert line.isascii()


def test_different_programs_have_different_digests(vm, full):
    other = cp.VM()

    async def main():
        await cp.sleep(1)

    other.run(main())
    assert other.journal.digest() != full.journal.digest()


def test_digest_is_incremental(vm):
    async def part(n):
        ch = cp.channel(1)
        await ch.send(["part", n])
        await cp.sleep(n)
        return await ch.recv()

    vm.run(part(1))
    first = vm.journal.digest()
    assert first == fresh_digest(vm.journal)
    vm.run(part(2))
    second = vm.journal.digest()
    assert second != first
    assert second == fresh_digest(vm.journal)
    assert vm.journal.digest() == second  # asking again changes nothing

    in_one_go = cp.VM()
    in_one_go.run(part(1))
    in_one_go.run(part(2))
    assert in_one_go.journal.digest() == second


def test_digest_of_a_journal_longer_than_one_hashing_chunk(vm):
    async def main():
        for _ in range(9000):
            await cp.checkpoint()

    vm.run(main())
    assert len(vm.journal) > 8192
    assert vm.journal.digest() == fresh_digest(vm.journal)


def test_digest_of_an_empty_journal_is_sha256_of_nothing(vm):
    assert vm.journal.digest() == hashlib.sha256(b"").hexdigest()


plain_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**200), max_value=2**200)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()
    | st.text(alphabet=st.sampled_from("\"'\\/\n\t\x00é☃𝄞\u2028<>&ab"), max_size=8),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=5), children, max_size=5)
    ),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(values=st.lists(plain_values, min_size=1, max_size=4))
def test_canonical_lines_and_digest_hold_for_any_plain_value(values):
    vm = cp.VM()

    async def main():
        ch = cp.channel(len(values))
        for value in values:
            await ch.send(value)
        return [await ch.recv() for _ in values]

    vm.run(main())
    for line, record in zip(vm.journal.iter_lines(), vm.journal, strict=True):
        assert line == canonical(record)
    assert vm.journal.digest() == fresh_digest(vm.journal)
    vm.journal._check()


@pytest.mark.parametrize(
    "value",
    [2**64, -(2**100), 0, -1, 'quote " backslash \\ newline \n', "é ☃ 𝄞", "\u2028", [], {}],
    ids=repr,
)
def test_canonical_line_of_tricky_values(vm, value):
    async def main():
        ch = cp.channel(1)
        await ch.send(value)
        return await ch.recv()

    assert vm.run(main()) == value
    (send,) = vm.journal.filter(kind="send")
    assert send.data["value"] == value
    lines = list(vm.journal.iter_lines())
    assert lines[send.event_id - 1] == canonical(send)
    assert vm.journal.digest() == fresh_digest(vm.journal)


def test_digest_encodes_integers_of_any_length_allowed_whatever_the_process_int_limit(vm):
    huge = 10**4299 + 7  # 4,300 digits: the longest a journal holds (docs/journal.md)

    async def main():
        ch = cp.channel(1)
        await ch.send(huge)
        await ch.recv()
        await ch.send([-huge])
        await ch.recv()

    vm.run(main())
    send_line = next(line for line in vm.journal.iter_lines() if '"kind":"send"' in line)
    assert '"value":1' + "0" * 4298 + "7}" in send_line  # every digit, written in full
    default = vm.journal.digest()
    limit = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(640)  # the strictest a process may choose
    try:
        strict = cp.VM()
        strict.run(main())
        assert strict.journal.digest() == default
    finally:
        sys.set_int_max_str_digits(limit)


# ---------------------------------------------------------------------------
# Recording off


def test_journal_false_records_nothing_but_the_program_runs():
    vm = cp.VM(journal=False)

    async def main():
        ch = cp.channel(1)
        await ch.send("x")
        await cp.sleep(3)
        return await ch.recv(), cp.now()

    assert vm.run(main()) == ("x", 3)
    assert len(vm.journal) == 0
    assert list(vm.journal) == []
    assert vm.journal.to_records() == []
    assert vm.journal.filter(kind="step") == []


def test_digest_without_a_journal_is_a_runtime_error_with_advice():
    vm = cp.VM(journal=False)

    async def main():
        await cp.sleep(1)

    vm.run(main())
    with pytest.raises(RuntimeError, match="journal=False") as info:
        vm.journal.digest()
    assert "journal=None" in str(info.value)


# ---------------------------------------------------------------------------
# Plain data in records


def sent(vm: cp.VM, value):
    """Send ``value`` over a channel in ``vm``; return what the send record holds."""

    async def main():
        ch = cp.channel(1)
        await ch.send(value)
        await ch.recv()

    vm.run(main())
    return vm.journal.filter(kind="send")[-1].data["value"]


def test_tuples_become_lists(vm):
    assert sent(vm, (1, ("a", None), [2.5])) == [1, ["a", None], [2.5]]


def test_dict_keys_become_strings(vm):
    assert sent(vm, {1: "one", "two": 2, None: 0}) == {"1": "one", "two": 2, "null": 0}


def test_objects_become_their_type_name(vm):
    assert sent(vm, Point(1, 2)) == "<Point>"
    assert sent(vm, [Point(0, 0), b"xyz"]) == ["<Point>", "<bytes of 3>"]


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf], ids=repr)
def test_non_finite_floats_become_strings(vm, value):
    recorded = sent(vm, value)
    assert type(recorded) is str
    assert recorded == f"<float {value!r}>"


def test_finite_floats_stay_floats(vm):
    assert sent(vm, [1.5, -0.0, 1e300]) == [1.5, -0.0, 1e300]


def test_int_enums_become_their_number(vm):
    assert sent(vm, cp.SendStatus.SENT) == 1
    assert type(sent(vm, cp.SendStatus.FULL)) is int


def test_large_containers_become_a_summary(vm):
    assert sent(vm, list(range(101))) == "<list of 101>"
    assert sent(vm, list(range(100))) == list(range(100))


def test_a_value_mutated_after_sending_does_not_change_the_journal(vm):
    async def main():
        ch = cp.channel(1)
        value = [1, 2]
        await ch.send(value)
        value.append(3)
        return await ch.recv()

    assert vm.run(main()) == [1, 2, 3]
    assert vm.journal.filter(kind="send")[0].data["value"] == [1, 2]
    # the recv record copies the value as it left the channel
    assert vm.journal.filter(kind="recv")[0].data["value"] == [1, 2, 3]


def test_no_record_contains_a_memory_address(vm):
    class Opaque:
        pass

    async def returns_object():
        return Opaque()

    async def main():
        ch = cp.channel(10)
        values = (Opaque(), object(), lambda: 1, print, main, ch, cp.current_task(), {1: Opaque()})
        for value in values:
            await ch.send(value)
        await cp.spawn(returns_object())
        return Opaque()

    vm.run(main())
    assert repr(Opaque()).find("0x") >= 0  # the reprs would have leaked one
    for line in vm.journal.iter_lines():
        assert not ADDRESS.search(line), line
    assert vm.journal.filter(kind="done")[-1].data == {"value": f"<{Opaque.__qualname__}>"}
