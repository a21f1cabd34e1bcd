"""The store's one exit for analytics: query results as in-memory DuckDB relations.

A result is copied out through a temporary Parquet file into a table of its own in
memory, so it stays usable (and convertible to pandas, Arrow or polars) after the
state file is handed to another process. Each result lives in a temporary table of a
cursor of one in-memory database the store keeps for them: it is freed with the
relation, and no database is opened per query. The history tables are brought up to
date before the query runs.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Callable
from contextlib import suppress
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orbits_nb.core.errors import StoreError
from orbits_nb.store.atomic import quiet
from orbits_nb.store.guard import check_query, fault, os_fault
from orbits_nb.store.history import HistoryTables

if TYPE_CHECKING:
    import duckdb

_HISTORY = ("SELECT run_id, workflow, status, created_at, finished_at, duration_s, "
            "executions, coalesce(had_failures, false) AS had_failures, args, result, "
            "error FROM runs WHERE ")


class Relations(HistoryTables):
    """``relation()`` and the verbs that hand relations to users."""

    _results: duckdb.DuckDBPyConnection | None = None
    _results_lock = threading.Lock()

    def _result_cursor(self) -> duckdb.DuckDBPyConnection:
        """A connection of its own to the in-memory database of results."""
        import duckdb

        with self._results_lock:
            if self._results is None:
                self._results = duckdb.connect(":memory:")
            return quiet(self._results.cursor())

    def relation(self, query: str,
                 params: list[Any] | None = None) -> duckdb.DuckDBPyRelation:
        """Run one read-only ``query`` (``?`` bound to ``params``) in a read-only
        transaction (so ``SELECT nextval(...)`` is refused too); return its result as an
        in-memory DuckDB relation."""
        import duckdb

        check_query(query, params)
        try:
            with tempfile.TemporaryDirectory(prefix="orbits_nb_", dir=scratch_dir()) as tmp:
                target = Path(tmp) / "result.parquet"
                with self._session("read", query, linger=True) as con:
                    kinds = [s.type.name for s in con.extract_statements(query)]
                    if kinds != ["SELECT"]:
                        raise StoreError(
                            "only one read-only query (SELECT, WITH, SHOW, DESCRIBE) is "
                            f"allowed here, got {len(kinds)} statement(s) "
                            f"({', '.join(kinds) or 'none'}); the store is written by "
                            "orbits_nb only", query=query)
                    self._current(con)
                    _copy_read_only(con, query, params, target)
                mem = self._result_cursor()
                # A temporary table is the cursor's own: dropped when it is collected.
                mem.execute("CREATE TEMP TABLE result AS SELECT * FROM "
                            f"read_parquet('{target}')")
        except duckdb.Error as err:
            raise fault(self.path, err, query=query) from None
        except OSError as err:
            raise os_fault(self.path, err, "copy the query result to a temporary "
                           "folder") from None
        return mem.table("result")

    def history(self, *, workflow: str | None = None, status: str | None = None,
                since: float | None = None, limit: int | None = 200,
                had_failures: bool | None = None) -> duckdb.DuckDBPyRelation:
        where: list[str] = ["parent_run_id IS NULL"]
        params: list[Any] = []
        if had_failures is not None:
            where.append("coalesce(had_failures, false) = ?")
            params.append(bool(had_failures))
        if workflow:
            where.append("(workflow = ? OR split_part(workflow, ':', 2) = ?)")
            params += [workflow, workflow]
        if status:
            where.append("status = ?")
            params.append(status)
        if since is not None:
            where.append("created_at >= to_timestamp(?)")
            params.append(since)
        query = _HISTORY + " AND ".join(where) + " ORDER BY created_at DESC"
        if limit is not None:
            query += " LIMIT ?"
            params.append(limit)
        return self.relation(query, params)


@cache
def scratch_dir() -> str | None:
    """Where a result travels: ``/dev/shm`` (memory) when this system has a writable
    one, so a small result costs no disk write; else the usual temporary folder."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK | os.X_OK) else None


def _copy_read_only(con: Any, query: str, params: list[Any] | None, target: Path) -> None:
    """Write the result of ``query`` to ``target`` from a read-only transaction."""
    import duckdb

    con.execute("BEGIN TRANSACTION READ ONLY")
    try:
        con.sql(query, params=params).write_parquet(str(target))
    except duckdb.TransactionException as err:
        raise StoreError(f"the query would change the store ({err}); only read-only "
                         "queries are allowed here", query=query) from None
    finally:
        con.execute("ROLLBACK")


_ROWS: list[duckdb.DuckDBPyConnection] = []
_ROWS_LOCK = threading.Lock()


def rows_relation(columns: list[tuple[str, str]],
                  rows: list[list[Any]]) -> duckdb.DuckDBPyRelation:
    """Rows made in Python as a relation of ``columns`` (name, SQL type; epoch seconds
    for a ``TIMESTAMPTZ``), in a temporary table of a cursor of one in-memory database
    kept for them (freed with the relation)."""
    import duckdb

    with _ROWS_LOCK:
        if not _ROWS:
            _ROWS.append(duckdb.connect(":memory:"))
        con = quiet(_ROWS[0].cursor())
    con.execute("CREATE TEMP TABLE result (" + ", ".join(
        f'"{name}" {kind}' for name, kind in columns) + ")")
    if rows:
        marks = ", ".join("to_timestamp(?)" if kind == "TIMESTAMPTZ" else "?"
                          for _, kind in columns)
        con.executemany(f"INSERT INTO result VALUES ({marks})", rows)
    return con.table("result")


Display = Callable[[Any], dict[str, str]]


@cache
def _shown_class(display: Display) -> type:
    import duckdb

    class ShownRelation(duckdb.DuckDBPyRelation):
        """A DuckDB relation with a notebook display of its own; nothing else differs,
        and what its methods derive are plain relations."""

        __slots__ = ()

        def _repr_mimebundle_(self, include: object = None,
                              exclude: object = None) -> dict[str, str]:
            return display(self)

    ShownRelation.__module__, ShownRelation.__qualname__ = __name__, "ShownRelation"
    return ShownRelation


def shown(relation: duckdb.DuckDBPyRelation, display: Display) -> duckdb.DuckDBPyRelation:
    """``relation`` displayed by ``display`` in notebooks. Its class becomes a subclass
    of DuckDB's that only adds the display, so it stays the same relation for
    ``isinstance`` and every method; a DuckDB build whose relations cannot change class
    keeps DuckDB's own display."""
    with suppress(TypeError):
        relation.__class__ = _shown_class(display)
    return relation
