"""Bringing a state file to this orbits_nb's schema, or refusing it with a reason.

The version of a file is the newest of its ``orbits_nb_meta`` marker and its
documented ``schema_version`` table: a file that either calls newer than this
orbits_nb is refused, never used silently.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from orbits_nb.core.errors import StoreError
from orbits_nb.store.atomic import atomic
from orbits_nb.store.schema import APP_ID, MIGRATIONS, SCHEMA_VERSION

if TYPE_CHECKING:
    import duckdb


def ensure_schema(con: duckdb.DuckDBPyConnection, path: Path, *,
                  read_only: bool = False) -> None:
    """Apply the migrations ``con`` lacks; refuse a foreign or newer file."""
    version = file_version(con, path)
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{path} has schema version {version}, newer than this orbits_nb "
            f"understands ({SCHEMA_VERSION}); upgrade orbits_nb (pip install -U "
            "orbits_nb) to use it", path=str(path), reason="newer-schema",
            version=version)
    if version < SCHEMA_VERSION and read_only:
        raise StoreError(
            f"{path} has schema version {version}, older than this orbits_nb "
            f"({SCHEMA_VERSION}), and is read-only here, so it cannot be upgraded; run "
            "any orbits_nb command that writes (e.g. start a run) where the file is "
            "writable, then read it again", path=str(path), reason="read-only",
            version=version)
    for number in sorted(n for n in MIGRATIONS if n > version):
        _migrate(con, number)


def file_version(con: duckdb.DuckDBPyConnection, path: Path) -> int:
    """The schema version of the open file (0 for an empty one)."""
    tables = {row[0] for row in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'"
    ).fetchall()}
    if not tables:
        return 0
    documented = _documented_version(con) if "schema_version" in tables else 0
    if "orbits_nb_meta" not in tables:
        if documented > SCHEMA_VERSION:
            return documented  # a newer orbits_nb that keeps no marker: say "newer"
        raise StoreError(
            f"{path} is a DuckDB database that orbits_nb did not create (it has "
            f"tables {sorted(tables)[:5]}); point ORBITS_NB_STATE at another file",
            path=str(path), reason="foreign")
    rows = con.execute("SELECT value FROM orbits_nb_meta WHERE key = 'schema_version'"
                       ).fetchall()
    marked = int(rows[0][0]) if rows and str(rows[0][0]).isdigit() else 0
    return max(marked, documented)


def _documented_version(con: duckdb.DuckDBPyConnection) -> int:
    import duckdb

    try:
        rows = con.execute("SELECT max(TRY_CAST(version AS BIGINT)) FROM schema_version"
                           ).fetchall()
    except duckdb.BinderException:
        return 0  # somebody else's table of that name: the marker check decides
    return int(rows[0][0] or 0) if rows else 0


def _migrate(con: duckdb.DuckDBPyConnection, number: int) -> None:
    with atomic(con):
        for statement in MIGRATIONS[number]:
            con.execute(statement)
        con.execute("INSERT INTO schema_version (version) VALUES (?)", [number])
        con.execute("INSERT OR REPLACE INTO orbits_nb_meta VALUES ('app', ?), "
                    "('schema_version', ?)", [APP_ID, str(number)])


def empty_store() -> duckdb.DuckDBPyConnection:
    """An in-memory database with the whole schema and no rows: a missing file's face."""
    import duckdb

    con = duckdb.connect(":memory:")
    for number in sorted(MIGRATIONS):
        _migrate(con, number)
    return con
