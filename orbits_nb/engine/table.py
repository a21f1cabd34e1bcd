"""Tables for people: DuckDB relations that display readably, and the CLI's text tables.

``run.steps()`` and ``ob.history()`` return DuckDB relations (``.df()``, ``.pl()``,
``.fetchall()``, SQL on them) of a thin subclass whose notebook display humanises the
values: durations as ``1.2 s`` or ``3 min 4 s``, times in local time, JSON shortened.
Every method is DuckDB's own, and what a method derives is a plain relation again.
:class:`Table` lays rows out as aligned text for the command line.
"""

from __future__ import annotations

import datetime as dt
import html
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import duckdb

    from orbits_nb.core.state import RunState

#: The columns of ``run.steps()``, in order.
STEP_COLUMNS = ["step", "status", "attempts", "action", "started_at", "duration_s",
                "replayed", "result", "error", "worker"]
_STEP_TYPES = ("VARCHAR", "VARCHAR", "INTEGER", "VARCHAR", "TIMESTAMPTZ", "DOUBLE",
               "BOOLEAN", "JSON", "VARCHAR", "VARCHAR")
#: Rows a notebook shows of a relation (the relation itself holds them all).
SHOWN_ROWS = 50


def duration_text(seconds: float | None) -> str:
    """``12 ms``, ``1.2 s``, ``3 min 4 s``, ``2 h 5 min``; empty for None."""
    if seconds is None:
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def _cell(value: Any, width: int = 60, column: str | None = None) -> str:
    """One value as text; with ``column`` (a relation's display) humanised too."""
    if value is None:
        return ""
    if column is not None and isinstance(value, bool):
        return column if value and column == "replayed" else "yes" if value else ""
    if column is not None and column.endswith("duration_s") and isinstance(value, (int, float)):
        return duration_text(float(value))
    if column is not None and isinstance(value, dt.datetime):
        local = value.astimezone() if value.tzinfo else value
        return local.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, str):
        text = value
    elif isinstance(value, (dict, list, bool, int)):
        text = json.dumps(value, default=str)
    else:
        text = str(value)
    text = text.replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


class Table:
    """Rows of dicts with fixed columns: the command line's text tables, and small
    reports (a drift check, a fleet's progress) that are no store query."""

    def __init__(self, columns: list[str], rows: list[dict[str, Any]], *,
                 humane: bool = False) -> None:
        self.columns = columns
        self.rows = rows
        #: Show durations, times and flags for people (a relation's display).
        self.humane = humane

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.rows)

    def __getitem__(self, key: int | str) -> dict[str, Any]:
        if isinstance(key, int):
            return self.rows[key]
        for row in self.rows:
            if row.get(self.columns[0]) == key:
                return row
        raise KeyError(key)

    def column(self, name: str) -> list[Any]:
        """The values of one column, in row order."""
        return [row.get(name) for row in self.rows]

    def to_pandas(self) -> Any:
        """The rows as a ``pandas.DataFrame`` (pandas is not a dependency of orbits_nb)."""
        from orbits_nb._optional import needs

        with needs(None, "Table.to_pandas() / .df()", "pandas"):
            import pandas as pd

        return pd.DataFrame(self.rows, columns=self.columns)

    df = to_pandas

    def text(self, width: int = 40) -> str:
        cells = [[_cell(row.get(c), width, self._named(c)) for c in self.columns]
                 for row in self.rows]
        widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(self.columns)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(self.columns, widths, strict=True))]
        lines.append("  ".join("-" * w for w in widths))
        lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
        return "\n".join(line.rstrip() for line in lines)

    def _named(self, column: str) -> str | None:
        return column if self.humane else None

    def __repr__(self) -> str:
        return self.text() if self.rows else f"(no rows; columns: {', '.join(self.columns)})"

    def _repr_html_(self) -> str:
        return self.html()

    def html(self) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(_cell(row.get(c), 120, self._named(c)))}</td>"
                             for c in self.columns) + "</tr>"
            for row in self.rows)
        return (f'<table class="orbits-nb-table"><thead><tr>{head}</tr></thead>'
                f"<tbody>{body}</tbody></table>")


def records(relation: Any, limit: int | None = None) -> list[dict[str, Any]]:
    """The rows of a DuckDB relation as dicts (JSON columns parsed)."""
    rel = relation.limit(limit) if limit is not None else relation
    columns, types = list(rel.columns), [str(t) for t in rel.types]
    out = []
    for row in rel.fetchall():
        out.append({c: json.loads(v) if t == "JSON" and isinstance(v, str) else v
                    for c, t, v in zip(columns, types, row, strict=True)})
    return out


def relation_table(relation: Any, limit: int | None = None) -> Table:
    return Table(list(relation.columns), records(relation, limit), humane=True)


def _display(relation: Any) -> dict[str, str]:
    """Text and HTML of a relation's first rows, values humanised."""
    total = len(relation)
    table = relation_table(relation, SHOWN_ROWS)
    more = (f"{SHOWN_ROWS} of {total} rows shown (the relation holds them all: .df(), "
            ".fetchall(), SQL)") if total > SHOWN_ROWS else ""
    if not table.rows:
        text = f"(no rows; columns: {', '.join(table.columns)})"
        return {"text/plain": text, "text/html": html.escape(text)}
    note = f"<p><small>{html.escape(more)}</small></p>" if more else ""
    return {"text/plain": table.text() + (f"\n{more}" if more else ""),
            "text/html": table.html() + note}


def relation_html(relation: Any) -> str:
    """The HTML a notebook shows for ``relation`` (its first rows, humanised)."""
    return _display(relation)["text/html"]


def shown(relation: duckdb.DuckDBPyRelation) -> duckdb.DuckDBPyRelation:
    """``relation``, displayed humanised in notebooks (still the same DuckDB relation:
    same class hierarchy, every method)."""
    from orbits_nb.store import shown as show

    return show(relation, _display)  # type: ignore[no-any-return]


#: What run.steps() says of a step whose thread was abandoned by a cancel.
ABANDONED = "cancelled while busy in a thread, which may still run (its outcome is discarded)"


def step_relation(state: RunState) -> duckdb.DuckDBPyRelation:
    """The steps of ``state`` in order, as a relation of :data:`STEP_COLUMNS`."""
    from orbits_nb.core.state import short_error

    rows = []
    for step in state.ordered_steps():
        rows.append([step.key, "abandoned" if step.abandoned else step.status,
                     step.attempts, step.action.rsplit(":", 1)[-1],
                     step.started_at, step.duration,
                     step.replayed_in(state.executions),
                     json.dumps(step.result, default=str) if step.result is not None
                     else None,
                     short_error(step.error) or (ABANDONED if step.abandoned else None),
                     step.worker])
    from orbits_nb.store import rows_relation

    return shown(rows_relation(list(zip(STEP_COLUMNS, _STEP_TYPES, strict=True)), rows))
