"""The one transaction helper (a block of statements that happens whole or not at all)
and the setting every DuckDB connection of the store gets."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import duckdb


@contextmanager
def atomic(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """``con`` inside BEGIN ... COMMIT; anything raised in the block (or by the COMMIT)
    rolls it back and propagates."""
    con.execute("BEGIN")
    try:
        yield con
        con.execute("COMMIT")
    except BaseException:
        rollback(con)
        raise


def rollback(con: duckdb.DuckDBPyConnection) -> None:
    """End a failed transaction; DuckDB has already ended it when COMMIT failed."""
    import duckdb

    # The error that made us roll back is the one to report, not this one.
    with suppress(duckdb.Error):
        con.execute("ROLLBACK")


def quiet(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """``con`` without DuckDB's progress bar, a per-connection setting (a cursor does
    not inherit it) that is on in a notebook: it is checked at every statement and
    drawn under the cell for long queries."""
    con.execute("SET enable_progress_bar = false")
    return con
