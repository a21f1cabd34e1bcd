"""Resources and drift: ``resources``, ``resource_users`` and ``drift_checks``.

``resources`` has one row per identity (``kind:identity``), ``resource_users`` every
step that used one (``role='user'`` rows keep it alive until released), and
``drift_checks`` the append-only history of observations. Their leases are
``resource_leases`` (see :mod:`.leases`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from orbits_nb.core.rows import CheckRecord, ResourceChange, ResourceRow, UserRow
from orbits_nb.core.serde import dumps
from orbits_nb.store.encode import json_text, json_value, text
from orbits_nb.store.leases import LeaseTables
from orbits_nb.store.relations import Relations

if TYPE_CHECKING:
    import duckdb

_COLUMNS = ("resource_key, kind, identity, type, args, desired, version, output, status, "
            "created_at, updated_at, accepted_at, accepted_by")
_CHECK_TYPES = ("VARCHAR", "VARCHAR", "DOUBLE", "VARCHAR", "VARCHAR", "VARCHAR", "VARCHAR",
                "VARCHAR", "VARCHAR", "VARCHAR", "DOUBLE", "VARCHAR")


def _row(r: Sequence[Any]) -> ResourceRow:
    return ResourceRow(r[0], r[1], r[2], r[3], json_value(r[4]) or {}, json_value(r[5]),
                       r[6], json_value(r[7]), r[8], r[9], r[10], r[11], r[12])


def _marks(values: Sequence[Any]) -> str:
    return ",".join("?" * len(values))


class ResourceTables(Relations, LeaseTables):
    """The resource verbs of the store."""

    # -- reads ------------------------------------------------------------------------
    def resource(self, key: str) -> ResourceRow | None:
        with self.connection(write=False) as con:
            rows = con.execute(f"SELECT {_COLUMNS} FROM resources WHERE resource_key = ?",
                               [key]).fetchall()
        return _row(rows[0]) if rows else None

    def resources(self, *, kinds: Sequence[str] = (), workflow: str | None = None,
                  include_deleted: bool = False) -> list[ResourceRow]:
        where = [] if include_deleted else ["status = 'present'"]
        params: list[Any] = []
        if kinds:
            where.append(f"(kind IN ({_marks(kinds)}) OR type IN ({_marks(kinds)}))")
            params += [*kinds, *kinds]
        if workflow:
            where.append("resource_key IN (SELECT resource_key FROM resource_users WHERE "
                         "role = 'user' AND released_at IS NULL AND (workflow = ? OR "
                         "workflow LIKE ? OR workflow LIKE ? OR root_run_id = ?))")
            params += [workflow, "%:" + workflow, "%." + workflow, workflow]
        query = f"SELECT {_COLUMNS} FROM resources"
        if where:
            query += " WHERE " + " AND ".join(where)
        with self.connection(write=False) as con:
            rows = con.execute(query + " ORDER BY resource_key", params).fetchall()
        return [_row(r) for r in rows]

    def resource_keys(self, name: str) -> list[str]:
        with self.connection(write=False) as con:
            rows = con.execute("SELECT resource_key FROM resources WHERE status = 'present' "
                               "AND (resource_key = ? OR identity = ?) ORDER BY resource_key",
                               [name, name]).fetchall()
        return [r[0] for r in rows]

    def resource_users(self, keys: Sequence[str], *, active: bool = True) -> list[UserRow]:
        if not keys:
            return []
        query = ("SELECT resource_key, run_id, step, root_run_id, workflow, role, released_at "
                 f"FROM resource_users WHERE resource_key IN ({_marks(keys)}) AND "
                 "role = 'user'")
        if active:
            query += " AND released_at IS NULL"
        with self.connection(write=False) as con:
            rows = con.execute(query + " ORDER BY first_used, root_run_id",
                               list(keys)).fetchall()
        return [UserRow(*r) for r in rows]

    def drift_since(self, keys: Sequence[str]) -> dict[str, float]:
        if not keys:
            return {}
        marks = _marks(keys)
        with self.connection(write=False) as con:
            rows = con.execute(
                "WITH ok AS (SELECT resource_key, max(check_id) AS ok_id FROM drift_checks "
                f"WHERE status = 'in_sync' AND resource_key IN ({marks}) GROUP BY "
                "resource_key) SELECT c.resource_key, min(c.checked_at) FROM drift_checks c "
                f"LEFT JOIN ok USING (resource_key) WHERE c.resource_key IN ({marks}) AND "
                "c.status <> 'in_sync' AND c.check_id > coalesce(ok.ok_id, 0) "
                "GROUP BY c.resource_key", [*keys, *keys]).fetchall()
        return {str(r[0]): float(r[1]) for r in rows}

    def drifted_steps(self, run_id: str) -> set[str]:
        with self.connection(write=False) as con:
            rows = con.execute(
                "WITH latest AS (SELECT resource_key, arg_max(status, check_id) AS status "
                "FROM drift_checks GROUP BY resource_key) "
                "SELECT DISTINCT u.step FROM resource_users u JOIN latest l USING "
                "(resource_key) JOIN resources r USING (resource_key) WHERE u.run_id = ? "
                "AND l.status <> 'in_sync' AND r.status = 'present'", [run_id]).fetchall()
        return {r[0] for r in rows}

    def resource_listing(self, *, include_deleted: bool = False) -> duckdb.DuckDBPyRelation:
        where = "" if include_deleted else " WHERE lifecycle = 'present'"
        return self.relation(
            "SELECT resource_key, kind, identity, lifecycle, drift_status, checked_at, "
            f"drift_since, users, output, updated_at FROM resource_status{where} "
            "ORDER BY resource_key")

    def drift_history(self, patterns: Sequence[str] = (), limit: int = 200
                      ) -> duckdb.DuckDBPyRelation:
        where, params = "", [*(p.replace("[", "[[]") for p in patterns), int(limit)]
        if patterns:
            where = " WHERE (" + " OR ".join(["resource_key GLOB ?"] * len(patterns)) + ")"
        return self.relation(
            "SELECT check_id, resource_key, to_timestamp(checked_at) AS checked_at, source, "
            "status, diffs, error, run_id, step, round(duration_s, 4) AS duration_s, "
            f"checked_by FROM drift_checks{where} ORDER BY check_id DESC LIMIT ?", params)

    # -- writes -----------------------------------------------------------------------
    def record_checks(self, checks: Sequence[CheckRecord]) -> None:
        if checks:
            with self.transaction() as con:
                _insert_checks(con, checks)

    def change_resource(self, change: ResourceChange) -> None:
        now = time.time()
        with self.transaction() as con:
            if change.converged is not None:
                _upsert(con, change.converged, change.by, change.clear_accept, now)
            if change.accepted is not None:
                desired, version = change.accepted
                con.execute("UPDATE resources SET desired = ?, version = ?, accepted_at = ?, "
                            "accepted_by = ?, updated_at = ?, updated_by = ? WHERE "
                            "resource_key = ?", [json_text(desired), version, now, change.by,
                                                 now, change.by, change.key])
            if change.deleted:
                con.execute("UPDATE resources SET status = 'deleted', deleted_at = ?, "
                            "updated_at = ?, updated_by = ? WHERE resource_key = ?",
                            [now, now, change.by, change.key])
                con.execute("UPDATE resource_users SET released_at = ? WHERE resource_key = ? "
                            "AND released_at IS NULL", [now, change.key])
            for root in change.released:
                con.execute("UPDATE resource_users SET released_at = ? WHERE resource_key = ? "
                            "AND root_run_id = ? AND released_at IS NULL",
                            [now, change.key, root])
            for user in change.users:
                _add_user(con, user, now)
            _insert_checks(con, change.checks)
            if change.lease_token is not None:
                self._release(con, "resource", [(change.key, change.lease_token)])


def _upsert(con: duckdb.DuckDBPyConnection, row: ResourceRow, by: str, clear_accept: bool,
            now: float) -> None:
    """Record ``row`` as converged now (inserting or updating it)."""
    exists = con.execute("SELECT 1 FROM resources WHERE resource_key = ?",
                         [row.key]).fetchone()
    values = [row.type, dumps(row.args), json_text(row.desired), row.version,
              json_text(row.output)]
    if exists:
        accept = ", accepted_at = NULL, accepted_by = NULL" if clear_accept else ""
        con.execute("UPDATE resources SET type = ?, args = ?, desired = ?, version = ?, "
                    "output = ?, status = 'present', deleted_at = NULL, updated_at = ?, "
                    f"updated_by = ?{accept} WHERE resource_key = ?",
                    [*values, now, by, row.key])
    else:
        con.execute("INSERT INTO resources (resource_key, kind, identity, type, args, "
                    "desired, version, output, status, created_at, updated_at, created_by, "
                    "updated_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'present', ?, ?, ?, ?)",
                    [row.key, row.kind, row.identity, *values, now, now, by, by])


def _add_user(con: duckdb.DuckDBPyConnection, user: UserRow, now: float) -> None:
    con.execute(
        "INSERT INTO resource_users VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL) ON CONFLICT "
        "(resource_key, run_id, step) DO UPDATE SET last_used = excluded.last_used, "
        "released_at = NULL, role = excluded.role",
        [user.key, user.run_id, user.step, user.root_run_id, user.workflow, user.role,
         now, now])


def _insert_checks(con: duckdb.DuckDBPyConnection, checks: Sequence[CheckRecord]) -> None:
    if not checks:
        return
    rows = [(c.batch_id, c.key, c.checked_at, c.source, c.status, json_text(c.diffs),
             json_text(c.actual), text(c.error), c.run_id, c.step, c.duration_s, c.checked_by)
            for c in checks]
    # One list per column, unnested in SQL: ten times faster than rows of parameters.
    columns = ", ".join(f"unnest(${i + 1}::{kind}[])" for i, kind in enumerate(_CHECK_TYPES))
    con.execute(f"INSERT INTO drift_checks SELECT nextval('drift_check_seq'), * FROM "
                f"(SELECT {columns})", [list(column) for column in zip(*rows, strict=True)])
