"""One lease primitive for the three things that have one live holder at a time.

A run is executed by one process (``leases``), a resource has one command at a time
(``resource_leases``), a schedule one live instance (``schedule_locks``, where the
notebook run id is the token). Each lease row records the holder's token, host, pid,
since and heartbeat. A holder counts as gone when its pid is dead on this store's host,
or (on another host, where a pid means nothing) when its heartbeat is older than the
lease timeout; its lease is then taken over. Taking a lease reads and writes inside
one transaction, and every process reaches the file through the hand-over, so two
that race for a key are serialized: exactly one gets it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from orbits_nb.core.errors import InvalidArgument
from orbits_nb.core.rows import Lease, LeaseFamily, Owner, holder_alive
from orbits_nb.store.guard import seconds_from_env
from orbits_nb.store.location import this_host
from orbits_nb.store.statefile import StateFile

if TYPE_CHECKING:
    import duckdb

TIMEOUT_ENV = "ORBITS_NB_LEASE_TIMEOUT"


@dataclass(frozen=True)
class _Table:
    name: str
    key: str
    #: The token column (a schedule lock's token is its notebook run id).
    token: str
    detail: tuple[str, ...] = ()

    def columns(self) -> tuple[str, ...]:
        return (self.key, self.token, "host", "pid", "since", "heartbeat", *self.detail)


TABLES: dict[str, _Table] = {
    "run": _Table("leases", "run_id", "token"),
    "resource": _Table("resource_leases", "resource_key", "token", ("command", "run_id",
                                                                    "step")),
    "schedule": _Table("schedule_locks", "schedule_id", "notebook_run_id"),
}


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, owned by someone else
    return True


def _table(family: str) -> _Table:
    table = TABLES.get(family)
    if table is None:
        raise InvalidArgument(f"lease family {family!r} is unknown; use one of "
                              f"{', '.join(TABLES)}", family=family)
    return table


class LeaseTables(StateFile):
    """The lease verbs of the store (see the module)."""

    host: str
    lease_timeout: float

    def _init_leases(self, host: str | None, lease_timeout: float | None) -> None:
        self.host = host or this_host()
        self.lease_timeout = (seconds_from_env(TIMEOUT_ENV, 60.0) if lease_timeout is None
                              else lease_timeout)

    def alive(self, host: str, pid: int, heartbeat: float | None = None) -> bool:
        return holder_alive(str(host), int(pid), heartbeat, here=self.host, now=time.time(),
                            timeout=self.lease_timeout, pid_alive=pid_alive)

    def take_lease(self, family: LeaseFamily, key: str, owner: Owner,
                   detail: dict[str, Any] | None = None) -> Lease | None:
        with self.transaction() as con:
            taken = self._take(con, family, [(key, owner, detail or {})])
        return taken.get(key)

    def release_lease(self, family: LeaseFamily, key: str, token: str) -> None:
        with self.connection() as con:
            self._release(con, family, [(key, token)])

    def renew_leases(self, family: LeaseFamily, held: Iterable[tuple[str, str]]) -> None:
        pairs = list(held)
        if pairs:
            with self.connection() as con:
                self._renew(con, family, pairs)

    def leases(self, family: LeaseFamily, keys: Sequence[str] | None = None
               ) -> list[Lease]:
        table = _table(family)
        query = f"SELECT {', '.join(table.columns())} FROM {table.name}"
        params: list[Any] = []
        if keys is not None:
            query += f" WHERE {table.key} IN (SELECT unnest($1::VARCHAR[]))"
            params = [list(keys)]
        with self.connection(write=False) as con:
            rows = con.execute(query + f" ORDER BY {table.key}", params).fetchall()
        return [_lease(family, table, row) for row in rows]

    # -- inside the caller's transaction ------------------------------------------------
    def _take(self, con: duckdb.DuckDBPyConnection, family: LeaseFamily,
              requests: Sequence[tuple[str, Owner, dict[str, Any]]]) -> dict[str, Lease]:
        """Take each lease not held by a live other token; return those that are."""
        table = _table(family)
        keys = [key for key, _, _ in requests]
        held = con.execute(
            f"SELECT {', '.join(table.columns())} FROM {table.name} WHERE {table.key} IN "
            "(SELECT unnest($1::VARCHAR[]))", [keys]).fetchall()
        tokens = {key: owner.token for key, owner, _ in requests}
        kept: dict[str, Lease] = {}
        for row in held:
            lease = _lease(family, table, row)
            if lease.token != tokens[lease.key] and self.alive(lease.host, lease.pid,
                                                               lease.heartbeat):
                kept[lease.key] = lease
        granted = [(k, o, d) for k, o, d in requests if k not in kept]
        if granted:
            now = time.time()
            columns = [[k for k, _, _ in granted], [o.token for _, o, _ in granted],
                       [o.host for _, o, _ in granted], [o.pid for _, o, _ in granted],
                       *([d.get(name) for _, _, d in granted] for name in table.detail)]
            kinds = ["VARCHAR", "VARCHAR", "VARCHAR", "INTEGER"] + ["VARCHAR"] * len(
                table.detail)
            values = [f"unnest(${i + 1}::{kind}[])" for i, kind in enumerate(kinds)]
            at = f"${len(kinds) + 1}"
            names = [table.key, table.token, "host", "pid", *table.detail, "since",
                     "heartbeat"]
            con.execute(f"INSERT OR REPLACE INTO {table.name} ({', '.join(names)}) SELECT "
                        f"{', '.join(values)}, {at}, {at}", [*columns, now])
        return kept

    @staticmethod
    def _release(con: duckdb.DuckDBPyConnection, family: LeaseFamily,
                 pairs: Sequence[tuple[str, str]]) -> None:
        if pairs:
            table = _table(family)
            con.execute(f"DELETE FROM {table.name} WHERE ({table.key} || ' ' || "
                        f"{table.token}) IN (SELECT unnest($1::VARCHAR[]))",
                        [[f"{key} {token}" for key, token in pairs]])

    @staticmethod
    def _renew(con: duckdb.DuckDBPyConnection, family: LeaseFamily,
               pairs: Sequence[tuple[str, str]]) -> None:
        if pairs:
            table = _table(family)
            con.execute(f"UPDATE {table.name} SET heartbeat = $1 WHERE ({table.key} || ' ' "
                        f"|| {table.token}) IN (SELECT unnest($2::VARCHAR[]))",
                        [time.time(), [f"{key} {token}" for key, token in pairs]])


def _lease(family: LeaseFamily, table: _Table, row: tuple[Any, ...]) -> Lease:
    key, token, host, pid, since, beat, *extra = row
    return Lease(family, key, token, str(host), int(pid or 0), float(since or 0),
                 float(beat or 0), dict(zip(table.detail, extra, strict=True)))
