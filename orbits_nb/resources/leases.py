"""Leases on resource identities: one command at a time per resource, across processes.

A command holds the store's ``resource`` lease on its key for as long as it runs (see
the store's lease primitive): two processes that race for the same key are serialized,
exactly one takes it, the other waits (or fails, by choice). A lease whose holder died
is taken over; the holder renews it every ``HEARTBEAT_SECONDS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from orbits_nb.core.errors import InvalidArgument
from orbits_nb.core.rows import Lease, Owner, ResourceRow
from orbits_nb.resources.errors import ResourceBusy

if TYPE_CHECKING:
    from orbits_nb.core.storage import Store

HEARTBEAT_SECONDS = 15.0
OnConflict = Literal["wait", "fail"]


@dataclass
class ResourceLease:
    """The lease this process holds (or tries to hold) on one resource."""

    key: str
    command: str
    run_id: str | None = None
    step: str | None = None
    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    released: bool = False
    #: The resource's record, read once the lease was taken.
    row: ResourceRow | None = None


def check_on_conflict(value: str) -> OnConflict:
    if value not in ("wait", "fail"):
        raise InvalidArgument(f"on_conflict must be 'wait' or 'fail', got {value!r}",
                              on_conflict=value)
    return "wait" if value == "wait" else "fail"


def try_acquire(store: Store, lease: ResourceLease) -> Lease | None:
    """Take ``lease``; return the live holder instead if there is one."""
    holder = store.take_lease("resource", lease.key, Owner(lease.token, store.host,
                                                           os.getpid()),
                              {"command": lease.command, "run_id": lease.run_id,
                               "step": lease.step})
    if holder is None:
        # Read under the lease: every change of the record happens under it.
        lease.row = store.resource(lease.key)
    return holder


def live(store: Store) -> dict[str, Lease]:
    """The leases whose holder is alive, by resource key."""
    return {lease.key: lease for lease in store.leases("resource")
            if store.alive(lease.host, lease.pid, lease.heartbeat)}


def describe(holder: Lease) -> str:
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.since))
    where = f"{holder.host} pid {holder.pid}"
    detail = holder.detail
    run = (f", run {detail['run_id']!r} step {detail.get('step')!r}"
           if detail.get("run_id") else "")
    return f"{detail.get('command') or 'a command'} by {where}{run} since {since}"


def busy_error(key: str, holder: Lease, waited: float | None) -> ResourceBusy:
    why = (f"it was still held after waiting {waited:.0f}s" if waited is not None else
           "on_conflict='fail' does not wait")
    return ResourceBusy(
        f"resource {key!r} is locked: {describe(holder)}; {why}. Try again when that "
        "command ends (on_conflict='wait' waits for it); a lease whose process died is "
        "taken over automatically", key=key, holder=describe(holder))


@contextlib.asynccontextmanager
async def held(store: Store, lease: ResourceLease, *, on_conflict: OnConflict = "wait",
               timeout: float = 600.0) -> AsyncIterator[ResourceLease]:
    """Hold ``lease`` for the block: wait for (or fail on) a live holder, renew, release.

    The block may give the lease back itself, with its last write
    (``ResourceChange.lease_token``); it then sets ``lease.released``.
    """
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
            await asyncio.shield(asyncio.to_thread(store.release_lease, "resource",
                                                   lease.key, lease.token))


async def _heartbeat(store: Store, lease: ResourceLease) -> None:
    while True:
        await asyncio.sleep(HEARTBEAT_SECONDS)
        await asyncio.to_thread(store.renew_leases, "resource", [(lease.key, lease.token)])
