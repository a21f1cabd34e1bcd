"""Runs: the append-only ``events`` and what is read from them and the history tables."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from orbits_nb._filters import MAX_PAGE, check_limit
from orbits_nb.core.errors import RunOwned
from orbits_nb.core.rows import Batch, Lease, Owner, RunQuery, RunSummary
from orbits_nb.core.serde import dumps_record, loads, loads_record, mask_json
from orbits_nb.core.state import Event
from orbits_nb.store.commands import COMMAND_KINDS
from orbits_nb.store.guard import check_run_id
from orbits_nb.store.leases import LeaseTables
from orbits_nb.store.logs import LogTables, insert_logs
from orbits_nb.store.marks import Marks
from orbits_nb.store.relations import Relations
from orbits_nb.store.run_list import RunListTables

if TYPE_CHECKING:
    import duckdb

_CHUNK = 2000
_SMALL = 4
_UNNEST_EVENTS = (
    "INSERT INTO events SELECT nextval('event_seq'), unnest($1::DOUBLE[]), "
    "unnest($2::VARCHAR[]), unnest($3::VARCHAR[]), unnest($4::VARCHAR[]), "
    "unnest($5::INTEGER[]), unnest($6::VARCHAR[])")
_EVENT = "SELECT run_id, seq, ts, step, kind, attempt, data FROM events"



def _event(row: tuple[Any, ...]) -> Event:
    run_id, seq, ts, step, kind, attempt, data = row
    return Event(run_id=run_id, seq=seq, ts=ts, step=step, kind=kind, attempt=attempt,
                 data=loads_record(data) or {})


def _insert_events(con: duckdb.DuckDBPyConnection, events: Sequence[Event]) -> None:
    if not events:
        return
    rows = [(e.ts, e.run_id, e.step, e.kind, e.attempt, mask_json(dumps_record(e.data)))
            for e in events]
    if len(rows) <= _SMALL:
        params = [value for row in rows for value in row]
        values = ",".join(["(nextval('event_seq'),?,?,?,?,?,?)"] * len(rows))
        con.execute(f"INSERT INTO events VALUES {values}", params)
    else:
        # One list parameter per column: binding cost no longer grows with rows.
        con.execute(_UNNEST_EVENTS, [list(column) for column in zip(*rows, strict=True)])


class RunTables(Relations, LeaseTables, LogTables, RunListTables, Marks):
    """The run verbs of the store: writes, leases at start, reads of the history."""

    # -- writes ---------------------------------------------------------------------
    def write(self, batch: Batch) -> None:
        self._write_events(batch)
        if any(event.kind in COMMAND_KINDS for event in batch.events):
            self._commanded()  # committed: the owner of the run looks now

    def _write_events(self, batch: Batch) -> None:
        if not (batch.logs or batch.release_leases or batch.heartbeats) and \
                len(batch.events) <= _CHUNK:
            with self.connection() as con:
                _insert_events(con, batch.events)  # one statement: atomic by itself
                self._stale = self._stale or bool(batch.events)
            return
        with self.transaction() as con:
            for start in range(0, len(batch.events), _CHUNK):
                _insert_events(con, batch.events[start:start + _CHUNK])
            for start in range(0, len(batch.logs), _CHUNK):
                insert_logs(con, batch.logs[start:start + _CHUNK])
            self._release(con, "run", batch.release_leases)
            self._renew(con, "run", batch.heartbeats)
            self._stale = self._stale or bool(batch.events)

    def open_runs(self, requests: Sequence[tuple[str, Owner]], *, load: bool = True
                  ) -> dict[str, list[Event] | RunOwned]:
        """One transaction for all requests, so many runs start for the price of one."""
        for run_id, _ in requests:
            check_run_id(run_id)
        outcome: dict[str, list[Event] | RunOwned] = {}
        with self.transaction() as con:
            kept = self._take(con, "run", [(run_id, owner, {}) for run_id, owner in requests])
            granted = [run_id for run_id, _ in requests if run_id not in kept]
            rows = con.execute(
                f"{_EVENT} WHERE run_id IN (SELECT unnest($1::VARCHAR[])) ORDER BY seq",
                [granted]).fetchall() if load and granted else []
        for run_id, lease in kept.items():
            outcome[run_id] = _owned(lease)
        for run_id in granted:
            outcome[run_id] = []
        for row in rows:
            events = outcome[row[0]]
            assert isinstance(events, list)
            events.append(_event(row))
        return outcome

    # -- reads of events ------------------------------------------------------------
    def load_run(self, run_id: str) -> list[Event]:
        check_run_id(run_id)
        with self.connection(write=False) as con:
            rows = con.execute(f"{_EVENT} WHERE run_id = ? ORDER BY seq", [run_id]).fetchall()
        return [_event(row) for row in rows]

    def run_exists(self, run_id: str) -> bool:
        check_run_id(run_id)
        return bool(self._rows("SELECT 1 FROM events WHERE run_id = ? LIMIT 1", [run_id]))

    def run_tree(self, root: str) -> list[str]:
        check_run_id(root)
        rows = self._rows("SELECT DISTINCT run_id FROM events WHERE run_id = ? OR "
                          "starts_with(run_id, ?) ORDER BY run_id", [root, root + "/"])
        return [row[0] for row in rows]

    def run_workflow(self, run_id: str) -> str | None:
        check_run_id(run_id)
        rows = self._rows("SELECT data->>'workflow' FROM events WHERE run_id = ? AND "
                          "kind = 'run.created' ORDER BY seq LIMIT 1", [run_id])
        return rows[0][0] if rows else None

    def previous_run(self, workflow: str, run_id: str, before: float) -> str | None:
        rows = self._rows(
            "SELECT run_id FROM events WHERE kind = 'run.created' AND step IS NULL "
            "AND data->>'workflow' = ? AND run_id <> ? AND data->>'parent_run_id' IS NULL "
            "AND ts < ? ORDER BY ts DESC LIMIT 1", [workflow, run_id, before])
        return str(rows[0][0]) if rows else None

    def started_runs(self, notebook_run_id: str, host: str, pid: int, since: float
                     ) -> list[str]:
        rows = self._rows(
            "SELECT run_id, min(seq) AS first FROM events WHERE step IS NULL AND "
            "position('/' IN run_id) = 0 AND ((kind = 'run.created' AND "
            "data->'meta'->>'notebook_run_id' = ?) OR (kind = 'run.started' AND "
            "data->>'host' = ? AND CAST(data->>'pid' AS BIGINT) = ? AND ts >= ?)) "
            "GROUP BY run_id ORDER BY first", [notebook_run_id, host, pid, since])
        return [row[0] for row in rows]

    def events_mark(self) -> tuple[Any, ...]:
        rows = self._rows("SELECT max(seq), count(*) FROM events")
        return tuple(rows[0])

    # -- reads of the history tables ---------------------------------------------------
    def failed_errors(self, run_ids: Sequence[str]) -> list[dict[str, Any]]:
        if not run_ids:
            return []
        rows = self._history(
            "SELECT error FROM runs WHERE status = 'failed' AND (run_id IN (SELECT "
            "unnest($1::VARCHAR[])) OR split_part(run_id, '/', 1) IN (SELECT "
            "unnest($1::VARCHAR[]))) ORDER BY run_id", [list(run_ids)])
        return [loads(row[0]) for row in rows if row[0]]

    def recent_runs(self, *, workflow: str = "", status: str = "",
                    since: float | None = None, limit: int = 50) -> list[RunSummary]:
        check_limit(limit)
        found: list[RunSummary] = []
        while len(found) < limit:  # pages of at most MAX_PAGE runs
            page = self.run_page(RunQuery(workflow=workflow, status=status, since=since,
                                          offset=len(found),
                                          limit=min(MAX_PAGE, limit - len(found))))
            found += page.rows
            if len(found) >= page.total or not page.rows:
                break
        return found

    def workflows(self) -> list[str]:
        rows = self._history("SELECT DISTINCT workflow FROM runs WHERE parent_run_id IS NULL "
                             "AND workflow IS NOT NULL ORDER BY 1")
        return [row[0] for row in rows]

    # -- helpers ----------------------------------------------------------------------
    def _rows(self, query: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        with self.connection(write=False) as con:
            return con.execute(query, params or []).fetchall()

    def _history(self, query: str, params: list[Any] | None = None
                 ) -> list[tuple[Any, ...]]:
        """Rows of a query that reads the history tables (current when it runs)."""
        with self.connection(write=False) as con:
            self._current(con)
            return con.execute(query, params or []).fetchall()


def _owned(lease: Lease) -> RunOwned:
    since_text = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(lease.since))
    return RunOwned(
        f"run {lease.key!r} is being executed by {lease.host} pid {lease.pid} since "
        f"{since_text}; wait for it, or stop that process (a run whose owner died is taken "
        "over automatically)", run_id=lease.key, owner=f"{lease.host}:{lease.pid}",
        since=lease.since)
