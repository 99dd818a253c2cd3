"""``ExploreView(report)``: what ``cp.explore`` found, as a picture.

An outcome bar chart (one bar per distinct outcome, its count written next to it) and
the findings grouped by outcome (preemptions, schedules, message, schedule, replay line).
Picking a finding -- a click in the browser, or ``view.select(i)`` -- runs the explored
program again under the finding's schedule (``finding.run()``) and shows that run below
the chart: its :class:`Timeline` and :class:`TimeTravel`.  ``report.show()`` returns
this view; ``finding.show()`` the run's :class:`Timeline`;
``%%explore`` shows it.  See ``docs/widgets.md``, "ExploreView".

The kernel computes every text, order and number; ``js/explore.js`` only draws them.
"""

from __future__ import annotations

import inspect
import textwrap
from html import escape
from typing import Any, NamedTuple

import ipywidgets
import traitlets

import counterpoint as cp

from ._base import StaticPicture, Widget, bundle
from .static import BLUE, GREY, VERMILLION, _esc, _short
from .timetravel import TimeTravel

MAX_BARS = 40  # outcomes drawn as bars; the rest are counted in one line
MAX_FINDINGS = 40  # findings listed in the static picture (the live view pages on)
WINDOW = 100  # findings the browser asks for at once (at most MAX_WINDOW)
MAX_WINDOW = 1000

# kind of outcome -> (bar colour, word): colour is never alone, the word says it too
KINDS = {
    "ok": (BLUE, "ok"),
    "failure": (VERMILLION, "failure"),
    "deadlock": (VERMILLION, "deadlock"),
    "pruned": (GREY, "pruned"),
}

_CHAR = 7  # a monospace character at font-size 11, about
_PAD = 8
_ROW = 18
_BAR = 320  # the longest bar, px
_LABEL = 36  # characters of an outcome's label
_TEXT = 120  # characters of a line of the findings list
_WRAP = 110  # characters of an assumption's line


class Bar(NamedTuple):
    """One bar of the chart: ``label`` as the reader knows the outcome (``returns 2``,
    ``raises ValueError``, ``deadlock``), its ``kind`` (``ok``, ``failure``,
    ``deadlock``, ``pruned``) and ``count`` (schedules that ended so)."""

    label: str
    kind: str
    count: int


class Group(NamedTuple):
    """The findings of one outcome: the bar's ``label`` and ``kind``, and ``first``,
    ``stop``: their indices in :attr:`ExploreView.findings`."""

    label: str
    kind: str
    first: int
    stop: int


def _check_report(report: Any, who: str) -> cp.ExploreReport:
    if not isinstance(report, cp.ExploreReport):
        raise TypeError(
            f"{who} shows what cp.explore() returns (a cp.ExploreReport), not "
            f"{type(report).__name__}; e.g. {who.split('(')[0]}(cp.explore(main))"
        )
    return report


def _kinds(report: cp.ExploreReport) -> dict[str, str]:
    """Outcome -> ``failure`` or ``deadlock`` for the outcomes of findings."""
    kinds = {finding.outcome: "failure" for finding in report.failures}
    kinds.update((finding.outcome, "deadlock") for finding in report.deadlocks)
    return kinds


def _label(outcome: Any, kind: str) -> str:
    if kind == "deadlock":
        return "deadlock"
    if kind == "failure":
        return f"raises {outcome}"
    return f"returns {outcome!r}"


def bars(report: cp.ExploreReport) -> list[Bar]:
    """The chart's bars, one per outcome: most schedules first, then by label (so the
    order is the same in every process); the pruned runs last, if any."""
    kinds = _kinds(report)
    found = []
    for outcome, n in report.outcomes.items():
        kind = kinds.get(outcome, "ok") if isinstance(outcome, str) else "ok"
        found.append(Bar(_label(outcome, kind), kind, n))
    found.sort(key=lambda bar: (-bar.count, bar.label))
    if report.pruned:
        found.append(Bar("pruned by cp.require()", "pruned", report.pruned))
    return found


def grouped(report: cp.ExploreReport) -> tuple[list[cp.Finding], list[Group]]:
    """The findings in the order shown: grouped by outcome in the chart's order, the
    fewest preemptions first within a group (then as the report lists them)."""
    kinds = _kinds(report)
    by_label: dict[str, list[cp.Finding]] = {}
    for finding in report.deadlocks + report.failures:
        label = _label(finding.outcome, kinds[finding.outcome])
        by_label.setdefault(label, []).append(finding)
    findings: list[cp.Finding] = []
    groups: list[Group] = []
    for bar in bars(report):
        members = by_label.pop(bar.label, None)
        if not members:
            continue
        members.sort(key=lambda finding: finding.preemptions)  # (stable: report order)
        groups.append(Group(bar.label, bar.kind, len(findings), len(findings) + len(members)))
        findings.extend(members)
    return findings, groups


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _first_line(text: str) -> str:
    return text.splitlines()[0] if text else ""


def _row(index: int, finding: cp.Finding) -> dict[str, Any]:
    """A finding as the list shows it (plain data: the browser's reply, the picture)."""
    return {
        "index": index,
        "outcome": finding.outcome,
        "preemptions": finding.preemptions,
        "count": finding.count,
        "message": finding.message,
        "schedule": finding.schedule,
        "replay": finding.replay,
        "head": (
            f"[{index}] {_count(finding.preemptions, 'preemption')}, in "
            f"{_count(finding.count, 'schedule')}"
            + (f": {_first_line(finding.message)}" if finding.message else "")
        ),
    }


# -- the static picture ---------------------------------------------------------------------------


def picture(report: cp.ExploreReport) -> str:
    """The report as one ``<svg>`` element: the search's summary and assumptions, the
    outcome bars with their counts, the findings grouped by outcome.  No script, no
    wall-clock seconds: the same bytes for the same report in every process."""
    report = _check_report(report, "widgets.ExploreView()")
    lines: list[str] = []  # the SVG's body
    y = 18
    caption = report.summary()
    lines.append(
        f'<text x="{_PAD}" y="{y}" font-weight="bold" fill="currentColor">'
        f"{_esc(_short(caption, 160))}</text>"
    )
    widest = min(len(caption), 160)
    for sentence in report.assumptions:
        for k, part in enumerate(textwrap.wrap(f"assumes: {sentence}", _WRAP)):
            y += 14
            lines.append(
                f'<text x="{_PAD + (0 if k == 0 else 9 * _CHAR)}" y="{y}" font-size="10" '
                f'fill="currentColor" opacity="0.8">{_esc(part)}</text>'
            )
            widest = max(widest, len(part) + 9)

    # -- the bars
    shown = bars(report)
    rest = shown[MAX_BARS:]
    shown = shown[:MAX_BARS]
    most = max([bar.count for bar in shown] + [1])
    left = _PAD + _CHAR * min(_LABEL, max([len(bar.label) for bar in shown] + [8])) + 8
    y += 12
    lines.append(
        f'<text x="{_PAD}" y="{y + 12}" font-weight="bold" fill="currentColor">'
        f"outcomes (schedules each)</text>"
    )
    y += 18
    for bar in shown:
        colour, word = KINDS[bar.kind]
        length = max(1, bar.count * _BAR // most)
        title = f"{bar.label}: {_count(bar.count, 'schedule')} ({word})"
        lines.append(
            f'<g class="bar {bar.kind}"><title>{_esc(title)}</title>'
            f'<text x="{left - 8}" y="{y + 12}" text-anchor="end" fill="currentColor">'
            f"{_esc(_short(bar.label, _LABEL))}</text>"
            f'<rect x="{left}" y="{y + 3}" width="{length}" height="{_ROW - 6}" '
            f'fill="{colour}"/>'
            f'<text x="{left + length + 6}" y="{y + 12}" fill="currentColor">{bar.count:,}'
            f"{'' if bar.kind == 'ok' else f' ({word})'}</text></g>"
        )
        y += _ROW
    if rest:
        more = sum(bar.count for bar in rest)
        lines.append(
            f'<text x="{left}" y="{y + 12}" fill="currentColor" opacity="0.8">'
            f"… {_count(len(rest), 'more outcome')} in {_count(more, 'schedule')}</text>"
        )
        y += _ROW
    widest = max(widest, (left + _BAR) // _CHAR + 16)

    # -- the findings, grouped by outcome
    findings, groups = grouped(report)
    y += 10
    heading = (
        f"findings: {len(findings)}, grouped by outcome (the fewest preemptions first)"
        if findings
        else "findings: none (no failure or deadlock)"
    )
    lines.append(
        f'<text x="{_PAD}" y="{y + 12}" font-weight="bold" fill="currentColor">'
        f"{_esc(heading)}</text>"
    )
    y += _ROW
    listed = 0
    for group in groups:
        if listed >= MAX_FINDINGS:
            break
        colour, word = KINDS[group.kind]
        members = findings[group.first : group.stop]
        schedules = sum(finding.count for finding in members)
        head = (
            f"{group.label}: {_count(len(members), 'finding')} in {_count(schedules, 'schedule')}"
        )
        lines.append(
            f'<g class="group {group.kind}"><rect x="{_PAD}" y="{y + 3}" width="10" '
            f'height="10" fill="{colour}"/><text x="{_PAD + 16}" y="{y + 12}" '
            f'font-weight="bold" fill="currentColor">{_esc(_short(head, _TEXT))}</text></g>'
        )
        y += _ROW
        for index in range(group.first, group.stop):
            if listed >= MAX_FINDINGS:
                break
            listed += 1
            row = _row(index, findings[index])
            details = f"schedule {row['schedule']}  replay: {row['replay']}"
            lines.append(
                f'<g class="finding"><title>{_esc(_short(row["message"], 1000))}</title>'
                f'<text x="{_PAD + 16}" y="{y + 12}" fill="currentColor">'
                f"{_esc(_short(row['head'], _TEXT))}</text>"
                f'<text x="{_PAD + 16 + 4 * _CHAR}" y="{y + 12 + 14}" font-size="10" '
                f'fill="currentColor" opacity="0.8">{_esc(_short(details, _TEXT))}</text></g>'
            )
            widest = max(widest, min(_TEXT, max(len(row["head"]), len(details) + 4)) + 3)
            y += _ROW + 14
    if listed < len(findings):
        lines.append(
            f'<text x="{_PAD + 16}" y="{y + 12}" fill="currentColor" opacity="0.8">'
            f"… {_count(len(findings) - listed, 'more finding')} (report.failures, "
            f"report.deadlocks)</text>"
        )
        y += _ROW
    width = 2 * _PAD + _CHAR * widest
    height = y + _PAD
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="counterpoint-explore" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'font-family="monospace" font-size="11" role="img">'
        f"<title>{_esc(caption)}</title>" + "".join(lines) + "</svg>"
    )


# -- the finding's run ----------------------------------------------------------------------------


def _header(index: int, finding: cp.Finding, vm: cp.VM) -> str:
    row = _row(index, finding)
    message = escape(finding.message) if finding.message else ""
    return (
        f'<div class="cp-widget"><div class="cp-caption">finding {index}: '
        f"{escape(finding.outcome)} ({escape(_count(finding.preemptions, 'preemption'))}, "
        f"in {escape(_count(finding.count, 'schedule'))}); its run again: "
        f"{escape(_count(len(vm.journal), 'record'))}</div>"
        + (f'<pre class="cp-error" style="margin:2px 0">{message}</pre>' if message else "")
        + f"<div>schedule <code>{escape(row['schedule'])}</code></div>"
        f"<div>replay: <code>{escape(row['replay'])}</code></div></div>"
    )


# -- the widgets ----------------------------------------------------------------------------------


class ExploreChart(Widget):
    """The live part of an :class:`ExploreView`: the bars and the findings list, drawn
    in the browser from what the kernel computed.  ``chart`` (synced) holds the caption,
    the bars and the groups; the browser asks for the findings in windows
    (``{"what": "findings", "lo": 0, "hi": 100}``); a click sets ``selected``."""

    _esm = bundle("explore.js")
    chart = traitlets.Dict().tag(sync=True)
    selected = traitlets.Int(-1).tag(sync=True)

    def __init__(self, report: cp.ExploreReport, findings: list, groups: list) -> None:
        self._report = report
        self._findings = findings
        every = bars(report)
        colours = {kind: colour for kind, (colour, _) in KINDS.items()}
        words = {kind: word for kind, (_, word) in KINDS.items()}
        chart = {
            "caption": report.summary(),
            "assumptions": list(report.assumptions),
            "seconds": round(report.seconds, 3),  # (the live view only, never the picture)
            "bars": [[bar.label, bar.kind, bar.count] for bar in every[:MAX_BARS]],
            "more": [len(every[MAX_BARS:]), sum(bar.count for bar in every[MAX_BARS:])],
            "groups": [
                [g.label, g.kind, g.first, g.stop, sum(f.count for f in findings[g.first : g.stop])]
                for g in groups
            ],
            "findings": len(findings),
            "colours": colours,
            "words": words,
            "window": WINDOW,
        }
        super().__init__(chart=chart)

    def _answer_findings(self, content: dict) -> tuple[dict, list]:
        lo, hi = content.get("lo"), content.get("hi")
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (lo, hi)):
            raise TypeError(f"findings: lo and hi are ints, got {lo!r} and {hi!r}")
        if not 0 <= lo <= hi or hi - lo > MAX_WINDOW:
            raise ValueError(
                f"findings: ask for 0 <= lo <= hi with at most {MAX_WINDOW} at once, "
                f"got lo={lo}, hi={hi}"
            )
        hi = min(hi, len(self._findings))
        lo = min(lo, hi)
        rows = [_row(i, self._findings[i]) for i in range(lo, hi)]
        return {"lo": lo, "hi": hi, "rows": rows}, []

    def _picture(self) -> str:
        return picture(self._report)

    def _describe(self) -> str:
        return f"{self._report.summary()}; selected {self.selected}"


class ExploreView(StaticPicture, ipywidgets.VBox):
    """What ``cp.explore`` found: an outcome bar chart and the findings grouped by
    outcome; picking one (a click, or :meth:`select`) shows its run below.

    ``report``: a ``cp.ExploreReport``.  ``program``: the explored callable, when the
    report does not know it (a report pickled from another process).

    Attributes: ``report``; ``findings`` (the findings in the order shown: ``[i]`` in
    the list is ``findings[i]``); ``selected`` (the index picked, ``-1`` for none);
    ``vm`` (the selected finding's run again, a finished ``cp.VM``, or ``None``);
    ``detail`` (the box under the chart that shows it: a header, and a
    :class:`TimeTravel` of the run -- its :class:`Timeline` and the state scrubber);
    ``travel`` (that TimeTravel, or ``None``).
    """

    selected = traitlets.Int(-1)

    def __init__(self, report: cp.ExploreReport, *, program: Any = None) -> None:
        report = _check_report(report, "ExploreView(report)")
        if program is not None and not callable(program):
            if inspect.iscoroutine(program):
                program.close()  # (refused: it must not warn "never awaited")
            raise TypeError(
                "ExploreView(program=...) is the zero-argument callable cp.explore() was "
                f"given (such as `main`, not `main()`), not {type(program).__name__}"
            )
        self.report = report
        self.program = program
        self.findings, self.groups = grouped(report)
        self.vm: cp.VM | None = None
        self.travel: TimeTravel | None = None
        self.chart = ExploreChart(report, self.findings, self.groups)
        self.detail = ipywidgets.VBox()
        super().__init__(children=[self.chart, self.detail])
        traitlets.link((self.chart, "selected"), (self, "selected"))
        self.observe(self._show_selected, "selected")

    def select(self, finding: Any) -> None:
        """Pick a finding: its index in :attr:`findings` (``-1``: none), or the finding
        itself.  Runs it again and shows the run (raises what that run raises, such as
        ``ValueError`` when the program is unknown)."""
        if isinstance(finding, cp.Finding):
            matches = [i for i, found in enumerate(self.findings) if found == finding]
            if not matches:
                raise ValueError(f"this view lists no finding {finding.outcome} {finding.schedule}")
            finding = matches[0]
        if not isinstance(finding, int) or isinstance(finding, bool):
            raise TypeError(f"select() takes a finding's index or the cp.Finding, not {finding!r}")
        if not -1 <= finding < len(self.findings):
            if not self.findings:
                raise ValueError(
                    f"select({finding}): the search found no failure or deadlock, so there "
                    "is no finding to pick (-1 picks none)"
                )
            raise ValueError(
                f"select({finding}): this view lists {_count(len(self.findings), 'finding')}; "
                f"pick 0 to {len(self.findings) - 1}, or -1 for none"
            )
        if finding == self.selected and finding >= 0 and self.vm is None:
            self._build(finding)  # (an earlier try failed: try again)
        self.selected = finding

    def _show_selected(self, change: dict) -> None:
        self._build(change["new"])

    def _build(self, index: int) -> None:
        self.vm = self.travel = None
        for shown in self.detail.children:  # (their comms and VM watches go)
            shown.close()
        if not 0 <= index < len(self.findings):
            self.detail.children = ()
            return
        finding = self.findings[index]
        try:
            vm = finding.run(self.program)
        except Exception as error:
            self.chart.error = f"finding {index}: {type(error).__name__}: {error}"
            self.detail.children = (
                ipywidgets.HTML(
                    f'<div class="cp-widget"><span class="cp-error">finding {index} cannot '
                    f"be shown: {escape(type(error).__name__)}: {escape(str(error))}"
                    "</span></div>"
                ),
            )
            raise
        self.chart.error = ""
        self.vm = vm
        # the run's Timeline with TimeTravel's scrubber under it, the cursor at the end
        travel = TimeTravel(vm.journal, event=len(vm.journal))
        self.detail.children = (ipywidgets.HTML(_header(index, finding, vm)), travel)
        self.travel = travel

    def _picture(self) -> str:
        return picture(self.report)

    def _describe(self) -> str:
        return f"{self.report.summary()}; selected {self.selected}"

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        data, metadata = super()._repr_mimebundle_(**kwargs)
        data["text/plain"] = repr(self.report)  # what a terminal or nbval reads: the report
        return data, metadata
