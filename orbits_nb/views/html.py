"""Static HTML of a run: headline, diagram and step table, for any notebook viewer.

Everything is inline (styles, and the diagram as an ``<img>`` with an SVG data URI):
JupyterLab strips ``<style>`` and ``<svg>`` from untrusted outputs, GitHub and nbviewer
run no scripts, and this way the same markup shows everywhere.
"""

from __future__ import annotations

import base64
import html
import time
from collections.abc import Callable
from typing import Any

from orbits_nb.core.dot import STYLES, Picture, seconds
from orbits_nb.views import model
from orbits_nb.views.graph import Diagram
from orbits_nb.views.status import PILL_STYLE

FONT = "-apple-system,BlinkMacSystemFont,'Segoe UI',Helvetica,Arial,sans-serif"
MONO = "ui-monospace,SFMono-Regular,Menlo,Consolas,monospace"
TABLE_LIMIT = 200
#: Timelines with more rows keep their groups folded in the report (run.steps() lists all).
EXPANDED_ROWS = 600
_RUN_STYLES = {"pending": "pending", "running": "running", "succeeded": "succeeded",
               "failed": "failed", "cancelled": "cancelled", **PILL_STYLE}


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def pill(status: str, label: str | None = None) -> str:
    style = STYLES.get(_RUN_STYLES.get(status, status), STYLES["pending"])
    return (f'<span style="display:inline-block;padding:1px 8px;border-radius:9px;'
            f"background:{style.fill};color:{style.text};border:1px solid {style.border};"
            f'font-size:11px;font-weight:600;line-height:16px" title="{esc(status)}">'
            f"{esc(label or status)}</span>")


def clock(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else ""


def diagram_html(diagram: Diagram, alt: str) -> str:
    if diagram.svg is not None:
        data = base64.b64encode(diagram.svg.encode("utf-8")).decode("ascii")
        return (f'<img class="orbits-nb-diagram" alt="{esc(alt)}" style="max-width:100%;'
                f'height:auto;margin:6px 0;background:#f8fafc;border-radius:4px" '
                f'src="data:image/svg+xml;base64,{data}"/>')
    return (f'<div style="color:#92400e;font-size:12px;margin:6px 0">'
            f"{esc(diagram.problem or 'no Graphviz renderer')}: showing the DOT source "
            "(pip install graphviz-pure to draw it)</div>"
            f'<pre style="font-family:{MONO};font-size:11px;max-height:240px;overflow:auto;'
            f'background:#f8fafc;padding:6px">{esc(diagram.dot)}</pre>')


def steps_table(table: list[dict[str, Any]], limit: int = TABLE_LIMIT) -> str:
    shown, hidden = model.active_first(table, limit)
    cell = "padding:3px 8px;border-bottom:1px solid #e5e7eb;text-align:left;vertical-align:top"
    head = "".join(f'<th style="{cell};color:#475569;font-weight:600">{h}</th>'
                   for h in ("step", "status", "attempts", "action", "duration",
                             "result / error"))
    body = []
    for row in shown:
        took = seconds(row["duration"])
        if row.get("replayed") and took:
            took += " (recorded)"  # replayed: the duration of the work as it was done
        drift = (' <span style="color:#c2410c;font-size:11px;font-weight:600" title="its '
                 'resource has drifted since">drifted since</span>' if row.get("drifted")
                 else "")
        indent = f"padding-left:{8 + 14 * row['depth']}px"
        faded = "color:#94a3b8;" if row["status"] == "expected" else ""
        body.append(
            f'<tr class="orbits-nb-step" data-step="{esc(row["path"])}" style="{faded}">'
            f'<td style="{cell};{indent};font-family:{MONO}">{esc(row["step"])}</td>'
            f'<td style="{cell}">{pill(row["status"])}{drift}</td>'
            f'<td style="{cell}">{row["attempts"] or ""}</td>'
            f'<td style="{cell}">{esc(row["action"])}</td>'
            f'<td style="{cell}">{esc(took)}</td>'
            f'<td style="{cell};font-family:{MONO};font-size:11px">{esc(row["summary"])}</td>'
            "</tr>")
    more = (f'<tr><td colspan="6" style="{cell};color:#64748b">… {hidden} more steps '
            "not shown (run.steps() lists them all)</td></tr>") if hidden else ""
    return (f'<table class="orbits-nb-steps" style="border-collapse:collapse;font-size:12px;'
            f'margin:4px 0"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}{more}'
            "</tbody></table>")


def svg_img(svg: str, alt: str, cls: str) -> str:
    data = base64.b64encode(svg.encode("utf-8")).decode("ascii")
    return (f'<img class="{cls}" alt="{esc(alt)}" style="max-width:none;height:auto" '
            f'src="data:image/svg+xml;base64,{data}"/>')


def timeline_html(picture: Picture) -> str:
    """The run's timeline: one bar per attempt, fan-outs grouped (all rows folded out
    in a ``<details>`` when a group is collapsed); scrolls instead of shrinking."""
    from orbits_nb.views.timeline import layout
    from orbits_nb.views.timeline_svg import legend_html, timeline_svg

    lay = layout(picture, time.time())
    if len(lay.rows) < 2:
        return ""
    box = ('<div class="orbits-nb-timeline-box" style="max-height:720px;overflow:auto;'
           'border:1px solid #e5e7eb;border-radius:4px;margin:4px 0">')
    alt = f"timeline of run {picture.state.run_id}"
    parts = ['<div style="font-size:12px;font-weight:600;margin-top:8px">Timeline</div>',
             box, svg_img(timeline_svg(lay, now=time.time()), alt, "orbits-nb-timeline"),
             "</div>", legend_html()]
    if any(r.collapsed for r in lay.rows) and len(lay.rows) <= EXPANDED_ROWS:
        parts.append(f'<details><summary style="font-size:12px;cursor:pointer">every step '
                     f"of each group ({len(lay.rows)} rows)</summary>{box}"
                     f'{svg_img(timeline_svg(lay, expand=True), alt, "orbits-nb-timeline-all")}'
                     "</div></details>")
    return "".join(parts)


def logs_html(lines: list[dict[str, Any]], total: int) -> str:
    """The last lines of the run-wide log, as a static fallback of the log view."""
    if not lines:
        return ""
    text = "\n".join(f"{line['clock']} {line['level']:<7} {line['where']:<24} "
                      f"{line['message']}" for line in lines)
    more = f" (last {len(lines)} of {total})" if total > len(lines) else ""
    return (f'<details class="orbits-nb-logs"><summary style="font-size:12px;cursor:'
            f'pointer">Logs{more}</summary><pre style="font-family:{MONO};font-size:11px;'
            f'max-height:360px;overflow:auto;white-space:pre-wrap">{esc(text)}</pre>'
            "</details>")


def run_html(picture: Picture, diagram: Diagram,
             redact: Callable[[str], str] | None = None,
             logs: tuple[list[dict[str, Any]], int] | None = None) -> str:
    """The whole static view of a run (``logs``: its last log lines and their total)."""
    head = model.header(picture, redact)
    state = picture.state
    title = (f'<div style="font-size:13px;margin-bottom:2px">{pill(head["status"])} '
             f'<b>{esc(head["workflow"])}</b> <code style="font-family:{MONO};'
             f'font-size:12px;color:#475569">{esc(head["run_id"])}</code></div>'
             f'<div style="font-size:12px;color:#475569">{esc(model.progress_text(head))}'
             f"{' · ' + esc(head['note']) if head['note'] else ''}"
             f"{' · started ' + esc(clock(state.started_at)) if state.started_at else ''}"
             "</div>")
    parts = [title, diagram_html(diagram, f"diagram of run {state.run_id}"),
             steps_table(model.rows(picture, redact)), timeline_html(picture)]
    if logs is not None:
        parts.append(logs_html(*logs))
    if state.error and head["error"]:
        trace = str(state.error.get("traceback") or "")
        if redact is not None:
            trace = redact(trace)
        parts.append(
            f'<div style="color:#991b1b;font-size:12px;margin-top:4px"><b>error</b> '
            f"{esc(head['error'])}</div>"
            + (f'<details><summary style="font-size:12px;cursor:pointer">traceback'
               f'</summary><pre style="font-family:{MONO};font-size:11px;white-space:'
               f'pre-wrap">{esc(trace)}</pre></details>' if trace else ""))
    return (f'<div class="orbits-nb-run" data-run-id="{esc(state.run_id)}" '
            f'style="font-family:{FONT};color:#0f172a;background:#ffffff;padding:4px 6px">'
            f'{"".join(parts)}</div>')


RUN_COLUMNS = ("status", "workflow", "arguments", "run", "steps", "exec.", "started",
               "executing in / by", "created", "duration", "error")


def _run_row(r: dict[str, Any], cell: str) -> str:
    tags = ""
    if r.get("had_failures") and r["status"] != "failed":
        tags += ' <span style="font-size:11px;color:#991b1b">had failures</span>'
    if r.get("approvals"):
        tags += ' <span style="font-size:11px;color:#92400e">approval</span>'
    started = " ".join(esc(v) for v in (r.get("source"), r.get("started_by")) if v)
    values = (f"{pill(r['status'])}{tags}", f"<b>{esc(r['workflow'])}</b>",
              esc(r.get("args", "")), f'<span style="font-family:{MONO}">{esc(r["run_id"])}'
              "</span>", f"{r['steps_done']}/{r['steps_total']}", esc(r.get("executions", "")),
              started, esc(r.get("executing") or r.get("executed_by") or ""),
              esc(clock(r["created_at"])), esc(seconds(r["duration"])),
              f'<span style="color:#991b1b">{esc(r["error"])}</span>')
    return "<tr>" + "".join(f'<td style="{cell}">{v}</td>' for v in values) + "</tr>"


def runs_table(runs: list[dict[str, Any]]) -> str:
    """Static HTML of the dashboard's run list: the live table's columns, without controls."""
    cell = "padding:3px 8px;border-bottom:1px solid #e5e7eb;text-align:left;vertical-align:top"
    head = "".join(f'<th style="{cell};color:#475569">{h}</th>' for h in RUN_COLUMNS)
    body = "".join(_run_row(r, cell) for r in runs)
    empty = ("" if runs else
             f'<tr><td colspan="{len(RUN_COLUMNS)}" style="{cell}">no runs yet</td></tr>')
    return (f'<table class="orbits-nb-runs" style="border-collapse:collapse;font-size:12px;'
            f'font-family:{FONT};color:#0f172a;background:#ffffff"><thead><tr>{head}</tr>'
            f"</thead><tbody>{body}{empty}</tbody></table>")
