"""``queues`` and ``queued_runs``: submitted runs, claimed by workers within limits.

A queued run is *running* while its run lease (``leases``) has a live holder, whoever
that is (a worker, or a kernel that started the run itself), so a queue's
``concurrency`` and ``per_key`` count every holder on every host. A claim reads the
queue and the leases and takes the leases inside one transaction (the executing
entries and one page of the waiting ones at a time: :mod:`.queue_claims`); the DuckDB file's
hand-over serializes the processes of a host, the server store adds an advisory lock
(:meth:`_claim_lock`), so two workers never take the same run or overrun a limit. A
lease whose holder died is free again under the lease rules (pid on this host,
heartbeat elsewhere): its run is taken over by the next claim.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from orbits_nb.core.errors import InvalidArgument
from orbits_nb.core.rows import Owner, QueuedRun, QueueRow, QueueStats
from orbits_nb.store.guard import check_run_id
from orbits_nb.store.leases import LeaseTables
from orbits_nb.store.marks import Marks
from orbits_nb.store.queue_claims import Tally, candidates

if TYPE_CHECKING:
    import duckdb

    from orbits_nb.core.state import Event

_ENTRY = ("SELECT q.run_id, q.queue, q.key, q.priority, q.submitted_at, q.not_before, "
          "q.takes, l.host, l.pid, l.heartbeat, l.token FROM queued_runs q "
          "LEFT JOIN leases l ON l.run_id = q.run_id")
#: Run events that say whether a queued run ended, or must not begin, since it was queued.
_ENDS = ("SELECT run_id, kind, ts FROM events WHERE step IS NULL AND kind IN "
         "('run.succeeded', 'run.failed', 'run.cancelled', 'run.cancel_requested') AND "
         "run_id IN (SELECT unnest($1::VARCHAR[])) ORDER BY seq")
_TERMINAL = ("run.succeeded", "run.failed", "run.cancelled")


def _entry(row: tuple[Any, ...], cancel: bool = False) -> QueuedRun:
    return QueuedRun(str(row[0]), str(row[1]), row[2], int(row[3] or 0), float(row[4]),
                     None if row[5] is None else float(row[5]), int(row[6] or 0), cancel)


def _limit(value: Any) -> int | None:
    return None if value is None else int(value)


class QueueTables(LeaseTables, Marks):
    """The queue verbs of the store (see the module)."""

    _stale: bool

    # -- hooks of the server store ------------------------------------------------------
    def _claim_lock(self, con: duckdb.DuckDBPyConnection) -> None:
        """Serialize claims (the file's hand-over already does, for DuckDB)."""

    def _queue_events(self, con: duckdb.DuckDBPyConnection, events: Sequence[Event]
                      ) -> None:
        from orbits_nb.store.runs import _insert_events

        _insert_events(con, events)
        if events:
            self._stale = True

    # -- declarations -------------------------------------------------------------------
    def declare_queue(self, queue: QueueRow, *, replace: bool = True) -> None:
        with self.connection() as con:
            self._declare(con, queue, replace)

    @staticmethod
    def _declare(con: duckdb.DuckDBPyConnection, queue: QueueRow, replace: bool) -> None:
        conflict = ("DO UPDATE SET concurrency = excluded.concurrency, per_key = "
                    "excluded.per_key") if replace else "DO NOTHING"
        con.execute("INSERT INTO queues (name, concurrency, per_key, created_at) VALUES "
                    f"(?, ?, ?, ?) ON CONFLICT (name) {conflict}",
                    [queue.name, queue.concurrency, queue.per_key, time.time()])

    def remove_queue(self, name: str, *, force: bool = False) -> int:
        with self.transaction() as con:
            known = con.execute("SELECT count(*) FROM queues WHERE name = ?",
                                [name]).fetchall()[0][0]
            waiting = int(con.execute("SELECT count(*) FROM queued_runs WHERE queue = ?",
                                      [name]).fetchall()[0][0])
            if not known and not waiting:
                raise InvalidArgument(f"there is no queue {name!r}; list the queues with "
                                      "`orbits-nb queue list`", queue=name)
            if waiting and not force:
                raise InvalidArgument(
                    f"queue {name!r} still holds {waiting} run(s); wait until workers "
                    "drain it, or pass --force to drop them from the queue (their "
                    "records stay)", queue=name)
            con.execute("DELETE FROM queued_runs WHERE queue = ?", [name])
            con.execute("DELETE FROM queues WHERE name = ?", [name])
        return waiting

    def queue_stats(self) -> list[QueueStats]:
        with self.connection(write=False) as con:
            queues = con.execute("SELECT name, concurrency, per_key FROM queues "
                                 "ORDER BY name").fetchall()
            rows = con.execute(_ENTRY).fetchall()
        stats: dict[str, list[Any]] = {
            str(n): [QueueRow(str(n), _limit(c), _limit(k)), 0, 0, None]
            for n, c, k in queues}
        for row in rows:
            entry = stats.setdefault(str(row[1]), [QueueRow(str(row[1])), 0, 0, None])
            if self._held(row):
                entry[2] += 1
            else:
                entry[1] += 1
                entry[3] = row[4] if entry[3] is None else min(entry[3], row[4])
        return [QueueStats(q, depth, running, oldest)
                for q, depth, running, oldest in stats.values()]

    # -- entries ------------------------------------------------------------------------
    def enqueue(self, entry: QueuedRun, events: Sequence[Event] = (),
                queue: QueueRow | None = None) -> bool:
        check_run_id(entry.run_id)
        with self.transaction() as con:
            if con.execute("SELECT 1 FROM queued_runs WHERE run_id = ?",
                           [entry.run_id]).fetchall():
                return False
            self._declare(con, queue or QueueRow(entry.queue), queue is not None)
            self._queue_events(con, events)
            con.execute("INSERT INTO queued_runs (run_id, queue, key, priority, "
                        "submitted_at, not_before, takes) VALUES (?, ?, ?, ?, ?, ?, 0)",
                        [entry.run_id, entry.queue, entry.key, entry.priority,
                         entry.submitted_at, entry.not_before])
        self._queued()  # committed: idle workers look now
        return True

    def queued(self, run_id: str) -> QueuedRun | None:
        with self.connection(write=False) as con:
            rows = con.execute(_ENTRY + " WHERE q.run_id = ?", [run_id]).fetchall()
        return _entry(rows[0]) if rows else None

    def park_run(self, run_id: str, not_before: float) -> None:
        with self.connection() as con:
            con.execute("UPDATE queued_runs SET not_before = ? WHERE run_id = ?",
                        [not_before, run_id])

    def dequeue(self, run_id: str) -> None:
        with self.connection() as con:
            con.execute("DELETE FROM queued_runs WHERE run_id = ?", [run_id])
        self._queued()  # a queue's slot may be free: workers waiting for one look now

    # -- claims -------------------------------------------------------------------------
    def _held(self, row: tuple[Any, ...]) -> bool:
        """Whether the entry's run lease has a live holder."""
        return row[10] is not None and self.alive(str(row[7]), int(row[8] or 0), row[9])

    def claim_runs(self, owner: Owner, limit: int, queues: Sequence[str] = ()
                   ) -> list[QueuedRun]:
        if limit < 1:
            return []
        now = time.time()
        with self.transaction() as con:
            self._claim_lock(con)
            tally = Tally({str(n): (_limit(c), _limit(k)) for n, c, k in con.execute(
                "SELECT name, concurrency, per_key FROM queues").fetchall()})
            chosen: list[QueuedRun] = []
            dropped: list[str] = []
            for batch in candidates(con, queues, now, self._held, tally):
                ends = self._ends(con, [row[0] for row in batch])
                for row in batch:
                    if len(chosen) >= limit:
                        break
                    end = ends.get(row[0])
                    if end is not None and end[1] > row[4] and end[0] in _TERMINAL:
                        dropped.append(row[0])  # it ended (executed elsewhere) since queued
                        continue
                    if not tally.room(row):
                        continue
                    tally.count(row)
                    cancel = end is not None and end[0] == "run.cancel_requested"
                    chosen.append(_entry(row, cancel))
                if len(chosen) >= limit:
                    break
            kept = self._take(con, "run", [(e.run_id, owner, {}) for e in chosen])
            chosen = [e for e in chosen if e.run_id not in kept]
            if dropped:
                con.execute("DELETE FROM queued_runs WHERE run_id IN "
                            "(SELECT unnest($1::VARCHAR[]))", [dropped])
            if chosen:
                con.execute("UPDATE queued_runs SET taken_by = $1, taken_at = $2, "
                            "takes = takes + 1 WHERE run_id IN "
                            "(SELECT unnest($3::VARCHAR[]))",
                            [owner.token, now, [e.run_id for e in chosen]])
        return chosen

    @staticmethod
    def _ends(con: duckdb.DuckDBPyConnection, run_ids: list[str]
              ) -> dict[str, tuple[str, float]]:
        """The latest end or standing cancel request of each run: (kind, ts)."""
        if not run_ids:
            return {}
        ends: dict[str, tuple[str, float]] = {}
        for run_id, kind, ts in con.execute(_ENDS, [run_ids]).fetchall():
            ends[str(run_id)] = (str(kind), float(ts))
        return ends
