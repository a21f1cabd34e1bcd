"""Notebook runs in the store: one row per headless execution of a runbook.

The runner writes a row when the notebook starts (status ``running``) and completes it
when the notebook ends. Workflow runs a kernel executed are found through the
``run.started`` events their engine wrote with the kernel's pid, so runs resumed (not
created) by a runbook are linked too, and nothing inside the kernel has to report back.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from orbits_nb.core.serde import MASK, dumps, loads, mask_json
from orbits_nb.core.state import RUN_TERMINAL, Event, fold
from orbits_nb.runbooks.errors import RunbookFailed
from orbits_nb.store.duckdb_store import HOST, Batch, DuckDBStore, owner_alive

COLUMNS = ("notebook_run_id", "runbook", "notebook", "parameters", "status", "trigger",
           "schedule_id", "scheduled_for", "resume_of", "attempt", "started_at",
           "finished_at", "duration_s", "output_path", "failed_cell", "error",
           "workflow_runs", "host", "pid", "kernel_pid")
_TIMES = ("scheduled_for", "started_at", "finished_at")
_JSON = ("parameters", "error", "workflow_runs")
STATUSES = ("running", "succeeded", "failed")


@dataclass
class NotebookRun:
    """The record of one headless execution of a runbook notebook.

    ``parameters`` holds secrets as references only; ``error`` has ``type``,
    ``message``, ``traceback`` and the failing cell's ``source``.
    """

    notebook_run_id: str
    runbook: str
    notebook: str
    parameters: dict[str, Any] = field(default_factory=dict)
    status: str = "running"
    trigger: str = "cli"
    schedule_id: str | None = None
    scheduled_for: float | None = None
    resume_of: str | None = None
    attempt: int = 1
    started_at: float | None = None
    finished_at: float | None = None
    duration_s: float | None = None
    output_path: str | None = None
    failed_cell: int | None = None
    error: dict[str, Any] | None = None
    workflow_runs: list[str] = field(default_factory=list)
    host: str = HOST
    pid: int | None = None
    kernel_pid: int | None = None

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"

    def masked_parameters(self) -> dict[str, Any]:
        return {k: MASK if isinstance(v, dict) and "$secret" in v else v
                for k, v in self.parameters.items()}

    def summary(self) -> str:
        """One line: ``quickstart-... succeeded in 3.1s`` or the failing cell and error."""
        took = ""
        if self.duration_s is not None:
            took = f" {'after' if self.error else 'in'} {self.duration_s:.1f}s"
        line = f"{self.runbook} {self.notebook_run_id} {self.status}{took}"
        if self.error:
            where = f" at cell {self.failed_cell}" if self.failed_cell is not None else ""
            line += f"{where}: {self.error.get('type')}: {self.error.get('message')}"
        return line

    def raise_for_status(self) -> NotebookRun:
        """Raise :class:`RunbookFailed` unless the notebook run succeeded."""
        if self.status == "failed":
            error = self.error or {}
            raise RunbookFailed(
                f"runbook {self.runbook} failed ({self.notebook_run_id}): "
                f"{error.get('type')}: {error.get('message')}; executed notebook: "
                f"{self.output_path}", notebook_run_id=self.notebook_run_id,
                cell=self.failed_cell, ename=error.get("type"),
                evalue=error.get("message"), output_path=self.output_path)
        return self

    def __repr__(self) -> str:
        return f"NotebookRun({self.summary()!r}, output={self.output_path!r})"


@contextmanager
def held(store: DuckDBStore) -> Iterator[DuckDBStore]:
    """Keep the state file open for a few statements in a row, then hand it over."""
    store.busy = True
    try:
        yield store
    finally:
        store.busy = False
        store.close()


def insert(store: DuckDBStore, record: NotebookRun) -> None:
    row = _row(record)
    marks = ", ".join("to_timestamp(?)" if c in _TIMES else "?" for c in COLUMNS)
    with store.connection() as con:
        con.execute(f"INSERT INTO notebook_runs ({', '.join(COLUMNS)}) VALUES ({marks})", row)


def update(store: DuckDBStore, record: NotebookRun) -> None:
    row = _row(record)
    sets = ", ".join(f"{c} = to_timestamp(?)" if c in _TIMES else f"{c} = ?"
                     for c in COLUMNS[1:])
    with store.connection() as con:
        con.execute(f"UPDATE notebook_runs SET {sets} WHERE notebook_run_id = ?",
                    [*row[1:], record.notebook_run_id])


def set_kernel_pid(store: DuckDBStore, notebook_run_id: str, pid: int) -> None:
    with store.connection() as con:
        con.execute("UPDATE notebook_runs SET kernel_pid = ? WHERE notebook_run_id = ?",
                    [pid, notebook_run_id])


def _row(record: NotebookRun) -> list[Any]:
    """The row of ``record``; known secret values are masked in its JSON (the error)."""
    out: list[Any] = []
    for column in COLUMNS:
        value = getattr(record, column)
        out.append(mask_json(dumps(value)) if column in _JSON and value is not None
                   else value)
    return out


_SELECT = ", ".join(f"epoch({c})" if c in _TIMES else c for c in COLUMNS)


def _record(row: tuple[Any, ...]) -> NotebookRun:
    data = dict(zip(COLUMNS, row, strict=True))
    for column in _JSON:
        data[column] = loads(data[column])
    data["parameters"] = data["parameters"] or {}
    data["workflow_runs"] = data["workflow_runs"] or []
    return NotebookRun(**data)


def get(store: DuckDBStore, notebook_run_id: str) -> NotebookRun | None:
    rows = store.fetch(f"SELECT {_SELECT} FROM notebook_runs WHERE notebook_run_id = ?",
                       [notebook_run_id])
    return _record(rows[0]) if rows else None


def listing(store: DuckDBStore, *, runbook: str | None = None, status: str | None = None,
            schedule_id: str | None = None, limit: int | None = 50) -> list[NotebookRun]:
    """Notebook runs, newest first."""
    where, params = ["TRUE"], []
    for column, value in (("runbook", runbook), ("status", status),
                          ("schedule_id", schedule_id)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    query = (f"SELECT {_SELECT} FROM notebook_runs WHERE {' AND '.join(where)} "
             "ORDER BY started_at DESC")
    if limit:
        query += f" LIMIT {int(limit)}"
    return [_record(row) for row in store.fetch(query, params)]


def started_runs(store: DuckDBStore, record: NotebookRun) -> list[str]:
    """Top-level workflow runs the kernel of ``record`` created or executed, in order."""
    rows = store.fetch(
        "SELECT run_id, min(seq) AS first FROM events WHERE step IS NULL AND "
        "position('/' IN run_id) = 0 AND ((kind = 'run.created' AND "
        "data->'meta'->>'notebook_run_id' = ?) OR (kind = 'run.started' AND "
        "data->>'host' = ? AND CAST(data->>'pid' AS BIGINT) = ? AND ts >= ?)) "
        "GROUP BY run_id ORDER BY first",
        [record.notebook_run_id, record.host, record.kernel_pid or -1,
         (record.started_at or 0) - 1])
    return [row[0] for row in rows]


def reap_runs(store: DuckDBStore, run_ids: list[str], reason: str) -> list[str]:
    """Record runs (and their child runs) whose owner died as failed; return their ids.

    Steps caught running fail too, so a resume runs them again; steps waiting on a
    watcher stay waiting, so a resume goes on watching instead of starting over.
    """
    reaped: list[str] = []
    for root in run_ids:
        ids = [r[0] for r in store.fetch(
            "SELECT DISTINCT run_id FROM events WHERE run_id = ? OR starts_with(run_id, ?)",
            [root, root + "/"])]
        for run_id in sorted(ids, key=len, reverse=True):
            if _reap_one(store, run_id, reason):
                reaped.append(run_id)
    return reaped


def _reap_one(store: DuckDBStore, run_id: str, reason: str) -> bool:
    state = fold(run_id, store.load_run(run_id))
    if not state.workflow or state.status in RUN_TERMINAL:
        return False
    lease = store.fetch("SELECT host, pid, token, heartbeat FROM leases WHERE run_id = ?",
                        [run_id])
    if lease and owner_alive(lease[0][0], lease[0][1], lease[0][3]):
        return False
    owner = state.owner
    if not lease and owner.get("pid") and owner_alive(str(owner.get("host")),
                                                      int(owner["pid"]), time.time()):
        return False
    error = {"type": "OwnerDied", "message": reason, "traceback": ""}
    events = [Event(run_id, "step.failed", step.key, step.attempts, {"error": error})
              for step in state.ordered_steps() if step.status in ("running", "retrying")]
    events.append(Event(run_id, "run.failed", data={"error": error}))
    releases = [(run_id, lease[0][2])] if lease else []
    store.write(Batch(events=events, release_leases=releases), redact=mask_json)
    return True


def orphans(store: DuckDBStore) -> list[NotebookRun]:
    """Notebook runs still marked running whose runner process is gone."""
    found = []
    for record in listing(store, status="running", limit=None):
        if record.pid is None or not owner_alive(record.host, record.pid, time.time()):
            found.append(record)
    return found


def reap_orphans(store: DuckDBStore) -> list[NotebookRun]:
    """Mark notebook runs whose runner died as failed, and their workflow runs too."""
    reaped = []
    for record in orphans(store):
        kernel_alive = record.kernel_pid is not None and owner_alive(
            record.host, record.kernel_pid, time.time())
        if kernel_alive:
            continue  # the kernel outlived its runner for a moment; try again later
        record.status = "failed"
        record.finished_at = time.time()
        if record.started_at is not None:
            record.duration_s = record.finished_at - record.started_at
        record.error = {"type": "RunnerDied", "message": f"the runner process (pid "
                        f"{record.pid} on {record.host}) died before the notebook finished",
                        "traceback": ""}
        record.workflow_runs = started_runs(store, record)
        reap_runs(store, record.workflow_runs, record.error["message"])
        update(store, record)
        reaped.append(record)
    return reaped
