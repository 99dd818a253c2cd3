"""``counterpoint.widgets``: pictures of a run.

``cp.widgets`` imports this package on first use.  This first step holds the static
picture only: :func:`svg` draws a journal as a timeline (one lane per task, a mark per
step and effect, an arrow per value passed over a channel) in one ``<svg>`` element
that is byte-identical on every run and machine (see ``docs/widgets.md``).

It builds on the public API and ``counterpoint.lowlevel`` only.
"""

from __future__ import annotations

from .static import MAX_RECORDS, svg
from .timetravel import TimeTravel

__all__ = ["MAX_RECORDS", "TimeTravel", "svg"]
