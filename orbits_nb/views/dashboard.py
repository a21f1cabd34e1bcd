"""``orbits_nb.dashboard()``: the runs of the store as a paged list, live, with a
click-through to each run's monitor.

The list is one page of a store query (:meth:`~orbits_nb.core.storage.Store.run_page`):
filters, search and paging are SQL, and only the visible page is sent to the front
end. It polls the state file every ``interval`` seconds, cheaply: the page is read
again only when the event log moved (or, every few seconds, while a row of the page
is pending or running, since its executor may die without recording anything), and
nothing is sent when the page did not change. Runs executed by another process on
the same file (a runbook, the scheduler, a worker, a colleague's kernel) appear and
progress here. Selecting a run, or opening one by id, shows its monitor below.
"""

from __future__ import annotations

import json
import os
import threading
import time
from typing import TYPE_CHECKING, Any

import anywidget
import ipywidgets
import traitlets as t

from orbits_nb._filters import (
    RUN_SOURCES,
    RUN_STATUSES,
    check_limit,
    check_run_query,
    since_epoch,
)
from orbits_nb.core.dot import short_action
from orbits_nb.core.errors import InvalidArgument, OrbitsError
from orbits_nb.core.rows import RunQuery, RunSummary
from orbits_nb.core.state import RUN_TERMINAL
from orbits_nb.engine.table import Table
from orbits_nb.views import inspector
from orbits_nb.views.monitor import Monitor, asset, widget_module
from orbits_nb.views.pump import Pump
from orbits_nb.views.status import waiting_text

if TYPE_CHECKING:
    from orbits_nb.core.storage import Store
    from orbits_nb.engine.engine import Engine

STATUSES = RUN_STATUSES
SOURCES = RUN_SOURCES
#: While the page shows live runs, read it again this often even if nothing was
#: recorded: an executor that died records nothing, and its runs turn "interrupted".
_REQUERY_EVERY = 10.0
_FAILURES = {"": None, "yes": True, "no": False}


class RunList(anywidget.AnyWidget):
    """The dashboard's run table, filters and pager (front end in ``dashboard.js``)."""

    _esm = widget_module("dashboard.js")
    _css = asset("theme.css")

    runs: t.List[Any] = t.List().tag(sync=True)
    total = t.Int(0).tag(sync=True)
    offset = t.Int(0).tag(sync=True)
    limit = t.Int(50).tag(sync=True)
    workflows: t.List[Any] = t.List().tag(sync=True)
    workflow = t.Unicode("").tag(sync=True)
    status = t.Unicode("").tag(sync=True)
    had_failures = t.Unicode("").tag(sync=True)  # "", "yes" or "no"
    source = t.Unicode("").tag(sync=True)
    search = t.Unicode("").tag(sync=True)
    since = t.Unicode("").tag(sync=True)
    schedules: t.List[Any] = t.List().tag(sync=True)
    selected = t.Unicode("").tag(sync=True)
    updated = t.Float(0.0).tag(sync=True)
    notice = t.Dict().tag(sync=True)
    palette: t.List[Any] = t.List().tag(sync=True)
    state_path = t.Unicode("").tag(sync=True)


def check_filters(status: str | None, since: str | None, limit: int, *,
                  had_failures: str = "", source: str = "", offset: int = 0,
                  search: str = "", workflow: str = "") -> RunQuery:
    """The dashboard's filters as a store query (the same checks and ``since`` forms as
    ``ob.history`` and ``orbits-nb runs``); InvalidArgument names a bad one."""
    check_limit(limit)
    if had_failures not in _FAILURES:
        raise InvalidArgument(f"had_failures={had_failures!r} must be 'yes', 'no' or '' "
                              "(either)", value=had_failures)
    query = RunQuery(workflow=workflow or "", status=status or "",
                     had_failures=_FAILURES[had_failures], source=source or "",
                     search=search or "", since=since_epoch(since) if since else None,
                     offset=offset, limit=limit)
    check_run_query(query)
    return query


def query_runs(engine: Engine, *, workflow: str = "", status: str = "", since: str = "",
               limit: int = 50, had_failures: str = "", source: str = "",
               search: str = "", offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """One page of top-level runs as the dashboard shows them, and the total count."""
    query = check_filters(status, since, limit, had_failures=had_failures, source=source,
                          offset=offset, search=search, workflow=workflow)
    page = engine.store.run_page(query)
    now = time.time()
    return [_row(engine.store, r, now) for r in page.rows], page.total


def args_text(args: dict[str, Any], width: int = 80) -> str:
    """``client=acme, env=prod``: a run's arguments on one short line."""
    parts = []
    for key, value in args.items():
        text = value if isinstance(value, str) else json.dumps(value, default=str,
                                                               separators=(",", ":"))
        parts.append(f"{key}={text if len(text) <= 24 else text[:23] + '…'}")
    line = ", ".join(parts)
    return line if len(line) <= width else line[:width - 1] + "…"


def _row(store: Store, r: RunSummary, now: float) -> dict[str, Any]:
    shown, total, etype = r.status, r.steps_total, r.error_type
    owner = r.owner
    live = owner is not None and store.alive(owner.host, owner.pid, owner.heartbeat)
    work = r.work_s
    if r.discarded and (r.status in RUN_TERMINAL or (r.status == "pending" and owner is None)):
        # As the run's monitor says: it runs again from the reset step on its next start
        # (the history tables call a reset run pending).
        shown, total, etype = "reset", total + r.discarded, None
    elif r.status in ("pending", "running") and not live:
        shown = "interrupted"  # nobody executes it any more: resume it to continue
    elif r.status == "running" and work is not None and r.last_event_at:
        work += max(0.0, now - r.last_event_at)  # the open execution, up to now
    error = f"{str(etype).rsplit('.', 1)[-1]}: {r.error_message}" if etype else ""
    here = owner is not None and owner.host == store.host and owner.pid == os.getpid()
    executing = ""
    if live and owner is not None:
        executing = "this kernel" if here else f"pid {owner.pid} on {owner.host}"
        if not here and r.executed_by and ":" not in r.executed_by:
            executing = f"{r.executed_by} ({executing})"  # a worker, by its name
    elif r.status == "queued":
        entry = store.queued(r.run_id)
        executing = waiting_text(entry.not_before if entry else None, now=now)
    return {"run_id": r.run_id, "workflow": short_action(r.workflow or ""),
            "workflow_path": r.workflow, "status": shown, "created_at": r.created_at,
            "finished_at": r.finished_at, "duration": work, "error": error[:200],
            "args": args_text(r.args), "args_full": args_text(r.args, 2000),
            "had_failures": r.had_failures, "source": r.source or "",
            "started_by": r.started_by or "", "executed_by": r.executed_by or "",
            "executions": r.executions, "notebook": r.notebook or "", "steps_total": total,
            "steps_done": r.steps_done, "steps_failed": r.steps_failed,
            "waiting": r.steps_waiting, "approvals": r.approvals_waiting,
            "owner": f"pid {owner.pid} on {owner.host}" if owner else "",
            "executing": executing, "here": here}


def schedule_rows(store: Store, now: float | None = None) -> list[dict[str, Any]]:
    """The recorded schedules with their next occurrence (epoch seconds)."""
    from orbits_nb.runbooks.schedules import Schedule

    now = time.time() if now is None else now
    rows = []
    for row in store.schedules():
        schedule = Schedule.of(row)
        try:
            due: float | None = schedule.next_due(now) if schedule.enabled else None
        except (OrbitsError, ValueError, KeyError):  # a cron or zone this host cannot read
            due = None
        rows.append({"schedule_id": schedule.schedule_id, "cron": schedule.cron,
                     "notebook": schedule.notebook, "enabled": schedule.enabled,
                     "next_due": due, "tz": str(schedule.options.get("tz") or "")})
    return rows


def _failures_text(had_failures: Any) -> str:
    for text, value in _FAILURES.items():
        if had_failures is value:
            return text
    raise InvalidArgument(f"had_failures={had_failures!r} must be True, False or None "
                          "(either)", value=had_failures)


class Dashboard:
    """The runs of the state file, paged and live, with their monitors one click away.

    >>> ob.dashboard(status="failed")             # doctest: +SKIP
    """

    _FILTERS = ("workflow", "status", "since", "limit", "had_failures", "source", "search")

    def __init__(self, engine: Engine | None = None, *, workflow: str | None = None,
                 status: str | None = None, since: str | None = None, limit: int = 50,
                 interval: float = 2.0, had_failures: bool | None = None,
                 source: str | None = None, search: str | None = None) -> None:
        failures = _failures_text(had_failures)
        check_filters(status, since, limit, had_failures=failures, source=source or "",
                      search=search or "", workflow=workflow or "")
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
                            limit=limit, had_failures=failures, source=source or "",
                            search=search or "", palette=inspector.legend(),
                            state_path=engine.store.location)
        self.monitor: Monitor | None = None
        self.box = ipywidgets.VBox([self.list])
        self.list.observe(self._on_filters, list(self._FILTERS))
        self.list.observe(self._on_page, "offset")
        self.list.observe(self._on_select, "selected")
        self.list.on_msg(self._on_message)
        self.refresh(force=True)
        self._pump = Pump(self._poll, interval=0.2, poll=interval,
                          name="orbits-nb-dashboard", idle_after=60.0)
        self._pump.start()

    def runs(self) -> list[dict[str, Any]]:
        """The rows of the page shown now."""
        return list(self.list.runs)

    def refresh(self, force: bool = False) -> None:
        """Re-read the page (only if the event log moved, unless ``force``)."""
        store = self.engine.store
        with self._lock, store.keep_open():  # every read below on one opening of the file
            fingerprint = store.events_mark()
            live = any(r["status"] in ("pending", "running", "queued")
                       for r in self.list.runs)
            stale = time.monotonic() - self._queried_at > _REQUERY_EVERY
            if not force and fingerprint == self._fingerprint and not (stale and live):
                return
            lst = self.list
            runs, total = query_runs(
                self.engine, workflow=lst.workflow, status=lst.status, since=lst.since,
                limit=lst.limit, had_failures=lst.had_failures, source=lst.source,
                search=lst.search, offset=lst.offset)
            names = sorted({short_action(n) for n in store.workflows()})
            schedules = schedule_rows(store)
            if not runs and total and lst.offset:
                # The page emptied under us (runs deleted, or the filter narrowed): last page.
                lst.offset = max(0, (total - 1) // lst.limit * lst.limit)
                return
            self._fingerprint, self._queried_at = fingerprint, time.monotonic()
            changed = (runs, total, names, schedules) != (
                lst.runs, lst.total, lst.workflows, lst.schedules)
            if not changed:
                return  # nothing is sent: an idle dashboard costs no comm traffic
            with lst.hold_sync():
                lst.runs, lst.total, lst.workflows = runs, total, names
                lst.schedules = schedules
                lst.updated = time.time()

    def page(self, number: int) -> None:
        """Show page ``number`` (1 is the newest runs)."""
        if isinstance(number, bool) or not isinstance(number, int) or number < 1:
            raise InvalidArgument(f"page {number!r} must be a positive integer")
        self.list.offset = (number - 1) * self.list.limit

    def _poll(self) -> bool:
        self.refresh()
        return True

    def _report(self, action: Any) -> None:
        try:
            action()
            if self.list.notice.get("level") == "error":
                self.list.notice = {}
        except OrbitsError as err:
            self.list.notice = {"level": "error", "text": str(err), "at": time.time()}

    def _on_filters(self, _change: Any) -> None:
        if self.list.offset:
            self.list.offset = 0  # new filters start on the first page (refreshes)
            return
        self._report(lambda: self.refresh(force=True))

    def _on_page(self, change: Any) -> None:
        if change["new"] < 0:
            self.list.offset = 0
            return
        self._report(lambda: self.refresh(force=True))

    def _on_select(self, change: Any) -> None:
        run_id = str(change["new"] or "")
        if not run_id:
            self.box.children = (self.list,)
            self.monitor = None
            return
        if self.monitor is None or self.monitor.run_id != run_id:
            self._report(lambda: self.open(run_id))

    def open(self, run_id: str) -> Monitor:
        """Show the monitor of ``run_id`` under the list (and return it)."""
        monitor = Monitor.for_run(self.engine.get_run(run_id))
        self.monitor = monitor
        self.box.children = (self.list, monitor)
        self.list.selected = run_id  # its row is marked (if it is on this page)
        return monitor

    def _on_message(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if not isinstance(content, dict):
            return
        if content.get("type") == "ping":
            self._pump.alive()
        elif content.get("type") == "refresh":
            self._report(lambda: self.refresh(force=True))
        elif content.get("type") == "open":
            run_id = str(content.get("run_id") or "").strip()
            if run_id:
                self._report(lambda: self.open(run_id))

    def close(self) -> None:
        """Stop polling and close the widgets."""
        self._pump.stop()
        self.box.close()
        self.list.close()

    def text(self) -> str:
        columns = ["run_id", "workflow", "arguments", "status", "steps", "created", "error"]
        rows = [{"run_id": r["run_id"], "workflow": r["workflow"], "arguments": r["args"],
                 "status": r["status"] + (" (had failures)" if r["had_failures"] and
                                          r["status"] != "failed" else ""),
                 "steps": f"{r['steps_done']}/{r['steps_total']}",
                 "created": time.strftime("%Y-%m-%d %H:%M:%S",
                                          time.localtime(r["created_at"] or 0)),
                 "error": r["error"]} for r in self.list.runs]
        if not rows:
            return "no runs yet"
        first = self.list.offset + 1
        return (Table(columns, rows).text() + f"\nruns {first}-{first + len(rows) - 1} of "
                f"{self.list.total:,}")

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
              had_failures: bool | None = None, source: str | None = None,
              search: str | None = None, engine: Engine | None = None) -> Dashboard:
    """The runs of the store, newest first, paged, live, with each run's monitor a click
    (or its id) away.

    Filters: ``workflow`` (class name), ``status`` (pending, running, succeeded,
    failed, cancelled: the latest status), ``had_failures`` (True: runs in which a step
    attempt or an execution failed, even if fixed since), ``source`` (kernel, script,
    cli, runbook, schedule, worker), ``search`` (run id, workflow or argument values;
    ``client=acme`` matches one argument), ``since`` (a date, e.g. ``"2026-11-01"``, or
    an age such as ``"7d"``, as for :func:`orbits_nb.history`); ``limit`` is the page
    size. All can also be changed in the widget.
    """
    return Dashboard(engine, workflow=workflow, status=status, since=since, limit=limit,
                     interval=interval, had_failures=had_failures, source=source,
                     search=search)
