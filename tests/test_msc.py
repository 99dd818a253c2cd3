"""Message sequence charts from a journal alone: ``lowlevel.messages`` pairs each value
sent over a channel with its receive; ``journal.to_mermaid()`` draws the run."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import counterpoint as cp
from counterpoint import lowlevel


async def pipeline():
    raw = cp.channel(2, name="raw")
    cooked = cp.channel()

    async def producer():
        for i in range(4):
            await raw.send(i)
        raw.close()

    async def worker():
        async for value in raw:
            await cooked.send(value * 10)
        cooked.close()

    cp.spawn(producer(), name="producer")
    cp.spawn(worker(), name="worker")
    return [value async for value in cooked]


def test_every_value_is_paired_with_the_receive_that_took_it():
    vm = cp.VM()
    assert vm.run(pipeline()) == [0, 10, 20, 30]
    found = lowlevel.messages(vm.journal)
    assert sorted((m.channel, m.value) for m in found) == [
        (1, 0),
        (1, 1),
        (1, 2),
        (1, 3),
        (2, 0),
        (2, 10),
        (2, 20),
        (2, 30),
    ]
    assert [m.sent for m in found] == sorted(m.sent for m in found)  # in the order sent
    records = {r.event_id: r for r in vm.journal}
    for m in found:
        sent, got = records[m.sent], records[m.received]
        assert (sent.kind, got.kind) == ("send", "recv")
        assert sent.data == {"channel": m.channel, "value": m.value} == got.data
        assert (sent.task, got.task) == (m.sender, m.receiver)
        assert m.sent < m.received
    assert {m.sender for m in found if m.channel == 1} == {2}
    assert {m.receiver for m in found if m.channel == 2} == {1}


def test_a_value_left_in_a_channel_has_no_receiver_and_a_window_keeps_the_pairs():
    async def main():
        ch = cp.channel(3)
        await ch.send("kept")
        await ch.send("taken")
        await ch.recv()
        await ch.send("left")

    vm = cp.VM()
    vm.run(main())
    found = lowlevel.messages(vm.journal)
    assert [(m.value, m.received is not None) for m in found] == [
        ("kept", True),
        ("taken", False),
        ("left", False),
    ]  # first in, first out: the receive took "kept"
    later = lowlevel.messages(vm.journal, start=found[1].sent)
    assert later == found[1:]


def test_select_and_host_sends_are_messages_too():
    vm = cp.VM()
    ch = vm.channel(1)

    async def main():
        result = await cp.select(ch)
        return result.value

    ch.try_send("from the host")
    assert vm.run(main()) == "from the host"
    (message,) = lowlevel.messages(vm.journal)
    assert (message.sender, message.receiver, message.value) == (0, 1, "from the host")


def test_mermaid_draws_participants_arrows_and_endings():
    vm = cp.VM()
    vm.run(pipeline())
    text = vm.journal.to_mermaid()
    lines = text.splitlines()
    assert lines[0] == "sequenceDiagram"
    assert "    participant t2 as producer (2)" in lines
    assert "    t2->>t3: channel 'raw': 0" in lines
    assert "    t3->>t1: channel 2: 30" in lines
    assert "    Note over t2: closes channel 'raw'" in lines
    assert text.endswith("\n") and "\r" not in text


def test_mermaid_text_has_no_syntax_from_the_program():
    async def main():
        ch = cp.channel(1)

        async def tricky():
            await ch.send("a;b#c\nnext line")

        cp.spawn(tricky(), name="x;y#z")
        return await ch.recv()

    vm = cp.VM()
    vm.run(main())
    text = vm.journal.to_mermaid()
    body = [line for line in text.splitlines() if "->>" in line or "participant" in line]
    assert "    participant t2 as x#59;y#35;z (2)" in body  # Mermaid's entity codes
    assert '    t2->>t1: channel 1: "a#59;b#35;c\\nnext line"' in body  # one line


def test_the_same_run_gives_the_same_chart_in_another_process():
    script = textwrap.dedent(
        """
        import sys
        sys.path.insert(0, sys.argv[1])
        import counterpoint as cp
        from test_msc import pipeline
        vm = cp.VM(policy="random", seed=4)
        vm.run(pipeline())
        sys.stdout.write(vm.journal.to_mermaid())
        """
    )
    here = os.path.dirname(__file__)
    outputs = {
        subprocess.run(
            [sys.executable, "-c", script, here],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2")
    }
    vm = cp.VM(policy="random", seed=4)
    vm.run(pipeline())
    assert outputs == {vm.journal.to_mermaid()}
