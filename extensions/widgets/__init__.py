"""``counterpoint.widgets``: pictures of a run.

``cp.widgets`` imports this package on first use.  This first step holds the static
picture only: :func:`svg` draws a journal as a timeline (one lane per task, a mark per
step and effect, an arrow per value passed over a channel) in one ``<svg>`` element
that is byte-identical on every run and machine (see ``docs/widgets.md``).

:class:`ExploreView` shows what ``cp.explore`` found (``report.show()``);
:func:`finding_timeline` a finding's run (``finding.show()``).

It builds on the public API and ``counterpoint.lowlevel`` only.
"""

from __future__ import annotations

from .explore import ExploreView, finding_timeline
from .static import MAX_RECORDS, svg

__all__ = ["MAX_RECORDS", "ExploreView", "finding_timeline", "svg"]
