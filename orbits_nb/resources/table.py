"""Example resource: :class:`LocalTable`, a table in a DuckDB database file.

Column types are canonicalized by DuckDB itself when the resource is built
(``int`` -> ``INTEGER``, ``text`` -> ``VARCHAR``), so spelling a type differently is
never drift; columns are matched by name, so their order is not drift either.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orbits_nb.core.drift import FieldDiff
from orbits_nb.core.errors import InvalidArgument
from orbits_nb.resources.base import Resource
from orbits_nb.resources.errors import ResourceError
from orbits_nb.resources.local import absolute

if TYPE_CHECKING:
    import duckdb

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_TYPE = re.compile(r"[A-Za-z][A-Za-z0-9_ ,()\[\]]*\Z")
ColumnSpec = dict[str, str] | list[Any]


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise InvalidArgument(f"LocalTable {what} must be an identifier (letters, digits, "
                              f"_), got {value!r}")
    return value


def canonical_type(spelled: Any) -> str:
    """DuckDB's own name of a type (``int4`` -> ``INTEGER``), or InvalidArgument."""
    import duckdb

    if not isinstance(spelled, str) or not _TYPE.match(spelled.strip()):
        raise InvalidArgument(f"LocalTable column type {spelled!r} is not a DuckDB type name")
    try:
        with duckdb.connect(":memory:") as con:
            row = con.execute(f"SELECT typeof(CAST(NULL AS {spelled}))").fetchone()
    except duckdb.Error as err:
        raise InvalidArgument(f"LocalTable column type {spelled!r} is not a DuckDB type: "
                              f"{str(err).splitlines()[0]}") from None
    assert row is not None
    return str(row[0])


def _columns(spec: ColumnSpec, primary: list[str]) -> list[dict[str, Any]]:
    items = list(spec.items()) if isinstance(spec, dict) else list(spec)
    if not items:
        raise InvalidArgument("LocalTable needs at least one column")
    out: list[dict[str, Any]] = []
    for item in items:
        if isinstance(item, dict):
            name, kind, nullable = item.get("name"), item.get("type"), item.get("nullable", True)
        elif isinstance(item, (tuple, list)) and len(item) in (2, 3):
            name, kind, nullable = item[0], item[1], item[2] if len(item) == 3 else True
        else:
            raise InvalidArgument(f"LocalTable columns are {{name: type}}, (name, type[, "
                                  f"nullable]) or {{'name', 'type', 'nullable'}}, got {item!r}")
        name = _name(name, "column name")
        out.append({"name": name, "type": canonical_type(kind),
                    "nullable": bool(nullable) and name not in primary})
    names = [c["name"] for c in out]
    if len(set(names)) != len(names):
        raise InvalidArgument(f"LocalTable column names repeat: {names}")
    missing = [p for p in primary if p not in names]
    if missing:
        raise InvalidArgument(f"LocalTable primary key names unknown columns {missing}")
    return out


class LocalTable(Resource):
    """A table in a DuckDB database file: columns (name, type, nullable), primary key.

    >>> events = LocalTable("warehouse.duckdb", "events",
    ...                     {"id": "int", "at": "timestamp", "body": "text"},
    ...                     primary_key="id")
    >>> events.desired()["columns"][0]
    {'name': 'id', 'type': 'INTEGER', 'nullable': False}
    """

    list_keys = {"columns": "name"}
    server_managed = ("rows",)
    #: Seconds to wait for another process to let go of the database file.
    lock_timeout = 30.0

    def __init__(self, database: str | os.PathLike[str], table: str,
                 columns: ColumnSpec, *, primary_key: str | list[str] | None = None,
                 schema: str = "main") -> None:
        primary = [primary_key] if isinstance(primary_key, str) else list(primary_key or [])
        primary = [_name(p, "primary key column") for p in primary]
        super().__init__(database=absolute(database, "LocalTable"),
                         table=_name(table, "table"), schema=_name(schema, "schema"),
                         columns=_columns(columns, primary), primary_key=primary)

    @property
    def qualified(self) -> str:
        return f"{quote(self.args['schema'])}.{quote(self.args['table'])}"

    def identity(self) -> str:
        return f"{self.args['database']}::{self.args['schema']}.{self.args['table']}"

    def desired(self) -> dict[str, Any]:
        return {"columns": [dict(c) for c in self.args["columns"]],
                "primary_key": list(self.args["primary_key"])}

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection to the database file, waiting while another process holds it."""
        import duckdb

        deadline, delay = time.monotonic() + self.lock_timeout, 0.01
        while True:
            try:
                con = duckdb.connect(self.args["database"])
                break
            except duckdb.IOException as err:
                if "lock" not in str(err).lower() or time.monotonic() > deadline:
                    raise ResourceError(f"cannot open {self.args['database']}: {err}",
                                        key=self.key()) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.5)
        try:
            yield con
        finally:
            con.close()

    def observe(self) -> dict[str, Any] | None:
        if not Path(self.args["database"]).exists():
            return None
        where = [self.args["schema"], self.args["table"]]
        with self.connect() as con:
            cols = con.execute(
                "SELECT column_name, data_type, is_nullable = 'YES' FROM "
                "information_schema.columns WHERE table_schema = ? AND table_name = ? "
                "ORDER BY ordinal_position", where).fetchall()
            if not cols:
                return None
            keys = con.execute(
                "SELECT constraint_column_names FROM duckdb_constraints() WHERE "
                "schema_name = ? AND table_name = ? AND constraint_type = 'PRIMARY KEY'",
                where).fetchall()
            rows = con.execute(f"SELECT count(*) FROM {self.qualified}").fetchone()
        return {"columns": [{"name": n, "type": t, "nullable": bool(z)} for n, t, z in cols],
                "primary_key": list(keys[0][0]) if keys else [],
                "rows": rows[0] if rows else 0}

    def create(self) -> dict[str, str]:
        target = self.target
        parts = [f"{quote(c['name'])} {c['type']}{'' if c['nullable'] else ' NOT NULL'}"
                 for c in target["columns"]]
        if target["primary_key"]:
            parts.append(f"PRIMARY KEY ({', '.join(map(quote, target['primary_key']))})")
        Path(self.args["database"]).parent.mkdir(parents=True, exist_ok=True)
        with self.connect() as con:
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(self.args['schema'])}")
            con.execute(f"CREATE TABLE {self.qualified} ({', '.join(parts)})")
        return self.output(None)

    def update(self, diff: list[FieldDiff]) -> None:
        target = self.target
        actual = self.observed or {}
        if actual.get("primary_key") and actual["primary_key"] != target["primary_key"]:
            raise ResourceError(
                f"{self.identity()}: DuckDB cannot change an existing primary key "
                f"({actual['primary_key']} -> {target['primary_key']}) in place; uninstall "
                "and create the table again, or accept the actual key", key=self.key())
        have = {c["name"]: c for c in actual.get("columns", [])}
        want = {c["name"]: c for c in target["columns"]}
        with self.connect() as con:
            con.execute("BEGIN")
            for statement in self._alterations(have, want):
                con.execute(statement)
            if target["primary_key"] and not actual.get("primary_key"):
                con.execute(f"ALTER TABLE {self.qualified} ADD PRIMARY KEY "
                            f"({', '.join(map(quote, target['primary_key']))})")
            con.execute("COMMIT")

    def _alterations(self, have: dict[str, Any], want: dict[str, Any]) -> Iterator[str]:
        table = f"ALTER TABLE {self.qualified}"
        for name in have.keys() - want.keys():
            yield f"{table} DROP COLUMN {quote(name)}"
        for name, col in want.items():
            old = have.get(name)
            if old is None:
                yield f"{table} ADD COLUMN {quote(name)} {col['type']}"
                old = {"type": col["type"], "nullable": True}
            if old["type"] != col["type"]:
                yield f"{table} ALTER {quote(name)} TYPE {col['type']}"
            if old["nullable"] != col["nullable"]:
                change = "DROP NOT NULL" if col["nullable"] else "SET NOT NULL"
                yield f"{table} ALTER {quote(name)} {change}"

    def delete(self) -> None:
        if Path(self.args["database"]).exists():
            with self.connect() as con:
                con.execute(f"DROP TABLE IF EXISTS {self.qualified}")

    def output(self, actual: Any) -> dict[str, str]:
        return {"database": self.args["database"],
                "table": f"{self.args['schema']}.{self.args['table']}"}
