// TimeTravel: a scrubber over event ids.  The kernel computes the view of one event
// (the synced trait "view": a heading and tables of text); this file draws it and moves
// the synced trait "event".  At most one request is in flight: while the learner drags or
// plays, the positions in between are dropped and the latest one is asked for next.

const SPEEDS = [1, 4, 16, 64, 256, 1024]; // events per second when playing
const STUCK_MS = 10000; // a request unanswered this long is given up (the kernel was busy)

function render({ model, el }) {
  const request = requester(model);
  let wanted = model.get("event"); // the event the learner asked for last
  let asked = null; // the event sent to the kernel whose view has not come back yet
  let askedAt = 0;
  let shown = (model.get("view") || {}).event; // the event the pane shows
  let busy = false; // a jump or warm request in flight
  let warmed = false; // the kernel's snapshots cover the whole journal
  let lastScrub = 0; // when the learner last moved (no warming for WARM_QUIET_MS)
  let warmSoon = null;
  const WARM_QUIET_MS = 250;
  const WARM_GAP_MS = 10;
  let timer = null; // the play timer
  let speed = 16;

  const total = () => model.get("total");
  const scrubber = h("input", {
    type: "range",
    class: "cp-scrubber",
    min: 0,
    max: total(),
    step: 1,
    value: wanted,
    "aria-label": "event",
    oninput: () => go(Number(scrubber.value)),
  });
  const number = h("input", {
    type: "number",
    class: "cp-event-number",
    min: 0,
    max: total(),
    value: wanted,
    "aria-label": "event id",
    onchange: () => go(Number(number.value)),
  });
  const of = h("span", { class: "cp-muted" });
  const playButton = h("button", { title: "play / pause (space)", onclick: () => toggle() });
  const speedSelect = h(
    "select",
    { title: "events per second", onchange: () => setSpeed(Number(speedSelect.value)) },
    SPEEDS.map((n) => h("option", { value: n, selected: n === speed }, `${n}/s`)),
  );
  const taskSelect = h("select", { title: "whose effects the effect buttons jump to" });
  const note = h("span", { class: "cp-muted cp-note" });
  const heading = h("div", { class: "cp-caption" });
  const record = h("div", { class: "cp-record" });
  const tables = h("div", { class: "cp-tables" });
  const error = h("div", { class: "cp-error" });
  const pane = h("div", { class: "cp-pane", "data-event": shown }, heading, record, tables);
  const root = h(
    "div",
    { class: "cp-widget cp-timetravel", tabindex: "0" },
    h(
      "div",
      { class: "cp-toolbar" },
      h("button", { title: "the start (Home)", onclick: () => go(0) }, "|◀"),
      h("button", { title: "one event back (←)", onclick: () => go(wanted - 1) }, "◀ 1"),
      playButton,
      h("button", { title: "one event on (→)", onclick: () => go(wanted + 1) }, "1 ▶"),
      h("button", { title: "the end (End)", onclick: () => go(total()) }, "▶|"),
      speedSelect,
      number,
      of,
    ),
    h("div", { class: "cp-toolbar" }, scrubber),
    h(
      "div",
      { class: "cp-toolbar" },
      h("span", {}, "effects of"),
      taskSelect,
      h("button", { title: "previous effect (shift ←)", onclick: () => jump("previous") }, "◀ effect"),
      h("button", { title: "next effect (shift →)", onclick: () => jump("next") }, "effect ▶"),
      note,
    ),
    error,
    pane,
  );
  el.append(root);

  // -- moving -------------------------------------------------------------------------------
  function go(event) {
    if (!Number.isFinite(event)) return;
    wanted = Math.max(0, Math.min(total(), Math.round(event)));
    scrubber.value = wanted;
    number.value = wanted;
    note.textContent = "";
    pump();
  }

  // Ask for the wanted event when nothing is in flight; warm the snapshots when idle.
  function pump() {
    if (asked !== null && performance.now() - askedAt > STUCK_MS) asked = null;
    if (asked !== null || busy) return;
    if (wanted !== shown) {
      asked = wanted;
      askedAt = lastScrub = performance.now();
      root.classList.add("cp-pending");
      model.set("event", wanted);
      model.save_changes();
    } else if (!warmed && timer === null) {
      // warm in small steps, and never right after a scrub: a scrub waits for at most
      // one small warm step (a few ms), not for the whole pass over the journal
      const quiet = performance.now() - lastScrub;
      if (quiet < WARM_QUIET_MS) {
        if (!warmSoon) warmSoon = setTimeout(() => ((warmSoon = null), pump()), WARM_QUIET_MS - quiet);
        return;
      }
      busy = true;
      request("warm")
        .then(({ reply }) => {
          warmed = reply.warmed >= reply.total;
        })
        .catch(() => {
          warmed = true; // (the error trait says why; do not ask again)
        })
        .finally(() => {
          busy = false;
          setTimeout(pump, WARM_GAP_MS);
        });
    }
  }

  function jump(direction) {
    if (busy || asked !== null) return;
    busy = true;
    const value = taskSelect.value;
    const task = value === "" ? null : Number(value);
    request("jump", { task, direction })
      .then(({ reply }) => {
        if (reply.event === null) {
          const whose = task === null ? "any task" : taskSelect.selectedOptions[0].textContent;
          note.textContent = `no ${direction} effect of ${whose}`;
        }
      })
      .catch(() => {})
      .finally(() => {
        busy = false;
        pump();
      });
  }

  function toggle() {
    if (timer !== null) return stop();
    if (wanted >= total()) go(0);
    const interval = Math.max(16, 1000 / speed);
    const stride = Math.max(1, Math.round((speed * interval) / 1000));
    timer = setInterval(() => {
      if (wanted >= total()) return stop();
      go(wanted + stride);
    }, interval);
    drawPlay();
  }

  function stop() {
    if (timer !== null) clearInterval(timer);
    timer = null;
    drawPlay();
    pump();
  }

  function setSpeed(n) {
    speed = n;
    if (timer !== null) {
      stop();
      toggle();
    }
  }

  function drawPlay() {
    playButton.textContent = timer === null ? "▶ play" : "⏸ pause";
  }

  // -- drawing ------------------------------------------------------------------------------
  function draw() {
    const view = model.get("view") || {};
    if (view.event === undefined) return;
    const before = shown;
    shown = view.event;
    if (asked !== null && shown === asked) asked = null;
    else if (asked === null && wanted === before) wanted = shown; // the kernel moved it
    if (asked === null) root.classList.remove("cp-pending");
    const max = view.total;
    scrubber.max = max;
    number.max = max;
    if (asked === null) {
      scrubber.value = wanted;
      number.value = wanted;
    }
    of.textContent = `of ${max.toLocaleString("en")}`;
    pane.setAttribute("data-event", shown);
    heading.textContent = `event ${shown.toLocaleString("en")} of ${max.toLocaleString("en")} · tick ${view.tick}`;
    record.textContent = view.record + (view.ready ? `   · ready: ${view.ready}` : "");
    tables.replaceChildren(...view.sections.map((section) => table(section, view.actor)));
    tasks(view);
    pump();
  }

  function table(section, actor) {
    const ids = section.ids || [];
    const rows = section.rows.map((cells, i) => {
      const acts = ids.length > 0 && ids[i] === actor;
      const attrs = { class: acts ? "cp-actor" : null };
      if (ids.length > 0) {
        attrs["data-task"] = ids[i];
        attrs.title = "click: jump between this task's effects";
        attrs.onclick = () => {
          taskSelect.value = String(ids[i]);
        };
      }
      return h(
        "tr",
        attrs,
        cells.map((cell, j) => h("td", {}, j === 0 && acts ? `▶ ${cell}` : cell)),
      );
    });
    const more = section.hidden ? ` (${rows.length} shown of ${rows.length + section.hidden})` : "";
    return h(
      "table",
      { class: `cp-section cp-${section.title}` },
      h("caption", { class: "cp-caption" }, section.title + more),
      h("thead", {}, h("tr", {}, section.headers.map((head) => h("th", {}, head)))),
      h("tbody", {}, rows),
    );
  }

  // the task menu: any task, then the tasks of the tasks table
  function tasks(view) {
    const section = view.sections.find((s) => s.title === "tasks");
    const keep = taskSelect.value;
    const options = [h("option", { value: "" }, "any task")];
    if (section) {
      section.ids.forEach((id, i) => {
        options.push(h("option", { value: String(id) }, `${section.rows[i][1]} (${id})`));
      });
    }
    taskSelect.replaceChildren(...options);
    taskSelect.value = options.some((o) => o.value === keep) ? keep : "";
  }

  function drawError() {
    error.textContent = model.get("error") || "";
    if (model.get("error")) {
      asked = null;
      root.classList.remove("cp-pending");
    }
  }

  function onKey(e) {
    const tag = e.target.tagName;
    if (tag === "SELECT" || (tag === "INPUT" && e.target.type !== "range")) return;
    // (on the scrubber too: JupyterLab's command-mode arrow bindings cancel the range's
    // own handling of arrow keys, so the widget steps itself)
    let done = true;
    if (e.key === "ArrowLeft" && e.shiftKey) jump("previous");
    else if (e.key === "ArrowRight" && e.shiftKey) jump("next");
    else if (e.key === "ArrowLeft") go(wanted - 1);
    else if (e.key === "ArrowRight") go(wanted + 1);
    else if (e.key === "Home") go(0);
    else if (e.key === "End") go(total());
    else if (e.key === " ") toggle();
    else done = false;
    if (done) e.preventDefault();
  }

  root.addEventListener("keydown", onKey);
  model.on("change:view", draw);
  model.on("change:error", drawError);
  drawPlay();
  draw();
  drawError();
  return () => {
    if (timer !== null) clearInterval(timer);
    if (warmSoon !== null) clearTimeout(warmSoon);
    root.removeEventListener("keydown", onKey);
    model.off("change:view", draw);
    model.off("change:error", drawError);
    request.dispose();
  };
}

export default { render };
