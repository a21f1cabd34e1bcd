"""History and analytics on the team store, computed by DuckDB.

The fold of ``events`` into ``runs``, ``steps`` and ``attempts`` is the DuckDB store's
own (:func:`orbits_nb.store.projection.fold`): the events past the watermark and the
current rows of the runs they touch are streamed (``COPY``) into an in-memory DuckDB
database, folded there, and the rows of those runs replaced on the server in one
transaction together with the watermark. One folder at a time (an advisory lock), and
events are appended one transaction at a time (another lock), so every event below the
newest committed ``seq`` is committed: the watermark never skips one.

:func:`pull` is the one way rows travel from the server into DuckDB: ``COPY ... TO
STDOUT`` in CSV, read by DuckDB's CSV reader with the column types of the server.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orbits_nb.store import projection
from orbits_nb.store.migrate import empty_store

if TYPE_CHECKING:
    import duckdb

    from orbits_nb.store.pg.link import PgConnection

#: Advisory lock keys (any two fixed numbers): one event writer, one folder at a time.
EVENTS_LOCK = 0x6F726201
FOLD_LOCK = 0x6F726202
HISTORY = ("runs", "steps", "attempts", "executions")
_NULL = "\\N"
#: PostgreSQL type oids -> DuckDB types (anything else travels as text).
_TYPES = {16: "BOOLEAN", 20: "BIGINT", 21: "SMALLINT", 23: "INTEGER", 26: "BIGINT",
          700: "FLOAT", 701: "DOUBLE", 1700: "DOUBLE", 114: "JSON", 3802: "JSON",
          1184: "TIMESTAMPTZ", 1114: "TIMESTAMP", 1082: "DATE", 25: "VARCHAR",
          1043: "VARCHAR", 19: "VARCHAR", 18: "VARCHAR"}


def lag(con: PgConnection) -> tuple[int, int]:
    """``(watermark, newest committed event seq)``."""
    mark = con.execute("SELECT value FROM orbits_nb_meta WHERE key = ?",
                       [projection.WATERMARK]).fetchone()
    high = con.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()
    return (int(mark[0]) if mark else 0), int(high[0] if high else 0)


def catch_up(con: PgConnection, mem: duckdb.DuckDBPyConnection, *,
             rebuild: bool = False) -> None:
    """Fold the events past the watermark (all of them when ``rebuild``), inside the
    caller's transaction, using ``mem`` (a :func:`scratch` database) to compute."""
    con.execute("SELECT pg_advisory_xact_lock(?)", [FOLD_LOCK])
    low, high = lag(con)
    if rebuild:
        for table in reversed(HISTORY):
            con.execute(f"DELETE FROM {table}")
        low = 0
    if high <= low:
        con.execute("INSERT OR REPLACE INTO orbits_nb_meta VALUES (?, ?)",
                    [projection.WATERMARK, str(high)])
        return
    touched = f"SELECT DISTINCT run_id FROM events WHERE seq > {low} AND seq <= {high}"
    for table in ("events", *HISTORY):
        mem.execute(f"DELETE FROM {table}")
    pull(con, f"SELECT seq, ts, run_id, step, kind, attempt, data FROM events "
              f"WHERE seq > {low} AND seq <= {high}", mem, "events")
    for table in HISTORY:
        pull(con, f"SELECT * FROM {table} WHERE run_id IN ({touched})", mem, table)
    projection.fold(mem, low, high)
    for table in reversed(HISTORY):
        con.execute(f"DELETE FROM {table} WHERE run_id IN ({touched})")
    for table in HISTORY:
        push(mem, table, con)
    # the runs these are nested in may not be among the runs folded here
    con.execute(projection.CARRY_FAILURES.format(touched=touched))
    con.execute("INSERT OR REPLACE INTO orbits_nb_meta VALUES (?, ?)",
                [projection.WATERMARK, str(high)])


def scratch() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB database with the store's schema, to fold in."""
    return empty_store()


def pull(con: PgConnection, query: str, mem: duckdb.DuckDBPyConnection, table: str,
         types: dict[str, str] | None = None) -> None:
    """Append the rows of the server's ``query`` to DuckDB's ``table`` (which exists,
    unless ``types`` gives its columns: then it is created as a temporary table)."""
    with tempfile.TemporaryDirectory(prefix="orbits_nb_pg_") as tmp:
        path = Path(tmp) / "rows.csv"
        with path.open("wb") as out, con.raw.cursor().copy(
                f"COPY ({query}) TO STDOUT (FORMAT csv, NULL '{_NULL}')") as copy:
            for chunk in copy:
                out.write(chunk)
        if types is not None:
            columns = ", ".join(f"{_quote(n)} {t}" for n, t in types.items())
            mem.execute(f"CREATE TEMP TABLE {table} ({columns})")
        else:
            types = dict(mem.execute(
                "SELECT column_name, data_type FROM information_schema.columns WHERE "
                "table_name = ? ORDER BY ordinal_position", [table]).fetchall())
        if path.stat().st_size == 0:
            return
        spec = "{" + ", ".join(f"'{n.replace(chr(39), chr(39) * 2)}': '{t}'"
                               for n, t in types.items()) + "}"
        mem.execute(f"INSERT INTO {table} SELECT * FROM read_csv(?, header = false, "
                    f"nullstr = '{_NULL}', quote = '\"', escape = '\"', "
                    f"columns = {spec}, auto_detect = false)", [str(path)])


def push(mem: duckdb.DuckDBPyConnection, table: str, con: PgConnection,
         into: str | None = None) -> None:
    """Append every row of DuckDB's ``table`` to the server's table of that name (or
    ``into``)."""
    with tempfile.TemporaryDirectory(prefix="orbits_nb_pg_") as tmp:
        path = Path(tmp) / "rows.csv"
        mem.execute(f"COPY {table} TO '{path}' (FORMAT csv, HEADER false, "
                    f"NULLSTR '{_NULL}')")
        if path.stat().st_size == 0:
            return
        with con.raw.cursor().copy(
                f"COPY {into or table} FROM STDIN (FORMAT csv, NULL '{_NULL}')") as copy, \
                path.open("rb") as source:
            while chunk := source.read(1 << 20):
                copy.write(chunk)


def result_types(description: Any) -> dict[str, str]:
    """DuckDB column types of a psycopg result (repeated names made unique)."""
    types: dict[str, str] = {}
    for column in description:
        name, number = column.name, 1
        while name in types:
            number += 1
            name = f"{column.name}_{number}"
        types[name] = _TYPES.get(column.type_code, "VARCHAR")
    return types


def tables_in(query: str, names: tuple[str, ...]) -> list[str]:
    """The documented tables ``query`` mentions."""
    return [name for name in names if re.search(rf"\b{name}\b", query, re.I)]


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
