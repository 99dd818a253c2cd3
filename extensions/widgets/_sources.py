"""What a widget may show: a VM, a journal, a saved journal's path, an exploration
finding (its run, again)."""

from __future__ import annotations

import os
from typing import Any

import counterpoint as cp


def journal_of(source: Any, who: str) -> cp.Journal:
    """The journal ``source`` stands for; ``who`` names the caller in messages
    (``"widgets.svg()"``, ``"Timeline()"``)."""
    if isinstance(source, cp.VM):
        journal = source.journal
        if not journal.enabled:
            raise ValueError(
                f"{who}: this VM was created with journal=False, so there is no "
                "journal to draw; create it with journal=None (the default)"
            )
        return journal
    if isinstance(source, cp.Journal):
        return source
    if isinstance(source, str | os.PathLike):
        return cp.Journal.load(source)
    if isinstance(source, cp.Finding):  # its program run again under its schedule
        return source.run().journal
    raise TypeError(
        f"{who} draws a cp.VM, a cp.Journal, the path of a saved journal "
        f"(str or os.PathLike) or a cp.Finding, not {type(source).__name__}"
    )
