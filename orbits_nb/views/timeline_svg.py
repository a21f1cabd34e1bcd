"""The timeline of a run as SVG, for the static report (survives in saved notebooks).

Rows keep a fixed height however many there are (the report scrolls past ~30 rows
instead of shrinking them); bars are coloured like the diagram's nodes, waiting is
striped, a replayed step's bars hatched, the queue wait and interrupted executions
dashed. Every bar has a ``<title>`` (its step, attempt and outcome in words).
"""

from __future__ import annotations

from html import escape

from orbits_nb.core.dot import STYLES, Style
from orbits_nb.views.timeline import Bar, Layout, Row

ROW = 22
BAR = 14
LABEL = 230
PLOT = 640
AXIS = 22
FONT = "Helvetica,Arial,sans-serif"
#: Bar states that are not step states, drawn like the nearest one.
EXTRA: dict[str, Style] = {
    "interrupted": Style("#f5f5f4", "#78716c", "#44403c", "interrupted"),
    "queued": Style("#f8fafc", "#94a3b8", "#475569", "queued"),
}
_DEFS = (
    '<defs><pattern id="onb-hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
    'patternTransform="rotate(45)"><line x1="0" y1="0" x2="0" y2="6" stroke="#0f766e" '
    'stroke-width="2" stroke-opacity="0.45"/></pattern>'
    '<pattern id="onb-wait" width="8" height="8" patternUnits="userSpaceOnUse" '
    'patternTransform="rotate(-45)"><rect width="8" height="8" fill="#fef3c7"/>'
    '<line x1="0" y1="0" x2="0" y2="8" stroke="#d97706" stroke-width="3" '
    'stroke-opacity="0.5"/></pattern></defs>')


def style_of(status: str) -> Style:
    return EXTRA.get(status) or STYLES.get(status) or STYLES["pending"]


def timeline_svg(lay: Layout, *, expand: bool = False, now: float | None = None) -> str:
    """SVG text of ``lay``; groups as they start (collapsed when big) unless ``expand``."""
    rows = lay.rows if expand else lay.visible()
    height = AXIS + ROW * len(rows) + 6
    width = LABEL + PLOT + 12
    end = now if now is not None else lay.t1
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="orbits-nb-timeline" '
             f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
             f'font-family="{FONT}" font-size="11">', _DEFS,
             # Opaque: the image keeps its dark text readable on a dark notebook theme.
             f'<rect width="{width}" height="{height}" fill="#ffffff"/>', _axis(lay, height)]
    for index, row in enumerate(rows):
        parts.append(_row(lay, row, AXIS + index * ROW, end))
    parts.append("</svg>")
    return "".join(parts)


def _axis(lay: Layout, height: int) -> str:
    out = []
    for ts, label in lay.ticks:
        x = LABEL + lay.x(ts, PLOT)
        out.append(f'<line x1="{x:.1f}" y1="{AXIS - 4}" x2="{x:.1f}" y2="{height}" '
                   'stroke="#e2e8f0" stroke-width="1"/>'
                   f'<text x="{x:.1f}" y="{AXIS - 8}" fill="#64748b" '
                   f'text-anchor="middle">{escape(label)}</text>')
    return "".join(out)


def _row(lay: Layout, row: Row, y: int, now: float) -> str:
    indent = 6 + 12 * row.depth
    weight = ' font-weight="600"' if row.kind in ("group", "run") else ""
    mark = ("▸ " if row.collapsed else "▾ ") if row.kind == "group" else ""
    label = row.label if len(row.label) <= 40 - row.depth else (
        row.label[:38 - row.depth] + "…")
    out = [f'<g class="onb-tl-row onb-tl-{row.kind}" data-row="{escape(row.id)}">'
           f'<title>{escape(row.label)}</title>'
           f'<text x="{indent}" y="{y + ROW / 2 + 4:.1f}" fill="#0f172a"{weight}>'
           f"{escape(mark + label)}</text>"]
    for bar in row.bars:
        out.append(_bar(lay, bar, y, now))
    out.append("</g>")
    return "".join(out)


def _bar(lay: Layout, bar: Bar, y: int, now: float) -> str:
    style = style_of(bar.status)
    x0 = LABEL + lay.x(bar.start, PLOT)
    x1 = LABEL + lay.x(bar.end if bar.end is not None else now, PLOT)
    w = max(2.0, x1 - x0)
    top = y + (ROW - BAR) / 2
    fill = "url(#onb-wait)" if bar.kind == "waiting" and bar.status == "waiting" else (
        style.fill)
    dash = ' stroke-dasharray="3,2"' if bar.kind == "queue" or bar.status == "interrupted" \
        else ""
    shape = (f'<rect class="onb-tl-bar st-{bar.status} k-{bar.kind}" x="{x0:.1f}" '
             f'y="{top:.1f}" width="{w:.1f}" height="{BAR}" rx="3" fill="{fill}" '
             f'stroke="{style.border}" stroke-width="1.2"{dash}>'
             f"<title>{escape(_words(bar))}</title></rect>")
    if bar.kind == "waiting" and bar.status != "waiting":
        shape += (f'<rect x="{x0:.1f}" y="{top:.1f}" width="{w:.1f}" height="{BAR}" '
                  'rx="3" fill="url(#onb-wait)" opacity="0.7"/>')
    if bar.replayed:
        shape += (f'<rect x="{x0:.1f}" y="{top:.1f}" width="{w:.1f}" height="{BAR}" '
                  'rx="3" fill="url(#onb-hatch)"/>')
    return shape


def _words(bar: Bar) -> str:
    """A bar's tooltip: what it is and how long it took (or that it still runs)."""
    from orbits_nb.core.dot import seconds

    took = "still open" if bar.end is None else seconds(bar.end - bar.start)
    return f"{bar.label or bar.status} · {took}"


def legend_html() -> str:
    """What the timeline's colours and patterns mean, as inline HTML."""
    names = ["succeeded", "failed", "retrying", "running", "waiting", "cancelled",
             "interrupted", "queued"]
    chips = []
    for name in names:
        s = style_of(name)
        chips.append(f'<span style="display:inline-block;margin-right:6px;padding:0 6px;'
                     f'border:1px solid {s.border};background:{s.fill};color:{s.text};'
                     f'border-radius:3px">{name}</span>')
    chips.append('<span style="color:#475569">hatched: replayed · striped: waiting · '
                 "dashed: queued / interrupted</span>")
    return f'<div style="font-size:11px;margin:2px 0">{"".join(chips)}</div>'
