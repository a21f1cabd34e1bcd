"""Printing rows for the CLI: an aligned table, or JSON lines with ``--json``."""

from __future__ import annotations

import json
from typing import Any

from orbits_nb.engine.table import Table


def print_rows(columns: list[str], rows: list[dict[str, Any]], *, as_json: bool = False,
               width: int = 72, empty: str | None = None) -> None:
    if as_json:
        for row in rows:
            print(json.dumps(row, default=str))
    elif rows or empty is None:
        print(Table(columns, rows).text(width))
    else:
        print(empty)


def print_relation(relation: Any, *, as_json: bool = False, width: int = 72) -> None:
    """Print a DuckDB relation (its rows are fetched here)."""
    columns = list(relation.columns)
    rows = [dict(zip(columns, row, strict=True)) for row in relation.fetchall()]
    print_rows(columns, rows, as_json=as_json, width=width)
