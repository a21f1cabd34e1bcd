"""The rows the store port speaks in: plain dataclasses, no behaviour beyond their data.

Features build these and hand them to a :class:`~orbits_nb.core.ports.Store`; stores
return them from their reads. Times are epoch seconds (floats), as in ``events``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from orbits_nb.core.state import Event

#: What a lease guards: a run (one executing process), a resource (one command at a
#: time) or a schedule (one live instance of the runbook).
LeaseFamily = Literal["run", "resource", "schedule"]


# -- runs, events and logs -------------------------------------------------------------
@dataclass
class LogLine:
    """One captured line of output of a step (or of a run when ``step`` is None)."""

    run_id: str
    step: str | None
    attempt: int | None
    stream: str
    message: str
    ts: float = field(default_factory=time.time)


@dataclass
class Batch:
    """Writes committed together (group commit)."""

    events: list[Event] = field(default_factory=list)
    logs: list[LogLine] = field(default_factory=list)
    release_leases: list[tuple[str, str]] = field(default_factory=list)  # (run_id, token)
    heartbeats: list[tuple[str, str]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.events or self.logs or self.release_leases or self.heartbeats)

    def extend(self, other: Batch) -> None:
        self.events += other.events
        self.logs += other.logs
        self.release_leases += other.release_leases
        self.heartbeats += other.heartbeats


@dataclass(frozen=True)
class Owner:
    """Who holds a lease: a token (an engine, a command, a notebook run) on a host/pid."""

    token: str
    host: str
    pid: int


@dataclass(frozen=True)
class RunSummary:
    """A top-level run as the dashboard lists it: status, step counts, owner."""

    run_id: str
    workflow: str | None
    status: str
    created_at: float | None
    finished_at: float | None
    duration_s: float | None
    error_type: str | None
    error_message: str | None
    executions: int
    notebook: str | None
    steps_total: int
    steps_done: int
    steps_failed: int
    steps_waiting: int
    approvals_waiting: int
    #: The run's lease, if one is recorded (its holder may have died).
    owner: Lease | None
    #: Steps discarded by resets since the run last started (they run again).
    discarded: int
    #: The workflow's arguments as recorded at creation (secrets masked).
    args: dict[str, Any] = field(default_factory=dict)
    #: Where the run was started: kernel, script, cli, runbook, schedule or worker.
    source: str | None = None
    #: Who started it, ``user@host`` as recorded at creation.
    started_by: str | None = None
    #: Whether a step attempt or an execution of it (or of a nested run) ever failed.
    had_failures: bool = False
    #: Who executed its latest execution: a worker id, or ``host:pid``.
    executed_by: str | None = None
    #: Seconds of work: the sum of its executions (None before it first started).
    work_s: float | None = None
    #: When anything of the run was last recorded.
    last_event_at: float | None = None


@dataclass(frozen=True)
class RunQuery:
    """One page of the run list: filters, newest first, ``offset``/``limit`` paging.

    ``search`` matches (case-insensitively) the run id, the workflow and the argument
    values; ``had_failures`` selects runs that did (True) or never did (False) fail.
    """

    workflow: str = ""
    status: str = ""
    had_failures: bool | None = None
    source: str = ""
    search: str = ""
    since: float | None = None
    offset: int = 0
    limit: int = 50


@dataclass(frozen=True)
class RunPage:
    """The rows of one page of the run list and how many runs match in all."""

    rows: list[RunSummary]
    total: int
    offset: int
    limit: int


# -- leases -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Lease:
    """A recorded lease: ``key`` (run id, resource key, schedule id) held by ``token``.

    ``detail`` carries what the family records besides (a resource lease: the
    ``command``, ``run_id`` and ``step`` holding it).
    """

    family: LeaseFamily
    key: str
    token: str
    host: str
    pid: int
    since: float
    heartbeat: float
    detail: dict[str, Any] = field(default_factory=dict)


def holder_alive(host: str, pid: int, heartbeat: float | None, *, here: str, now: float,
                 timeout: float, pid_alive: Callable[[int], bool]) -> bool:
    """Whether the process ``pid`` on ``host`` still holds what it recorded.

    On this host (``here``) its pid decides; a pid means nothing on another host, so
    there its ``heartbeat`` decides: older than ``timeout`` seconds means gone. A
    record without heartbeat on another host (a notebook run's runner) counts as live.
    """
    if host != here:
        return heartbeat is None or now - heartbeat < timeout
    return pid_alive(pid)


# -- resources and drift -----------------------------------------------------------------
@dataclass
class ResourceRow:
    """A recorded resource."""

    key: str
    kind: str
    identity: str
    type: str
    args: dict[str, Any]
    desired: Any
    version: str | None
    output: Any
    status: str
    created_at: float | None = None
    updated_at: float | None = None
    accepted_at: float | None = None
    accepted_by: str | None = None


@dataclass
class UserRow:
    """One workflow run that uses (or used) a resource."""

    key: str
    run_id: str
    step: str
    root_run_id: str
    workflow: str | None
    role: str
    released_at: float | None = None


@dataclass
class CheckRecord:
    """One observation of a resource, appended to ``drift_checks``."""

    key: str
    status: str
    source: str
    diffs: list[dict[str, Any]] = field(default_factory=list)
    actual: Any = None
    error: str | None = None
    run_id: str | None = None
    step: str | None = None
    duration_s: float | None = None
    batch_id: str | None = None
    checked_at: float = field(default_factory=time.time)
    checked_by: str | None = None


@dataclass
class ResourceChange:
    """What one command changes about one resource, written in one transaction.

    Applied in this order: ``converged`` (recorded as present now), ``accepted``
    (``(desired, version)`` adopted from the observed state), ``deleted``, the
    ``released`` root runs' uses, the ``users`` added, the ``checks`` appended; then
    the resource lease ``lease_token`` is released.
    """

    key: str
    by: str
    converged: ResourceRow | None = None
    clear_accept: bool = False
    accepted: tuple[Any, str | None] | None = None
    deleted: bool = False
    released: list[str] = field(default_factory=list)
    users: list[UserRow] = field(default_factory=list)
    checks: list[CheckRecord] = field(default_factory=list)
    lease_token: str | None = None


# -- runbooks: notebook runs and schedules ---------------------------------------------
@dataclass
class NotebookRunRow:
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
    host: str = ""
    pid: int | None = None
    kernel_pid: int | None = None


@dataclass
class ScheduleRow:
    """A runbook to run on a cron expression (``options``: kernel, cell_timeout, tz...)."""

    schedule_id: str
    cron: str
    notebook: str
    parameters: dict[str, Any] = field(default_factory=dict)
    catch_up: str = "latest"
    options: dict[str, Any] = field(default_factory=dict)
    enabled: bool = True
    created_at: float = 0.0
    last_due: float = 0.0
    skipped: int = 0
    last_skip: str | None = None


# -- approvals ----------------------------------------------------------------------------
@dataclass(frozen=True)
class ApprovalRequest:
    """A new request of an approval step (``details`` is JSON)."""

    request_id: str
    run_id: str
    step: str
    prompt: str
    details: Any
    requested_at: float
    requested_by: str


@dataclass(frozen=True)
class PendingApproval:
    """A request waiting for a decision."""

    request_id: str
    run_id: str
    step: str
    prompt: str
    details: Any
    requested_at: float
    requested_by: str
    step_status: str


@dataclass(frozen=True)
class Decision:
    """A decision taken on an approval request."""

    request_id: str
    run_id: str
    step: str
    decision: str
    by: str
    at: float
    comment: str

    def as_result(self) -> dict[str, Any]:
        """The approval step's result: approved, by, at (ISO time), comment."""
        return {"approved": self.decision == "approved", "by": self.by,
                "at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(self.at)),
                "comment": self.comment}


# -- queues and workers ------------------------------------------------------------------
@dataclass(frozen=True)
class QueueRow:
    """A declared queue: at most ``concurrency`` of its runs execute at once (None: no
    bound), at most ``per_key`` of them per key (None: no bound), across every worker."""

    name: str
    concurrency: int | None = None
    per_key: int | None = None


@dataclass(frozen=True)
class QueuedRun:
    """A run waiting in (or taken from) a queue.

    ``not_before`` holds it back until then (a parked durable timer); ``cancel`` says a
    cancel was requested before it began: the worker that took it ends it cancelled.
    """

    run_id: str
    queue: str
    key: str | None = None
    priority: int = 0
    submitted_at: float = field(default_factory=time.time)
    not_before: float | None = None
    takes: int = 0
    cancel: bool = False


@dataclass(frozen=True)
class QueueStats:
    """What ``orbits-nb queue list`` shows of one queue."""

    queue: QueueRow
    depth: int
    running: int
    oldest_submitted_at: float | None
