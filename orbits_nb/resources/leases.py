"""Leases on resource identities: one command at a time per resource, across processes.

A lease is a row of ``resource_leases`` keyed by the resource key, inserted inside a
store transaction. Since every process reaches the state file through the store's
hand-over, two processes that race for the same key are serialized by DuckDB's
transaction: exactly one inserts the row, the other sees it and waits (or fails, by
choice). A lease whose holder died is taken over: on this host the holder's pid is
checked, elsewhere its heartbeat (renewed every ``HEARTBEAT_SECONDS``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from orbits_nb.core.errors import InvalidArgument
from orbits_nb.resources import records
from orbits_nb.resources.errors import ResourceBusy
from orbits_nb.store.duckdb_store import HOST, owner_alive

if TYPE_CHECKING:
    import duckdb

    from orbits_nb.store.duckdb_store import DuckDBStore

HEARTBEAT_SECONDS = 15.0
OnConflict = Literal["wait", "fail"]


@dataclass
class Lease:
    """The lease this process holds (or tries to hold) on one resource."""

    key: str
    command: str
    run_id: str | None = None
    step: str | None = None
    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    released: bool = False
    #: The resource's record, read in the transaction that took the lease.
    row: records.ResourceRow | None = None


def check_on_conflict(value: str) -> OnConflict:
    if value not in ("wait", "fail"):
        raise InvalidArgument(f"on_conflict must be 'wait' or 'fail', got {value!r}",
                              on_conflict=value)
    return "wait" if value == "wait" else "fail"


def try_acquire(store: DuckDBStore, lease: Lease) -> dict[str, Any] | None:
    """Take ``lease``; return the live holder's description instead if there is one."""
    with records.transaction(store) as con:
        row = con.execute("SELECT token, host, pid, command, run_id, step, since, heartbeat "
                          "FROM resource_leases WHERE resource_key = ?", [lease.key]).fetchone()
        if row and row[0] != lease.token and owner_alive(row[1], row[2], row[7]):
            keys = ("token", "host", "pid", "command", "run_id", "step", "since", "heartbeat")
            return dict(zip(keys, row, strict=True))
        now = time.time()
        con.execute("INSERT OR REPLACE INTO resource_leases VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [lease.key, lease.token, HOST, os.getpid(), lease.command, lease.run_id,
                     lease.step, now, now])
        lease.row = records.load(store, lease.key, con)
    return None


def release(con: duckdb.DuckDBPyConnection, lease: Lease) -> None:
    """Delete ``lease`` (inside the caller's transaction)."""
    con.execute("DELETE FROM resource_leases WHERE resource_key = ? AND token = ?",
                [lease.key, lease.token])
    lease.released = True


def live(store: DuckDBStore) -> dict[str, dict[str, Any]]:
    """The leases whose holder is alive, by resource key."""
    rows = store.fetch("SELECT resource_key, host, pid, command, run_id, step, since, "
                       "heartbeat FROM resource_leases")
    keys = ("host", "pid", "command", "run_id", "step", "since", "heartbeat")
    return {r[0]: dict(zip(keys, r[1:], strict=True)) for r in rows
            if owner_alive(r[1], r[2], r[7])}


def describe(holder: dict[str, Any]) -> str:
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.get("since") or 0))
    where = f"{holder.get('host')} pid {holder.get('pid')}"
    run = f", run {holder['run_id']!r} step {holder.get('step')!r}" if holder.get("run_id") \
        else ""
    return f"{holder.get('command') or 'a command'} by {where}{run} since {since}"


def busy_error(key: str, holder: dict[str, Any], waited: float | None) -> ResourceBusy:
    why = (f"it was still held after waiting {waited:.0f}s" if waited is not None else
           "on_conflict='fail' does not wait")
    return ResourceBusy(
        f"resource {key!r} is locked: {describe(holder)}; {why}. Try again when that "
        "command ends (on_conflict='wait' waits for it); a lease whose process died is "
        "taken over automatically", key=key, holder=describe(holder))


@contextlib.asynccontextmanager
async def held(store: DuckDBStore, lease: Lease, *, on_conflict: OnConflict = "wait",
               timeout: float = 600.0) -> AsyncIterator[Lease]:
    """Hold ``lease`` for the block: wait for (or fail on) a live holder, renew, release."""
    started = time.monotonic()
    delay = 0.01
    while True:
        holder = await asyncio.to_thread(try_acquire, store, lease)
        if holder is None:
            break
        waited = time.monotonic() - started
        if on_conflict == "fail":
            raise busy_error(lease.key, holder, None)
        if waited >= timeout:
            raise busy_error(lease.key, holder, waited)
        await asyncio.sleep(min(delay, max(0.0, timeout - waited)))
        delay = min(delay * 2, 0.5)
    beat = asyncio.ensure_future(_heartbeat(store, lease))
    try:
        yield lease
    finally:
        beat.cancel()
        if not lease.released:
            await asyncio.shield(asyncio.to_thread(_release, store, lease))


def _release(store: DuckDBStore, lease: Lease) -> None:
    with store.connection() as con:
        release(con, lease)


async def _heartbeat(store: DuckDBStore, lease: Lease) -> None:
    while True:
        await asyncio.sleep(HEARTBEAT_SECONDS)
        await asyncio.to_thread(store.fetch, "UPDATE resource_leases SET heartbeat = ? WHERE "
                                "resource_key = ? AND token = ?",
                                [time.time(), lease.key, lease.token])
