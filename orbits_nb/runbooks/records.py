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
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from orbits_nb.core.rows import Batch, NotebookRunRow
from orbits_nb.core.serde import MASK
from orbits_nb.core.state import RUN_TERMINAL, Event, fold
from orbits_nb.runbooks.errors import RunbookFailed
from orbits_nb.store import HOST

if TYPE_CHECKING:
    from orbits_nb.core.storage import Store

STATUSES = ("running", "succeeded", "failed")


@dataclass
class NotebookRun(NotebookRunRow):
    """The record of one headless execution of a runbook notebook.

    ``parameters`` holds secrets as references only; ``error`` has ``type``,
    ``message``, ``traceback`` and the failing cell's ``source``.
    """

    host: str = field(default=HOST)

    @classmethod
    def of(cls, row: NotebookRunRow) -> NotebookRun:
        """The notebook run recorded as ``row``."""
        return cls(**{f.name: getattr(row, f.name) for f in fields(NotebookRunRow)})

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
def held(store: Store) -> Iterator[Store]:
    """Keep the state open for a few operations in a row, then hand it over."""
    with store.keep_open():
        yield store


def insert(store: Store, record: NotebookRun) -> None:
    store.add_notebook_run(record)


def update(store: Store, record: NotebookRun) -> None:
    store.save_notebook_run(record)


def set_kernel_pid(store: Store, notebook_run_id: str, pid: int) -> None:
    store.set_kernel_pid(notebook_run_id, pid)


def get(store: Store, notebook_run_id: str) -> NotebookRun | None:
    row = store.notebook_run(notebook_run_id)
    return None if row is None else NotebookRun.of(row)


def listing(store: Store, *, runbook: str | None = None, status: str | None = None,
            schedule_id: str | None = None, limit: int | None = 50) -> list[NotebookRun]:
    """Notebook runs, newest first."""
    return [NotebookRun.of(row) for row in store.notebook_runs(
        runbook=runbook, status=status, schedule_id=schedule_id, limit=limit)]


def resumable(store: Store, error_types: tuple[str, ...], max_attempts: int
              ) -> list[NotebookRun]:
    """Scheduled notebook runs that failed with one of ``error_types``, below
    ``max_attempts``, and were not resumed yet; oldest first."""
    return [NotebookRun.of(row) for row in
            store.resumable_notebook_runs(error_types, max_attempts)]


def started_runs(store: Store, record: NotebookRun) -> list[str]:
    """Top-level workflow runs the kernel of ``record`` created or executed, in order."""
    return store.started_runs(record.notebook_run_id, record.host, record.kernel_pid or -1,
                              (record.started_at or 0) - 1)


def reap_runs(store: Store, run_ids: list[str], reason: str) -> list[str]:
    """Record runs (and their child runs) whose owner died as failed; return their ids.

    Steps caught running fail too, so a resume runs them again; steps waiting on a
    watcher stay waiting, so a resume goes on watching instead of starting over.
    """
    reaped: list[str] = []
    for root in run_ids:
        for run_id in sorted(store.run_tree(root), key=len, reverse=True):
            if _reap_one(store, run_id, reason):
                reaped.append(run_id)
    return reaped


def _reap_one(store: Store, run_id: str, reason: str) -> bool:
    state = fold(run_id, store.load_run(run_id))
    if not state.workflow or state.status in RUN_TERMINAL:
        return False
    lease = next(iter(store.leases("run", [run_id])), None)
    if lease and store.alive(lease.host, lease.pid, lease.heartbeat):
        return False
    owner = state.owner
    if not lease and owner.get("pid") and store.alive(str(owner.get("host")),
                                                      int(owner["pid"])):
        return False
    error = {"type": "OwnerDied", "message": reason, "traceback": ""}
    events = [Event(run_id, "step.failed", step.key, step.attempts, {"error": error})
              for step in state.ordered_steps() if step.status in ("running", "retrying")]
    events.append(Event(run_id, "run.failed", data={"error": error}))
    releases = [(run_id, lease.token)] if lease else []
    store.write(Batch(events=events, release_leases=releases))
    return True


def orphans(store: Store) -> list[NotebookRun]:
    """Notebook runs still marked running whose runner process is gone."""
    found = []
    for record in listing(store, status="running", limit=None):
        if record.pid is None or not store.alive(record.host, record.pid):
            found.append(record)
    return found


def reap_orphans(store: Store) -> list[NotebookRun]:
    """Mark notebook runs whose runner died as failed, and their workflow runs too."""
    reaped = []
    for record in orphans(store):
        kernel_alive = record.kernel_pid is not None and store.alive(record.host,
                                                                     record.kernel_pid)
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
