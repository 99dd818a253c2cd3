"""How records, tasks and tables look: the text of the CLI and the kernel, and the
HTML tables of Jupyter's rich output (``_repr_html_``), without importing Jupyter.

One formatter for every place a learner reads a journal record -- ``counterpoint
run --journal-tail``, ``%journal`` (text and HTML), ``vm.journal`` in a notebook
-- so the same record reads the same everywhere (``send channel=1 value=42``).

Everything is built from deterministic data -- task and object numbers, names,
states and plain values, never a memory address -- so stored notebook outputs
are identical on every run.

The HTML carries its style inline, on every element: JupyterLab's own rule
``:not(.jp-RenderedMarkdown).jp-RenderedHTMLCommon td {text-align: right}`` beats
any class selector a ``<style>`` block could use, and nbviewer and GitHub strip
``<style>`` altogether.  Text columns are left-aligned, columns of whole numbers
right-aligned, and a value's line breaks are real line breaks (``pre-wrap``),
never a literal backslash-n.  See docs/journal.md, "How records are shown".
"""

from __future__ import annotations

import re
from html import escape
from typing import Any

from ._journal import _KIND_MASK, STEP

# -- text ----------------------------------------------------------------------------------

_ESCAPED_NEWLINE = re.compile(r"(?<!\\)((?:\\\\)*)\\n")


def value_text(value: Any) -> str:
    """A plain value as records show it: its ``repr``, except that the line breaks of
    its strings are real line breaks (so a multi-line message reads as one)."""
    # In the repr of plain data a backslash only starts an escape inside a string, so a
    # "\n" preceded by an even number of backslashes is an escaped line break.
    return _ESCAPED_NEWLINE.sub(lambda m: m.group(1) + "\n", repr(value))


def data_text(data: dict[str, Any]) -> str:
    """A record's data as ``key=value`` pairs separated by spaces."""
    return " ".join(f"{key}={value_text(value)}" for key, value in data.items())


def record_text(record: Any) -> str:
    """One record as a line of text: ``#7      t=0     task 2    send      channel=1
    value=42``; continuation lines of a multi-line value are indented under the data."""
    head = f"#{record.event_id:<6} t={record.tick:<5} task {record.task:<4} {record.kind:<9} "
    data = data_text(record.data)
    if not data:
        return head.rstrip()
    return head + data.replace("\n", "\n" + " " * len(head))


def records_text(records: list[Any], caption: str = "") -> str:
    """A caption line, then one :func:`record_text` per record, indented by two."""
    lines = [caption] if caption else []
    lines.extend("  " + record_text(r).replace("\n", "\n  ") for r in records)
    return "\n".join(lines)


# -- a journal's tail ------------------------------------------------------------------------


def last_records(journal: Any, last: int, steps: bool = False) -> tuple[list[Any], int]:
    """The last ``last`` records of ``journal`` and how many ``step`` records among them
    were left out: with ``steps=False`` only the other records count (the effects: what
    was sent, who blocked, woke, slept, finished -- what a learner needs first), and the
    step records between the first of them and the end are hidden."""
    rows = journal._rows
    total = len(rows)
    if last <= 0:
        return [], 0
    if steps:
        return list(journal[max(0, total - last) :]), 0
    shown: list[int] = []
    hidden = 0
    index = total - 1
    while index >= 0 and len(shown) < last:
        if rows[index] & _KIND_MASK == STEP:
            hidden += 1
        else:
            shown.append(index)
        index -= 1
    if shown:  # steps before the first shown record are not "among" the shown ones
        hidden -= sum(1 for i in range(index + 1, shown[-1]) if rows[i] & _KIND_MASK == STEP)
    return [journal[i] for i in reversed(shown)], hidden


def journal_caption(
    total: int, digest: str | None, shown: int, hidden: int, how_to_show_steps: str
) -> str:
    """``journal: 130 records, digest <64 hex>; the last 6 shown, 12 step records among
    them hidden (%journal --all shows them)``: the same words in the CLI and the kernel."""
    text = f"journal: {total} record{'' if total == 1 else 's'}"
    if digest is not None:
        text += f", digest {digest}"
    if hidden:
        text += (
            f"; the last {shown} shown, {hidden} step record{'' if hidden == 1 else 's'} "
            f"among them hidden ({how_to_show_steps} shows them)"
        )
    elif shown < total:
        text += f"; the last {shown} shown"
    return text


# -- HTML ------------------------------------------------------------------------------------

# Cosmetics in a <style> block whose selectors (class + element) beat JupyterLab's
# ``.jp-RenderedHTMLCommon td``; what must be right everywhere -- alignment and line
# breaks -- inline on each cell, where no stylesheet can override it.
_STYLE = (
    "<style>table.counterpoint{border-collapse:collapse;font-size:90%;table-layout:auto}"
    "table.counterpoint th,table.counterpoint td{padding:2px 8px;vertical-align:top;"
    "line-height:1.35;max-width:none;border:none;"
    "border-bottom:1px solid var(--jp-border-color2,#ddd)}"
    "table.counterpoint td{font-family:var(--jp-code-font-family,monospace);"
    "overflow-wrap:break-word}"
    "table.counterpoint caption{font-weight:bold;padding:2px 0}</style>"
)
_LEFT = ' style="text-align:left;white-space:pre-wrap"'
_RIGHT = ' style="text-align:right;white-space:pre-wrap"'


def cell(value: Any) -> str:
    """One table cell's text (escaped): strings as they are, None as a dash, else
    :func:`value_text`."""
    if value is None:
        return "&ndash;"
    return escape(value if isinstance(value, str) else value_text(value))


def _numeric(column: list[Any]) -> bool:
    values = [v for v in column if v is not None]
    return bool(values) and all(type(v) is int for v in values)


def table(headers: list[str], rows: list[list[Any]], caption: str = "") -> str:
    """An HTML table: numbers right, text left, line breaks kept (inline styles)."""
    aligns = [_RIGHT if _numeric([row[i] for row in rows]) else _LEFT for i in range(len(headers))]
    head = "".join(f"<th{a}>{escape(h)}</th>" for h, a in zip(headers, aligns, strict=True))
    body = "".join(
        "<tr>"
        + "".join(f"<td{a}>{cell(v)}</td>" for v, a in zip(row, aligns, strict=True))
        + "</tr>"
        for row in rows
    )
    title = f"<caption{_LEFT}>{escape(caption)}</caption>" if caption else ""
    return (
        f'{_STYLE}<table class="counterpoint">{title}'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    )


def tasks_table(infos: Any, caption: str = "") -> str:
    """``vm.tasks()`` (TaskInfo) or time travel's TaskState rows."""
    infos = list(infos)
    if not infos:
        return f"<p><b>{escape(caption)}</b> no tasks</p>" if caption else "<p>no tasks</p>"
    rows = [[i.id, i.name, i.state, i.waiting_on] for i in infos]
    headers = ["task", "name", "state", "waiting on"]
    if any(getattr(i, "where", None) for i in infos):  # (TaskInfo: the line it is paused at)
        headers.append("at")
        for row, info in zip(rows, infos, strict=True):
            row.append(f"{info.where}  {info.code}" if info.where else None)
    return table(headers, rows, caption)


def records_table(records: list[Any], caption: str = "") -> str:
    """Journal records: event, tick, task, kind and the data as :func:`data_text`."""
    rows = [[r.event_id, r.tick, r.task, r.kind, data_text(r.data)] for r in records]
    return table(["event", "tick", "task", "kind", "data"], rows, caption)
