"""The DuckDB store: runs, steps, events, logs and leases, as named operations.

The file itself (opening, hand-over between processes, faults, reads that create
nothing) is :class:`~orbits_nb.store.statefile.StateFile`; this module holds what is
written and read.
"""

from __future__ import annotations

import os
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orbits_nb.core.errors import RunOwned, StoreError
from orbits_nb.core.serde import dumps_record, loads_record
from orbits_nb.core.state import Event
from orbits_nb.store.guard import check_query, check_run_id, check_step, fault, os_fault
from orbits_nb.store.migrate import rollback
from orbits_nb.store.statefile import StateFile

if TYPE_CHECKING:
    import duckdb

_CHUNK = 2000
_SMALL = 4
_UNNEST_EVENTS = (
    "INSERT INTO events SELECT nextval('event_seq'), unnest($1::DOUBLE[]), "
    "unnest($2::VARCHAR[]), unnest($3::VARCHAR[]), unnest($4::VARCHAR[]), "
    "unnest($5::INTEGER[]), unnest($6::VARCHAR[])")
HOST = socket.gethostname()


@dataclass
class LogLine:
    run_id: str
    step: str | None
    attempt: int | None
    stream: str
    message: str
    ts: float = field(default_factory=time.time)


@dataclass
class Batch:
    """Writes committed together (group commit)."""

    events: list[Event] = field(default_factory=list)
    logs: list[LogLine] = field(default_factory=list)
    release_leases: list[tuple[str, str]] = field(default_factory=list)  # (run_id, token)
    heartbeats: list[tuple[str, str]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.events or self.logs or self.release_leases or self.heartbeats)

    def extend(self, other: Batch) -> None:
        self.events += other.events
        self.logs += other.logs
        self.release_leases += other.release_leases
        self.heartbeats += other.heartbeats


@dataclass(frozen=True)
class Owner:
    """The process (and engine) that executes a run."""

    token: str
    host: str = HOST
    pid: int = field(default_factory=os.getpid)


def owner_alive(host: str, pid: int, heartbeat: float, ttl: float = 60.0) -> bool:
    """Whether a lease holder still lives: by pid on this host, by heartbeat elsewhere."""
    if host != HOST:
        return time.time() - heartbeat < ttl
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _owned(run_id: str, host: str, pid: int, since: float) -> RunOwned:
    since_text = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since))
    return RunOwned(
        f"run {run_id!r} is being executed by {host} pid {pid} since {since_text}; wait "
        "for it, or stop that process (a run whose owner died is taken over automatically)",
        run_id=run_id, owner=f"{host}:{pid}", since=since)


class DuckDBStore(StateFile):
    """Runs, steps, events, logs and leases in a DuckDB file (or ``":memory:"``).

    Reads never create anything: while the file does not exist they see an empty
    store; the first write creates the file and its folders. A file this process may
    not write is opened read-only for reads, and writes to it fail with a
    :class:`~orbits_nb.StoreError` that says so. Every DuckDB failure leaves the
    store as a :class:`~orbits_nb.StoreError` naming the file.
    """

    # -- writes ---------------------------------------------------------------------
    def write(self, batch: Batch, redact: Callable[[str], str] | None = None) -> None:
        """Commit a batch atomically; ``redact`` masks secrets in every text written."""
        with self.connection() as con:
            single = not (batch.logs or batch.release_leases or batch.heartbeats)
            if single and len(batch.events) <= _CHUNK:
                self._insert_events(con, batch.events, redact)
                return
            con.execute("BEGIN")
            try:
                for start in range(0, len(batch.events), _CHUNK):
                    self._insert_events(con, batch.events[start:start + _CHUNK], redact)
                for start in range(0, len(batch.logs), _CHUNK):
                    self._insert_logs(con, batch.logs[start:start + _CHUNK], redact)
                if batch.release_leases:
                    con.execute("DELETE FROM leases WHERE (run_id || ' ' || token) IN "
                                "(SELECT unnest($1::VARCHAR[]))",
                                [[f"{r} {t}" for r, t in batch.release_leases]])
                if batch.heartbeats:
                    con.execute("UPDATE leases SET heartbeat = $1 WHERE (run_id || ' ' || "
                                "token) IN (SELECT unnest($2::VARCHAR[]))",
                                [time.time(), [f"{r} {t}" for r, t in batch.heartbeats]])
                con.execute("COMMIT")
            except BaseException:
                rollback(con)
                raise

    @staticmethod
    def _insert_events(con: duckdb.DuckDBPyConnection, events: list[Event],
                       redact: Callable[[str], str] | None) -> None:
        if not events:
            return
        rows = []
        for e in events:
            data = dumps_record(e.data)
            rows.append((e.ts, e.run_id, e.step, e.kind, e.attempt,
                         redact(data) if redact else data))
        if len(rows) <= _SMALL:
            params = [value for row in rows for value in row]
            values = ",".join(["(nextval('event_seq'),?,?,?,?,?,?)"] * len(rows))
            con.execute(f"INSERT INTO events VALUES {values}", params)
        else:
            # One list parameter per column: binding cost no longer grows with rows.
            con.execute(_UNNEST_EVENTS, [list(column) for column in zip(*rows, strict=True)])

    @staticmethod
    def _insert_logs(con: duckdb.DuckDBPyConnection, logs: list[LogLine],
                     redact: Callable[[str], str] | None) -> None:
        params: list[Any] = []
        for line in logs:
            params += [line.ts, line.run_id, line.step, line.attempt, line.stream,
                       redact(line.message) if redact else line.message]
        values = ",".join(["(?,?,?,?,?,?)"] * len(logs))
        con.execute(f"INSERT INTO logs VALUES {values}", params)

    def open_runs(self, requests: list[tuple[str, Owner]], *, load: bool = True
                  ) -> dict[str, list[Event] | RunOwned]:
        """Take the lease of each run (or say who owns it) and load its events.

        One transaction for all requests, so many runs start for the price of one.
        A lease held by a process that died is taken over.
        """
        ids = [check_run_id(run_id) for run_id, _ in requests]
        outcome: dict[str, list[Event] | RunOwned] = {}
        with self.connection() as con:
            con.execute("BEGIN")
            try:
                held = con.execute(
                    "SELECT run_id, host, pid, token, since, heartbeat FROM leases "
                    "WHERE run_id IN (SELECT unnest($1::VARCHAR[]))", [ids]).fetchall()
                tokens = {run_id: owner.token for run_id, owner in requests}
                for run_id, host, pid, token, since, beat in held:
                    if token != tokens[run_id] and owner_alive(host, pid, beat):
                        outcome[run_id] = _owned(run_id, host, pid, since)
                granted = [(r, o) for r, o in requests if r not in outcome]
                if granted:
                    now = time.time()
                    con.execute(
                        "INSERT OR REPLACE INTO leases SELECT unnest($1::VARCHAR[]), "
                        "unnest($2::VARCHAR[]), unnest($3::INTEGER[]), unnest($4::VARCHAR[]), "
                        "$5, $5", [[r for r, _ in granted], [o.host for _, o in granted],
                                   [o.pid for _, o in granted], [o.token for _, o in granted],
                                   now])
                rows = con.execute(
                    "SELECT run_id, seq, ts, step, kind, attempt, data FROM events WHERE "
                    "run_id IN (SELECT unnest($1::VARCHAR[])) ORDER BY seq",
                    [[r for r, _ in granted]]).fetchall() if load and granted else []
                con.execute("COMMIT")
            except BaseException:
                rollback(con)
                raise
        for run_id, _ in granted:
            outcome[run_id] = []
        for run_id, seq, ts, step, kind, attempt, data in rows:
            events = outcome[run_id]
            assert isinstance(events, list)
            events.append(Event(run_id=run_id, seq=seq, ts=ts, step=step, kind=kind,
                                attempt=attempt, data=loads_record(data) or {}))
        return outcome

    # -- reads ----------------------------------------------------------------------
    def load_run(self, run_id: str) -> list[Event]:
        """Every event of ``run_id``, in order."""
        check_run_id(run_id)
        with self.connection(write=False) as con:
            rows = con.execute(
                "SELECT seq, ts, step, kind, attempt, data FROM events WHERE run_id = ? "
                "ORDER BY seq", [run_id]).fetchall()
        return [Event(run_id=run_id, seq=r[0], ts=r[1], step=r[2], kind=r[3],
                      attempt=r[4], data=loads_record(r[5]) or {}) for r in rows]

    def fetch(self, query: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        """Rows of ``query``; a query that only selects creates no file when none exists."""
        check_query(query, params)
        with self._session("auto", query) as con:
            return con.execute(query, params or []).fetchall()

    def logs(self, run_id: str, step: str | None = None) -> list[tuple[Any, ...]]:
        check_run_id(run_id)
        query = "SELECT ts, step, attempt, stream, message FROM logs WHERE run_id = ?"
        params: list[Any] = [run_id]
        if check_step(step) is not None:
            query += " AND step = ?"
            params.append(step)
        return self.fetch(query + " ORDER BY ts", params)

    def relation(self, query: str,
                 params: list[Any] | None = None) -> duckdb.DuckDBPyRelation:
        """Run one read-only ``query`` (``?`` bound to ``params``) in a read-only
        transaction (so ``SELECT nextval(...)`` is refused too); return its result as an
        in-memory DuckDB relation, copied out through a temporary Parquet file so it
        stays usable after the state file is handed to another process."""
        import duckdb

        check_query(query, params)
        try:
            with tempfile.TemporaryDirectory(prefix="orbits_nb_") as tmp:
                target = Path(tmp) / "result.parquet"
                with self._session("read", query) as con:
                    kinds = [s.type.name for s in con.extract_statements(query)]
                    if kinds != ["SELECT"]:
                        raise StoreError(
                            "only one read-only query (SELECT, WITH, SHOW, DESCRIBE) is "
                            f"allowed here, got {len(kinds)} statement(s) "
                            f"({', '.join(kinds) or 'none'}); the store is written by "
                            "orbits_nb only", query=query)
                    _copy_read_only(con, query, params, target)
                mem = duckdb.connect(":memory:")
                mem.execute(f"CREATE TABLE result AS SELECT * FROM read_parquet('{target}')")
        except duckdb.Error as err:
            raise fault(self.path, err, query=query) from None
        except OSError as err:
            raise os_fault(self.path, err, "copy the query result to a temporary "
                           "folder") from None
        return mem.table("result")


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
