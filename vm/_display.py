"""HTML tables for Jupyter's rich output (``_repr_html_``), without importing Jupyter.

Every table is built from the same deterministic data as the objects' ``repr``:
task and object numbers, names, states and plain values -- never a memory
address -- so a notebook's stored outputs are identical on every run.
"""

from __future__ import annotations

from html import escape
from typing import Any

_STYLE = (
    "<style>table.counterpoint{border-collapse:collapse;font-size:90%}"
    "table.counterpoint th,table.counterpoint td{padding:2px 8px;text-align:left;"
    "border-bottom:1px solid #ddd;font-family:monospace}"
    "table.counterpoint caption{text-align:left;font-weight:bold}</style>"
)


def cell(value: Any) -> str:
    """One table cell's text: strings as they are, None as a dash, else repr."""
    if value is None:
        return "&ndash;"
    return escape(value if isinstance(value, str) else repr(value))


def table(headers: list[str], rows: list[list[Any]], caption: str = "") -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    title = f"<caption>{escape(caption)}</caption>" if caption else ""
    return f'{_STYLE}<table class="counterpoint">{title}<tr>{head}</tr>{body}</table>'


def tasks_table(infos: list[Any], caption: str = "") -> str:
    """``vm.tasks()`` (TaskInfo) or time travel's TaskState rows."""
    if not infos:
        return f"<p><b>{escape(caption)}</b> no tasks</p>" if caption else "<p>no tasks</p>"
    rows = [[i.id, i.name, i.state, i.waiting_on] for i in infos]
    return table(["task", "name", "state", "waiting on"], rows, caption)


def records_table(records: list[Any], caption: str = "") -> str:
    rows = [[r.event_id, r.tick, r.task, r.kind, _data_text(r.data)] for r in records]
    return table(["event", "tick", "task", "kind", "data"], rows, caption)


def _data_text(data: dict[str, Any]) -> str:
    return ", ".join(f"{key}={value!r}" for key, value in data.items())
