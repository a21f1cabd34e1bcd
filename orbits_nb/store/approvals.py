"""``approvals``: one row per request of an approval step, and its decision.

``decision`` is NULL while a request is pending, then ``approved`` or ``rejected``
with who decided, when, and how. The latest request of a step is the one that counts.
"""

from __future__ import annotations

from typing import Any

from orbits_nb.core.rows import ApprovalRequest, Decision, PendingApproval
from orbits_nb.store.encode import json_text, json_value, text
from orbits_nb.store.history import HistoryTables

_LATEST = """
WITH latest AS (
  SELECT a.*, row_number() OVER (PARTITION BY a.run_id, a.step
                                 ORDER BY a.requested_at DESC) AS n
  FROM approvals a)
SELECT l.request_id, l.run_id, l.step, l.prompt, l.details, l.requested_at,
  l.requested_by, s.status
FROM latest l JOIN steps s ON s.run_id = l.run_id AND s.step = l.step
WHERE l.n = 1 AND l.decision IS NULL AND s.status NOT IN ('succeeded', 'failed')
"""


def _pending(row: tuple[Any, ...]) -> PendingApproval:
    return PendingApproval(row[0], row[1], row[2], row[3] or "", json_value(row[4]),
                           float(row[5]), row[6] or "", row[7])


class ApprovalTables(HistoryTables):
    """The approval verbs of the store."""

    def add_approval(self, request: ApprovalRequest) -> None:
        with self.connection() as con:
            con.execute("INSERT INTO approvals (request_id, run_id, step, prompt, details, "
                        "requested_at, requested_by) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        [request.request_id, request.run_id, request.step,
                         text(request.prompt), json_text(request.details),
                         request.requested_at, request.requested_by])

    def standing_approval(self, run_id: str, step: str) -> str | None:
        with self.connection(write=False) as con:
            rows = con.execute(
                "SELECT request_id, decision FROM approvals WHERE run_id = ? AND step = ? "
                "AND requested_at > coalesce((SELECT max(ts) FROM events WHERE run_id = ? "
                "AND kind = 'run.reset' AND list_contains(CAST(data->'steps' AS VARCHAR[]), "
                "?)), 0) ORDER BY requested_at DESC LIMIT 1",
                [run_id, step, run_id, step]).fetchall()
        if rows and rows[0][1] != "rejected":
            return str(rows[0][0])
        return None

    def approval_decision(self, request_id: str) -> tuple[bool, Decision | None]:
        with self.connection(write=False) as con:
            rows = con.execute("SELECT run_id, step, decision, decided_by, decided_at, "
                               "comment FROM approvals WHERE request_id = ?",
                               [request_id]).fetchall()
        if not rows:
            return False, None
        run_id, step, decision, by, at, comment = rows[0]
        if decision is None:
            return True, None
        return True, Decision(request_id, run_id, step, decision, by or "", float(at),
                              comment or "")

    def pending_approvals(self, run_id: str | None = None) -> list[PendingApproval]:
        query, params = _LATEST, []
        if run_id is not None:
            query += " AND (l.run_id = ? OR starts_with(l.run_id, ?))"
            params = [run_id, run_id + "/"]
        with self.connection(write=False) as con:
            self._current(con)
            rows = con.execute(query + " ORDER BY l.requested_at", params).fetchall()
        return [_pending(r) for r in rows]

    def decide_approval(self, run_id: str, step: str, decision: str, *, by: str,
                        at: float, comment: str, via: str) -> str | None:
        with self.connection() as outer:
            self._current(outer)  # the pending request is found through ``steps``
            with self.transaction() as con:
                rows = con.execute(_LATEST + " AND l.run_id = ? AND l.step = ?",
                                   [run_id, step]).fetchall()
                if not rows:
                    return None
                request_id = str(rows[0][0])
                con.execute("UPDATE approvals SET decision = ?, decided_by = ?, "
                            "decided_at = ?, comment = ?, decided_via = ? WHERE "
                            "request_id = ?", [decision, by, at, text(comment), via,
                                               request_id])
        return request_id

    def last_decision(self, run_id: str, step: str) -> tuple[str, str] | None:
        with self.connection(write=False) as con:
            rows = con.execute("SELECT decision, decided_by FROM approvals WHERE run_id = ? "
                               "AND step = ? ORDER BY requested_at DESC LIMIT 1",
                               [run_id, step]).fetchall()
        if rows and rows[0][0]:
            return str(rows[0][0]), str(rows[0][1])
        return None
