// orbits_nb dashboard (anywidget front end): filters, the run list, click-through.

const RUN_STYLE = { pending: "pending", running: "running", succeeded: "succeeded",
  failed: "failed", cancelled: "cancelled", interrupted: "retrying", reset: "pending" };

function pill(model, status) {
  const palette = model.get("palette") || [];
  const s = palette.find((p) => p.status === (RUN_STYLE[status] || status))
    || { fill: "#f1f5f9", border: "#94a3b8", text: "#475569" };
  return h("span", { class: `onb-pill onb-st-${status}`,
    style: `background:${s.fill};border-color:${s.border};color:${s.text}` }, status);
}

function when(ts) {
  if (!ts) return "";
  const d = new Date(ts * 1000);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} `
    + `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

function setTrait(model, name, value) {
  model.set(name, value);
  model.save_changes();
}

function filters(model) {
  const option = (value, label, current) => h("option", { value, selected: value === current },
    label);
  const workflow = model.get("workflow");
  const status = model.get("status");
  const workflows = model.get("workflows") || [];
  if (workflow && !workflows.includes(workflow)) workflows.push(workflow);
  return h("div", { class: "onb-filters" },
    h("label", {}, "workflow ", h("select", { class: "onb-f-workflow",
      onchange: (e) => setTrait(model, "workflow", e.target.value) },
    option("", "all", workflow), workflows.map((w) => option(w, w, workflow)))),
    h("label", {}, "status ", h("select", { class: "onb-f-status",
      onchange: (e) => setTrait(model, "status", e.target.value) },
    option("", "all", status), ["pending", "running", "succeeded", "failed", "cancelled"]
      .map((s) => option(s, s, status)))),
    h("label", {}, "since ", h("input", { type: "date", class: "onb-f-since",
      value: model.get("since"), onchange: (e) => setTrait(model, "since", e.target.value) })),
    h("span", { class: "onb-spacer" }),
    h("span", { class: "onb-sub" }, `updated ${when(model.get("updated")).slice(11)}`),
    h("button", { class: "onb-btn", title: "read the state file now",
      onclick: () => model.send({ type: "refresh" }) }, "↻"));
}

function table(model) {
  const runs = model.get("runs") || [];
  if (!runs.length) return h("div", { class: "onb-empty" }, "No runs match.");
  const selected = model.get("selected");
  const rows = runs.map((r) => {
    const total = Math.max(1, r.steps_total);
    const bar = h("div", { class: "onb-progress", style: "margin:3px 0 0 0;width:90px" },
      h("div", { style: `width:${(100 * r.steps_done) / total}%;background:#16a34a` }),
      r.steps_failed ? h("div", { style: `width:${(100 * r.steps_failed) / total}%;`
        + "background:#dc2626" }) : null,
      r.waiting ? h("div", { style: `width:${(100 * r.waiting) / total}%;background:#d97706` })
        : null);
    const where = r.owner ? (r.here ? "this kernel" : r.owner) : "";
    return h("tr", { class: r.run_id === selected ? "onb-selected" : "", "data-run-id": r.run_id,
      onclick: () => setTrait(model, "selected", r.run_id === selected ? "" : r.run_id) },
    h("td", {}, pill(model, r.status), r.approvals ? h("span", { class: "onb-pill",
      style: "margin-left:4px;background:#fef3c7;border-color:#d97706;color:#78350f",
      title: "waiting for an approval" }, "approval") : null),
    h("td", {}, h("b", {}, r.workflow)),
    h("td", { class: "onb-mono" }, r.run_id),
    h("td", {}, `${r.steps_done}/${r.steps_total}`, bar),
    h("td", {}, when(r.created_at)), h("td", {}, seconds(r.duration)),
    h("td", { class: "onb-sub" }, where),
    h("td", { class: "onb-summary onb-err", title: r.error }, r.error));
  });
  return h("div", { class: "onb-tablewrap", style: "max-height:420px" }, h("table", {},
    h("thead", {}, h("tr", {}, ["status", "workflow", "run", "steps", "created", "duration",
      "executing in", "error"].map((c) => h("th", {}, c)))), h("tbody", {}, rows)));
}

function draw(model, el) {
  const notice = model.get("notice") || {};
  const runs = model.get("runs") || [];
  const root = h("div", { class: "onb onb-dashboard" },
    h("div", { class: "onb-head" }, h("span", { class: "onb-title" }, "orbits_nb runs"),
      h("span", { class: "onb-sub" }, `${runs.length} shown · `, h("code", {},
        model.get("state_path")))),
    filters(model),
    notice.text ? h("div", { class: `onb-notice ${notice.level || "info"}` }, notice.text)
      : null,
    table(model),
    model.get("selected") ? h("div", { class: "onb-sub", style: "margin-top:6px" },
      "Monitor of the selected run below; click the row again to close it.") : null);
  const scroll = el.querySelector(".onb-tablewrap");
  const top = scroll ? scroll.scrollTop : 0;
  el.replaceChildren(root);
  const again = el.querySelector(".onb-tablewrap");
  if (again) again.scrollTop = top;
}

function render({ model, el }) {
  const redraw = () => draw(model, el);
  const traits = ["runs", "workflows", "workflow", "status", "since", "selected", "updated",
    "notice"];
  for (const name of traits) model.on(`change:${name}`, redraw);
  redraw();
  model.send({ type: "ping" });
  const ping = setInterval(() => model.send({ type: "ping" }), 15000);
  return () => {
    clearInterval(ping);
    for (const name of traits) model.off(`change:${name}`, redraw);
  };
}

export default { render };
