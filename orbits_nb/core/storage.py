"""The store port: what orbits_nb keeps, as narrow verbs over plain rows.

The engine, resources, runbooks, approvals, views and the command line reach the state
only through :class:`Store`; SQL lives in the stores (``orbits_nb.store``). The verbs
are grouped by the table family they serve. Every verb is blocking (async callers run
it in a thread) and atomic: a write either happens whole or not at all. Reads of a
store that does not exist yet see an empty store and create nothing.

Writes mask every known secret value before anything is kept (``Secret`` values never
land in the store). Bad arguments (a run id that is not a non-empty ``str``...) are
refused as :class:`~orbits_nb.InvalidArgument` before the store is touched; faults of
the store itself are :class:`~orbits_nb.StoreError` with a ``reason``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

#: The one exit of the store: analytics are handed to users as DuckDB relations
#: (``duckdb.DuckDBPyRelation``), whatever the store. The core names no I/O library,
#: so the port types them loosely; the stores return the real thing.
Relation = Any

if TYPE_CHECKING:
    from orbits_nb.core.errors import RunOwned
    from orbits_nb.core.rows import (
        ApprovalRequest,
        Batch,
        CheckRecord,
        Decision,
        Lease,
        LeaseFamily,
        LogLine,
        NotebookRunRow,
        Owner,
        PendingApproval,
        QueuedRun,
        QueueRow,
        QueueStats,
        ResourceChange,
        ResourceRow,
        RunPage,
        RunQuery,
        RunSummary,
        ScheduleRow,
        UserRow,
    )
    from orbits_nb.core.state import Event


class StoreHandle(Protocol):
    """Where the state lives, and the store's use of it."""

    #: The host id this store records and judges leases by (injectable, so tests can
    #: act as two hosts); a pid is only checked on the same host.
    host: str
    #: Seconds without a heartbeat after which a holder on another host counts as gone.
    lease_timeout: float
    #: Set while the engine has runs in flight; an idle store lets go of its resources.
    busy: bool
    #: Seconds between two looks at an idle open store (``tick``: whether to let go).
    idle_release: float

    @property
    def location(self) -> str:
        """Where the state lives, for messages (a file path; never a password)."""

    @property
    def file(self) -> Path | None:
        """The local state file, or None (in memory, or on a server)."""

    @property
    def exists(self) -> bool:
        """Whether the store exists (a read of a missing one sees an empty store)."""

    @property
    def is_open(self) -> bool:
        """Whether the store holds its file or connection right now."""

    def write_mark(self) -> Any:
        """A cheap value (nothing is opened) that changes whenever somebody else may
        have written the state since this store last held it; None when the store
        cannot tell (the engine then reads the state instead of trusting memory)."""

    def tick(self) -> None:
        """Idle time: let others have the state, and catch up what can wait."""

    def close(self) -> None:
        """Let go of the state (the next verb opens it again)."""

    def keep_open(self) -> AbstractContextManager[None]:
        """Keep the state open for a few verbs in a row, then let go of it."""


class RunRecords(Protocol):
    """Runs: the append-only ``events``, their ``logs``, and the history tables."""

    def write(self, batch: Batch) -> None:
        """Commit ``batch`` atomically: events, log lines, lease releases, heartbeats."""

    def open_runs(self, requests: Sequence[tuple[str, Owner]], *, load: bool = True
                  ) -> dict[str, list[Event] | RunOwned]:
        """Take each run's lease (or say who owns it) and load its events, in one go.

        A lease whose holder died (see :meth:`LeaseRecords.alive`) is taken over.
        """

    def load_run(self, run_id: str) -> list[Event]:
        """Every event of ``run_id``, in order (empty for an unknown run)."""

    def logs(self, run_id: str, step: str | None = None,
             attempt: int | None = None) -> list[LogLine]:
        """Captured lines of ``run_id`` (of one step when ``step`` is given, of one of
        its attempts when ``attempt`` is), in order; each keeps the attempt that
        printed it."""

    def run_exists(self, run_id: str) -> bool:
        """Whether any event of ``run_id`` is recorded."""

    def run_tree(self, root: str) -> list[str]:
        """``root`` and the nested runs recorded under it (``root/step/...``)."""

    def run_workflow(self, run_id: str) -> str | None:
        """The ``module:Class`` that ``run_id`` was created for."""

    def previous_run(self, workflow: str, run_id: str, before: float) -> str | None:
        """The latest other top-level run of ``workflow`` created before ``before``."""

    def started_runs(self, notebook_run_id: str, host: str, pid: int, since: float
                     ) -> list[str]:
        """Top-level runs created for a notebook run, or started by its kernel."""

    def failed_errors(self, run_ids: Sequence[str]) -> list[dict[str, Any]]:
        """Recorded errors of the failed runs among ``run_ids`` and their nested runs."""

    def recent_runs(self, *, workflow: str = "", status: str = "",
                    since: float | None = None, limit: int = 50) -> list[RunSummary]:
        """Top-level runs, newest first, with their step counts and recorded owner."""

    def workflows(self) -> list[str]:
        """The workflow classes of the top-level runs recorded, sorted."""

    def events_mark(self) -> tuple[Any, ...]:
        """A cheap value that changes whenever an event is recorded (for polling)."""

    def history(self, *, workflow: str | None = None, status: str | None = None,
                since: float | None = None, limit: int | None = 200,
                had_failures: bool | None = None) -> Relation:
        """Top-level runs, newest first, as an in-memory DuckDB relation
        (``had_failures``: only runs that had, or never had, a failed attempt)."""

    def relation(self, query: str, params: list[Any] | None = None) -> Relation:
        """The result of one read-only SQL query, as an in-memory DuckDB relation.

        The documented tables (events, runs, steps, ...) are current when it runs;
        a statement that would write, or several statements, are refused.
        """

    def rebuild_history(self) -> None:
        """Build ``runs``, ``executions``, ``steps`` and ``attempts`` again from ``events``."""


class LeaseRecords(Protocol):
    """One lease primitive for runs, resources and schedules."""

    def alive(self, host: str, pid: int, heartbeat: float | None = None) -> bool:
        """Whether what ``pid`` on ``host`` recorded still has a live holder: on this
        store's host its pid decides, elsewhere its heartbeat (``lease_timeout``)."""

    def take_lease(self, family: LeaseFamily, key: str, owner: Owner,
                   detail: dict[str, Any] | None = None) -> Lease | None:
        """Take the lease on ``key`` for ``owner``; None once taken, else the live
        holder that keeps it. A lease of the same token is renewed; a dead holder's is
        taken over."""

    def release_lease(self, family: LeaseFamily, key: str, token: str) -> None:
        """Give the lease back (nothing happens unless ``token`` holds it)."""

    def renew_leases(self, family: LeaseFamily, held: Iterable[tuple[str, str]]) -> None:
        """Heartbeat the leases ``(key, token)`` still held."""

    def leases(self, family: LeaseFamily, keys: Sequence[str] | None = None
               ) -> list[Lease]:
        """Recorded leases of ``family`` (of ``keys``), live or not: see :meth:`alive`."""


class ResourceRecords(Protocol):
    """Resources, their users and their drift history."""

    def resource(self, key: str) -> ResourceRow | None:
        """The record of resource ``key`` (present or deleted)."""

    def resources(self, *, kinds: Sequence[str] = (), workflow: str | None = None,
                  include_deleted: bool = False) -> list[ResourceRow]:
        """Recorded resources by key: ``kinds`` match the kind or ``module:Class``;
        ``workflow`` the class or root run id of an active user."""

    def resource_keys(self, name: str) -> list[str]:
        """Keys of the present resources whose key or identity is ``name``."""

    def resource_users(self, keys: Sequence[str], *, active: bool = True) -> list[UserRow]:
        """The workflow uses (role ``user``) of ``keys``, oldest first."""

    def drift_since(self, keys: Sequence[str]) -> dict[str, float]:
        """When the current streak of not-in-sync checks began, per key (if it did)."""

    def drifted_steps(self, run_id: str) -> set[str]:
        """Steps of ``run_id`` whose present resource's latest check is not in sync."""

    def record_checks(self, checks: Sequence[CheckRecord]) -> None:
        """Append ``checks`` to the drift history."""

    def change_resource(self, change: ResourceChange) -> None:
        """Apply everything one command changes about one resource, atomically."""

    def resource_listing(self, *, include_deleted: bool = False) -> Relation:
        """Recorded resources with their latest drift status and user count."""

    def drift_history(self, patterns: Sequence[str] = (), limit: int = 200) -> Relation:
        """Recorded checks, newest first (of the keys matching the glob ``patterns``)."""


class RunbookRecords(Protocol):
    """Headless notebook runs and schedules."""

    def add_notebook_run(self, record: NotebookRunRow) -> None: ...

    def save_notebook_run(self, record: NotebookRunRow) -> None:
        """Write every field of a recorded notebook run again."""

    def set_kernel_pid(self, notebook_run_id: str, pid: int) -> None: ...

    def notebook_run(self, notebook_run_id: str) -> NotebookRunRow | None: ...

    def notebook_runs(self, *, runbook: str | None = None, status: str | None = None,
                      schedule_id: str | None = None, limit: int | None = 50
                      ) -> list[NotebookRunRow]:
        """Notebook runs, newest first."""

    def resumable_notebook_runs(self, error_types: Sequence[str], max_attempts: int
                                ) -> list[NotebookRunRow]:
        """Scheduled notebook runs that failed with one of ``error_types``, below
        ``max_attempts``, and not resumed yet; oldest first."""

    def schedules(self) -> list[ScheduleRow]: ...

    def schedule(self, schedule_id: str) -> ScheduleRow | None: ...

    def add_schedule(self, schedule: ScheduleRow) -> bool:
        """Record a new schedule; False when one of that id exists already."""

    def remove_schedule(self, schedule_id: str) -> None: ...

    def advance_schedule(self, schedule_id: str, last_due: float, skipped: int = 0,
                         reason: str | None = None) -> None:
        """Occurrences up to ``last_due`` are handled (``skipped`` of them skipped)."""


class ApprovalRecords(Protocol):
    """Requests of approval steps and the decisions taken on them."""

    def add_approval(self, request: ApprovalRequest) -> None: ...

    def standing_approval(self, run_id: str, step: str) -> str | None:
        """The newest request of the step made since its last reset, unless rejected."""

    def approval_decision(self, request_id: str) -> tuple[bool, Decision | None]:
        """(whether the request is recorded, its decision or None while pending)."""

    def pending_approvals(self, run_id: str | None = None) -> list[PendingApproval]:
        """Requests waiting for a decision (of ``run_id`` and its nested runs, or all)."""

    def decide_approval(self, run_id: str, step: str, decision: str, *, by: str,
                        at: float, comment: str, via: str) -> str | None:
        """Record the decision on the pending request of the step; its request id, or
        None when nothing is pending there."""

    def last_decision(self, run_id: str, step: str) -> tuple[str, str] | None:
        """``(decision, by)`` of the step's newest request, if it was decided."""


class RunListRecords(Protocol):
    """The run list: pages of top-level runs for the dashboard."""

    def run_page(self, query: RunQuery) -> RunPage:
        """One page of top-level runs matching ``query``, newest first, with the number
        of runs that match in all; bad filters are refused as InvalidArgument."""


class ControlRecords(Protocol):
    """Commands to a run from any process, kept as request events of the run."""

    def commands(self, run_ids: Sequence[str], after: int) -> tuple[list[Event], int]:
        """Request events (``run.cancel_requested``) of ``run_ids`` recorded after seq
        ``after``, in order, and the seq to look after next time. Cheap when nothing
        was recorded since ``after``: the owner of runs calls it several times a
        second."""

    def command_mark(self) -> Any:
        """A cheap value (nothing is opened) that changes whenever a command was
        recorded by any process since it was taken; None when the store cannot tell
        (then call :meth:`commands` at every look)."""


class QueueRecords(Protocol):
    """Queues of submitted runs, drained by workers within each queue's limits."""

    def declare_queue(self, queue: QueueRow, *, replace: bool = True) -> None:
        """Record ``queue`` (with ``replace``, its limits replace recorded ones)."""

    def remove_queue(self, name: str, *, force: bool = False) -> int:
        """Forget queue ``name``; refused (InvalidArgument) while runs wait in it unless
        ``force``, which drops them from the queue too. How many were dropped."""

    def queue_stats(self) -> list[QueueStats]:
        """Every declared queue with its depth, running runs and oldest waiting run."""

    def enqueue(self, entry: QueuedRun, events: Sequence[Event] = (),
                queue: QueueRow | None = None) -> bool:
        """Record ``events`` and put the run in its queue, atomically (declaring the
        queue if needed); False when the run waits in a queue already (nothing done)."""

    def queue_mark(self) -> Any:
        """A cheap value (nothing is opened) that changes whenever a run was queued,
        or one left its queue, by any process since it was taken; None when the store
        cannot tell (then claim at every look). Timers falling due and leases expiring
        do not change it: a worker claims now and then all the same."""

    def queued(self, run_id: str) -> QueuedRun | None:
        """The queue entry of ``run_id``, if it is in a queue."""

    def claim_runs(self, owner: Owner, limit: int, queues: Sequence[str] = ()
                   ) -> list[QueuedRun]:
        """Take up to ``limit`` runnable runs of ``queues`` (all when empty) for
        ``owner``: their run leases are taken, within every queue's ``concurrency`` and
        ``per_key``, counted across all holders; runs whose owner died are taken over.
        Entries of runs that ended since they were queued are dropped."""

    def park_run(self, run_id: str, not_before: float) -> None:
        """Hold a queued run back until ``not_before`` (its lease is released apart)."""

    def dequeue(self, run_id: str) -> None:
        """Take ``run_id`` out of its queue (it ended)."""


class Store(StoreHandle, RunRecords, LeaseRecords, ResourceRecords, RunbookRecords,
            ApprovalRecords, RunListRecords, ControlRecords, QueueRecords, Protocol):
    """Everything orbits_nb keeps, as one port (each store implements all of it)."""
