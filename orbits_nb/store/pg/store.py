"""The team store: the store port on a PostgreSQL server (psycopg 3, pooled).

The table families (runs, logs, leases, resources, notebook runs, schedules,
approvals) are the DuckDB store's own modules, spoken to the server through
:mod:`.dialect`; the same numbered migrations create the same tables. What a server
changes is kept here:

* event writers take one advisory lock per commit, so ``seq`` follows commit order
  and the history fold (:mod:`.analytics`) never skips an event still in flight;
* a lease is taken under an advisory lock of its family, so two hosts racing for a
  key are serialized; a holder on another host is judged by its heartbeat;
* a live view polls ``max(seq)`` of ``events`` (an index lookup) to see other hosts'
  runs;
* ``relation()`` runs the query on the server and streams its result into DuckDB;
  a query in DuckDB's own dialect that the server refuses is answered by DuckDB over a
  copy of the tables it names.
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orbits_nb.core.errors import StoreError
from orbits_nb.core.rows import Batch, Lease, LeaseFamily, Owner
from orbits_nb.core.serde import dumps_record, mask_json
from orbits_nb.store import migrate
from orbits_nb.store.approvals import ApprovalTables
from orbits_nb.store.commands import CommandTables
from orbits_nb.store.guard import check_query, fault
from orbits_nb.store.logs import insert_logs
from orbits_nb.store.notebook_runs import NotebookRunTables
from orbits_nb.store.pg import analytics
from orbits_nb.store.pg.dialect import HELPERS, INDEXES, bind, translate
from orbits_nb.store.pg.driver import driver
from orbits_nb.store.pg.faults import pg_fault
from orbits_nb.store.pg.link import PgConnection, PgLink
from orbits_nb.store.queues import QueueTables
from orbits_nb.store.relations import _copy_read_only, scratch_dir
from orbits_nb.store.resources import ResourceTables
from orbits_nb.store.runs import RunTables
from orbits_nb.store.schedules import ScheduleTables
from orbits_nb.store.schema import SCHEMA_VERSION, USER_TABLES

if TYPE_CHECKING:
    import duckdb

    from orbits_nb.core.state import Event

_SCHEMA_LOCK = 0x6F726203
_LEASE_LOCKS = {"run": 0x6F726211, "resource": 0x6F726212, "schedule": 0x6F726213}
_CHUNK = 2000
#: Seconds between folds in idle time (reads fold first anyway).
_IDLE_FOLD = 0.5
#: Tables (and views) a DuckDB-dialect query may read, copied when the server refuses it.
_READABLE = (*USER_TABLES, "step_events")


# The table families are typed against DuckDB's connection; a PgConnection offers the
# same execute/fetchall/fetchone surface they use, so the sessions differ only in type.
class PostgresStore(PgLink, RunTables, ResourceTables,  # type: ignore[misc]
                    NotebookRunTables, ScheduleTables, ApprovalTables, CommandTables,
                    QueueTables):
    """Everything orbits_nb keeps, in a PostgreSQL database (see the module).

    ``url`` is ``postgresql://user[:password]@host[:port]/database``; without a
    password libpq looks in ``PGPASSWORD`` and ``~/.pgpass``. ``host`` is the host id
    it records and judges leases by, ``lease_timeout`` the seconds without heartbeat
    after which a holder on another host counts as gone (as for the DuckDB store);
    ``retry_for`` bounds the seconds spent reconnecting after a drop.
    """

    def __init__(self, url: str, *, host: str | None = None,
                 lease_timeout: float | None = None, retry_for: float | None = None,
                 pool_size: int = 8, **_duckdb_options: Any) -> None:
        PgLink.__init__(self, url, retry_for=retry_for, pool_size=pool_size)
        self._init_leases(host, lease_timeout)
        self._fold_lock = threading.Lock()
        self._folded_at = 0.0
        self._scratch: duckdb.DuckDBPyConnection | None = None
        self._folder: threading.Thread | None = None

    # -- the schema ----------------------------------------------------------------------
    def _prepare(self, con: PgConnection) -> None:
        """Apply the numbered migrations (one process at a time); refuse a newer schema."""
        con.execute("SELECT pg_advisory_lock(?)", [_SCHEMA_LOCK])
        try:
            if migrate.file_version(con, self.path) < SCHEMA_VERSION:  # type: ignore[arg-type]
                with self.transaction() as tx:
                    for statement in HELPERS:
                        tx.execute(statement)
            migrate.ensure_schema(con, self.path)  # type: ignore[arg-type]
            with self.transaction() as tx:
                for statement in INDEXES:
                    tx.execute(statement)
        finally:
            con.execute("SELECT pg_advisory_unlock(?)", [_SCHEMA_LOCK])

    # -- runs ----------------------------------------------------------------------------
    def write(self, batch: Batch) -> None:
        """Events, log lines, releases and heartbeats in one commit; after a dropped
        connection the batch is sent again unless its first commit was kept."""
        first = batch.events[0] if batch.events else None

        def landed() -> bool:
            if first is None:
                return False
            rows = self._rows("SELECT 1 FROM events WHERE run_id = ? AND ts = ? AND "
                              "kind = ? LIMIT 1", [first.run_id, first.ts, first.kind])
            return bool(rows)

        self.retrying(lambda: self._write(batch), landed=landed)

    def _write(self, batch: Batch) -> None:
        # Pipelined: the whole transaction travels in one round trip to the server.
        with self.kept_connection() as outer, outer.raw.pipeline(), \
                self.transaction() as con:
            if batch.events:
                con.execute("SELECT pg_advisory_xact_lock(?)", [analytics.EVENTS_LOCK])
            for start in range(0, len(batch.events), _CHUNK):
                _insert_events(con, batch.events[start:start + _CHUNK])
            for start in range(0, len(batch.logs), _CHUNK):
                insert_logs(con, batch.logs[start:start + _CHUNK])  # type: ignore[arg-type]
            self._release(con, "run", batch.release_leases)  # type: ignore[arg-type]
            self._renew(con, "run", batch.heartbeats)  # type: ignore[arg-type]

    def open_runs(self, requests: Sequence[tuple[str, Owner]], *, load: bool = True
                  ) -> dict[str, list[Event] | Any]:
        return self.retrying(lambda: RunTables.open_runs(self, requests, load=load))

    def events_mark(self) -> tuple[Any, ...]:
        """``max(seq)`` alone: an index lookup (events are only ever appended)."""
        return tuple(self._rows("SELECT max(seq) FROM events")[0])

    # -- leases ----------------------------------------------------------------------------
    def _take(self, con: Any, family: LeaseFamily,
              requests: Sequence[tuple[str, Owner, dict[str, Any]]]) -> dict[str, Lease]:
        # Two hosts that both see a key free must not both take it: one at a time.
        con.execute("SELECT pg_advisory_xact_lock(?)", [_LEASE_LOCKS[family]])
        return super()._take(con, family, requests)

    def take_lease(self, family: LeaseFamily, key: str, owner: Owner,
                   detail: dict[str, Any] | None = None) -> Lease | None:
        self._check_family(family)
        return super().take_lease(family, key, owner, detail)

    # -- queues ----------------------------------------------------------------------------
    def queue_mark(self) -> None:
        """Other hosts queue runs unseen: a worker claims at every look."""

    def command_mark(self) -> None:
        """Other hosts record commands unseen: the owner reads them at every look."""

    def _claim_lock(self, con: Any) -> None:
        # Claims read the queue and the leases, then take leases: one host at a time.
        con.execute("SELECT pg_advisory_xact_lock(?)", [_LEASE_LOCKS["run"]])

    def _queue_events(self, con: Any, events: Sequence[Event]) -> None:
        if events:
            con.execute("SELECT pg_advisory_xact_lock(?)", [analytics.EVENTS_LOCK])
            _insert_events(con, events)

    @staticmethod
    def _check_family(family: str) -> None:
        from orbits_nb.store.leases import _table

        _table(family)

    # -- history -----------------------------------------------------------------------------
    def _current(self, con: Any = None, *, rebuild: bool = False) -> None:
        """Fold what other processes and hosts appended (cheap when nothing is new)."""
        with self._fold_lock:
            self._folded_at = time.monotonic()
            with self.transaction() as tx:
                low, high = analytics.lag(tx)
                if high > low or rebuild:
                    if self._scratch is None:
                        self._scratch = analytics.scratch()
                    analytics.catch_up(tx, self._scratch, rebuild=rebuild)

    def _idle(self) -> None:
        """Fold in a thread of its own, so the writer that called this never waits for
        it; not while runs are in flight (a read folds what it needs itself)."""
        if self.busy or time.monotonic() - self._folded_at < _IDLE_FOLD:
            return
        if self._folder is not None and self._folder.is_alive():
            return
        self._folded_at = time.monotonic()
        self._folder = threading.Thread(target=self._fold_quietly, daemon=True,
                                        name="orbits_nb-fold")
        self._folder.start()

    def _fold_quietly(self) -> None:
        with suppress(StoreError):  # the events are safe: the next read folds them
            self._current()

    def rebuild_history(self) -> None:
        self._current(rebuild=True)

    def close(self) -> None:
        folder = self._folder
        if folder is not None:
            folder.join()
        super().close()
        with self._fold_lock:
            if self._scratch is not None:
                self._scratch.close()
                self._scratch = None

    def relation(self, query: str, params: list[Any] | None = None
                 ) -> duckdb.DuckDBPyRelation:
        """The result of one read-only ``query`` as an in-memory DuckDB relation."""
        check_query(query, params)
        self._one_select(query)
        self._current()
        mem = self._result_cursor()
        try:
            with self.connection(write=False) as con:
                self._pushdown(con, query, params, mem)
        except _Refused:
            self._in_duckdb(query, params, mem)
        return mem.table("result")

    def _one_select(self, query: str) -> None:
        import duckdb

        try:
            kinds = [s.type.name for s in duckdb.extract_statements(query)]
        except duckdb.Error as err:
            raise fault(self.path, err, query=query) from None
        if kinds != ["SELECT"]:
            raise StoreError(
                "only one read-only query (SELECT, WITH, SHOW, DESCRIBE) is allowed here, "
                f"got {len(kinds)} statement(s) ({', '.join(kinds) or 'none'}); the store "
                "is written by orbits_nb only", query=query)

    def _pushdown(self, con: PgConnection, query: str, params: list[Any] | None,
                  mem: duckdb.DuckDBPyConnection) -> None:
        psycopg, _ = driver()
        text, values = bind(translate(query), params, client=True)
        try:
            literal = psycopg.ClientCursor(con.raw).mogrify(text, values)
            con.raw.execute("BEGIN READ ONLY")
            try:
                cur = con.raw.execute(f"SELECT * FROM ({literal}) AS q LIMIT 0")
                types = analytics.result_types(cur.description)
                analytics.pull(con, literal, mem, "result", types)
            finally:
                if not con.raw.broken:
                    con.raw.execute("ROLLBACK")
        except psycopg.errors.ReadOnlySqlTransaction as err:
            raise StoreError(f"the query would change the store ({err}); only read-only "
                             "queries are allowed here", query=query) from None
        except (psycopg.ProgrammingError, psycopg.DataError) as err:
            if type(err).__name__ == "InsufficientPrivilege":
                raise pg_fault(self.url, err, query=query) from None
            raise _Refused from None

    def _in_duckdb(self, query: str, params: list[Any] | None,
                   mem: duckdb.DuckDBPyConnection) -> None:
        """Answer a DuckDB-dialect query over a copy of the tables it names."""
        import duckdb

        local = migrate.empty_store()
        try:
            with self.connection(write=False) as con:
                for table in analytics.tables_in(query, _READABLE):
                    if table in ("resource_status", "step_events"):
                        continue  # views: DuckDB computes them from the copied tables
                    local.execute(f"DELETE FROM {table}")
                    analytics.pull(con, f"SELECT * FROM {table}", local, table)
            with tempfile.TemporaryDirectory(prefix="orbits_nb_", dir=scratch_dir()) as tmp:
                target = Path(tmp) / "result.parquet"
                _copy_read_only(local, query, params, target)
                mem.execute(f"CREATE TEMP TABLE result AS SELECT * FROM "
                            f"read_parquet('{target}')")
        except duckdb.Error as err:
            raise fault(self.path, err, query=query) from None
        finally:
            local.close()

    def fetch(self, query: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        """Rows of any ``query`` on the server, for maintenance and tests (not part of
        the store port)."""
        check_query(query, params)
        self._current()
        return self._rows(query, params)


class _Refused(Exception):
    """The server cannot run a query written in DuckDB's dialect."""


def _insert_events(con: PgConnection, events: Sequence[Event]) -> None:
    """The events as one JSON document, unpacked by the server in one statement (one
    parameter to send and parse: a 200-event commit costs half what six arrays did)."""
    if not events:
        return
    rows = ",".join(
        f'{{"ts":{json.dumps(e.ts)},"run_id":{json.dumps(e.run_id)},'
        f'"step":{json.dumps(e.step)},"kind":{json.dumps(e.kind)},'
        f'"attempt":{json.dumps(e.attempt)},"data":{mask_json(dumps_record(e.data))}}}'
        for e in events)
    con.execute("INSERT INTO events SELECT nextval('event_seq'), r.ts, r.run_id, r.step, "
                "r.kind, r.attempt, r.data FROM json_to_recordset($1::json) AS r(ts float8, "
                "run_id varchar, step varchar, kind varchar, attempt integer, data json)",
                ["[" + rows + "]"])
