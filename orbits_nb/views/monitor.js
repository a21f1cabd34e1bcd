// orbits_nb run monitor (anywidget front end). State lives in the model; this file
// only draws it and sends the user's gestures back (selection, page, actions).

const RUN_STYLE = { pending: "pending", running: "running", succeeded: "succeeded",
  failed: "failed", cancelled: "cancelled", interrupted: "retrying", reset: "pending" };
const PROGRESS_STATES = ["running", "waiting", "retrying", "failed", "cancelled", "pending",
  "expected"];

function styleOf(model, status) {
  const palette = model.get("palette") || [];
  const name = RUN_STYLE[status] || status;
  return palette.find((p) => p.status === name) || palette.find((p) => p.status === "pending")
    || { fill: "var(--jp-layout-color2, #f1f5f9)", border: "var(--jp-border-color1, #94a3b8)",
      text: "var(--jp-ui-font-color1, #475569)" };
}

function pill(model, status, label) {
  const s = styleOf(model, status);
  return h("span", { class: `onb-pill onb-st-${status}`, role: "status",
    "aria-label": `status: ${status}`, title: status,
    style: `background:${s.fill};border-color:${s.border};color:${s.text}` }, label || status);
}

function send(model, action, step = "", comment = "") {
  model.send({ type: "action", action, step, comment });
}

function select(model, path) {
  model.set("selected", path);
  model.save_changes();
}

// The kernel decides which buttons act (views/status.py), and refuses the others with
// the same reason the disabled button shows as its tooltip.
function button(model, control, cls, onclick) {
  const c = control || { enabled: false, label: "", title: "" };
  const gone = GONE.has(model);
  return h("button", { class: `onb-btn ${cls}`, disabled: gone || !c.enabled,
    title: gone ? GONE_TEXT : c.title, onclick }, c.label);
}

// The kernel that owned this view went away (restarted or died): JupyterLab's widget
// manager marks the view disconnected and its model no longer comm-live. Nothing the
// view shows changes any more, and no button can act.
const GONE = new WeakSet();
const GONE_TEXT = "kernel gone - this view is no longer live (re-run the cell, or "
  + "ob.get_run(run_id) in a live kernel, to see the run now)";

function noticeGone(model, state) {
  const gone = !!state.el.closest(".jupyter-widgets-disconnected");
  if (gone === GONE.has(model)) return;
  if (gone) GONE.add(model); else GONE.delete(model);
  draw(model, state);
}

function renderGone(model) {
  if (!GONE.has(model)) return null;
  return h("div", { class: "onb-notice error onb-gone", role: "alert" }, GONE_TEXT);
}

function renderHeader(model, state) {
  const head = model.get("header") || {};
  const controls = model.get("controls") || {};
  const status = head.status || "pending";
  const retry = button(model, controls.retry, "onb-retry", () => send(model, "retry"));
  const cancel = button(model, controls.cancel, "onb-danger onb-cancel",
    () => send(model, "cancel"));
  const reset = button(model, controls.reset, "onb-reset",
    () => { state.confirm = true; draw(model, state); });
  return h("div", {},
    h("div", { class: "onb-head" },
      pill(model, status),
      h("span", { class: "onb-title" }, head.workflow || ""),
      h("code", { class: "onb-runid" }, head.run_id || ""),
      h("span", { class: "onb-spacer" }), retry, cancel, reset),
    progressBar(model, head),
    h("div", { class: "onb-sub" }, h("span", { class: "onb-progress-text" },
      progressText(head, state)),
    head.note ? h("span", { class: "onb-note" }, ` · ${head.note}`) : null,
    (model.get("controls") || {}).busy && !(model.get("approvals") || []).length
      ? h("div", { class: "onb-busy" }, model.get("controls").busy) : null,
    head.error ? h("span", { class: "onb-errline" }, ` · ${head.error}`) : null));
}

// The same rules as views/model.py count_text / work_seconds / Clock: never a
// completed count while the run can add steps; the timer is the work of every
// execution and never goes back (the kernel-clock estimate moves between headers).
function countText(head) {
  const done = head.done || 0;
  if (head.total_sure === "unknown") return `${done} steps done · total unknown (first run)`;
  if (head.total_sure === "estimate") {
    return `${done}/~${head.shown_total} steps done (estimate)`;
  }
  return `${done}/${head.total || 0} steps done`;
}

function workSeconds(head, state) {
  const now = Date.now() / 1000 - state.skew;
  let work = head.work_before || 0;
  if (head.open_since !== null && head.open_since !== undefined) {
    work += Math.max(0, now - head.open_since);
  }
  const key = head.run_id || "";
  const shown = Math.max(work, state.clocks[key] || 0);
  state.clocks[key] = shown;
  return shown;
}

function executionsText(head) {
  const spans = head.execution_spans || [];
  if (spans.length < 2) return "";
  const each = spans.map((s) => `${s.execution} ${s.status}`).join(", ");
  return `execution ${spans[spans.length - 1].execution} of ${spans.length} (${each})`;
}

function progressText(head, state) {
  const counts = head.counts || {};
  const parts = [countText(head)];
  for (const name of PROGRESS_STATES) {
    if (counts[name]) parts.push(`${counts[name]} ${name}`);
  }
  const timed = (head.open_since !== null && head.open_since !== undefined)
    || head.work_before;
  if (timed && !["reset", "pending"].includes(head.status)) {
    parts.push(seconds(workSeconds(head, state)));
  }
  const runs = executionsText(head);
  if (runs) parts.push(runs);
  return parts.join(" · ");
}

// Once a second while the run is live: only the clocks move, nothing is rebuilt.
function tick(model, state) {
  const head = model.get("header") || {};
  if (head.terminal || GONE.has(model)) return;
  const now = Date.now() / 1000 - state.skew;
  const text = state.el.querySelector(".onb-progress-text");
  if (text) text.textContent = progressText(head, state);
  if (model.get("tab") === "timeline" && (model.get("timeline") || {}).live) {
    growTimeline(model, state);
  }
  for (const cell of state.el.querySelectorAll("td.onb-duration[data-started]")) {
    cell.textContent = seconds(Number(cell.dataset.before || 0) + now
      - Number(cell.dataset.started));
  }
}

function progressBar(model, head) {
  const counts = head.counts || {};
  const sure = head.total_sure || "final";
  // Unknown total: the known steps fill at most 80%, the rest is drawn as unknown.
  const total = Math.max(1, sure === "final" ? head.total || 0
    : sure === "estimate" ? head.shown_total : Math.ceil(((head.known || 0) + 1) / 0.8));
  const bar = h("div", { class: "onb-progress", "data-total": sure,
    title: sure === "final" ? "" : countText(head) });
  for (const name of ["succeeded", "replayed", "failed", "cancelled", "running", "retrying",
    "waiting"]) {
    if (!counts[name]) continue;
    const s = styleOf(model, name);
    bar.append(h("div", { title: `${counts[name]} ${name}`,
      style: `width:${(100 * counts[name]) / total}%;background:${s.border}` }));
  }
  if (sure !== "final") bar.append(h("div", { class: "onb-unknown", title: countText(head) }));
  return bar;
}

function renderNotice(model, state) {
  const notice = model.get("notice") || {};
  if (!notice.text || state.dismissed === notice.at) return null;
  return h("div", { class: `onb-notice ${notice.level || "info"}` }, notice.text,
    h("span", { class: "onb-x", title: "dismiss", role: "button", "aria-label": "dismiss",
      onclick: () => { state.dismissed = notice.at; draw(model, state); } }, "✕"));
}

function renderApprovals(model, state) {
  const busy = (model.get("controls") || {}).busy || "";
  return (model.get("approvals") || []).map((item) => {
    const input = h("input", { type: "text", placeholder: "comment (optional)",
      value: state.comments[item.path] || "", "data-focus": `comment:${item.path}`,
      oninput: (e) => { state.comments[item.path] = e.target.value; } });
    const decide = (action) => { state.sent[item.path] = action;
      send(model, action, item.path, state.comments[item.path] || ""); draw(model, state); };
    const sent = !!state.sent[item.path] || !!busy || GONE.has(model);
    return h("div", { class: "onb-approval", "data-step": item.path },
      h("span", { class: "onb-pill",
        style: "background:color-mix(in srgb, var(--jp-warn-color1, #d97706) 16%, "
          + "var(--jp-layout-color1, #ffffff));border-color:var(--jp-warn-color1, #d97706);"
          + "color:var(--jp-ui-font-color1, #78350f)" }, "approval needed"),
      h("span", { class: "onb-q" }, item.prompt),
      h("code", {}, item.path), input,
      h("button", { class: "onb-btn onb-primary onb-approve", disabled: sent, title: busy,
        onclick: () => decide("approve") }, "✓ Approve"),
      h("button", { class: "onb-btn onb-danger onb-reject", disabled: sent, title: busy,
        onclick: () => decide("reject") }, "✕ Reject"),
      busy ? h("div", { class: "onb-sub onb-busy", style: "width:100%" },
        busy.replace(/ STEP$/, ` ${item.path}`)) : null,
      item.details ? h("pre", { style: "width:100%;margin:4px 0 0 0" }, item.details) : null);
  });
}

function diagramBox(model, state) {
  const svg = model.get("svg");
  const dot = model.get("dot");
  const key = `${state.actual}|${svg.length}|${svg}|${dot}`;
  if (state.diagram && state.diagram.key === key) return state.diagram.box;
  const box = h("div", { class: `onb-diagram${state.actual ? " onb-actual" : ""}` });
  if (svg) {
    box.innerHTML = svg;
    for (const g of box.querySelectorAll("g.node, g.cluster")) {
      const title = g.querySelector("title");
      if (!title) continue;
      let name = title.textContent;
      if (g.classList.contains("cluster")) name = name.replace(/^cluster:/, "");
      else if (name.startsWith("#") && !name.startsWith("#group:")) continue;
      g.dataset.step = name;
      g.addEventListener("click", (event) => { event.stopPropagation(); select(model, name); });
    }
  } else if (dot) {
    box.append(h("div", { class: "onb-dot-hint" }, `${model.get("problem")}: showing the DOT `
      + "source (pip install graphviz-pure to draw it)"), h("pre", { style: "text-align:left" },
      dot));
  } else {
    box.append(h("div", { class: "onb-empty" }, "no diagram"));
  }
  state.diagram = { key, box };
  return box;
}

const TABS = [["diagram", "Diagram"], ["timeline", "Timeline"], ["logs", "Logs"]];

function tabs(model) {
  const current = model.get("tab") || "diagram";
  return h("span", { class: "onb-tabs", role: "tablist" }, TABS.map(([name, label]) =>
    h("button", { class: `onb-tab${name === current ? " onb-tab-on" : ""}`, role: "tab",
      "aria-selected": name === current ? "true" : "false", "data-tab": name,
      onclick: () => { model.set("tab", name); model.save_changes(); } }, label)));
}

function renderDiagram(model, state) {
  const tab = model.get("tab") || "diagram";
  if (tab !== "diagram") {
    return h("div", { class: "onb-panel onb-wide" }, h("div", { class: "onb-panel-head" },
      tabs(model)), tab === "timeline" ? renderTimeline(model, state)
      : renderLogs(model, state));
  }
  const box = diagramBox(model, state);
  const selected = model.get("selected");
  for (const g of box.querySelectorAll("g[data-step]")) {
    g.classList.toggle("onb-selected", g.dataset.step === selected);
  }
  const legend = h("div", { class: "onb-legend" }, (model.get("palette") || []).map((p) =>
    h("span", { style: `background:${p.fill};border-color:${p.border};color:${p.text}` },
      p.status)));
  const zoom = h("button", { class: "onb-btn", style: "margin-left:auto;padding:0 8px",
    title: state.actual ? "fit the diagram to the panel" : "show the diagram at full size",
    onclick: () => { state.actual = !state.actual; draw(model, state); } },
  state.actual ? "fit" : "1:1");
  return h("div", { class: "onb-panel" },
    h("div", { class: "onb-panel-head" }, tabs(model), zoom), box, legend);
}

function renderTable(model, state) {
  const rows = model.get("rows") || [];
  const selected = model.get("selected");
  const head = model.get("header") || {};
  const now = Date.now() / 1000 - state.skew;
  const body = rows.map((row) => {
    let duration = seconds(row.duration);
    const active = !duration && row.open_since
      && ["running", "waiting", "retrying"].includes(row.status);
    if (active) duration = seconds((row.work_before || 0) + now - row.open_since);
    if (row.replayed && duration) duration = `${duration} (recorded)`;
    const cls = [row.path === selected ? "onb-selected" : "",
      row.status === "expected" ? "onb-expected" : ""].join(" ");
    return h("tr", { class: cls, "data-step": row.path, onclick: () => select(model, row.path) },
      h("td", { class: "onb-mono onb-stepname", style: `padding-left:${8 + 14 * row.depth}px` },
        row.step),
      h("td", {}, pill(model, row.status), row.drifted ? h("span", { class: "onb-drifted",
        title: "its resource has drifted since (orbits_nb.drift() for the diff)" },
      " drifted since") : null),
      h("td", {}, row.attempts || ""), h("td", {}, row.action),
      h("td", { class: "onb-duration", "data-started": active ? row.open_since : null,
        "data-before": active ? row.work_before || 0 : null }, duration),
      h("td", { class: `onb-summary onb-mono${row.status === "failed" ? " onb-err" : ""}`,
        title: row.summary }, row.summary));
  });
  const table = h("table", {}, h("thead", {}, h("tr", {},
    ["step", "status", "tries", "action", "duration", "result / error"].map((c) =>
      h("th", {}, c)))), h("tbody", {}, body));
  const total = model.get("total_rows");
  const size = model.get("page_size");
  const first = model.get("first_row");
  let pager = null;
  if (total > size) {
    const go = (page) => { model.set("page", page); model.save_changes(); };
    const page = Math.floor(first / size);
    pager = h("div", { class: "onb-pager" },
      h("button", { class: "onb-btn", disabled: page === 0, onclick: () => go(page - 1) }, "‹"),
      `${first + 1}–${Math.min(first + size, total)} of ${total}`,
      h("button", { class: "onb-btn", disabled: first + size >= total,
        onclick: () => go(page + 1) }, "›"),
      h("label", { style: "margin-left:auto" }, h("input", { type: "checkbox",
        checked: model.get("page") < 0, onchange: (e) => go(e.target.checked ? -1 : page) }),
      " follow"));
  }
  const label = head.known !== undefined ? `Steps (${total})` : "Steps";
  return h("div", { class: "onb-panel" }, h("div", { class: "onb-panel-head" }, label),
    h("div", { class: "onb-tablewrap" }, rows.length ? table
      : h("div", { class: "onb-empty" }, "no steps yet")), pager);
}

function section(title, text, cls = "") {
  if (!text) return null;
  return h("div", { class: "onb-section" }, h("h4", {}, title), h("pre", { class: cls }, text));
}

function renderInspector(model, state) {
  const d = model.get("detail") || {};
  if (!d.path) {
    return h("div", { class: "onb-panel onb-inspector" }, h("div", { class: "onb-empty" },
      "Select a step in the diagram or the table to inspect it."));
  }
  const parts = [];
  if (d.group) {
    parts.push(h("div", { class: "onb-section" }, d.members.map((m) =>
      h("span", { class: "onb-chip", onclick: () => select(model, m.path),
        style: (() => { const s = styleOf(model, m.status);
          return `background:${s.fill};border-color:${s.border};color:${s.text}`; })() },
      m.path)), d.more ? ` … and ${d.more} more` : null));
  } else if (d.missing || d.failed) {
    parts.push(h("div", { class: "onb-section onb-sub" }, d.failed || "This step is no longer "
      + "in the run."));
  } else if (d.status === "expected" && !d.discarded) {
    parts.push(h("div", { class: "onb-section onb-sub" }, `Not reached yet in this run. In the `
      + `previous run (${d.expected_from}) it ${d.previous_status}`
      + (d.previous_duration ? ` in ${d.previous_duration}` : "") + "."));
  } else {
    const meta = [["action", d.action], ["executor", d.executor], ["worker", d.worker],
      ["attempts", d.attempts], ["started", d.started], ["duration", d.duration]]
      .filter(([k, v]) => v !== "" && v !== undefined && v !== null
        && !(k === "attempts" && v === 0))
      .map(([k, v]) => h("span", {}, `${k} `, h("b", {}, String(v))));
    if (d.child_run_id) meta.push(h("span", {}, "nested run ", h("code", {}, d.child_run_id)));
    if (d.dashboard) {
      meta.push(h("a", { class: "onb-dashboard", href: d.dashboard, target: "_blank",
        rel: "noopener" }, "Dask dashboard"));
    }
    parts.push(h("div", { class: "onb-meta" }, meta));
    if (d.discarded) parts.push(h("div", { class: "onb-section onb-sub" }, d.discarded));
    if (d.error) parts.push(h("div", { class: "onb-section onb-errline" }, d.error));
    if (d.approval) parts.push(section("Question", d.approval.prompt));
    parts.push(section("Arguments", d.args), section("Result", d.result),
      section("Traceback", d.traceback, "onb-trace"));
    if ((d.history || []).length > 1
      || (d.history || []).some((a) => a.status === "interrupted")) {
      parts.push(section("Attempts", d.history.map((a) =>
        `#${a.attempt} ${a.started} ${a.status}${a.duration ? ` after ${a.duration}` : ""}`
        + `${a.execution ? ` (execution ${a.execution})` : ""}${a.worker ? ` on ${a.worker}` : ""}`
        + `${a.error ? ` — ${a.error}` : ""}`).join("\n")));
    }
    parts.push(section("Bag", d.bag));
    const logs = d.logs_label || "Logs";
    parts.push(section(d.logs_hidden ? `${logs} (last lines; ${d.logs_hidden} earlier hidden)`
      : logs, d.logs || "(no output captured)", "onb-logs"));
  }
  const canReset = ((model.get("controls") || {}).reset || {}).enabled;
  if (state.confirm && canReset && d.reset_from) {
    const n = (d.reset_discards || []).length;
    parts.unshift(h("div", { class: "onb-confirm" },
      h("span", {}, `Reset from `, h("b", {}, d.reset_from), `? ${n} recorded step${n === 1
        ? "" : "s"} (${(d.reset_discards || []).join(", ")}) will be discarded and run again `
        + "on the next start."),
      h("button", { class: "onb-btn onb-danger onb-confirm-reset",
        onclick: () => { state.confirm = false; send(model, "reset", d.reset_from);
          draw(model, state); } }, "Reset"),
      h("button", { class: "onb-btn", onclick: () => { state.confirm = false;
        draw(model, state); } }, "Keep")));
  }
  const title = h("div", { class: "onb-panel-head" }, "Step ",
    h("code", { style: "color:inherit" }, d.path), d.status ? pill(model, d.status) : null);
  return h("div", { class: "onb-panel onb-inspector", "data-step": d.path }, title, parts);
}

function draw(model, state) {
  const head = model.get("header") || {};
  const parts = [renderHeader(model, state), renderGone(model), renderNotice(model, state),
    renderApprovals(model, state),
    h("div", { class: `onb-body${(model.get("tab") || "diagram") !== "diagram"
      ? " onb-body-wide" : ""}` }, renderDiagram(model, state), renderTable(model, state)),
    renderInspector(model, state)].filter((p) => p !== null && p !== undefined);
  // The root element stays (what holds it, a screenshot or a reader's place, keeps it);
  // its content is drawn again.
  const root = state.root || (state.root = h("div", {}));
  root.className = `onb onb-monitor${GONE.has(model) ? " onb-kernel-gone" : ""}`;
  root.dataset.runId = head.run_id || "";
  root.dataset.status = head.status || "";
  const scrolled = ".onb-diagram, .onb-tablewrap, .onb-timeline, .onb-logbox";
  const scroll = [...state.el.querySelectorAll(scrolled)].map((n) => [n.scrollTop,
    n.scrollLeft, n.className]);
  const focused = document.activeElement;
  const focusKey = focused && state.el.contains(focused) ? focused.dataset.focus : null;
  const caret = focusKey ? [focused.selectionStart, focused.selectionEnd] : null;
  root.replaceChildren(...parts.flat());
  if (root.parentNode !== state.el) state.el.replaceChildren(root);
  [...root.querySelectorAll(scrolled)].forEach((n, i) => {
    if (scroll[i] && scroll[i][2] === n.className) [n.scrollTop, n.scrollLeft] = scroll[i];
    if (n.dataset.following === "1") n.scrollTop = n.scrollHeight;  // follow: the end
  });
  if (focusKey) {
    const again = [...root.querySelectorAll("[data-focus]")]
      .find((n) => n.dataset.focus === focusKey);
    if (again) {
      again.focus();
      if (again.setSelectionRange && caret[0] !== null) {
        again.setSelectionRange(caret[0], caret[1]);
      }
    }
  }
}

function render({ model, el }) {
  const state = { el, skew: 0, comments: {}, sent: {}, confirm: false, actual: false,
    dismissed: null, clocks: {}, expanded: {}, logText: null, logTimer: null,
    logSteps: "" };
  let queued = false;
  const redraw = () => {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => { queued = false; draw(model, state); });
  };
  const traits = ["header", "controls", "svg", "dot", "rows", "selected", "detail",
    "approvals", "notice", "page", "first_row", "total_rows", "live", "remote", "tab",
    "timeline", "log_query"];
  const logs = () => { if (!patchLogs(model, state)) redraw(); };
  model.on("change:log_window", logs);
  model.on("change:approvals", () => { state.sent = {}; });
  model.on("change:selected", () => { state.confirm = false; });
  for (const name of traits) model.on(`change:${name}`, redraw);
  // The kernel's clock, estimated when a header arrives (not at each redraw: a redraw
  // of an old header would set every live clock back to when it was sent).
  const clock = () => {
    const head = model.get("header") || {};
    if (head.now) state.skew = Date.now() / 1000 - head.now;
  };
  clock();
  model.on("change:header", clock);
  const gone = () => setTimeout(() => noticeGone(model, state), 0);
  model.on("comm_live_update", gone);
  draw(model, state);
  // Live durations tick here, not in the kernel: no traffic while nothing changes.
  const ticker = setInterval(() => tick(model, state), 1000);
  const ping = () => {
    try { model.send({ type: "ping" }); } catch (err) { GONE.add(model); draw(model, state); }
  };
  ping();
  const pinger = setInterval(ping, 15000);
  return () => {
    clearInterval(ticker);
    clearInterval(pinger);
    model.off("comm_live_update", gone);
    model.off("change:header", clock);
    model.off("change:log_window", logs);
    for (const name of traits) model.off(`change:${name}`, redraw);
  };
}

export default { render };
