// Scheduler: "you are the scheduler".  The kernel owns the game (a VM stepped with
// vm.step(task=ID)); this file draws the synced `game` dict and sends the learner's
// choices as requests ("choose", "undo", "reset").

const BROKEN = "#D55E00"; // Okabe-Ito vermillion: a failure or a deadlock (with words)
const CURRENT = "rgba(230, 159, 0, 0.35)"; // Okabe-Ito orange, translucent: the current line

const IDLE = { failed: "failed here:", suspended: "suspended: task.resume() schedules it again" };

function lineTitle(task) {
  if (task.state === "failed") return "raised here";
  return task.started ? "paused here" : "not started: runs from here";
}

function taskColumn(task, send) {
  const code = h("div", { class: "cp-sched-code" });
  if (task.lines.length) {
    task.lines.forEach((line, i) => {
      const number = task.first + i;
      const current = number === task.line;
      code.append(
        h(
          "div",
          {
            class: current ? "cp-sched-line cp-sched-current" : "cp-sched-line",
            style: current ? `background: ${CURRENT}` : null,
            title: current ? lineTitle(task) : null,
          },
          h("span", { class: "cp-sched-mark" }, current ? "\u25B6" : " "),
          h("span", { class: "cp-sched-number cp-muted" }, String(number).padStart(4, " ")),
          " ",
          line,
        ),
      );
    });
  } else {
    code.append(h("div", { class: "cp-muted" }, "(no source: Counterpoint's own code)"));
  }
  const state = task.state + (task.waiting ? ` ${task.waiting}` : "");
  return h(
    "div",
    {
      // (a suspended task: dashed and faded, until task.resume())
      class: `cp-sched-task${{ failed: " cp-sched-failed", suspended: " cp-sched-suspended" }[task.state] || ""}`,
      style: task.state === "failed" ? `border-color: ${BROKEN}` : null,
      "data-task": task.id,
    },
    h("div", { class: "cp-caption" }, `${task.name} (${task.id})`),
    h("div", { class: "cp-sched-state cp-muted" }, state + (task.where ? ` \u00B7 ${task.where}` : "")),
    task.ready
      ? h(
          "button",
          {
            class: "cp-sched-run",
            "data-task": task.id,
            title: `vm.step(task=${task.id})`,
            onclick: () => send("choose", { task: task.id }),
          },
          `\u25B6 run ${task.name} (${task.id}) one step`,
        )
      : h("div", { class: "cp-sched-idle cp-muted" }, IDLE[task.state] || "not ready"),
    code,
  );
}

function render({ model, el }) {
  const request = requester(model);
  const root = h("div", { class: "cp-widget cp-scheduler" });
  el.append(root);
  let busy = false;

  const send = async (what, params) => {
    if (busy) return;
    busy = true;
    root.classList.add("cp-busy");
    try {
      await request(what, params);
    } catch (error) {
      // the kernel also set the `error` trait; it is drawn below
    } finally {
      busy = false;
      root.classList.remove("cp-busy");
    }
  };

  const draw = () => {
    const game = model.get("game") || {};
    if (!game.tasks) return;
    const error = model.get("error");
    const toolbar = h(
      "div",
      { class: "cp-toolbar" },
      h("span", { class: "cp-caption" }, `Scheduler: ${game.program}`),
      h(
        "button",
        { class: "cp-sched-undo", disabled: game.steps === 0, onclick: () => send("undo") },
        "\u21B6 undo",
      ),
      h("button", { class: "cp-sched-reset", onclick: () => send("reset") }, "\u27F2 reset"),
      h("span", { class: "cp-muted" }, `${game.steps} step${game.steps === 1 ? "" : "s"} chosen \u00B7 tick ${game.tick}`),
    );
    const schedule = h(
      "div",
      { class: "cp-sched-schedule" },
      h("span", { class: "cp-muted" }, "schedule "),
      h("code", {}, game.schedule),
    );
    let banner = null;
    if (game.outcome !== null && game.outcome !== undefined) {
      const broken = game.broken;
      banner = h(
        "div",
        {
          class: broken ? "cp-sched-outcome cp-sched-broken" : "cp-sched-outcome",
          style: broken ? `border-color: ${BROKEN}` : null,
        },
        h(
          "div",
          { class: "cp-caption", style: broken ? `color: ${BROKEN}` : null },
          broken ? `\u2717 Broken: ${game.outcome}` : `\u2713 Ended: ${game.program}() returned ${game.outcome}`,
        ),
        broken ? h("pre", { class: "cp-sched-words" }, game.words) : null,
        h("div", {}, h("span", { class: "cp-muted" }, "replay it: "), h("code", { class: "cp-sched-replay" }, game.replay)),
      );
    } else {
      banner = h(
        "div",
        { class: "cp-sched-hint cp-muted" },
        `Your move: pick the task that runs next (ready: ${game.ready.join(", ")}).`,
      );
    }
    const watched = game.watched.length
      ? h(
          "table",
          { class: "cp-sched-watched" },
          h("tr", {}, h("th", {}, "watched"), h("th", {}, "value")),
          game.watched.map(([name, value]) => h("tr", {}, h("td", {}, name), h("td", {}, h("code", {}, value)))),
        )
      : null;
    const tasks = h(
      "div",
      { class: "cp-sched-tasks cp-scroll" },
      game.tasks.map((task) => taskColumn(task, send)),
    );
    const parts = [toolbar, schedule, banner, watched, tasks];
    if (error) parts.push(h("div", { class: "cp-error" }, error));
    root.replaceChildren(...parts.filter((part) => part)); // (null would become text)
  };

  model.on("change:game", draw);
  model.on("change:error", draw);
  draw();
  return () => {
    model.off("change:game", draw);
    model.off("change:error", draw);
    request.dispose();
  };
}

export default { render };
