"""A small table of rows: readable as text, HTML in notebooks, convertible to pandas."""

from __future__ import annotations

import html
import json
from collections.abc import Iterator
from typing import Any


def _cell(value: Any, width: int = 60) -> str:
    if value is None:
        return ""
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
    """Rows of dicts with fixed columns (``run.steps()``, ``orbits-nb show``)."""

    def __init__(self, columns: list[str], rows: list[dict[str, Any]]) -> None:
        self.columns = columns
        self.rows = rows

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
        cells = [[_cell(row.get(c), width) for c in self.columns] for row in self.rows]
        widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(self.columns)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(self.columns, widths, strict=True))]
        lines.append("  ".join("-" * w for w in widths))
        lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
        return "\n".join(line.rstrip() for line in lines)

    def __repr__(self) -> str:
        return self.text() if self.rows else f"(no rows; columns: {', '.join(self.columns)})"

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(_cell(row.get(c), 120))}</td>"
                             for c in self.columns) + "</tr>"
            for row in self.rows)
        return (f'<table class="orbits-nb-table"><thead><tr>{head}</tr></thead>'
                f"<tbody>{body}</tbody></table>")
