"""A claim: the runs executing now, and the queue read one page at a time.

A claim must count what executes (every queued run whose run lease has a holder) to
respect each queue's limits, and then take the first runnable runs in order. It reads
the held entries (few: at most the workers' slots) and then pages of the waiting ones,
in priority then submission order, until it has chosen enough or the queue is read:
a claim costs the same with ten runs waiting or a hundred thousand.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import duckdb

#: Waiting entries read per page (a page is read again only when limits skipped many).
PAGE = 64

_COLUMNS = ("SELECT q.run_id, q.queue, q.key, q.priority, q.submitted_at, q.not_before, "
            "q.takes, l.host, l.pid, l.heartbeat, l.token FROM queued_runs q ")
_ORDER = " ORDER BY coalesce(q.priority, 0) DESC, q.submitted_at, q.run_id"


def _where(queues: Sequence[str], first: int) -> tuple[str, list[Any]]:
    if not queues:
        return "", []
    return f" AND q.queue IN (SELECT unnest(${first}::VARCHAR[]))", [list(queues)]


def held_entries(con: duckdb.DuckDBPyConnection, queues: Sequence[str]
                 ) -> list[tuple[Any, ...]]:
    """Entries whose run lease has a holder, alive or not."""
    where, params = _where(queues, 1)
    return con.execute(_COLUMNS + "JOIN leases l ON l.run_id = q.run_id WHERE TRUE" + where,
                       params).fetchall()


def waiting_page(con: duckdb.DuckDBPyConnection, queues: Sequence[str], now: float,
                 full: list[str], after: tuple[Any, ...] | None
                 ) -> list[tuple[Any, ...]]:
    """One page of entries without a lease that may begin at ``now``, in claim order
    past the entry ``after`` (None: from the start), outside the queues that are
    ``full``."""
    sql = (_COLUMNS + "LEFT JOIN leases l ON l.run_id = q.run_id WHERE l.run_id IS NULL "
           "AND (q.not_before IS NULL OR q.not_before <= $1) AND q.queue NOT IN "
           "(SELECT unnest($2::VARCHAR[]))")
    params: list[Any] = [now, full]
    if after is not None:
        sql += (" AND (-coalesce(q.priority, 0) > $3 OR (-coalesce(q.priority, 0) = $3 "
                "AND (q.submitted_at > $4 OR (q.submitted_at = $4 AND q.run_id > $5))))")
        params += [-int(after[3] or 0), after[4], after[0]]
    where, more = _where(queues, len(params) + 1)
    return con.execute(f"{sql}{where}{_ORDER} LIMIT {PAGE}", [*params, *more]).fetchall()


@dataclass
class Tally:
    """What executes per queue and per key, against the queues' limits."""

    limits: dict[str, tuple[int | None, int | None]]
    running: dict[str, int] = field(default_factory=dict)
    per_key: dict[tuple[str, Any], int] = field(default_factory=dict)

    def count(self, row: tuple[Any, ...]) -> None:
        self.running[row[1]] = self.running.get(row[1], 0) + 1
        self.per_key[row[1], row[2]] = self.per_key.get((row[1], row[2]), 0) + 1

    def full(self) -> list[str]:
        """The queues whose ``concurrency`` is reached."""
        return [name for name, (bound, _) in self.limits.items()
                if bound is not None and self.running.get(name, 0) >= bound]

    def room(self, row: tuple[Any, ...]) -> bool:
        bound, key_bound = self.limits.get(row[1], (None, None))
        if bound is not None and self.running.get(row[1], 0) >= bound:
            return False
        return row[2] is None or key_bound is None or \
            self.per_key.get((row[1], row[2]), 0) < key_bound


def candidates(con: duckdb.DuckDBPyConnection, queues: Sequence[str], now: float,
               held: Callable[[tuple[Any, ...]], bool], tally: Tally
               ) -> Iterator[list[tuple[Any, ...]]]:
    """Batches of entries that may begin, in claim order: those a dead holder left
    first (taken over), then the queue page by page; the caller stops reading once it
    has enough, and counts what it takes in ``tally`` (full queues are not read)."""
    orphans = []
    for row in held_entries(con, queues):
        if held(row):
            tally.count(row)
        elif row[5] is None or row[5] <= now:
            orphans.append(row)
    orphans.sort(key=lambda r: (-int(r[3] or 0), r[4], r[0]))
    yield orphans
    after: tuple[Any, ...] | None = None
    while True:
        page = waiting_page(con, queues, now, tally.full(), after)
        yield page
        if len(page) < PAGE:
            return
        after = page[-1]
