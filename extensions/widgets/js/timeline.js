// Timeline: draws the window of records the kernel sends (see timeline.py).
// Pan: drag, shift+wheel or the arrow buttons; zoom: ctrl+wheel or -/+; click a lane's
// name to fold it; hover a mark for its record; click a mark to pick it.

const LANE = 30;
const FOLDED = 12;
const TOP = 20;
const CHAR = 7;
const LABEL_CHARS = 28;
const DX = 12; // px per record at the default zoom
const MIN_COUNT = 10;
const MAX_COUNT = 4000;
const BLUE = "#0072B2";
const VERMILLION = "#D55E00";
const SPAN_FILL = ["#E69F00", "#CC79A7"]; // blocked, sleeping

function shortText(text, limit) {
  return text.length <= limit ? text : text.slice(0, limit - 1) + "\u2026";
}

function niceStep(least) {
  let step = 1;
  for (;;) {
    for (const factor of [1, 2, 5]) if (step * factor >= least) return step * factor;
    step *= 10;
  }
}

function markShape(symbol, x, y, r) {
  const common = { fill: symbol.fill, stroke: "currentColor", "stroke-width": 0.5 };
  if (symbol.shape === "circle") return s("circle", { cx: x, cy: y, r, ...common });
  if (symbol.shape === "square")
    return s("rect", { x: x - r + 1, y: y - r + 1, width: 2 * r - 2, height: 2 * r - 2, ...common });
  if (symbol.shape === "triangle")
    return s("path", { d: `M${x} ${y - r}L${x + r} ${y + r - 1}L${x - r} ${y + r - 1}Z`, ...common });
  return s("path", {
    d: `M${x} ${y - r - 1}L${x + r + 1} ${y}L${x} ${y + r + 1}L${x - r - 1} ${y}Z`,
    ...common,
  });
}

function render({ model, el }) {
  const request = requester(model);
  const root = h("div", { class: "cp-widget cp-timeline" });
  el.append(root);

  let win = null; // the window drawn: {meta, lanes, kinds, ticks, spans, messages}
  let follow = true; // the view sticks to the end as records arrive
  let inflight = false;
  let queued = null;
  let pushes = 0; // live windows drawn: a reply asked for before the last one is stale
  let pushedTotal = 0; // the journal's length in the last push (the trait syncs at the end)
  const total = () => Math.max(model.get("total"), pushedTotal);
  const folded = new Set(); // task ids whose lanes are folded

  const caption = h("span", { class: "cp-caption" });
  const error = h("span", { class: "cp-error" });
  const button = (text, title, onclick) => h("button", { title, onclick }, text);
  const xButton = button("", "switch the x axis: event ids or virtual time", () => {
    model.set("x", model.get("x") === "event" ? "tick" : "event");
    model.save_changes();
  });
  const toolbar = h(
    "div",
    { class: "cp-toolbar" },
    button("|\u25C0", "the first records", () => go(1)),
    button("\u25C0", "back one screen", () => go(startOf() - countOf())),
    button("\u25B6", "forward one screen", () => go(startOf() + countOf())),
    button("\u25B6|", "the last records (and follow a running VM)", () => goEnd()),
    button("\u2212", "zoom out: more records", () => zoom(2)),
    button("+", "zoom in: fewer records", () => zoom(0.5)),
    xButton,
    caption,
    error,
  );
  const overview = s("svg", { class: "cp-overview", height: 10, width: 100 });
  const plot = h("div", { class: "cp-scroll cp-plot" });
  const tooltip = h("div", { class: "cp-tooltip", style: "display:none" });
  const legend = h("div", { class: "cp-legend cp-muted" });
  root.append(toolbar, overview, plot, legend, tooltip);

  const width = () => Math.max(360, root.clientWidth || el.clientWidth || 900);
  const startOf = () => (win ? win.meta.start : model.get("start") || 1);
  const countOf = () => model.get("count") || defaultCount();
  function labelWidth() {
    const longest = win ? Math.max(4, ...win.meta.lanes.map((l) => l.label.length)) : 12;
    const mark = win && win.meta.deadlock ? 2 : 0; // (the stuck lanes' "⟲ ")
    return 8 + CHAR * (Math.min(LABEL_CHARS, longest) + mark) + 12;
  }
  function defaultCount() {
    return Math.max(MIN_COUNT, Math.min(MAX_COUNT, Math.floor((width() - 200) / DX)));
  }

  function ask(start, count) {
    if (inflight) {
      queued = { start, count };
      return;
    }
    inflight = true;
    const asked = pushes;
    request("window", { start: Math.round(start), count: Math.round(count) })
      .then(({ reply, buffers }) => {
        error.textContent = "";
        if (follow && asked !== pushes) return; // (the kernel was busy: pushes came since)
        draw(reply, buffers);
      })
      .catch((e) => {
        error.textContent = String(e.message || e);
      })
      .finally(() => {
        inflight = false;
        if (queued) {
          const next = queued;
          queued = null;
          ask(next.start, next.count);
        }
      });
  }
  function go(start) {
    follow = false;
    ask(Math.max(1, start), countOf());
  }
  function goEnd() {
    follow = true;
    const count = countOf();
    ask(Math.max(1, total() - count + 1), count);
  }
  function zoom(factor) {
    const count = countOf();
    const next = Math.max(MIN_COUNT, Math.min(MAX_COUNT, Math.round(count * factor)));
    const center = startOf() + count / 2;
    if (follow) ask(total() - next + 1, next);
    else ask(center - next / 2, next);
  }

  function draw(meta, buffers) {
    win = {
      meta,
      lanes: int32s(buffers[0]),
      kinds: int32s(buffers[1]),
      ticks: float64s(buffers[2]),
      spans: int32s(buffers[3]),
      messages: int32s(buffers[4]),
    };
    paint();
  }

  function paint() {
    if (!win) return;
    const { meta, lanes, kinds, ticks, spans, messages } = win;
    const symbols = model.get("symbols");
    const byTick = model.get("x") === "tick";
    const n = meta.stop - meta.start;
    const count = Math.max(n, model.get("count") || n);
    const left = labelWidth();
    const notes = Object.values(meta.notes);
    const right = notes.length ? Math.min(220, 12 + 6 * Math.max(...notes.map((n) => n.length))) : 16;
    const plotWidth = Math.max(200, width() - left - right);
    const dx = Math.min(24, plotWidth / Math.max(1, count));
    const plotW = byTick ? plotWidth : Math.max(dx, n * dx);
    const t0 = n ? ticks[0] : 0;
    const t1 = n ? ticks[n - 1] : 0;
    const tickScale = t1 > t0 ? (plotW - dx) / (t1 - t0) : 0;
    const xOf = (event) => {
      const i = event - meta.start;
      if (!byTick) return left + (i + 0.5) * dx;
      return left + dx / 2 + (ticks[i] - t0) * tickScale;
    };
    const laneY = [];
    const laneH = [];
    let y = TOP;
    meta.lanes.forEach((lane) => {
      const height = folded.has(lane.task) ? FOLDED : LANE;
      laneY.push(y + height / 2);
      laneH.push(height);
      y += height;
    });
    const bottom = y;
    const svg = s("svg", {
      class: "cp-timeline-plot",
      width: left + plotW + right,
      height: bottom + 30,
      "font-family": "monospace",
      "font-size": 11,
      "data-start": meta.start,
      "data-stop": meta.stop,
    });

    // lanes: a line and a name (click to fold); the tasks a deadlock left stuck marked
    const stuck = new Set(meta.deadlock ? meta.deadlock.tasks : []);
    meta.lanes.forEach((lane, i) => {
      const label = s(
        "text",
        {
          x: left - 8,
          y: laneY[i] + 4,
          "text-anchor": "end",
          class: "cp-lane-label",
          "data-task": lane.task,
          style: stuck.has(lane.task) ? `cursor:pointer;fill:${VERMILLION};font-weight:bold` : "cursor:pointer",
          onclick: () => {
            if (folded.has(lane.task)) folded.delete(lane.task);
            else folded.add(lane.task);
            paint();
          },
        },
        (stuck.has(lane.task) ? "\u27F2 " : "") +
          shortText(lane.label, LABEL_CHARS) +
          (folded.has(lane.task) ? " \u25B8" : ""),
      );
      const about = [lane.label];
      if (stuck.has(lane.task)) about.push("stuck in the deadlock");
      if (lane.now) about.push(`now at ${lane.now}`);
      about.push(`(click to ${folded.has(lane.task) ? "unfold" : "fold"})`);
      label.append(s("title", {}, about.join("\n")));
      svg.append(
        s("line", {
          x1: left,
          y1: laneY[i],
          x2: left + plotW,
          y2: laneY[i],
          stroke: "currentColor",
          "stroke-opacity": 0.3,
          class: "cp-lane",
        }),
        label,
      );
    });

    // blocked and sleeping spans
    for (let i = 0; i + 3 < spans.length; i += 4) {
      const [lane, from, to, sleeping] = [spans[i], spans[i + 1], spans[i + 2], spans[i + 3]];
      const x1 = xOf(from);
      const x2 = to >= meta.stop ? left + plotW : xOf(to);
      const what = sleeping ? "sleeping" : "blocked";
      const half = Math.min(9, laneH[lane] / 2);
      svg.append(
        s("rect", {
          x: x1,
          y: laneY[lane] - half,
          width: Math.max(1, x2 - x1),
          height: 2 * half,
          fill: SPAN_FILL[sleeping ? 1 : 0],
          "fill-opacity": 0.3,
          class: `cp-span ${what}`,
          "data-tip": `${what} from #${from}: ${meta.waits[from] || ""}`,
        }),
      );
    }

    // messages: an arrow from the send to the receive (a stub when one end is off screen)
    const laneOfEvent = (event) => lanes[event - meta.start];
    const inWindow = (event) => event >= meta.start && event < meta.stop;
    for (let i = 0; i + 1 < messages.length; i += 2) {
      const sent = messages[i];
      const got = messages[i + 1];
      let x1, y1, x2, y2;
      if (inWindow(sent)) {
        x1 = xOf(sent);
        y1 = laneY[laneOfEvent(sent)];
      }
      if (inWindow(got)) {
        x2 = xOf(got);
        y2 = laneY[laneOfEvent(got)];
      }
      if (x1 === undefined) {
        x1 = Math.max(left, x2 - 18);
        y1 = y2 - 8;
      }
      if (x2 === undefined) {
        x2 = Math.min(left + plotW, x1 + 18);
        y2 = y1 - 8;
      }
      const tip = `${meta.texts[inWindow(sent) ? sent : got] || ""}\nvalue sent at #${sent}, received at #${got}`;
      const g = s("g", { class: "cp-message", "data-tip": tip });
      g.append(s("line", { x1, y1, x2, y2, stroke: BLUE, "stroke-width": 1.5 }));
      const length = Math.hypot(x2 - x1, y2 - y1);
      if (length >= 14) {
        const ux = (x2 - x1) / length;
        const uy = (y2 - y1) / length;
        const tx = x2 - ux * 7;
        const ty = y2 - uy * 7;
        const bx = tx - ux * 6;
        const by = ty - uy * 6;
        g.append(
          s("path", {
            d: `M${tx} ${ty}L${bx - uy * 3} ${by + ux * 3}L${bx + uy * 3} ${by - ux * 3}Z`,
            fill: BLUE,
          }),
        );
      }
      svg.append(g);
    }

    // marks: a step is a short line; an effect its symbol (letters when there is room)
    const r = Math.max(2, Math.min(6, dx / 2));
    const marks = s("g", { class: "cp-marks" });
    for (let i = 0; i < n; i++) {
      const event = meta.start + i;
      const kind = meta.kinds[kinds[i]];
      const lane = lanes[i];
      const px = xOf(event);
      const py = laneY[lane];
      const isFolded = laneH[lane] === FOLDED;
      if (kind === "step") {
        marks.append(
          s("line", {
            x1: px,
            y1: py - (isFolded ? 2 : 4),
            x2: px,
            y2: py + (isFolded ? 2 : 4),
            stroke: "currentColor",
            "stroke-opacity": 0.6,
            class: "cp-mark step",
            "data-event": event,
          }),
        );
        continue;
      }
      const symbol = symbols[kind] || symbols[""];
      const ending = kind === "fail" || kind === "cancelled" || kind === "cancel" || kind === "timeout";
      const g = s("g", { class: `cp-mark effect ${kind}`, "data-event": event });
      g.append(markShape(symbol, px, py, isFolded ? 2 : ending ? r + 1 : r));
      if (!isFolded && r >= 5) {
        g.append(
          s(
            "text",
            {
              x: px,
              y: py + 3,
              "text-anchor": "middle",
              "font-size": symbol.letter.length === 2 ? 7 : 9,
              fill: symbol.ink,
              style: `fill:${symbol.ink}`,
            },
            symbol.letter,
          ),
        );
      }
      const note = meta.notes[event];
      if (note && !isFolded) {
        g.append(s("text", { x: px + 9, y: py - 8, "font-size": 9 }, shortText(note, 40)));
      }
      marks.append(g);
    }
    svg.append(marks);

    // the deadlock: a dashed line before the cancellations vm.run() wrote
    if (meta.deadlock) {
      const x = xOf(meta.deadlock.event) - dx / 2;
      const g = s("g", { class: "cp-deadlock", "data-tip": meta.deadlock.text });
      g.append(
        s("line", {
          x1: x,
          y1: TOP - 4,
          x2: x,
          y2: bottom,
          stroke: VERMILLION,
          "stroke-width": 2,
          "stroke-dasharray": "4 3",
        }),
        s("text", { x: x - 4, y: TOP - 6, "text-anchor": "end", "font-weight": "bold", style: `fill:${VERMILLION}` }, "deadlock"),
      );
      svg.append(g);
    }

    // the cursor (TimeTravel's event)
    const cursor = model.get("cursor");
    const cursorLine = s("line", {
      x1: 0,
      y1: TOP - 8,
      x2: 0,
      y2: bottom + 4,
      stroke: VERMILLION,
      "stroke-width": 1.5,
      class: "cp-cursor",
      style: "display:none",
    });
    svg.append(cursorLine);
    // moving the cursor within the window moves this line only (a scrub redraws nothing)
    win.moveCursor = (event) => {
      if (!event || !inWindow(event)) {
        cursorLine.style.display = "none";
        return;
      }
      const x = xOf(event);
      cursorLine.setAttribute("x1", x);
      cursorLine.setAttribute("x2", x);
      cursorLine.setAttribute("data-event", event);
      cursorLine.style.display = "";
    };
    win.moveCursor(cursor);

    // the axis
    const axisY = bottom + 6;
    svg.append(s("line", { x1: left, y1: axisY, x2: left + plotW, y2: axisY, stroke: "currentColor", "stroke-opacity": 0.6 }));
    if (n) {
      if (!byTick) {
        const step = niceStep(60 / dx);
        for (let v = Math.ceil(meta.start / step) * step; v < meta.stop; v += step) {
          const x = xOf(v);
          if (x - left < 4 * String(v).length) continue; // (clear of the axis's name)
          svg.append(
            s("line", { x1: x, y1: axisY, x2: x, y2: axisY + 4, stroke: "currentColor" }),
            s("text", { x, y: axisY + 15, "text-anchor": "middle", "font-size": 9 }, String(v)),
          );
        }
      } else if (tickScale) {
        const step = niceStep(60 / tickScale);
        for (let v = Math.ceil(t0 / step) * step; v <= t1; v += step) {
          const x = left + dx / 2 + (v - t0) * tickScale;
          svg.append(
            s("line", { x1: x, y1: axisY, x2: x, y2: axisY + 4, stroke: "currentColor" }),
            s("text", { x, y: axisY + 15, "text-anchor": "middle", "font-size": 9 }, `t=${v}`),
          );
        }
      }
      svg.append(s("text", { x: left - 8, y: axisY + 15, "text-anchor": "end", "font-size": 9 }, byTick ? "tick" : "event"));
    }
    plot.replaceChildren(svg);

    // the overview: where the window lies in the whole journal (click to go there)
    const total = Math.max(1, meta.total);
    overview.setAttribute("width", left + plotW);
    overview.replaceChildren(
      s("rect", { x: left, y: 3, width: plotW, height: 4, fill: "currentColor", "fill-opacity": 0.2 }),
      s("rect", {
        x: left + (plotW * (meta.start - 1)) / total,
        y: 0,
        width: Math.max(3, (plotW * n) / total),
        height: 10,
        fill: BLUE,
        "fill-opacity": 0.7,
        class: "cp-overview-window",
      }),
    );
    overview.onclick = (e) => {
      const box = overview.getBoundingClientRect();
      const at = ((e.clientX - box.left - left) / plotW) * total;
      go(Math.round(at - countOf() / 2));
    };

    // the caption and the legend
    const lanesWord = `${meta.lanes.length} lane${meta.lanes.length === 1 ? "" : "s"}`;
    caption.textContent = n
      ? `events #${meta.start.toLocaleString("en-US")}\u2013#${(meta.stop - 1).toLocaleString("en-US")} of ${meta.total.toLocaleString("en-US")} \u00B7 ${lanesWord}` +
        (model.get("live") && follow ? " \u00B7 following the VM" : "")
      : "an empty journal: no records yet";
    xButton.textContent = byTick ? "x: ticks" : "x: events";
    const shown = meta.kinds.filter((k) => k !== "step");
    legend.replaceChildren(
      ...shown.map((kind) => {
        const symbol = symbols[kind] || symbols[""];
        const icon = s("svg", { width: 14, height: 14, style: "vertical-align:middle" }, markShape(symbol, 7, 7, 6));
        return h("span", { style: "margin-right:10px" }, icon, " ", symbol.words);
      }),
      h("span", {}, h("span", { style: `color:${BLUE}` }, "\u2014\u25B6"), " value over a channel"),
    );
  }

  // hover: the record (or span, or message) under the pointer
  plot.addEventListener("mouseover", (e) => {
    const target = e.target.closest("[data-event],[data-tip]");
    if (!target || !win) {
      tooltip.style.display = "none";
      return;
    }
    let text = target.getAttribute("data-tip");
    if (text === null) {
      const event = Number(target.getAttribute("data-event"));
      const i = event - win.meta.start;
      const lane = win.meta.lanes[win.lanes[i]];
      text = win.meta.texts[event] || `#${event} t=${win.ticks[i]} task ${lane.task} step`;
      if (lane.now) text += `\n${lane.label} is now at ${lane.now}`;
    }
    tooltip.textContent = text;
    tooltip.style.display = "block";
    const box = root.getBoundingClientRect();
    tooltip.style.left = `${Math.min(e.clientX - box.left + 12, box.width - 200)}px`;
    tooltip.style.top = `${e.clientY - box.top + 14}px`;
  });
  plot.addEventListener("mouseleave", () => {
    tooltip.style.display = "none";
  });
  plot.addEventListener("click", (e) => {
    const target = e.target.closest("[data-event]");
    if (!target) return;
    model.set("picked", Number(target.getAttribute("data-event")));
    model.save_changes();
  });
  // pan by dragging, shift+wheel; zoom with ctrl+wheel
  let drag = null;
  plot.addEventListener("mousedown", (e) => {
    if (e.target.closest("[data-event],.cp-lane-label")) return;
    drag = { x: e.clientX, start: startOf() };
  });
  const onMove = (e) => {
    if (!drag || !win) return;
    const n = Math.max(1, win.meta.stop - win.meta.start);
    const dx = Math.min(24, Math.max(200, width() - labelWidth() - 16) / Math.max(n, countOf()));
    const shift = Math.round((drag.x - e.clientX) / dx);
    if (shift) {
      drag.x = e.clientX;
      go(startOf() + shift);
    }
  };
  const onUp = () => {
    drag = null;
  };
  window.addEventListener("mousemove", onMove);
  window.addEventListener("mouseup", onUp);
  plot.addEventListener(
    "wheel",
    (e) => {
      if (e.ctrlKey || e.metaKey) {
        e.preventDefault();
        zoom(e.deltaY > 0 ? 2 : 0.5);
      } else if (e.shiftKey || Math.abs(e.deltaX) > Math.abs(e.deltaY)) {
        e.preventDefault();
        const delta = e.shiftKey ? e.deltaY : e.deltaX;
        go(startOf() + Math.sign(delta) * Math.max(1, Math.round(countOf() / 10)));
      }
    },
    { passive: false },
  );

  // the kernel moves the view (start/count/cursor set from Python) or pushes live windows
  const onCursor = () => {
    const cursor = model.get("cursor");
    if (win && cursor && (cursor < win.meta.start || cursor >= win.meta.stop)) {
      follow = false;
      ask(cursor - Math.floor(countOf() / 2), countOf());
    } else if (win && win.moveCursor) win.moveCursor(cursor);
    else paint();
  };
  const onView = () => {
    // Python moved the view (timeline.start = N)
    follow = false;
    ask(model.get("start") || 1, countOf());
  };
  const onPush = (msg, buffers) => {
    if (msg && msg.type === "push") pushedTotal = msg.total;
    if (msg && msg.type === "push" && follow) {
      pushes++;
      draw(msg, buffers || []);
    }
  };
  const onTotal = () => {
    if (follow && !inflight && win && model.get("total") !== win.meta.total && !model.get("live")) goEnd();
  };
  model.on("change:cursor", onCursor);
  model.on("change:start change:count", onView);
  model.on("change:x", paint);
  model.on("change:total", onTotal);
  model.on("msg:custom", onPush);
  const resize = new ResizeObserver(() => paint());
  resize.observe(root);

  const start = model.get("start");
  if (start) {
    follow = start + countOf() > total();
    ask(start, countOf());
  } else goEnd();

  return () => {
    request.dispose();
    resize.disconnect();
    window.removeEventListener("mousemove", onMove);
    window.removeEventListener("mouseup", onUp);
    model.off("change:cursor", onCursor);
    model.off("change:start change:count", onView);
    model.off("change:x", paint);
    model.off("change:total", onTotal);
    model.off("msg:custom", onPush);
  };
}

export default { render };
