"""``orbits_nb.dashboard()``: recent runs from the store, live, with a click-through.

The list polls the state file every ``interval`` seconds (cheaply: it re-reads the runs
only when the event log moved), so runs executed by another process on the same file
(a papermill runbook, the scheduler, a colleague's kernel) appear and progress here.
Selecting a run opens its monitor below the list.
"""

from __future__ import annotations

import os
import threading
import time
from typing import TYPE_CHECKING, Any

import anywidget
import ipywidgets
import traitlets as t

from orbits_nb._filters import RUN_STATUSES, check_limit, check_status, since_epoch
from orbits_nb.core.dot import short_action
from orbits_nb.core.errors import InvalidArgument, OrbitsError
from orbits_nb.core.state import RUN_TERMINAL
from orbits_nb.engine.table import Table
from orbits_nb.store.duckdb_store import owner_alive
from orbits_nb.views import inspector
from orbits_nb.views.monitor import Monitor, asset, widget_module
from orbits_nb.views.pump import Pump

if TYPE_CHECKING:
    from orbits_nb.engine.engine import Engine

STATUSES = RUN_STATUSES
_REQUERY_EVERY = 10.0

_QUERY = """
WITH r AS (
  SELECT run_id, workflow, status, created_at, finished_at, duration_s, error, executions,
    meta FROM runs WHERE parent_run_id IS NULL {where}
  ORDER BY created_at DESC LIMIT ?),
c AS (
  SELECT run_id, count(*) AS total,
    count(*) FILTER (WHERE status = 'succeeded') AS done,
    count(*) FILTER (WHERE status = 'failed') AS failed,
    count(*) FILTER (WHERE status = 'waiting') AS waiting,
    count(*) FILTER (WHERE status = 'waiting' AND action = 'orbits_nb.approval:Approval')
      AS approvals
  FROM steps WHERE run_id IN (SELECT run_id FROM r) GROUP BY run_id),
s AS (
  SELECT run_id, max(seq) AS started FROM events
  WHERE step IS NULL AND kind = 'run.started' AND run_id IN (SELECT run_id FROM r)
  GROUP BY run_id),
x AS (
  -- steps discarded by resets since the run last started: they run again next time
  SELECT e.run_id, sum(json_array_length(e.data->'steps')) AS discarded
  FROM events e LEFT JOIN s USING (run_id)
  WHERE e.step IS NULL AND e.kind = 'run.reset' AND e.run_id IN (SELECT run_id FROM r)
    AND e.seq > coalesce(s.started, -1)
  GROUP BY e.run_id)
SELECT r.run_id, r.workflow, r.status, epoch(r.created_at), epoch(r.finished_at),
  r.duration_s, r.error->>'type', r.error->>'message', r.executions,
  r.meta->>'notebook', coalesce(c.total, 0), coalesce(c.done, 0), coalesce(c.failed, 0),
  coalesce(c.waiting, 0), coalesce(c.approvals, 0), l.host, l.pid, l.heartbeat,
  coalesce(x.discarded, 0)
FROM r LEFT JOIN c USING (run_id) LEFT JOIN leases l USING (run_id)
  LEFT JOIN x USING (run_id)
ORDER BY r.created_at DESC
"""


class RunList(anywidget.AnyWidget):
    """The dashboard's run table and filters (front end in ``dashboard.js``)."""

    _esm = widget_module("dashboard.js")
    _css = asset("theme.css")

    runs: t.List[Any] = t.List().tag(sync=True)
    workflows: t.List[Any] = t.List().tag(sync=True)
    workflow = t.Unicode("").tag(sync=True)
    status = t.Unicode("").tag(sync=True)
    since = t.Unicode("").tag(sync=True)
    limit = t.Int(50).tag(sync=True)
    selected = t.Unicode("").tag(sync=True)
    updated = t.Float(0.0).tag(sync=True)
    notice = t.Dict().tag(sync=True)
    palette: t.List[Any] = t.List().tag(sync=True)
    state_path = t.Unicode("").tag(sync=True)


def check_filters(status: str | None, since: str | None, limit: int) -> None:
    """The same checks (and ``since`` forms) as ``ob.history`` and ``orbits-nb runs``."""
    check_status(status or None, STATUSES)
    if since:
        since_epoch(since)
    check_limit(limit)


def query_runs(engine: Engine, *, workflow: str = "", status: str = "", since: str = "",
               limit: int = 50) -> list[dict[str, Any]]:
    """Recent top-level runs with their step counts and where they execute."""
    check_filters(status, since, limit)
    where: list[str] = []
    params: list[Any] = []
    if workflow:
        where.append("(workflow = ? OR workflow LIKE ?)")
        params += [workflow, "%:" + workflow]
    if status:
        where.append("status = ?")
        params.append(status)
    if since:
        where.append("created_at >= to_timestamp(?)")
        params.append(since_epoch(since))
    sql = _QUERY.format(where="".join(" AND " + w for w in where))
    rows = engine.store.fetch(sql, [*params, limit])
    return [_row(r) for r in rows]


def _row(r: tuple[Any, ...]) -> dict[str, Any]:
    (run_id, workflow, status, created, finished, duration, etype, emsg, executions,
     notebook, total, done, failed, waiting, approvals, host, pid, beat, discarded) = r
    shown = status
    if status in ("pending", "running") and (host is None or not owner_alive(
            host, int(pid), float(beat or 0))):
        shown = "interrupted"  # nobody executes it any more: resume it to continue
    elif status in RUN_TERMINAL and discarded:
        # As the run's monitor says: it runs again from the reset step on its next start.
        shown, total, etype = "reset", total + int(discarded), None
    error = f"{str(etype).rsplit('.', 1)[-1]}: {emsg}" if etype else ""
    return {"run_id": run_id, "workflow": short_action(workflow or ""),
            "workflow_path": workflow, "status": shown, "created_at": created,
            "finished_at": finished, "duration": duration, "error": error[:200],
            "executions": executions, "notebook": notebook or "", "steps_total": total,
            "steps_done": done, "steps_failed": failed, "waiting": waiting,
            "approvals": approvals, "owner": f"pid {pid} on {host}" if host else "",
            "here": host is not None and int(pid) == os.getpid()}


class Dashboard:
    """Recent runs of the state file, live, with their monitors one click away.

    >>> ob.dashboard(status="failed")             # doctest: +SKIP
    """

    def __init__(self, engine: Engine | None = None, *, workflow: str | None = None,
                 status: str | None = None, since: str | None = None, limit: int = 50,
                 interval: float = 2.0) -> None:
        check_filters(status, since, limit)
        if interval <= 0:
            raise InvalidArgument(f"interval={interval!r} must be a positive number of "
                                  "seconds")
        if engine is None:
            from orbits_nb.engine.engine import default_engine

            engine = default_engine()
        self.engine = engine
        self._lock = threading.RLock()
        self._fingerprint: Any = None
        self._queried_at = 0.0
        self.list = RunList(workflow=workflow or "", status=status or "", since=since or "",
                            limit=limit, palette=inspector.legend(),
                            state_path=str(engine.store.path))
        self.monitor: Monitor | None = None
        self.box = ipywidgets.VBox([self.list])
        self.list.observe(self._on_filters, ["workflow", "status", "since", "limit"])
        self.list.observe(self._on_select, "selected")
        self.list.on_msg(self._on_message)
        self.refresh(force=True)
        self._pump = Pump(self._poll, interval=0.2, poll=interval,
                          name="orbits-nb-dashboard", idle_after=60.0)
        self._pump.start()

    def runs(self) -> list[dict[str, Any]]:
        """The rows shown now."""
        return list(self.list.runs)

    def refresh(self, force: bool = False) -> None:
        """Re-read the store (only if the event log moved, unless ``force``)."""
        with self._lock:
            fingerprint = self.engine.store.fetch(
                "SELECT max(seq), count(*) FROM events")[0]
            stale = time.monotonic() - self._queried_at > _REQUERY_EVERY
            if not force and not stale and fingerprint == self._fingerprint:
                return
            lst = self.list
            runs = query_runs(self.engine, workflow=lst.workflow, status=lst.status,
                              since=lst.since, limit=lst.limit)
            names = self.engine.store.fetch(
                "SELECT DISTINCT workflow FROM runs WHERE parent_run_id IS NULL "
                "AND workflow IS NOT NULL ORDER BY 1")
            self._fingerprint, self._queried_at = fingerprint, time.monotonic()
            with lst.hold_sync():
                lst.runs = runs
                lst.workflows = sorted({short_action(n[0]) for n in names})
                lst.updated = time.time()

    def _poll(self) -> bool:
        self.refresh()
        return True

    def _on_filters(self, _change: Any) -> None:
        try:
            self.refresh(force=True)
            if self.list.notice.get("level") == "error":
                self.list.notice = {}
        except OrbitsError as err:
            self.list.notice = {"level": "error", "text": str(err), "at": time.time()}

    def _on_select(self, change: Any) -> None:
        run_id = str(change["new"] or "")
        if not run_id:
            self.box.children = (self.list,)
            return
        try:
            self.open(run_id)
        except OrbitsError as err:
            self.list.notice = {"level": "error", "text": str(err), "at": time.time()}

    def open(self, run_id: str) -> Monitor:
        """Show the monitor of ``run_id`` under the list (and return it)."""
        monitor = Monitor.for_run(self.engine.get_run(run_id))
        self.monitor = monitor
        self.box.children = (self.list, monitor)
        return monitor

    def _on_message(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if isinstance(content, dict) and content.get("type") == "ping":
            self._pump.alive()
        elif isinstance(content, dict) and content.get("type") == "refresh":
            self.refresh(force=True)

    def close(self) -> None:
        """Stop polling and close the widgets."""
        self._pump.stop()
        self.box.close()
        self.list.close()

    def text(self) -> str:
        columns = ["run_id", "workflow", "status", "steps", "created", "error"]
        rows = [{"run_id": r["run_id"], "workflow": r["workflow"], "status": r["status"],
                 "steps": f"{r['steps_done']}/{r['steps_total']}",
                 "created": time.strftime("%Y-%m-%d %H:%M:%S",
                                          time.localtime(r["created_at"] or 0)),
                 "error": r["error"]} for r in self.list.runs]
        return Table(columns, rows).text() if rows else "no runs yet"

    def __repr__(self) -> str:
        return f"Dashboard of {self.engine.store.path}\n{self.text()}"

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        from orbits_nb.views.display import WIDGET_MIME, has_widget_kernel
        from orbits_nb.views.html import runs_table

        data: dict[str, Any] = {"text/plain": repr(self),
                                "text/html": runs_table(list(self.list.runs))}
        if has_widget_kernel():
            data[WIDGET_MIME] = {"version_major": 2, "version_minor": 0,
                                 "model_id": self.box.model_id}
        return data


def dashboard(*, workflow: str | None = None, status: str | None = None,
              since: str | None = None, limit: int = 50, interval: float = 2.0,
              engine: Engine | None = None) -> Dashboard:
    """Recent runs from the store, live-updating, with a click-through to each monitor.

    Filters: ``workflow`` (class name), ``status`` (pending, running, succeeded,
    failed, cancelled), ``since`` (a date, e.g. ``"2026-11-01"``, or an age such as
    ``"7d"``, as for :func:`orbits_nb.history`); all can also be
    changed in the widget.
    """
    return Dashboard(engine, workflow=workflow, status=status, since=since, limit=limit,
                     interval=interval)
