"""The run list: one page of top-level runs, filtered, newest first, and their count.

One query reads the page (its rows, step counts, owner, latest executor and work time
are computed for the page's runs only) and one counts every match, so a page of a
store with 10,000 runs costs what a page of ten does, give or take the count.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from orbits_nb._filters import check_run_query
from orbits_nb.core.rows import Lease, RunPage, RunQuery, RunSummary
from orbits_nb.core.serde import loads

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

#: Whether a run had failures: a step attempt of it, or one of its executions, failed,
#: or one of a run nested in it did, at any depth (even if a later attempt or execution
#: succeeded): the ``had_failures`` column the projection keeps.
HAD_FAILURES = "coalesce(runs.had_failures, false)"

_ARGS_TEXT = "lower(CAST(runs.args AS VARCHAR))"

_PAGE = """
WITH r AS (
  SELECT run_id, workflow, status, created_at, finished_at, duration_s, error, executions,
    meta, args, {had_failures} AS had_failures
  FROM runs WHERE parent_run_id IS NULL {where}
  ORDER BY created_at DESC, run_id DESC LIMIT ? OFFSET ?),
c AS (
  SELECT run_id, count(*) AS total,
    count(*) FILTER (WHERE status = 'succeeded') AS done,
    count(*) FILTER (WHERE status = 'failed') AS failed,
    count(*) FILTER (WHERE status = 'waiting') AS waiting,
    count(*) FILTER (WHERE status = 'waiting' AND action = 'orbits_nb.approval:Approval')
      AS approvals
  FROM steps WHERE run_id IN (SELECT run_id FROM r) GROUP BY run_id),
e AS (
  -- each event numbered by the execution it belongs to (0: before the first start)
  SELECT run_id, seq, ts, step, kind, data,
    sum(CASE WHEN step IS NULL AND kind = 'run.started' THEN 1 ELSE 0 END)
      OVER (PARTITION BY run_id ORDER BY seq) AS n
  FROM events WHERE run_id IN (SELECT run_id FROM r)),
s AS (
  SELECT run_id, max(seq) AS started,
    arg_max(CAST(data AS VARCHAR), seq) AS started_data
  FROM e WHERE step IS NULL AND kind = 'run.started' GROUP BY run_id),
x AS (
  -- steps discarded by resets since the run last started: they run again next time
  SELECT e.run_id, sum(json_array_length(e.data->'steps')) AS discarded
  FROM e LEFT JOIN s USING (run_id)
  WHERE e.step IS NULL AND e.kind = 'run.reset' AND e.seq > coalesce(s.started, -1)
  GROUP BY e.run_id),
q AS (
  -- an execution ends at the run's end, or (interrupted) at its last record
  SELECT run_id, n, min(ts) AS began,
    min(ts) FILTER (WHERE step IS NULL AND kind IN ('run.succeeded', 'run.failed',
                                                    'run.cancelled')) AS ended,
    max(ts) AS last
  FROM e WHERE n > 0 GROUP BY run_id, n),
w AS (
  SELECT run_id, sum(coalesce(ended, last) - began) AS work, max(last) AS last
  FROM q GROUP BY run_id)
SELECT r.run_id, r.workflow, r.status, epoch(r.created_at), epoch(r.finished_at),
  r.duration_s, r.error->>'type', r.error->>'message', r.executions,
  r.meta->>'notebook', coalesce(c.total, 0), coalesce(c.done, 0), coalesce(c.failed, 0),
  coalesce(c.waiting, 0), coalesce(c.approvals, 0), coalesce(x.discarded, 0),
  CAST(r.args AS VARCHAR), r.meta->>'source', r.meta->>'user', r.meta->>'host',
  r.had_failures, s.started_data, w.work, w.last,
  l.token, l.host, l.pid, l.since, l.heartbeat
FROM r LEFT JOIN c USING (run_id) LEFT JOIN leases l USING (run_id)
  LEFT JOIN x USING (run_id) LEFT JOIN s USING (run_id) LEFT JOIN w USING (run_id)
ORDER BY r.created_at DESC, r.run_id DESC
"""

_COUNT = "SELECT count(*) FROM runs WHERE parent_run_id IS NULL {where}"


class RunListTables:
    """``run_page``: the run list of the dashboard, over the history tables."""

    if TYPE_CHECKING:  # provided by the store this is mixed into
        def _history(self, query: str, params: list[Any] | None = None
                     ) -> list[tuple[Any, ...]]: ...

        def _rows(self, query: str, params: list[Any] | None = None
                  ) -> list[tuple[Any, ...]]: ...

        def keep_open(self) -> AbstractContextManager[None]: ...

    def run_page(self, query: RunQuery) -> RunPage:
        check_run_query(query)
        where, params = _where(query)
        with self.keep_open():  # the page and its count on one opening of the store
            rows = self._history(_PAGE.format(where=where, had_failures=HAD_FAILURES),
                                 [*params, query.limit, query.offset])
            total = self._rows(_COUNT.format(where=where), params)[0][0]
        return RunPage([_summary(row) for row in rows], int(total), query.offset,
                       query.limit)


def _where(query: RunQuery) -> tuple[str, list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    if query.workflow:
        where.append("(runs.workflow = ? OR runs.workflow LIKE ?)")
        params += [query.workflow, "%:" + query.workflow]
    if query.status:
        where.append("runs.status = ?")
        params.append(query.status)
    if query.had_failures is not None:
        where.append(HAD_FAILURES if query.had_failures else f"NOT ({HAD_FAILURES})")
    if query.source:
        where.append("runs.meta->>'source' = ?")
        params.append(query.source)
    if query.since is not None:
        where.append("runs.created_at >= to_timestamp(?)")
        params.append(query.since)
    for term in search_terms(query.search):
        sql, values = _term(term)
        where.append(sql)
        params += values
    return "".join(" AND " + w for w in where), params


def search_terms(text: str) -> list[str]:
    """The words of a search (commas separate them too: ``client=acme, env=prod``)."""
    return [word for word in text.replace(",", " ").split() if word]


def _term(term: str) -> tuple[str, list[Any]]:
    """One word: ``key=value`` matches an argument; other text the run id, the
    workflow or any argument (case-insensitive substring)."""
    key, sep, value = term.partition("=")
    if sep and key:
        return (f"position(lower(?) IN lower(runs.args->>'{_json_key(key)}')) > 0",
                [value])
    return (f"(position(lower(?) IN lower(runs.run_id)) > 0 OR position(lower(?) IN "
            f"lower(coalesce(runs.workflow, ''))) > 0 OR position(lower(?) IN "
            f"{_ARGS_TEXT}) > 0)", [term, term, term])


def _json_key(key: str) -> str:
    # The key is spliced into the JSON path (neither store binds one), so keep it to
    # the characters of a Python keyword argument.
    return "".join(ch for ch in key if ch.isalnum() or ch == "_")


def _summary(row: tuple[Any, ...]) -> RunSummary:
    (run_id, workflow, status, created, finished, duration, etype, emsg, executions,
     notebook, total, done, failed, waiting, approvals, discarded, args, source, user,
     host, had_failures, started, work, last, *lease) = row
    token, lhost, pid, since, beat = lease
    owner = None if lhost is None else Lease("run", run_id, token or "", str(lhost),
                                            int(pid or 0), float(since or 0),
                                            float(beat or 0))
    return RunSummary(
        run_id, workflow, status, created, finished, duration, etype, emsg,
        int(executions or 0), notebook, int(total), int(done), int(failed), int(waiting),
        int(approvals), owner, int(discarded or 0), args=_dict(args), source=source,
        started_by=f"{user}@{host}" if user and host else user or None,
        had_failures=bool(had_failures), executed_by=_executor(started),
        work_s=None if work is None else float(work), last_event_at=last)


def _dict(text: Any) -> dict[str, Any]:
    value = loads(text) if text else None
    return value if isinstance(value, dict) else {}


def _executor(started: Any) -> str | None:
    data = _dict(started)
    if data.get("worker"):
        return str(data["worker"])
    if data.get("host"):
        return f"{data['host']}:{data.get('pid')}"
    return None
