"""Logical integrity check of a state file: what a crash must never leave behind."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from orbits_nb.core.storage import Store

CHECKS = {
    "event sequence numbers are unique":
        "SELECT seq FROM events GROUP BY seq HAVING count(*) > 1",
    "every run with step events was created":
        "SELECT DISTINCT run_id FROM events e WHERE step IS NOT NULL AND NOT EXISTS "
        "(SELECT 1 FROM events c WHERE c.run_id = e.run_id AND c.kind = 'run.created')",
    "a step succeeds at most once per incarnation":
        "SELECT run_id, step FROM step_events WHERE kind = 'step.succeeded' "
        "GROUP BY run_id, step HAVING count(*) > 1",
    "nothing happens to a step after it succeeded":
        "SELECT e.run_id, e.step, e.kind FROM step_events e JOIN step_events s ON "
        "s.run_id = e.run_id AND s.step = e.step AND s.kind = 'step.succeeded' "
        "AND e.seq > s.seq",
    "event payloads are valid JSON":
        "SELECT seq FROM events WHERE data IS NOT NULL AND json_valid(data::VARCHAR) = false",
}


def check(store: Store) -> list[str]:
    """Problems found in ``store``, any store (an empty list means consistent)."""
    problems = []
    for name, query in CHECKS.items():
        rows = store.relation(query + " LIMIT 5").fetchall()
        if rows:
            problems.append(f"{name}: violated by {rows}")
    return problems
