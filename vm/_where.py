"""Where a task is paused: ``TaskInfo.where`` ("file.py:LINE") and ``TaskInfo.code``.

The place is the innermost frame of the task's await chain that is not Counterpoint's
own.  Only the file's base name is kept, so the answer is the same on every machine;
a source namer (the IPython extension registers one) may name a file differently, as
``"Cell In[3]"`` for a notebook cell.
"""

from __future__ import annotations

import linecache
import os
from collections.abc import Callable
from types import CoroutineType, FrameType
from typing import Any

_namers: list[Callable[[str], str | None]] = []


def add_source_namer(namer: Callable[[str], str | None]) -> Callable[[], None]:
    """Let ``namer(filename)`` name source files in ``TaskInfo.where`` (None: not
    mine).  Returns a function that removes it."""
    _namers.append(namer)

    def remove() -> None:
        if namer in _namers:
            _namers.remove(namer)

    return remove


def source_name(filename: str) -> str:
    """How ``where`` spells a file: a namer's name, else its base name."""
    for namer in reversed(_namers):
        name = namer(filename)
        if name:
            return name
    return os.path.basename(filename) or filename


def paused_frame(coro: Any) -> FrameType | None:
    """The innermost frame of ``coro``'s await chain in user code (None if the
    coroutine has not started, has ended, or is all Counterpoint's)."""
    from ._vm import is_internal

    if type(coro) is CoroutineType and not (coro.cr_suspended or coro.cr_running):
        return None  # not started, or closed
    found = None
    link = coro
    for _ in range(1000):  # (an await chain is never that deep; a cycle would be)
        if link is None:
            break
        frame = getattr(link, "cr_frame", None)
        if frame is None:
            frame = getattr(link, "gi_frame", None)
        if frame is not None and not is_internal(frame.f_code.co_filename):
            found = frame
        nxt = getattr(link, "cr_await", None)
        link = nxt if nxt is not None else getattr(link, "gi_yieldfrom", None)
    return found


def where_and_code(coro: Any) -> tuple[str | None, str | None]:
    """(``"file.py:LINE"``, the stripped source line) where ``coro`` is paused."""
    frame = paused_frame(coro)
    if frame is None:
        return None, None
    filename, line = frame.f_code.co_filename, frame.f_lineno
    code = linecache.getline(filename, line, frame.f_globals).strip()
    return f"{source_name(filename)}:{line}", code or None


def function_source(coro: Any) -> tuple[str, str, int, list[str], int] | None:
    """(where, function name, first line number, source lines, current line) of the
    function ``coro`` is paused in (its innermost user frame), or of ``coro``'s own
    function if it has not started (the current line: its ``def``); None if it has
    ended or runs only Counterpoint's code.  Lines come from ``linecache`` (which
    IPython fills with cells); a function whose source cannot be read gives its one
    current line."""
    from ._vm import is_internal

    frame = paused_frame(coro)
    if frame is None:
        frame = getattr(coro, "cr_frame", None)  # not started (a closed one has no frame)
        if frame is None or is_internal(frame.f_code.co_filename):
            return None
    line = frame.f_lineno if paused_frame(coro) is not None else frame.f_code.co_firstlineno
    return frame_source(frame, line)


def frame_source(frame: FrameType, line: int) -> tuple[str, str, int, list[str], int]:
    """(where, function name, first line number, source lines, ``line``) of the function
    ``frame`` runs, at ``line`` (see :func:`function_source`)."""
    import inspect

    code = frame.f_code
    try:
        lines, first = inspect.getsourcelines(code)
    except (OSError, TypeError):
        lines, first = [], 0
    if not lines or not first <= line < first + len(lines):
        text = linecache.getline(code.co_filename, line, frame.f_globals)
        lines, first = [text], line
    where = f"{source_name(code.co_filename)}:{line}"
    return where, code.co_qualname, first, [text.rstrip("\r\n") for text in lines], line
