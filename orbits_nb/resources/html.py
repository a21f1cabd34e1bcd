"""Static HTML of drift reports: status badges, field diffs side by side.

Used for executed notebooks (papermill, nbviewer, GitHub), as the fallback of the
widget, and inside the widget's rows. Self-contained: inline CSS, no script.
"""

from __future__ import annotations

import html
import json
import time
from typing import TYPE_CHECKING, Any

from orbits_nb.core.drift import ABSENT, STATUSES, FieldDiff

if TYPE_CHECKING:
    from orbits_nb.resources.check import ResourceCheck
    from orbits_nb.resources.report import DriftReport

COLORS = {"in_sync": "#2e7d32", "drifted": "#bf4300", "missing": "#c62828",
          "error": "#6a1b9a"}
LABELS = {"in_sync": "in sync", "drifted": "drifted", "missing": "missing",
          "error": "error"}
MAX_VALUE = 4000
MAX_ROWS = 500

CSS = """
<style>
.orbits-drift{font-family:var(--jp-ui-font-family,system-ui,sans-serif);font-size:13px}
.orbits-drift .od-head{margin:4px 0 8px 0}
.orbits-drift .od-badge{display:inline-block;padding:1px 8px;border-radius:10px;
  color:#fff;font-size:12px;font-weight:600;white-space:nowrap}
.orbits-drift table{border-collapse:collapse}
.orbits-drift .od-table td,.orbits-drift .od-table th{padding:3px 8px;text-align:left;
  vertical-align:top;border-bottom:1px solid var(--jp-border-color2,#ddd)}
.orbits-drift .od-diff td,.orbits-drift .od-diff th{padding:2px 6px;
  border:1px solid var(--jp-border-color2,#ddd);
  vertical-align:top;text-align:left}
.orbits-drift pre{margin:0;white-space:pre-wrap;word-break:break-all;max-width:38em;
  font-size:12px}
.orbits-drift .od-desired{background:color-mix(in srgb,var(--jp-success-color1,#2e7d32) 12%,
  var(--jp-layout-color1,#fff))}.orbits-drift .od-actual{background:color-mix(in srgb,
  var(--jp-warn-color1,#e65100) 12%,var(--jp-layout-color1,#fff))}
.orbits-drift summary{cursor:pointer}
.orbits-drift .od-error{color:color-mix(in srgb,#6a1b9a 60%,var(--jp-ui-font-color0,#000));
  white-space:pre-wrap}
.orbits-drift.od-question{background:color-mix(in srgb,var(--jp-warn-color1,#f57c00) 14%,
  var(--jp-layout-color1,#fff));border:1px solid var(--jp-warn-color2,#fdba74);border-radius:4px;
  padding:4px 8px;margin-right:6px;line-height:20px}
</style>
"""


def badge(status: str, text: str | None = None) -> str:
    color = COLORS.get(status, "#555")
    label = html.escape(text or LABELS.get(status, status))
    return (f'<span class="od-badge od-{html.escape(status)}" '
            f'style="background:{color}">{label}</span>')


def clock(ts: float | None) -> str:
    if not ts:
        return ""
    day = time.strftime("%Y-%m-%d", time.localtime(ts))
    today = time.strftime("%Y-%m-%d")
    return time.strftime("%H:%M:%S" if day == today else "%Y-%m-%d %H:%M", time.localtime(ts))


def value_html(value: Any) -> str:
    if value is ABSENT:
        return "<em>(absent)</em>"
    text = value if isinstance(value, str) else json.dumps(value, indent=1, sort_keys=True,
                                                            ensure_ascii=False, default=str)
    if len(text) > MAX_VALUE:
        text = text[:MAX_VALUE] + f"… ({len(text) - MAX_VALUE} more characters)"
    return f"<pre>{html.escape(text)}</pre>"


def diff_table(diffs: list[FieldDiff]) -> str:
    """Field | desired | actual, one row per difference."""
    rows = "".join(
        f"<tr><td><code>{html.escape(d.path or '(root)')}</code><br><small>"
        f"{html.escape(d.change)}</small></td><td class='od-desired'>{value_html(d.desired)}"
        f"</td><td class='od-actual'>{value_html(d.actual)}</td></tr>" for d in diffs)
    return ('<table class="od-diff"><thead><tr><th>field</th><th>desired</th>'
            f"<th>actual</th></tr></thead><tbody>{rows}</tbody></table>")


def details_html(check: ResourceCheck, *, open_: bool = False) -> str:
    """The expandable part of one resource: its diffs, absence or error."""
    attr = " open" if open_ else ""
    if check.status == "drifted":
        fields = ", ".join(d.path or "(root)" for d in check.diffs[:4])
        more = f" +{len(check.diffs) - 4}" if len(check.diffs) > 4 else ""
        return (f"<details{attr}><summary>{len(check.diffs)} field(s): "
                f"{html.escape(fields)}{more}</summary>{diff_table(check.diffs)}</details>")
    if check.status == "missing":
        return (f"<details{attr}><summary>absent: reconcile creates it again</summary>"
                f"<b>desired</b>{value_html(check.desired)}</details>")
    if check.status == "error":
        return f'<span class="od-error">{html.escape(check.error or "error")}</span>'
    return ""


def summary_html(report: DriftReport) -> str:
    counts = report.counts()
    badges = " ".join(badge(s, f"{counts[s]} {LABELS[s]}") for s in STATUSES if counts[s])
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(report.started_at))
    return (f'<div class="od-head"><b>Drift check</b> of {len(report)} resource(s) at '
            f"{when} ({report.duration_s:.2f} s) {badges or '<em>nothing recorded</em>'}"
            "</div>")


def row_html(check: ResourceCheck) -> str:
    users = html.escape(", ".join(check.users)) or "<em>none</em>"
    return (f"<tr><td>{badge(check.status)}</td><td>{html.escape(check.kind)}</td>"
            f"<td><code>{html.escape(check.identity)}</code></td>"
            f"<td>{clock(check.since)}</td><td><small>{users}</small></td>"
            f"<td>{details_html(check)}</td></tr>")


def report_html(report: DriftReport) -> str:
    """The whole report as one self-contained HTML fragment."""
    order = {s: i for i, s in enumerate(("drifted", "missing", "error", "in_sync"))}
    checks = sorted(report.checks, key=lambda c: (order.get(c.status, 9), c.key))
    body = "".join(row_html(c) for c in checks[:MAX_ROWS])
    more = (f"<p><em>{len(checks) - MAX_ROWS} more resource(s) not shown; use "
            "report.table() or the drift_checks table</em></p>") if len(checks) > MAX_ROWS \
        else ""
    table = ('<table class="od-table"><thead><tr><th>status</th><th>kind</th>'
             "<th>identity</th><th>drift since</th><th>used by</th><th>differences</th>"
             f"</tr></thead><tbody>{body}</tbody></table>") if checks else ""
    return f'<div class="orbits-drift">{CSS}{summary_html(report)}{table}{more}</div>'
