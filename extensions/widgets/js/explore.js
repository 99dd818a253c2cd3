// ExploreView's chart: the outcome bars and the findings grouped by outcome.  Every text,
// order and number comes from the kernel (the `chart` trait, and the findings in windows
// by request); a click on a finding sets `selected` and the kernel shows its run.

function render({ model, el }) {
  const request = requester(model);
  const chart = model.get("chart");
  const root = h("div", { class: "cp-widget cp-explore" });
  el.append(root);

  root.append(h("div", { class: "cp-caption" }, chart.caption));
  for (const sentence of chart.assumptions) {
    root.append(h("div", { class: "cp-muted" }, "assumes: " + sentence));
  }
  if (chart.seconds) {
    root.append(h("div", { class: "cp-muted" }, `searched in ${chart.seconds} s`));
  }
  const error = h("div", { class: "cp-error" });
  root.append(error);
  const showError = () => { error.textContent = model.get("error") || ""; };
  showError();

  // -- the bars
  const CHAR = 7, ROW = 18, BAR = 320;
  const bars = chart.bars;
  const most = Math.max(1, ...bars.map((b) => b[2]));
  const labelChars = Math.min(36, Math.max(8, ...bars.map((b) => b[0].length)));
  const left = 8 + CHAR * labelChars + 8;
  const height = ROW * (bars.length + (chart.more[0] ? 1 : 0)) + 4;
  const width = left + BAR + 16 * CHAR;
  const plot = s("svg", { width, height, viewBox: `0 0 ${width} ${height}`,
    "font-family": "monospace", "font-size": 11, role: "img" });
  bars.forEach(([label, kind, count], i) => {
    const y = i * ROW;
    const length = Math.max(1, Math.floor((count * BAR) / most));
    const word = chart.words[kind];
    const cut = label.length > 36 ? label.slice(0, 35) + "\u2026" : label;
    plot.append(s("g", { class: `bar ${kind}` },
      s("title", {}, `${label}: ${count} schedule${count === 1 ? "" : "s"} (${word})`),
      s("text", { x: left - 8, y: y + 12, "text-anchor": "end", fill: "currentColor" }, cut),
      s("rect", { x: left, y: y + 3, width: length, height: ROW - 6, fill: chart.colours[kind] }),
      s("text", { x: left + length + 6, y: y + 12, fill: "currentColor" },
        count.toLocaleString("en") + (kind === "ok" ? "" : ` (${word})`))));
  });
  if (chart.more[0]) {
    plot.append(s("text", { x: left, y: bars.length * ROW + 12, fill: "currentColor",
      opacity: 0.8 }, `\u2026 ${chart.more[0]} more outcomes in ${chart.more[1]} schedules`));
  }
  root.append(h("div", { class: "cp-caption" }, "outcomes (schedules each)"),
    h("div", { class: "cp-scroll" }, plot));

  // -- the findings, grouped by outcome, asked for in windows
  root.append(h("div", { class: "cp-caption" }, chart.findings
    ? `findings: ${chart.findings}, grouped by outcome (the fewest preemptions first); ` +
      "click one to see its run"
    : "findings: none (no failure or deadlock)"));
  const list = h("div", { class: "cp-scroll cp-findings", style: "max-height: 360px" });
  root.append(list);
  const more = h("button", { onclick: () => load() }, "more findings");
  more.hidden = true;
  root.append(more);
  const rows = new Map(); // index -> row element
  let loaded = 0;

  const groupOf = (index) => chart.groups.find((g) => g[2] <= index && index < g[3]);
  const mark = () => {
    const selected = model.get("selected");
    for (const [index, row] of rows) {
      const on = index === selected;
      row.classList.toggle("cp-selected", on);
      row.style.background = on ? "var(--jp-brand-color3, rgba(33, 150, 243, 0.25))" : "";
      row.firstChild.firstChild.textContent = on ? "\u25b6 " : "  ";
    }
  };
  const add = (r) => {
    const group = groupOf(r.index);
    if (group && group[2] === r.index) {
      const [label, kind, first, stop, schedules] = group;
      const n = stop - first;
      list.append(h("div", { class: `cp-group ${kind}`, style: "margin-top: 4px" },
        h("span", { style: `display:inline-block;width:10px;height:10px;margin-right:6px;` +
          `background:${chart.colours[kind]}` }),
        h("b", {}, `${label}: ${n} finding${n === 1 ? "" : "s"} in ${schedules} schedule` +
          `${schedules === 1 ? "" : "s"}`)));
    }
    const line = "white-space: pre; overflow: hidden; text-overflow: ellipsis";
    const row = h("div", {
      class: "cp-finding", "data-index": r.index, title: r.message,
      style: "cursor: pointer; padding: 1px 0 1px 16px",
      onclick: () => { model.set("selected", r.index); model.save_changes(); },
    }, h("div", { style: line }, h("span", {}, "  "), r.head),
    h("div", { class: "cp-muted", style: line + "; padding-left: 4ch" },
      `schedule ${r.schedule}  replay: ${r.replay}`));
    rows.set(r.index, row);
    list.append(row);
  };
  const load = async () => {
    more.disabled = true;
    try {
      const { reply } = await request("findings", { lo: loaded, hi: loaded + chart.window });
      reply.rows.forEach(add);
      loaded = reply.hi;
      mark();
    } catch (e) {
      error.textContent = String(e.message || e);
    }
    more.disabled = false;
    more.hidden = loaded >= chart.findings;
  };
  if (chart.findings) load();

  model.on("change:selected", mark);
  model.on("change:error", showError);
  return () => {
    model.off("change:selected", mark);
    model.off("change:error", showError);
    request.dispose();
  };
}

export default { render };
