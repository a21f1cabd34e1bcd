// orbits_nb dashboard (anywidget front end): filters, one page of the run list, the
// pager, "open run by id", schedules. The kernel sends only the visible page.

const RUN_STYLE = { pending: "pending", running: "running", succeeded: "succeeded",
  failed: "failed", cancelled: "cancelled", interrupted: "retrying", reset: "pending" };
const STATUSES = ["pending", "running", "succeeded", "failed", "cancelled"];
const SOURCES = ["kernel", "script", "cli", "runbook", "schedule", "worker"];
const COLUMNS = [["status"], ["workflow"], ["arguments"], ["run"], ["steps"],
  ["exec.", "executions: how many times the run was started"],
  ["started", "where the run was started (source), and by whom"],
  ["executing in / by", "who executes it now, or who executed it last"],
  ["created"], ["duration", "work: the sum of its executions"], ["error"]];

function pill(model, status) {
  const palette = model.get("palette") || [];
  const s = palette.find((p) => p.status === (RUN_STYLE[status] || status));
  const style = s ? `background:${s.fill};border-color:${s.border};color:${s.text}` : "";
  return h("span", { class: `onb-pill onb-st-${status}`, style }, status);
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

function option(value, label, current) {
  return h("option", { value, selected: value === current }, label);
}

function choice(model, name, label, values, labels = {}) {
  const current = model.get(name);
  return h("label", {}, `${label} `, h("select", { class: `onb-f-${name}`,
    onchange: (e) => setTrait(model, name, e.target.value) },
  option("", "all", current), values.map((v) => option(v, labels[v] || v, current))));
}

function filters(model) {
  const workflow = model.get("workflow");
  const workflows = [...(model.get("workflows") || [])];
  if (workflow && !workflows.includes(workflow)) workflows.push(workflow);
  let typing = null;
  const search = h("input", { type: "search", class: "onb-f-search", placeholder:
    "search id, workflow, client=acme", value: model.get("search"),
  title: "run id, workflow or argument values; key=value matches one argument",
  oninput: (e) => {
    clearTimeout(typing);
    typing = setTimeout(() => setTrait(model, "search", e.target.value), 300);
  },
  onkeydown: (e) => {
    if (e.key === "Enter") { clearTimeout(typing); setTrait(model, "search", e.target.value); }
  } });
  return h("div", { class: "onb-filters" },
    search,
    choice(model, "workflow", "workflow", workflows),
    choice(model, "status", "status", STATUSES),
    choice(model, "had_failures", "had failures", ["yes", "no"]),
    choice(model, "source", "source", SOURCES),
    h("label", {}, "since ", h("input", { type: "date", class: "onb-f-since",
      value: model.get("since"), onchange: (e) => setTrait(model, "since", e.target.value) })),
    h("span", { class: "onb-spacer" }),
    openBox(model),
    h("span", { class: "onb-sub" }, `updated ${when(model.get("updated")).slice(11)}`),
    h("button", { class: "onb-btn", title: "read the state file now",
      onclick: () => model.send({ type: "refresh" }) }, "↻"));
}

function openBox(model) {
  const input = h("input", { type: "text", class: "onb-f-open onb-mono",
    placeholder: "open run by id", size: 18,
    onkeydown: (e) => { if (e.key === "Enter") go(); } });
  const go = () => {
    const id = input.value.trim();
    if (id) model.send({ type: "open", run_id: id });
  };
  return h("span", { class: "onb-open" }, input,
    h("button", { class: "onb-btn onb-open-go", onclick: go }, "open"));
}

function copyId(id, button) {
  const done = () => {
    button.textContent = "copied";
    setTimeout(() => { button.textContent = "copy"; }, 1200);
  };
  const select = () => {
    // No clipboard (an insecure origin, or refused): select the id so Ctrl+C copies it.
    const cell = button.closest("td").querySelector(".onb-id");
    const range = document.createRange();
    range.selectNodeContents(cell);
    const sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
    button.textContent = "selected";
  };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(id).then(done, select);
  } else {
    select();
  }
}

function progress(r) {
  const total = Math.max(1, r.steps_total);
  const part = (n, cls) => (n ? h("div", { class: cls, style: `width:${(100 * n) / total}%` })
    : null);
  return h("div", { class: "onb-progress", style: "margin:3px 0 0 0;width:90px" },
    part(r.steps_done, "onb-bar-done"), part(r.steps_failed, "onb-bar-failed"),
    part(r.waiting, "onb-bar-waiting"));
}

function row(model, r, selected) {
  const where = r.executing || r.executed_by;
  return h("tr", { class: r.run_id === selected ? "onb-selected" : "", "data-run-id": r.run_id,
    onclick: (e) => {
      if (e.target.closest(".onb-copy") || String(window.getSelection() || "")) return;
      setTrait(model, "selected", r.run_id === selected ? "" : r.run_id);
    } },
  h("td", { class: "onb-nowrap" }, pill(model, r.status),
    r.had_failures && r.status !== "failed" ? h("span", { class: "onb-tag onb-tag-failures",
      title: "a step attempt or an execution of this run failed" }, "had failures") : null,
    r.approvals ? h("span", { class: "onb-tag onb-tag-approval",
      title: "waiting for an approval" }, `approval${r.approvals > 1 ? ` ×${r.approvals}` : ""}`)
      : null),
  h("td", {}, h("b", {}, r.workflow)),
  h("td", { class: "onb-summary onb-args", title: r.args_full }, r.args),
  h("td", { class: "onb-nowrap" }, h("span", { class: "onb-mono onb-id" }, r.run_id), " ",
    h("button", { class: "onb-btn onb-copy", title: "copy the run id",
      onclick: (e) => { e.stopPropagation(); copyId(r.run_id, e.target); } }, "copy")),
  h("td", { class: "onb-nowrap" }, `${r.steps_done}/${r.steps_total}`, progress(r)),
  h("td", { class: "onb-num" }, r.executions),
  h("td", { class: "onb-sub onb-nowrap onb-started" }, h("div", {}, r.source),
    h("div", {}, r.started_by)),
  h("td", { class: "onb-sub onb-nowrap", title: r.executing ? "executing now"
    : "executed last by" }, where),
  h("td", { class: "onb-nowrap" }, when(r.created_at)),
  h("td", { class: "onb-nowrap", title: "work: the sum of its executions" },
    seconds(r.duration)),
  h("td", { class: "onb-summary onb-err", title: r.error }, r.error));
}

function table(model) {
  const runs = model.get("runs") || [];
  if (!runs.length) return h("div", { class: "onb-empty" }, "No runs match.");
  const selected = model.get("selected");
  return h("div", { class: "onb-tablewrap", style: "max-height:520px" }, h("table", {},
    h("thead", {}, h("tr", {}, COLUMNS.map(([c, title]) => h("th", { title }, c)))),
    h("tbody", {}, runs.map((r) => row(model, r, selected)))));
}

function pager(model) {
  const total = model.get("total");
  const limit = Math.max(1, model.get("limit"));
  const offset = model.get("offset");
  const count = (model.get("runs") || []).length;
  const last = Math.max(0, Math.floor((total - 1) / limit) * limit);
  const go = (to) => setTrait(model, "offset", Math.min(Math.max(0, to), last));
  const button = (label, cls, to, off) => h("button", { class: `onb-btn ${cls}`,
    disabled: off, onclick: () => go(to) }, label);
  const fmt = (n) => n.toLocaleString("en-US");
  const shown = count ? `${fmt(offset + 1)}-${fmt(offset + count)} of ${fmt(total)}`
    : `0 of ${fmt(total)}`;
  return h("div", { class: "onb-pager" },
    button("« first", "onb-first", 0, offset <= 0),
    button("‹ prev", "onb-prev", offset - limit, offset <= 0),
    h("span", { class: "onb-range" }, shown),
    button("next ›", "onb-next", offset + limit, offset + limit >= total),
    button("last »", "onb-last", last, offset >= last),
    h("span", { class: "onb-sub" }, `page ${fmt(Math.floor(offset / limit) + 1)} of `
      + `${fmt(Math.max(1, Math.ceil(total / limit)))}`));
}

function schedules(model) {
  const list = model.get("schedules") || [];
  if (!list.length) return null;
  return h("details", { class: "onb-schedules" },
    h("summary", {}, `schedules (${list.length})`),
    h("table", {}, h("thead", {}, h("tr", {}, ["schedule", "cron", "notebook", "next"]
      .map((c) => h("th", {}, c)))),
    h("tbody", {}, list.map((s) => h("tr", { "data-schedule-id": s.schedule_id },
      h("td", {}, h("b", {}, s.schedule_id)),
      h("td", { class: "onb-mono" }, s.cron + (s.tz ? ` (${s.tz})` : "")),
      h("td", { class: "onb-sub" }, s.notebook),
      h("td", { class: "onb-nowrap" }, s.enabled ? when(s.next_due) : "disabled"))))));
}

function draw(model, el) {
  const notice = model.get("notice") || {};
  const focused = document.activeElement;
  const keep = focused && el.contains(focused) && focused.classList.contains("onb-f-search")
    ? { cls: "onb-f-search", value: focused.value, at: focused.selectionStart } : null;
  const open = el.querySelector(".onb-schedules");
  const root = h("div", { class: "onb onb-dashboard" },
    h("div", { class: "onb-head" }, h("span", { class: "onb-title" }, "orbits_nb runs"),
      h("span", { class: "onb-sub" }, h("code", {}, model.get("state_path")))),
    filters(model),
    notice.text ? h("div", { class: `onb-notice ${notice.level || "info"}` }, notice.text)
      : null,
    table(model),
    pager(model),
    schedules(model),
    model.get("selected") ? h("div", { class: "onb-sub", style: "margin-top:6px" },
      "Monitor of the selected run below; click the row again to close it.") : null);
  const scroll = el.querySelector(".onb-tablewrap");
  const top = scroll ? scroll.scrollTop : 0;
  el.replaceChildren(root);
  const again = el.querySelector(".onb-tablewrap");
  if (again) again.scrollTop = top;
  if (open && open.open) el.querySelector(".onb-schedules").open = true;
  if (keep) {
    // A redraw while typing must not steal the search box from under the cursor.
    const input = el.querySelector(`.${keep.cls}`);
    input.value = keep.value;
    input.focus();
    input.setSelectionRange(keep.at, keep.at);
  }
}

function render({ model, el }) {
  const redraw = () => draw(model, el);
  const traits = ["runs", "total", "offset", "limit", "workflows", "workflow", "status",
    "had_failures", "source", "search", "since", "schedules", "selected", "updated", "notice"];
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
