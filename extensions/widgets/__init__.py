"""``counterpoint.widgets``: pictures of a run.

``cp.widgets`` imports this package on first use.  :class:`Timeline`, :class:`TimeTravel`,
:class:`Scheduler` and ``ExploreView`` show runs in the browser (anywidgets); every
widget's output also holds a static picture, and :func:`svg`
draws a journal as one ``<svg>`` element that is byte-identical on every run and
machine (see ``docs/widgets.md``).

:class:`ExploreView` shows what ``cp.explore`` found (``report.show()``); a finding's
run shows as a :class:`Timeline` (``finding.show()``).

It builds on the public API and ``counterpoint.lowlevel`` only.
"""

from __future__ import annotations

from .explore import ExploreView
from .scheduler import Scheduler
from .static import MAX_LAST, MAX_RECORDS, svg
from .timeline import MAX_WINDOW, Timeline
from .timetravel import TimeTravel

__all__ = [
    "MAX_LAST",
    "MAX_RECORDS",
    "MAX_WINDOW",
    "ExploreView",
    "Scheduler",
    "TimeTravel",
    "Timeline",
    "svg",
]
