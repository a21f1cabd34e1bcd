// The monitor's Logs tab (windows from views/logview.py); part of the monitor's
// module (see orbits_nb.views.monitor.widget_module): it uses the helpers there.

const LEVELS = ["stdout", "stderr", "debug", "info", "warning", "error", "critical"];

function askLogs(model, change) {
  const query = { ...(model.get("log_query") || {}), ...change };
  model.set("log_query", query);
  model.save_changes();
}

// The run-wide log: the kernel sends a window of the filtered lines (views/logview.py).
function renderLogs(model, state) {
  const win = model.get("log_window") || {};
  const query = model.get("log_query") || {};
  const size = query.size || 200;
  const following = query.offset === undefined || query.offset < 0;
  const level = h("select", { class: "onb-log-level", "data-focus": "log-level",
    onchange: (e) => askLogs(model, { levels: e.target.value ? [e.target.value] : [] }) },
  h("option", { value: "" }, "all levels"), LEVELS.map((lv) => h("option", { value: lv,
    selected: (query.levels || [])[0] === lv }, lv)));
  const step = h("select", { class: "onb-log-step", "data-focus": "log-step",
    onchange: (e) => askLogs(model, { step: e.target.value }) },
  h("option", { value: "" }, "all steps"), (win.steps || []).map((st) => h("option",
    { value: st, selected: query.step === st }, st)));
  const text = h("input", { type: "search", class: "onb-log-text", placeholder: "filter text",
    value: state.logText ?? (query.text || ""), "data-focus": "log-text",
    oninput: (e) => { state.logText = e.target.value; clearTimeout(state.logTimer);
      state.logTimer = setTimeout(() => askLogs(model, { text: state.logText }), 250); } });
  const first = win.first || 0;
  const matched = win.matched || 0;
  const go = (offset) => askLogs(model, { offset, size });
  const bar = h("div", { class: "onb-log-bar" }, level, step, text,
    h("label", {}, h("input", { type: "checkbox", class: "onb-log-follow", checked: following,
      onchange: (e) => go(e.target.checked ? -1 : first) }), " follow"),
    h("button", { class: "onb-btn onb-log-earlier", disabled: first === 0,
      onclick: () => go(Math.max(0, first - size)) }, "‹ earlier"),
    h("button", { class: "onb-btn onb-log-later", disabled: first + size >= matched,
      onclick: () => go(first + size) }, "later ›"),
    h("span", { class: "onb-sub onb-log-count" }, matched ? `${first + 1}–`
      + `${Math.min(first + size, matched)} of ${matched}`
      + (win.total !== matched ? ` (${win.total} lines in all)` : "") : "no lines"));
  const lines = (win.lines || []).map((l) => h("div", { class: `onb-log-line lv-${l.level}`
    + (l.outcome ? " onb-log-old" : ""), "data-step": l.step },
  h("span", { class: "onb-log-clock" }, l.clock), h("span", { class: "onb-log-lv" }, l.level),
  h("span", { class: "onb-log-where", title: l.where }, l.where),
  h("span", { class: "onb-log-msg" }, l.message)));
  const box = h("div", { class: "onb-logbox", "data-following": following ? "1" : "0" },
    lines.length ? lines : h("div", { class: "onb-empty" }, "no lines"));
  return h("div", { class: "onb-logs-panel" }, bar, box);
}

// New lines while following: only the lines and the counts change, so an open menu
// or a half-typed filter is not rebuilt under the user's hands.
function patchLogs(model, state) {
  const panel = state.el.querySelector(".onb-logs-panel");
  const win = model.get("log_window") || {};
  const steps = JSON.stringify(win.steps || []);
  if (!panel || model.get("tab") !== "logs" || steps !== state.logSteps) {
    state.logSteps = steps;
    return false;
  }
  const fresh = renderLogs(model, state);
  for (const cls of [".onb-logbox", ".onb-log-count", ".onb-log-earlier", ".onb-log-later"]) {
    const before = panel.querySelector(cls);
    const after = fresh.querySelector(cls);
    if (before && after) before.replaceWith(after);
  }
  const box = panel.querySelector(".onb-logbox");
  if (box && box.dataset.following === "1") box.scrollTop = box.scrollHeight;
  return true;
}
