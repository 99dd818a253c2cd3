"""How records and tables are shown: one formatter for the CLI and the kernel, escaping,
line breaks, alignment that survives any stylesheet, and what ``%journal`` shows first
(the browser's view of the same tables is in test_browser_tables.py)."""

from __future__ import annotations

import re
import subprocess
import sys

import counterpoint as cp
from counterpoint._display import data_text, last_records, record_text, table, value_text
from counterpoint.ipython.magics import JournalTail

PROGRAM = """\
import counterpoint as cp

async def main():
    orders = cp.channel(1)

    async def waiter():
        await orders.send("soup,\\nno salt")
        await orders.send({"dish": "tea", "note": "a\\\\nb <hot> & 'sweet'"})

    cp.spawn(waiter(), name="waiter")
    first = await orders.recv()
    await cp.sleep(2)
    return first, await orders.recv()
"""


def run_program():
    namespace: dict = {}
    exec(PROGRAM, namespace)
    vm = cp.VM()
    vm.run(namespace["main"]())
    return vm


def test_the_cli_and_the_kernel_print_the_same_text_for_the_same_record(tmp_path):
    program = tmp_path / "orders.py"
    program.write_text(PROGRAM)
    done = subprocess.run(
        [sys.executable, "-m", "counterpoint", "run", program, "--journal-tail", "100"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    printed = done.stdout.split("journal: ", 2)[2].splitlines()[1:]  # after the caption
    kernel = repr(JournalTail(run_program().journal, 100)).splitlines()[1:]
    assert printed == kernel
    assert "  #7      t=0     task 2    send      channel=1 value='soup," in printed


def test_a_records_data_reads_as_key_value_pairs_with_python_values():
    vm = run_program()
    sends = [r for r in vm.journal if r.kind == "send"]
    assert data_text(sends[1].data) == (
        """channel=1 value={'dish': 'tea', 'note': "a\\\\nb <hot> & 'sweet'"}"""
    )
    assert record_text(sends[1]).startswith("#12     t=0     task 2    send      channel=1 ")


def test_a_line_break_in_a_value_is_a_real_line_break_and_a_backslash_n_stays_escaped():
    assert value_text("two\nlines") == "'two\nlines'"
    assert value_text(["a\nb", "c"]) == "['a\nb', 'c']"
    assert value_text("a\\nb") == "'a\\\\nb'"  # a backslash then n: not a line break
    assert value_text("a\\\nb") == "'a\\\\\nb'"  # a backslash, then a line break


def test_continuation_lines_of_a_multi_line_value_are_indented_under_the_data():
    record = next(r for r in run_program().journal if r.kind == "send")
    first, second = record_text(record).splitlines()
    assert first.endswith("value='soup,")
    assert second == " " * first.index("channel=") + "no salt'"


def test_html_cells_are_escaped():
    html = table(["name", "value"], [["<b>", "a & 'b'"], [None, ["<i>"]]])
    assert "<b>" not in html.replace("<b>name", "") and "&lt;b&gt;" in html
    assert "a &amp; &#x27;b&#x27;" in html and "[&#x27;&lt;i&gt;&#x27;]" in html
    assert "&ndash;" in html


def test_every_table_cell_carries_its_alignment_and_line_breaks_inline():
    """Inline styles: no stylesheet (JupyterLab's right-aligning one) overrides them,
    and nbviewer and GitHub, which drop <style> blocks, keep them."""
    html = table(["task", "name", "waiting on"], [[1, "main", None], [12, "cook", "to\nsleep"]])
    cells = re.findall(r"<(t[hd])( style=\"[^\"]*\")?>([^<]*)<", html)
    assert len(cells) == 9
    for index, (_, style, _) in enumerate(cells):
        align = "right" if index % 3 == 0 else "left"  # the task numbers go right
        assert f"text-align:{align}" in style and "white-space:pre-wrap" in style
    assert "to\nsleep" in html


def test_the_journal_tail_leaves_out_step_records_and_counts_those_it_hid():
    journal = run_program().journal
    kinds = [r.kind for r in journal]
    records, hidden = last_records(journal, 5)
    assert [r.kind for r in records] == [k for k in kinds if k != "step"][-5:]
    first = records[0].event_id - 1
    assert hidden == kinds[first:].count("step") > 0
    everything, none_hidden = last_records(journal, 5, steps=True)
    assert [r.kind for r in everything] == kinds[-5:] and none_hidden == 0
    assert last_records(journal, 0) == ([], 0)
    effects = [k for k in kinds if k != "step"]
    records, hidden = last_records(journal, 1000)
    assert len(records) == len(effects)
    assert hidden == kinds[kinds.index(effects[0]) :].count("step")


def test_journal_magic_caption_says_how_many_steps_it_hid_and_how_to_show_them():
    journal = run_program().journal
    tail = JournalTail(journal, 5)
    hidden = last_records(journal, 5)[1]
    assert tail.caption == (
        f"journal: {len(journal)} records, digest {journal.digest()}; the last 5 shown, "
        f"{hidden} step records among them hidden (%journal --all shows them)"
    )
    assert tail.caption in repr(tail) and "step" not in repr(tail).split("\n", 1)[1]
    everything = JournalTail(journal, 5, steps=True)
    assert everything.caption.endswith("; the last 5 shown") and "step" in repr(everything)


def test_journal_magic_shows_the_digest_as_journal_digest_returns_it():
    journal = run_program().journal
    assert f"digest {journal.digest()}" in JournalTail(journal, 3)._repr_html_()
    assert len(journal.digest()) == 64
