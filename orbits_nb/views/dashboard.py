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
from orbits_nb.core.rows import RunSummary
from orbits_nb.core.state import RUN_TERMINAL
from orbits_nb.engine.table import Table
from orbits_nb.views import inspector
from orbits_nb.views.monitor import Monitor, asset, widget_module
from orbits_nb.views.pump import Pump

if TYPE_CHECKING:
    from orbits_nb.core.storage import Store
    from orbits_nb.engine.engine import Engine

STATUSES = RUN_STATUSES
_REQUERY_EVERY = 10.0

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
    store = engine.store
    found = store.recent_runs(workflow=workflow, status=status,
                              since=since_epoch(since) if since else None, limit=limit)
    return [_row(store, r) for r in found]


def _row(store: Store, r: RunSummary) -> dict[str, Any]:
    shown, total, etype = r.status, r.steps_total, r.error_type
    owner = r.owner
    if r.discarded and (r.status in RUN_TERMINAL or (r.status == "pending" and owner is None)):
        # As the run's monitor says: it runs again from the reset step on its next start
        # (the history tables call a reset run pending).
        shown, total, etype = "reset", total + r.discarded, None
    elif r.status in ("pending", "running") and (owner is None or not store.alive(
            owner.host, owner.pid, owner.heartbeat)):
        shown = "interrupted"  # nobody executes it any more: resume it to continue
    error = f"{str(etype).rsplit('.', 1)[-1]}: {r.error_message}" if etype else ""
    here = owner is not None and owner.host == store.host and owner.pid == os.getpid()
    return {"run_id": r.run_id, "workflow": short_action(r.workflow or ""),
            "workflow_path": r.workflow, "status": shown, "created_at": r.created_at,
            "finished_at": r.finished_at, "duration": r.duration_s, "error": error[:200],
            "executions": r.executions, "notebook": r.notebook or "", "steps_total": total,
            "steps_done": r.steps_done, "steps_failed": r.steps_failed,
            "waiting": r.steps_waiting, "approvals": r.approvals_waiting,
            "owner": f"pid {owner.pid} on {owner.host}" if owner else "", "here": here}


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
                            state_path=engine.store.location)
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
            fingerprint = self.engine.store.events_mark()
            stale = time.monotonic() - self._queried_at > _REQUERY_EVERY
            if not force and not stale and fingerprint == self._fingerprint:
                return
            lst = self.list
            runs = query_runs(self.engine, workflow=lst.workflow, status=lst.status,
                              since=lst.since, limit=lst.limit)
            names = self.engine.store.workflows()
            self._fingerprint, self._queried_at = fingerprint, time.monotonic()
            with lst.hold_sync():
                lst.runs = runs
                lst.workflows = sorted({short_action(n) for n in names})
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
        return f"Dashboard of {self.engine.store.location}\n{self.text()}"

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
