"""Copying a whole store into another: DuckDB to PostgreSQL, back, or file to file.

Everything a project recorded is copied (events, logs, resources and their users,
drift checks, notebook runs, schedules, approvals, queues and their waiting runs) in
one transaction of the target: a failure leaves the target as it was. Leases and locks
are not copied (their holders are processes of the old store); the history tables are
folded from the copied events.
Into a store that already holds records the copy is refused unless ``merge`` is set:
then event and check numbers are shifted past the target's, and a keyed record (a
resource, a schedule...) the target already has is kept as the target has it.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orbits_nb.core.errors import StoreError

if TYPE_CHECKING:
    from orbits_nb.core.storage import Store

#: Copied tables, in order, with their ordering column and key (None: append only).
TABLES: dict[str, tuple[str, tuple[str, ...] | None]] = {
    "events": ("seq", None),
    "logs": ("ts", None),
    "resources": ("resource_key", ("resource_key",)),
    "resource_users": ("resource_key", ("resource_key", "run_id", "step")),
    "drift_checks": ("check_id", None),
    "notebook_runs": ("notebook_run_id", ("notebook_run_id",)),
    "schedules": ("schedule_id", ("schedule_id",)),
    "approvals": ("request_id", ("request_id",)),
    "queues": ("name", ("name",)),
    "queued_runs": ("run_id", ("run_id",)),
}
#: Numbered columns and the sequence that numbers them.
_NUMBERED = {"events": ("seq", "event_seq"), "drift_checks": ("check_id", "drift_check_seq")}


@dataclass
class Copied:
    """What a copy moved: rows per table."""

    rows: dict[str, int] = field(default_factory=dict)


def records(store: Store) -> int:
    """How many records ``store`` holds in the copied tables."""
    return sum(int(store.relation(f"SELECT count(*) FROM {table}").fetchall()[0][0])
               for table in TABLES)


def copy_store(source: Store, target: Store, *, merge: bool = False) -> Copied:
    """Copy every record of ``source`` into ``target`` (see the module)."""
    if records(target) and not merge:
        raise StoreError(
            f"{target.location} already holds records; copy into an empty store, or pass "
            "--merge to add these to them", path=target.location, reason="not-empty")
    copied = Copied()
    with tempfile.TemporaryDirectory(prefix="orbits_nb_copy_") as tmp:
        files: dict[str, Path] = {}
        for table, (order, _) in TABLES.items():
            files[table] = Path(tmp) / f"{table}.parquet"
            relation = source.relation(f"SELECT * FROM {table} ORDER BY {order}")
            relation.write_parquet(str(files[table]))
            copied.rows[table] = int(relation.aggregate("count(*)").fetchall()[0][0])
        _load(target, files, merge)
    return copied


def _load(target: Store, files: dict[str, Path], merge: bool) -> None:
    from orbits_nb.store.pg.url import is_url

    with target.transaction() as con:  # type: ignore[attr-defined]
        if is_url(target.location):
            from orbits_nb.store.pg import analytics

            con.execute("SELECT pg_advisory_xact_lock(?)", [analytics.EVENTS_LOCK])
        shift = {table: _high(con, column, table) if merge else 0
                 for table, (column, _) in _NUMBERED.items()}
        for table, path in files.items():
            _insert(target, con, table, path, shift.get(table, 0))
        for table, (column, sequence) in _NUMBERED.items():
            _advance(target, con, sequence, _high(con, column, table))
    if hasattr(target, "_stale"):
        target._stale = True  # the DuckDB store folds the copied events on its next read


def _high(con: Any, column: str, table: str) -> int:
    row = con.execute(f"SELECT coalesce(max({column}), 0) FROM {table}").fetchone()
    return int(row[0]) if row else 0


def _insert(target: Store, con: Any, table: str, path: Path, shift: int) -> None:
    import duckdb

    from orbits_nb.store.pg.url import is_url

    numbered = _NUMBERED.get(table)
    select = f"SELECT * FROM read_parquet('{path}')"
    if numbered and shift:
        select = (f"SELECT * REPLACE ({numbered[0]} + {int(shift)} AS {numbered[0]}) "
                  f"FROM read_parquet('{path}')")
    key = TABLES[table][1]
    if not is_url(target.location):
        keep = f" ON CONFLICT ({', '.join(key)}) DO NOTHING" if key else ""
        con.execute(f"INSERT INTO {table} {select}{keep}")
        return
    from orbits_nb.store.pg import analytics

    mem = duckdb.connect(":memory:")
    try:
        mem.execute(f"CREATE TABLE {table} AS {select}")
        if key:  # rows the target has already stay as they are
            con.execute(f"CREATE TEMP TABLE incoming (LIKE {table}) ON COMMIT DROP")
            analytics.push(mem, table, con, into="incoming")
            con.execute(f"INSERT INTO {table} SELECT * FROM incoming ON CONFLICT "
                        f"({', '.join(key)}) DO NOTHING")
            con.execute("DROP TABLE incoming")
        else:
            analytics.push(mem, table, con)
    finally:
        mem.close()


def _advance(target: Store, con: Any, sequence: str, high: int) -> None:
    """Let ``sequence`` go on after ``high``."""
    from orbits_nb.store.pg.url import is_url

    if is_url(target.location):
        con.execute(f"SELECT setval('{sequence}', {max(int(high), 1)}, {bool(high)})")
        return
    now = con.execute(f"SELECT nextval('{sequence}')").fetchone()[0]
    while now < high:  # DuckDB cannot set a sequence: draw the numbers already used
        now = con.execute(f"SELECT max(nextval('{sequence}')) FROM range(?)",
                          [int(high - now)]).fetchone()[0]
