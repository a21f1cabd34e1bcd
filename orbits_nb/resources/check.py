"""Drift checks: observe recorded resources concurrently, compare, record the history."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from orbits_nb.core.drift import (
    DRIFTED,
    ERROR,
    IN_SYNC,
    VERSION_PATH,
    Comparison,
    FieldDiff,
    Path,
    normalize,
    verdict,
)
from orbits_nb.core.errors import InvalidArgument
from orbits_nb.core.rows import CheckRecord, Lease, ResourceRow
from orbits_nb.resources import leases, records
from orbits_nb.resources.base import Resource
from orbits_nb.resources.commands import rebuild, rebuild_as, who
from orbits_nb.resources.converge import observe_raw

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
    """Observe ``rows`` with at most ``concurrency`` observations in flight.

    ``concurrency`` observers take the rows in turn from one shared iterator (no task
    per resource), and the state file stays open for the whole check: it is read
    once before the observations and written once after them.
    """
    limit = check_concurrency(concurrency)
    if not rows:
        return []
    store = engine.store
    opened = store.keep_open()
    opened.__enter__()  # only marks the store busy: the first read below opens it
    try:
        busy = await asyncio.to_thread(leases.live, store)
        checks: list[ResourceCheck] = []
        classes = Classes()
        todo = iter(rows)

        async def observer() -> None:
            for row in todo:
                checks.append(await check_one(row, busy.get(row.key), classes))

        await asyncio.gather(*(observer() for _ in range(min(limit, len(rows)))))
        order = {row.key: i for i, row in enumerate(rows)}
        checks.sort(key=lambda c: order[c.key])
        await asyncio.to_thread(_finish, engine, checks, record, source)
    finally:
        await asyncio.to_thread(opened.__exit__, None, None, None)
    return checks


def _finish(engine: Engine, checks: list[ResourceCheck], record: bool, source: str) -> None:
    if record:
        batch, by = uuid.uuid4().hex[:12], who()
        engine.store.record_checks([CheckRecord(
            c.key, c.status, source, diffs=[d.to_json() for d in c.diffs], actual=c.actual,
            error=c.error, duration_s=c.duration_s, batch_id=batch, checked_at=c.checked_at,
            checked_by=by) for c in checks])
    _annotate(engine, checks)


class Classes:
    """Resource classes, versions and comparison rules, looked up once per check."""

    def __init__(self) -> None:
        self._types: dict[str, type[Resource]] = {}
        self._rules: dict[type[Resource], Comparison] = {}

    def resource(self, row: ResourceRow) -> Resource:
        cls = self._types.get(row.type)
        if cls is None:
            resource = rebuild(row.type, row.args)
            self._types[row.type] = type(resource)
            return resource
        return rebuild_as(cls, row.type, row.args)

    def rules(self, resource: Resource) -> Comparison:
        cls = type(resource)
        if cls.comparison is not Resource.comparison:  # may depend on the arguments
            return resource.comparison()
        if cls not in self._rules:
            self._rules[cls] = resource.comparison()
        return self._rules[cls]


async def check_one(row: ResourceRow, holder: Lease | None,
                    classes: Classes | None = None) -> ResourceCheck:
    """Observe and compare one resource; every failure becomes an ``error`` result."""
    check = ResourceCheck(row.key, row.kind, row.identity, row.type, ERROR,
                          desired=row.desired, output=row.output)
    classes = classes or Classes()
    started = time.monotonic()
    try:
        if holder is not None:
            check.error = (f"not observed: a command holds its lease "
                           f"({leases.describe(holder)}); check again when it ends")
            return check
        resource = classes.resource(row)
        actual = await observe_raw(resource, row.key)
        if actual is not None and same(row.desired, actual,
                                       lambda path: classes.rules(resource).ignored(path)):
            check.status = IN_SYNC  # the common case, without building a field diff
        else:
            if actual is not None:
                actual = normalize(actual, f"observe() of {row.key!r}")
            check.status, check.diffs = verdict(row.desired, actual, classes.rules(resource))
        check.actual = actual
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


def same(desired: Any, actual: Any, ignored: Callable[[Path], bool],
         path: Path = ()) -> bool:
    """Whether ``actual`` is exactly ``desired`` (a normalized state), as plain data of
    the same types, apart from extra dict fields that ``ignored`` (the comparison's
    server-managed paths) leaves out. False only means "compare field by field"."""
    if type(desired) is not type(actual):
        return False
    if isinstance(desired, dict):
        for k, v in desired.items():
            if k not in actual or not same(v, actual[k], ignored, (*path, k)):
                return False
        if len(actual) == len(desired):
            return True
        # An empty container filled only by ignored fields is a case for the full diff.
        return bool(desired or not path) and all(
            ignored((*path, k)) for k in actual if k not in desired)
    if isinstance(desired, list):
        return len(desired) == len(actual) and all(
            same(d, a, _strict, ()) for d, a in zip(desired, actual, strict=True))
    return bool(desired == actual)


def _strict(path: Path) -> bool:
    return False


def _annotate(engine: Engine, checks: list[ResourceCheck]) -> None:
    keys = [c.key for c in checks]
    since = engine.store.drift_since([c.key for c in checks if not c.ok])
    users = records.users_of(engine.store, keys)
    for check in checks:
        check.since = since.get(check.key, check.checked_at if not check.ok else None)
        check.users = users.get(check.key, [])
