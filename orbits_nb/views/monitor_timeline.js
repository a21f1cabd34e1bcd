// The monitor's Timeline tab (layout from views/timeline.py); part of the monitor's
// module (see orbits_nb.views.monitor.widget_module): it uses the helpers there.

// Round ticks over t0..t1 (as views/timeline.py ticks): a live axis grows with time.
const TICK_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400,
  21600, 43200, 86400];

function liveTicks(t0, t1, most = 8) {
  const span = Math.max(t1 - t0, 1e-3);
  let step;
  if (span < most) {
    const base = 10 ** Math.floor(Math.log10((span / most) * 2));
    step = [1, 2, 5, 10].map((m) => m * base).find((v) => span / v <= most);
  } else {
    step = TICK_STEPS.find((v) => span / v <= most) || TICK_STEPS[TICK_STEPS.length - 1];
  }
  const unit = step >= 3600 ? [3600, "h"] : step >= 60 ? [60, "min"] : span >= 1 ? [1, "s"]
    : [0.001, "ms"];
  const out = [];
  for (let n = 0; n * step <= span + 1e-9; n += 1) {
    const value = (n * step) / unit[0];
    out.push([t0 + n * step, `${unit[1] === "ms" ? Math.round(value) : +value.toFixed(2)} `
      + unit[1]]);
  }
  return out;
}

function timelineScale(t0, t1) {
  return (t) => (100 * (Math.min(Math.max(t, t0), t1) - t0)) / (t1 - t0);
}

function timelineAxis(marks, pct) {
  return h("div", { class: "onb-tl-axis" }, h("div", { class: "onb-tl-label" }, ""),
    h("div", { class: "onb-tl-plot" }, marks.map(([t, label]) =>
      h("span", { class: "onb-tl-tick", style: `left:${pct(t)}%` }, label))));
}

// Once a second while a live run's timeline shows: its axis reaches now, so every bar
// moves. Moved in place (no element is replaced, so a click is never lost).
function growTimeline(model, state) {
  const box = state.el.querySelector(".onb-timeline");
  const data = model.get("timeline") || {};
  if (!box || !data.rows) return;
  const now = Date.now() / 1000 - state.skew;
  const t1 = Math.max(data.t1, now, data.t0 + 1e-3);
  const pct = timelineScale(data.t0, t1);
  for (const bar of box.querySelectorAll(".onb-tl-bar")) {
    const start = Number(bar.dataset.start);
    const end = bar.dataset.end === undefined ? now : Number(bar.dataset.end);
    bar.style.left = `${pct(start)}%`;
    bar.style.width = `max(2px,${pct(end) - pct(start)}%)`;
  }
  const axis = box.querySelector(".onb-tl-axis");
  if (axis) axis.replaceWith(timelineAxis(liveTicks(data.t0, t1), pct));
}

// The timeline (layout from views/timeline.py): fixed-height rows that scroll, bars
// placed on the axis t0..t1 (a live run's axis reaches now), groups fold in and out.
function renderTimeline(model, state) {
  const data = model.get("timeline") || {};
  const rows = data.rows || [];
  if (!rows.length) return h("div", { class: "onb-empty" }, "no timeline yet");
  const now = Date.now() / 1000 - state.skew;
  const t0 = data.t0;
  const t1 = Math.max(data.t1, data.live ? now : data.t1, t0 + 1e-3);
  const pct = timelineScale(t0, t1);
  const open = (row) => (row.id in state.expanded ? state.expanded[row.id] : !row.collapsed);
  const closed = new Set(rows.filter((r) => r.kind === "group" && !open(r)).map((r) => r.id));
  const axis = timelineAxis(data.live ? liveTicks(t0, t1) : data.ticks || [], pct);
  const lines = rows.filter((r) => r.kind === "group" || !closed.has(r.group)).map((row) => {
    const toggle = row.kind === "group" ? h("button", { class: "onb-tl-toggle",
      "aria-expanded": open(row) ? "true" : "false", title: open(row) ? "fold the group"
        : `show the ${row.size} steps`, onclick: (e) => { e.stopPropagation();
        state.expanded[row.id] = !open(row); draw(model, state); } },
    open(row) ? "▾" : "▸") : null;
    const bars = row.bars.map((bar) => {
      const s = styleOf(model, bar.status === "interrupted" ? "cancelled"
        : bar.status === "queued" ? "pending" : bar.status);
      const end = bar.end === null || bar.end === undefined ? now : bar.end;
      const took = bar.end === null || bar.end === undefined ? "still open"
        : seconds(bar.end - bar.start);
      const cls = [`onb-tl-bar st-${bar.status} k-${bar.kind}`,
        bar.replayed ? "onb-tl-replayed" : ""].join(" ");
      return h("div", { class: cls, title: `${bar.label || bar.status} · ${took}`,
        "data-start": bar.start, "data-end": bar.end ?? null,
        style: `left:${pct(bar.start)}%;width:max(2px,${pct(end) - pct(bar.start)}%);`
          + `background-color:${s.fill};border-color:${s.border}` });
    });
    const pick = row.kind === "step" ? () => select(model, row.id) : null;
    return h("div", { class: `onb-tl-row onb-tl-${row.kind}${row.id === model.get("selected")
      ? " onb-selected" : ""}`, "data-row": row.id, onclick: pick },
    h("div", { class: "onb-tl-label", title: row.label,
      style: `padding-left:${4 + 12 * row.depth}px` }, toggle, row.label),
    h("div", { class: "onb-tl-plot" }, bars));
  });
  return h("div", { class: "onb-timeline", role: "figure",
    "aria-label": "timeline: one bar per step attempt" }, axis, lines);
}
