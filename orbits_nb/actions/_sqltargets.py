"""Databases RunSQLMigrations can target: DuckDB files and PostgreSQL (psycopg)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlparse

from orbits_nb._optional import needs
from orbits_nb.core.errors import InvalidArgument, OrbitsError


class TransientDBError(Exception):
    """The database could not be reached or was locked: worth another attempt.

    Not an :class:`~orbits_nb.OrbitsError`, so the engine's retry policy applies.
    """


class Target(Protocol):
    label: str

    def applied(self) -> dict[str, str]: ...

    def apply(self, name: str, sql: str, checksum: str) -> None: ...

    def count(self) -> int: ...


def describe_url(url: str) -> str:
    """``url`` without its password, for results, logs and errors."""
    parsed = urlparse(url)
    if parsed.password is None:
        return url
    netloc = parsed.hostname or ""
    if parsed.username:
        netloc = f"{parsed.username}@{netloc}"
    if parsed.port:
        netloc += f":{parsed.port}"
    return parsed._replace(netloc=netloc).geturl()


def duckdb_path(url: str) -> Path | None:
    """The file of a DuckDB target (``duckdb:///abs``, ``duckdb:rel`` or a bare path)."""
    if url.startswith("duckdb:"):
        rest = url[len("duckdb:"):]
        rest = rest[2:] if rest.startswith("//") else rest
        return Path(unquote(rest)).expanduser()
    if "://" in url:
        return None
    return Path(url).expanduser()


@contextlib.contextmanager
def open_target(url: str, table: str, state_file: Path | None) -> Iterator[Target]:
    """Connect to the database named by ``url`` and ensure the migrations table."""
    scheme = urlparse(url).scheme.lower() if "://" in url else ""
    if scheme in ("postgres", "postgresql"):
        target: DuckDBTarget | PostgresTarget = PostgresTarget(url, table)
    else:
        path = duckdb_path(url)
        if path is None:
            raise InvalidArgument(
                f"RunSQLMigrations: unsupported database {describe_url(url)!r}; use a DuckDB "
                "file path (or duckdb:///path) or a postgresql:// URL", argument="database")
        if state_file is not None and path.resolve() == state_file.resolve():
            raise InvalidArgument("RunSQLMigrations: the database is orbits_nb's own state "
                                  "file; migrate another database", argument="database")
        target = DuckDBTarget(path, table)
    try:
        yield target
    finally:
        target.close()


class DuckDBTarget:
    def __init__(self, path: Path, table: str) -> None:
        import duckdb

        self.label = f"duckdb:{path}"
        self.table = table
        path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + 10.0
        while True:
            try:
                self.con = duckdb.connect(str(path))
                break
            except duckdb.IOException as err:
                if "lock" not in str(err).lower():
                    raise OrbitsError(f"cannot open {self.label}: {err}") from None
                if time.monotonic() > deadline:
                    raise TransientDBError(f"cannot open {self.label}: {err}") from None
                time.sleep(0.1)  # another process holds the file: wait our turn
        self.con.execute(f"CREATE TABLE IF NOT EXISTS {table} (name VARCHAR PRIMARY KEY, "
                         "checksum VARCHAR NOT NULL, applied_at TIMESTAMP DEFAULT "
                         "current_timestamp, duration_s DOUBLE)")

    def applied(self) -> dict[str, str]:
        rows = self.con.execute(f"SELECT name, checksum FROM {self.table}").fetchall()
        return {str(name): str(checksum) for name, checksum in rows}

    def apply(self, name: str, sql: str, checksum: str) -> None:
        started = time.monotonic()
        self.con.execute("BEGIN")
        try:
            self.con.execute(sql)
            self.con.execute(f"INSERT INTO {self.table} (name, checksum, duration_s) "
                             "VALUES (?, ?, ?)", [name, checksum, time.monotonic() - started])
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise

    def count(self) -> int:
        row = self.con.execute(f"SELECT count(*) FROM {self.table}").fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        self.con.close()


class PostgresTarget:
    def __init__(self, url: str, table: str) -> None:
        with needs("postgres", "PostgreSQL migrations (RunSQLMigrations on postgresql://)"):
            import psycopg
        self.label = describe_url(url)
        self.table = table
        try:
            self.con: Any = psycopg.connect(url, autocommit=True, connect_timeout=15)
        except psycopg.OperationalError as err:
            message = str(err).replace(url, self.label).strip().splitlines()[0]
            raise TransientDBError(f"cannot connect to {self.label}: {message}") from None
        self.con.execute(f"CREATE TABLE IF NOT EXISTS {table} (name TEXT PRIMARY KEY, "
                         "checksum TEXT NOT NULL, applied_at TIMESTAMPTZ DEFAULT now(), "
                         "duration_s DOUBLE PRECISION)")
        # One migrator at a time per table, across every process and host.
        self.con.execute("SELECT pg_advisory_lock(hashtext(%s))", [table])

    def applied(self) -> dict[str, str]:
        rows = self.con.execute(f"SELECT name, checksum FROM {self.table}").fetchall()
        return {str(name): str(checksum) for name, checksum in rows}

    def apply(self, name: str, sql: str, checksum: str) -> None:
        started = time.monotonic()
        with self.con.transaction():
            self.con.execute(sql)  # no parameters: psycopg sends several statements as is
            self.con.execute(f"INSERT INTO {self.table} (name, checksum, duration_s) "
                             "VALUES (%s, %s, %s)", [name, checksum,
                                                     time.monotonic() - started])

    def count(self) -> int:
        row = self.con.execute(f"SELECT count(*) FROM {self.table}").fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.con.execute("SELECT pg_advisory_unlock(hashtext(%s))", [self.table])
        self.con.close()
