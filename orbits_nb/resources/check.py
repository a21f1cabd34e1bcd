"""Drift checks: observe recorded resources concurrently, compare, record the history."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from orbits_nb.core.drift import (
    DRIFTED,
    ERROR,
    IN_SYNC,
    VERSION_PATH,
    FieldDiff,
    verdict,
)
from orbits_nb.core.errors import InvalidArgument
from orbits_nb.core.rows import CheckRecord, Lease, ResourceRow
from orbits_nb.resources import leases, records
from orbits_nb.resources.commands import rebuild, who
from orbits_nb.resources.converge import observe

if TYPE_CHECKING:
    from orbits_nb.engine.engine import Engine

DEFAULT_CONCURRENCY = 32


@dataclass
class ResourceCheck:
    """The result of checking one resource: status, field diffs, both states."""

    key: str
    kind: str
    identity: str
    type: str
    status: str
    diffs: list[FieldDiff] = field(default_factory=list)
    desired: Any = None
    actual: Any = None
    error: str | None = None
    checked_at: float = field(default_factory=time.time)
    duration_s: float = 0.0
    #: When the current streak of drift began (None when in sync).
    since: float | None = None
    users: list[str] = field(default_factory=list)
    output: Any = None

    @property
    def ok(self) -> bool:
        return self.status == IN_SYNC

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "kind": self.kind, "identity": self.identity,
                "status": self.status, "diffs": [d.to_json() for d in self.diffs],
                "desired": self.desired, "actual": self.actual, "error": self.error,
                "checked_at": self.checked_at, "since": self.since, "users": self.users}


def check_concurrency(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgument(f"concurrency must be a positive int, got {value!r}",
                              concurrency=value)
    return value


async def check_rows(engine: Engine, rows: list[ResourceRow], *,
                     concurrency: int = DEFAULT_CONCURRENCY, record: bool = True,
                     source: str = "drift") -> list[ResourceCheck]:
    """Observe ``rows`` with at most ``concurrency`` observations in flight."""
    store = engine.store
    busy = await asyncio.to_thread(leases.live, store) if rows else {}
    gate = asyncio.Semaphore(check_concurrency(concurrency))

    async def one(row: ResourceRow) -> ResourceCheck:
        async with gate:
            return await check_one(row, busy.get(row.key))

    checks = list(await asyncio.gather(*(one(r) for r in rows)))
    if record and checks:
        batch, by = uuid.uuid4().hex[:12], who()
        recs = [CheckRecord(
            c.key, c.status, source, diffs=[d.to_json() for d in c.diffs], actual=c.actual,
            error=c.error, duration_s=c.duration_s, batch_id=batch, checked_at=c.checked_at,
            checked_by=by) for c in checks]
        await asyncio.to_thread(store.record_checks, recs)
    if checks:
        await asyncio.to_thread(_annotate, engine, checks)
    return checks


async def check_one(row: ResourceRow, holder: Lease | None) -> ResourceCheck:
    """Observe and compare one resource; every failure becomes an ``error`` result."""
    check = ResourceCheck(row.key, row.kind, row.identity, row.type, ERROR,
                          desired=row.desired, output=row.output)
    started = time.monotonic()
    try:
        if holder is not None:
            check.error = (f"not observed: a command holds its lease "
                           f"({leases.describe(holder)}); check again when it ends")
            return check
        resource = rebuild(row.type, row.args)
        actual = await observe(resource, row.key)
        check.actual = actual
        check.status, check.diffs = verdict(row.desired, actual, resource.comparison())
        version = type(resource).version_text()
        if actual is not None and version != row.version:
            check.diffs.append(FieldDiff(VERSION_PATH, version, row.version))
            check.status = DRIFTED
    except Exception as err:
        check.status = ERROR
        check.error = f"{type(err).__name__}: {err}"
    finally:
        check.duration_s = time.monotonic() - started
        check.checked_at = time.time()
    return check


def _annotate(engine: Engine, checks: list[ResourceCheck]) -> None:
    keys = [c.key for c in checks]
    since = engine.store.drift_since([c.key for c in checks if not c.ok])
    users = records.users_of(engine.store, keys)
    for check in checks:
        check.since = since.get(check.key, check.checked_at if not check.ok else None)
        check.users = users.get(check.key, [])
