"""The DuckDB store: the state file, opened only while there is work.

All access in a process is serialized on one connection. Between processes the file
is handed over through :class:`~orbits_nb.store.handoff.Turnstile`, so nobody sees a
DuckDB lock error: a process waits its turn, bounded by ``lock_timeout``.
"""

from __future__ import annotations

import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from orbits_nb.core.errors import RunOwned, StoreBusy, StoreError
from orbits_nb.core.serde import dumps_record, loads_record
from orbits_nb.core.state import Event
from orbits_nb.store.handoff import Turnstile
from orbits_nb.store.schema import APP_ID, MIGRATIONS, SCHEMA_VERSION

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


class DuckDBStore:
    """Runs, steps, events, logs and leases in a DuckDB file (or ``":memory:"``)."""

    def __init__(self, path: str | Path, *, lock_timeout: float | None = None,
                 time_slice: float = 0.2, idle_release: float = 0.05) -> None:
        self.memory = str(path) == ":memory:"
        self.path = Path(path) if not self.memory else Path(":memory:")
        timeout = lock_timeout or float(os.environ.get("ORBITS_NB_LOCK_TIMEOUT", "120"))
        self.lock_timeout = timeout
        self.time_slice = time_slice
        self.idle_release = idle_release
        self._turnstile = None if self.memory else Turnstile(self.path, timeout=timeout)
        self._lock = threading.RLock()
        self._con: duckdb.DuckDBPyConnection | None = None
        self._opened_at = 0.0
        self._last_used = 0.0
        self._users = 0
        #: Set by the engine while it has runs in flight; idle stores close at once.
        self.busy = False

    # -- the file -------------------------------------------------------------------
    @contextmanager
    def connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The open connection, for one unit of work (opens the file if needed)."""
        with self._lock:
            if self._con is None:
                self._open()
            assert self._con is not None
            self._users += 1
            try:
                yield self._con
            finally:
                self._users -= 1
                self._last_used = time.monotonic()
                if not self.busy and not self.memory:
                    self._close()

    def tick(self) -> None:
        """Hand the file over if idle, or if somebody waits and our slice is used."""
        if self._con is None or self.memory:
            return
        with self._lock:
            if self._con is None or self._users:
                return
            now = time.monotonic()
            idle = now - self._last_used > self.idle_release
            slice_used = now - self._opened_at > self.time_slice
            if idle or not self.busy or (slice_used and self._waiter()):
                self._close()

    def _waiter(self) -> bool:
        return self._turnstile is not None and self._turnstile.someone_waits()

    def close(self) -> None:
        with self._lock:
            self._close()

    @property
    def is_open(self) -> bool:
        return self._con is not None

    def _open(self) -> None:
        import duckdb

        if self._turnstile is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._turnstile.acquire()
        try:
            self._con = self._connect(duckdb)
            self._ensure_schema(self._con)
        except BaseException:
            if self._con is not None:
                self._con.close()
                self._con = None
            if self._turnstile is not None:
                self._turnstile.release()
            raise
        self._opened_at = time.monotonic()

    def _connect(self, db: Any) -> duckdb.DuckDBPyConnection:
        if self.memory:
            return cast("duckdb.DuckDBPyConnection", db.connect(":memory:"))
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.005
        while True:
            try:
                return cast("duckdb.DuckDBPyConnection", db.connect(str(self.path)))
            except db.IOException as err:
                text = str(err)
                if "lock" not in text.lower():
                    raise StoreError(
                        f"cannot open the state file {self.path}: {text}. If the file is "
                        "damaged, move it aside (orbits_nb starts a new one) or set "
                        "ORBITS_NB_STATE to another path",
                        path=str(self.path),
                    ) from None
                # A process outside orbits_nb (e.g. the duckdb CLI) holds the file.
                if time.monotonic() > deadline:
                    raise StoreBusy(
                        f"the state file {self.path} is locked by a program outside "
                        f"orbits_nb: {text}", path=str(self.path)) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.25)
            except db.Error as err:
                raise StoreError(f"cannot open the state file {self.path}: {err}",
                                 path=str(self.path)) from None

    def _close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None
            if self._turnstile is not None:
                self._turnstile.release()

    def _ensure_schema(self, con: duckdb.DuckDBPyConnection) -> None:
        tables = {row[0] for row in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'"
        ).fetchall()}
        version = 0
        if "orbits_nb_meta" in tables:
            rows = con.execute(
                "SELECT value FROM orbits_nb_meta WHERE key = 'schema_version'").fetchall()
            version = int(rows[0][0]) if rows else 0
        elif tables:
            raise StoreError(
                f"{self.path} is a DuckDB database that orbits_nb did not create (it has "
                f"tables {sorted(tables)[:5]}); point ORBITS_NB_STATE at another file",
                path=str(self.path))
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} has schema version {version}, newer than this orbits_nb "
                f"understands ({SCHEMA_VERSION}); upgrade orbits_nb (pip install -U "
                "orbits_nb) to use it", path=str(self.path))
        for number in range(version + 1, SCHEMA_VERSION + 1):
            self._migrate(con, number)

    def _migrate(self, con: duckdb.DuckDBPyConnection, number: int) -> None:
        con.execute("BEGIN")
        try:
            for statement in MIGRATIONS[number]:
                con.execute(statement)
            con.execute("INSERT INTO schema_version (version) VALUES (?)", [number])
            con.execute("INSERT OR REPLACE INTO orbits_nb_meta VALUES ('app', ?), "
                        "('schema_version', ?)", [APP_ID, str(number)])
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise

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
                con.execute("ROLLBACK")
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
        ids = [run_id for run_id, _ in requests]
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
                con.execute("ROLLBACK")
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
        with self.connection() as con:
            rows = con.execute(
                "SELECT seq, ts, step, kind, attempt, data FROM events WHERE run_id = ? "
                "ORDER BY seq", [run_id]).fetchall()
        return [Event(run_id=run_id, seq=r[0], ts=r[1], step=r[2], kind=r[3],
                      attempt=r[4], data=loads_record(r[5]) or {}) for r in rows]

    def fetch(self, query: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        with self.connection() as con:
            return con.execute(query, params or []).fetchall()

    def logs(self, run_id: str, step: str | None = None) -> list[tuple[Any, ...]]:
        query = "SELECT ts, step, attempt, stream, message FROM logs WHERE run_id = ?"
        params: list[Any] = [run_id]
        if step is not None:
            query += " AND step = ?"
            params.append(step)
        return self.fetch(query + " ORDER BY ts", params)

    def relation(self, query: str) -> duckdb.DuckDBPyRelation:
        """Run a read-only ``query``; return its result as an in-memory DuckDB relation.

        The result is copied out (through a temporary Parquet file) so the relation
        stays usable after the state file is handed to another process.
        """
        import duckdb

        with tempfile.TemporaryDirectory(prefix="orbits_nb_") as tmp:
            target = Path(tmp) / "result.parquet"
            with self.connection() as con:
                try:
                    kinds = {s.type.name for s in con.extract_statements(query)}
                    if kinds != {"SELECT"}:
                        raise StoreError(
                            f"only one read-only query (SELECT, WITH, SHOW, DESCRIBE) is "
                            f"allowed here, got {', '.join(sorted(kinds)) or 'nothing'}; "
                            "the store is written by orbits_nb only", query=query)
                    con.sql(query).write_parquet(str(target))
                except duckdb.Error as err:
                    raise StoreError(f"query failed: {err}", query=query) from None
            mem = duckdb.connect(":memory:")
            mem.execute(f"CREATE TABLE result AS SELECT * FROM read_parquet('{target}')")
        return mem.table("result")
