"""The widgets in a real browser: a ``jupyter lab`` and Debian's Chromium (Playwright),
as in ``tests/browser.py``, timing what a learner waits for.

    python -m benchmarks.widgets_browser                  # a few minutes
    python -m benchmarks.widgets_browser --quick          # small sizes, a smoke test
    python -m benchmarks.widgets_browser --update-readme  # also rewrite README.md's table

* TimeTravel on a 1,000,000-record journal (``ping_pong`` of 111,112 round trips, built
  in the kernel before the timed cell): the time from running the cell that shows it to
  the first picture in the browser (scrubber and state pane drawn; bar: < 1 s), then
  scrubbing -- the scrubber moved by one event and by big jumps, each timed from the
  ``input`` event until the state pane shows the new event (bar: < 50 ms), median and
  worst.  Skipped, saying so, when ``cp.widgets`` has no ``TimeTravel``.
* A live Timeline: the same long program (two tasks taking turns at ``cp.checkpoint()``)
  run in a cell without and with a ``Timeline(vm)`` displayed above it, paired rounds;
  the median ratio of the runs' wall times (bar: <= 1.10; the kernel's CPU time ratio
  too: the wall time also pays for Chromium drawing on the same cores) and the updates
  the widget sent per second of run (bar: <= 30/s; counted in the kernel,
  ``Timeline.updates``).

* The floor: a widget's request answered with nothing (``Ping``, defined in the
  notebook), timed in the browser: what every request and reply pays, the scrubber's too.

Times are measured where they happen: the browser's ``performance.now()`` for what the
learner sees, ``time.perf_counter()`` in the kernel for a run.
"""

from __future__ import annotations

import argparse
import importlib.util
import platform
import random
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from . import write_json, write_marked

ROOT = Path(__file__).resolve().parent.parent


def _browser_helpers() -> Any:
    """``tests/browser.py`` (the lab and the notebook helpers the tests use)."""
    path = ROOT / "tests" / "browser.py"
    spec = importlib.util.spec_from_file_location("_counterpoint_browser", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- reading a cell's printed JSON ------------------------------------------------------

_PRINTED = """(index) => {
    const cell = window.jupyterapp.shell.currentWidget.content.widgets[index];
    const outputs = cell.model.outputs.toJSON();
    const failed = outputs.find((o) => o.output_type === 'error');
    if (failed) return {error: failed.ename + ': ' + failed.evalue};
    const text = outputs.filter((o) => o.output_type === 'stream')
        .map((o) => Array.isArray(o.text) ? o.text.join('') : o.text).join('');
    const lines = text.trim().split('\\n');
    return JSON.parse(lines[lines.length - 1]);
}"""


def printed(page: Any, index: int) -> dict:
    """The JSON object the cell ``index`` printed last."""
    result = page.evaluate(_PRINTED, index)
    if "error" in result:
        raise RuntimeError(f"cell {index} failed: {result['error']}")
    return result


# -- TimeTravel on a big journal --------------------------------------------------------

TRAVEL_SETUP = """\
import json, sys
sys.path.insert(0, {root!r})
import counterpoint as cp
from benchmarks.run import _ping_pong
big = cp.VM()
big.run(_ping_pong({round_trips}))
journal = big.journal
print(json.dumps({{"records": len(journal)}}))
"""
TRAVEL_SHOW = "travel = cp.widgets.TimeTravel(journal)\ntravel\n"

# run cell ``index`` and resolve when its output shows the scrubber and a drawn state pane:
# the milliseconds it took, in the browser's clock
_FIRST_PICTURE = """async (index) => {
    const panel = window.jupyterapp.shell.currentWidget;
    const cell = panel.content.widgets[index];
    const drawn = () => {
        const root = cell.node.querySelector('.cp-widget.cp-timetravel');
        const pane = root && root.querySelector('.cp-pane');
        return root && root.querySelector('input.cp-scrubber') && pane
            && pane.getAttribute('data-event') !== null
            && pane.getAttribute('data-event') !== 'undefined'
            && pane.querySelector('table') !== null;
    };
    const start = performance.now();
    panel.content.activeCellIndex = index;
    panel.content.deselectAll();
    window.jupyterapp.commands.execute('notebook:run-cell');
    await new Promise((resolve, reject) => {
        const timeout = setTimeout(() => reject(new Error('no picture in 60 s')), 60000);
        const check = () => {
            if (!drawn()) return false;
            clearTimeout(timeout);
            observer.disconnect();
            resolve();
            return true;
        };
        const observer = new MutationObserver(check);
        observer.observe(cell.node, {subtree: true, childList: true, attributes: true});
        check();
    });
    return performance.now() - start;
}"""

# move the scrubber to ``target`` (an input event, as a drag does) and resolve when the
# state pane shows it: the milliseconds it took
_SCRUB = """async ([index, target]) => {
    const cell = window.jupyterapp.shell.currentWidget.content.widgets[index];
    const root = cell.node.querySelector('.cp-widget.cp-timetravel');
    const scrubber = root.querySelector('input.cp-scrubber');
    const pane = root.querySelector('.cp-pane');
    const start = performance.now();
    scrubber.value = String(target);
    scrubber.dispatchEvent(new Event('input', {bubbles: true}));
    await new Promise((resolve, reject) => {
        const timeout = setTimeout(() => reject(new Error('pane not at ' + target)), 30000);
        const check = () => {
            if (pane.getAttribute('data-event') !== String(target)) return;
            clearTimeout(timeout);
            observer.disconnect();
            resolve();
        };
        const observer = new MutationObserver(check);
        observer.observe(pane, {attributes: true});
        check();
    });
    return performance.now() - start;
}"""


def time_travel(lab: Any, page: Any, round_trips: int, steps: int) -> dict:
    import counterpoint as cp

    if not hasattr(cp.widgets, "TimeTravel"):
        return {"skipped": "cp.widgets has no TimeTravel yet"}
    setup = TRAVEL_SETUP.format(root=str(ROOT), round_trips=round_trips)
    lab.write_notebook("bench-timetravel", [setup, TRAVEL_SHOW])
    lab.open(page, "bench-timetravel")
    lab.execute(page, 0, timeout=300)
    records = printed(page, 0)["records"]
    first_ms = page.evaluate(_FIRST_PICTURE, 1)
    start = int(page.get_attribute(".cp-timetravel .cp-pane", "data-event"))
    rng = random.Random(0)
    by_one, jumps = [], []
    position = start
    for number in range(steps):
        if number % 2 == 0:
            position = position + 1 if position < records else position - 1
            by_one.append(page.evaluate(_SCRUB, [1, position]))
        else:
            position = rng.randrange(records + 1)
            jumps.append(page.evaluate(_SCRUB, [1, position]))
    everything = by_one + jumps
    return {
        "records": records,
        "first_picture_ms": first_ms,
        "first_scrub_ms": by_one[0] if by_one else None,
        "scrub_by_one_median_ms": statistics.median(by_one),
        "scrub_by_one_worst_ms": max(by_one),
        "scrub_jump_median_ms": statistics.median(jumps),
        "scrub_jump_worst_ms": max(jumps),
        "scrub_median_ms": statistics.median(everything),
        "scrub_worst_ms": max(everything),
        "scrubs": len(everything),
    }


# -- a live Timeline's overhead ---------------------------------------------------------

LIVE_SETUP = """\
import gc, json, time
import counterpoint as cp
from IPython.display import display

async def program(n):
    async def worker():
        for _ in range(n):
            await cp.checkpoint()

    await cp.par(worker(), worker())

shown = None

def timed(live):
    global shown
    if shown is not None:
        shown.close()  # the last round's widget lets go of its VM
        shown = None
    vm = cp.VM()
    if live:
        shown = cp.widgets.Timeline(vm)
        display(shown)
    gc.collect()
    start, cpu = time.perf_counter(), time.process_time()
    vm.run(program({per_task}))
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    updates = shown.updates if live else 0
    print(json.dumps({{"seconds": seconds, "cpu": cpu, "records": len(vm.journal),
                      "updates": updates}}))
"""


def live_timeline(lab: Any, page: Any, steps: int, rounds: int) -> dict:
    lab.write_notebook(
        "bench-live-timeline",
        [LIVE_SETUP.format(per_task=steps // 2), "timed(False)", "timed(True)"],
    )
    lab.open(page, "bench-live-timeline")
    lab.execute(page, 0)
    plain, live, ratios, cpu_ratios, rates = [], [], [], [], []
    records = 0
    for number in range(rounds + 1):  # the first round warms up, and is not counted
        order = (1, 2) if number % 2 == 0 else (2, 1)
        seen = {}
        for index in order:
            lab.execute(page, index, timeout=300)
            seen[index] = printed(page, index)
            if index == 2:  # the live widget did draw
                page.wait_for_selector(".cp-timeline .cp-mark", state="attached")
        if number == 0:
            continue
        plain.append(seen[1]["seconds"])
        live.append(seen[2]["seconds"])
        ratios.append(seen[2]["seconds"] / seen[1]["seconds"])
        cpu_ratios.append(seen[2]["cpu"] / seen[1]["cpu"])
        rates.append(seen[2]["updates"] / seen[2]["seconds"])
        records = seen[2]["records"]
    return {
        "records": records,
        "rounds": rounds,
        "plain_s": statistics.median(plain),
        "live_s": statistics.median(live),
        "ratio": statistics.median(ratios),
        "ratio_worst": max(ratios),
        "cpu_ratio": statistics.median(cpu_ratios),
        "updates_per_s": statistics.median(rates),
        "updates_per_s_worst": max(rates),
    }


# -- the floor: one request and its reply, nothing computed ----------------------------

PING = '''\
from counterpoint.widgets._base import Widget, bundle

ESM = """
export default {
  render({ model, el }) {
    const request = requester(model);
    el.append(h("div", { class: "cp-widget cp-ping" }, "ping"));
    el.ping = async () => {
      const start = performance.now();
      await request("ping", {});
      return performance.now() - start;
    };
  },
};
"""

class Ping(Widget):  # answers "ping" with nothing: what any request and reply costs
    _esm = bundle() + ESM

    def _answer_ping(self, content):
        return {}, []

    def _picture(self):
        return "<svg></svg>"

    def _describe(self):
        return "ping"

Ping()
'''


def round_trip(lab: Any, page: Any, times: int) -> dict:
    lab.run_notebook(page, "bench-ping", [PING])
    ping = page.wait_for_selector(".cp-ping")
    took = [ping.evaluate("(node) => node.parentNode.ping()") for _ in range(times)]
    return {"median_ms": statistics.median(took), "best_ms": min(took), "times": times}


# -- the table --------------------------------------------------------------------------


def table(results: dict) -> str:
    lines = ["| in Chromium, JupyterLab | measured | bar |", "|---|---|---|"]
    ping = results.get("round_trip")
    if ping:
        lines.append(
            f"| a widget's request and its reply, nothing computed (the floor), median / best "
            f"| {ping['median_ms']:.0f} ms / {ping['best_ms']:.0f} ms | |"
        )
    travel = results["time_travel"]
    if "skipped" in travel:
        lines.append(f"| TimeTravel | not measured: {travel['skipped']} | |")
    else:
        n = f"{travel['records']:,}"
        lines += [
            f"| TimeTravel on {n} records: running the cell -> first picture | "
            f"**{travel['first_picture_ms']:.0f} ms** | < 1 s |",
            f"| scrub by one event, median / worst | {travel['scrub_by_one_median_ms']:.0f} ms"
            f" / {travel['scrub_by_one_worst_ms']:.0f} ms | < 50 ms |",
            f"| scrub by a big jump, median / worst | {travel['scrub_jump_median_ms']:.0f} ms"
            f" / {travel['scrub_jump_worst_ms']:.0f} ms | < 50 ms |",
        ]
    live = results["live_timeline"]
    lines += [
        f"| live Timeline on a {live['records']:,}-record run: time with / without, median "
        f"of {live['rounds']} | {live['live_s'] * 1000:.0f} ms / {live['plain_s'] * 1000:.0f} ms "
        f"(**{live['ratio']:.2f}x**; kernel CPU time {live['cpu_ratio']:.2f}x) | <= 1.10x |",
        f"| live Timeline: updates sent, per second of run | "
        f"{live['updates_per_s']:.0f}/s (worst {live['updates_per_s_worst']:.0f}/s) | <= 30/s |",
    ]
    return "\n".join(lines)


def update_readme(readme: Path, markdown: str) -> None:
    intro = (
        f"Measured on this project's 2-core machine (Python {platform.python_version()}, "
        "Debian's Chromium, headless):\n\n"
    )
    write_marked(readme, "widgets-table", intro + markdown)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke test)")
    parser.add_argument("--round-trips", type=int, default=111_112, help="TimeTravel's journal")
    parser.add_argument("--scrubs", type=int, default=30)
    parser.add_argument("--steps", type=int, default=2_000_000, help="live Timeline's program")
    parser.add_argument("--rounds", type=int, default=9, help="live Timeline's paired rounds")
    parser.add_argument("--update-readme", action="store_true")
    parser.add_argument("--json", default="benchmarks/results/widgets_browser.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.round_trips, args.scrubs, args.steps, args.rounds = 1_000, 6, 20_000, 1
    helpers = _browser_helpers()
    missing = helpers.browser_missing()
    if missing:
        print(f"benchmarks.widgets_browser: {missing}", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="counterpoint-bench-lab-") as folder:
        lab = helpers.Lab(Path(folder))
        try:
            lab.wait_until_ready()
            with sync_playwright() as driver:
                browser = driver.chromium.launch(
                    executable_path=helpers.CHROMIUM, headless=True, args=["--no-sandbox"]
                )
                try:
                    page = browser.new_page(viewport=helpers.VIEWPORT)
                    results = {"round_trip": round_trip(lab, page, args.scrubs)}
                    lab.shutdown_kernels()
                    results["time_travel"] = time_travel(lab, page, args.round_trips, args.scrubs)
                    lab.shutdown_kernels()
                    results["live_timeline"] = live_timeline(lab, page, args.steps, args.rounds)
                    lab.shutdown_kernels()
                finally:
                    browser.close()
        finally:
            lab.stop()
    markdown = table(results)
    print(markdown)
    if args.update_readme:
        update_readme(ROOT / "README.md", markdown)
    write_json(results, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
