"""Run and step state, folded from the append-only event log.

The event log is the system of record; this module turns a run's events into the
current state of the run and of each step. It is pure: the stores load events, the
engine appends them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from orbits_nb.core.failure import error_info, short_error, user_traceback

__all__ = ["RUN_STATUS", "RUN_TERMINAL", "STEP_STATUS", "AttemptSpan", "Event",
           "ExecutionSpan", "RunState", "StepState", "apply", "error_info", "fold",
           "short_error", "user_traceback"]

RUN_TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
STEP_STATUS = {
    "step.started": "running",
    "step.waiting": "waiting",
    "step.bag": None,
    "step.retrying": "retrying",
    "step.succeeded": "succeeded",
    "step.failed": "failed",
    "step.cancelled": "cancelled",
}
RUN_STATUS = {
    "run.created": "pending",
    "run.started": "running",
    # Waiting for a worker: submitted, or given up its slot until ``not_before``.
    "run.queued": "queued",
    "run.parked": "queued",
    "run.succeeded": "succeeded",
    "run.failed": "failed",
    "run.cancelled": "cancelled",
}


@dataclass(slots=True)
class Event:
    """One state transition. ``seq`` is assigned by the store."""

    run_id: str
    kind: str
    step: str | None = None
    attempt: int | None = None
    data: dict[str, Any] = field(default_factory=dict)
    ts: float = field(default_factory=time.time)
    seq: int | None = None


@dataclass(slots=True)
class AttemptSpan:
    """One attempt of a step as it was executed: when, in which execution, how it ended.

    ``status`` is the attempt's own outcome: ``running`` or ``waiting`` while open,
    then ``succeeded``, ``failed``, ``retrying`` (failed, another attempt follows),
    ``cancelled``, ``abandoned`` (cancelled while its call ran in a thread that could
    not be stopped: the thread may still run, its outcome is discarded), or
    ``interrupted`` (its process went away: closed when the run
    executed again, at the last moment anything of the run was recorded), or ``parked``
    (a watcher that gave up its worker slot until its next poll).
    """

    attempt: int
    execution: int
    started_at: float
    finished_at: float | None = None
    status: str = "running"
    worker: str | None = None
    #: When the attempt began waiting (a watcher, an approval, a durable sleep).
    waited_at: float | None = None

    @property
    def open(self) -> bool:
        return self.finished_at is None

    def duration(self, now: float | None = None) -> float:
        return ((self.finished_at or now or time.time()) - self.started_at)


@dataclass(slots=True)
class ExecutionSpan:
    """One execution of a run (a ``run.started``): who executed it and how it ended
    (``running``, ``succeeded``, ``failed``, ``cancelled``, ``interrupted``, or
    ``parked``: it gave up its worker slot and waits in its queue)."""

    execution: int
    started_at: float
    finished_at: float | None = None
    status: str = "running"
    host: str | None = None
    pid: int | None = None
    #: The worker that executed it (``orbits-nb worker``), None elsewhere.
    worker: str | None = None

    def duration(self, now: float | None = None) -> float:
        return ((self.finished_at or now or time.time()) - self.started_at)


@dataclass(slots=True)
class StepState:
    key: str
    name: str = ""
    pos: int = 0
    action: str = ""
    args: dict[str, Any] = field(default_factory=dict)
    executor: str = "local"
    parents: list[str] = field(default_factory=list)
    concurrent: bool = False
    child_run_id: str | None = None
    status: str = "pending"
    attempts: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    result: Any = None
    error: dict[str, Any] | None = None
    bag: dict[str, Any] = field(default_factory=dict)
    #: main() said IN_PROGRESS: executing again resumes watch() instead of main().
    watching: bool = False
    #: Where the latest attempt's calls ran, when its executor says (a Dask worker).
    worker: str | None = None
    #: Every attempt as executed, oldest first (since the step's last reset).
    spans: list[AttemptSpan] = field(default_factory=list)
    #: The run execution in which the latest attempt started (0: none yet).
    execution: int = 0

    @property
    def duration(self) -> float | None:
        """Seconds of work: the sum of the attempts' spans, so time nobody executed
        the step (a dead kernel before takeover) is not counted."""
        if self.started_at is None:
            return None
        if not self.spans:
            return (self.finished_at or time.time()) - self.started_at
        now = time.time()
        return sum(span.duration(now) for span in self.spans)

    @property
    def abandoned(self) -> bool:
        """Whether the latest attempt was cancelled while its call ran in a thread that
        could not be stopped: that thread may still run (its outcome is discarded)."""
        return bool(self.spans) and self.spans[-1].status == "abandoned"

    def replayed_in(self, execution: int) -> bool:
        """Whether, in run execution ``execution``, this step was replayed from the
        record rather than executed (its latest attempt belongs to an earlier one)."""
        return 0 < self.execution < execution and self.finished_at is not None


@dataclass
class RunState:
    run_id: str
    workflow: str = ""
    args: dict[str, Any] = field(default_factory=dict)
    status: str = "pending"
    result: Any = None
    error: dict[str, Any] | None = None
    created_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    parent_run_id: str | None = None
    parent_step: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    executions: int = 0
    owner: dict[str, Any] = field(default_factory=dict)
    steps: dict[str, StepState] = field(default_factory=dict)
    last_seq: int = 0
    #: Every execution of the run, oldest first.
    spans: list[ExecutionSpan] = field(default_factory=list)
    #: Whether any attempt or execution failed, even if a later one succeeded.
    had_failures: bool = False
    #: When anything of the run was last recorded (closes interrupted spans).
    last_event_at: float | None = None
    #: A ``run.cancel_requested`` event (from any process) not yet followed by the end
    #: of the run: whoever executes the run must cancel it, and a queued run must not
    #: begin. Its data (``by``, ``via``) is kept here.
    cancel_requested: dict[str, Any] | None = None
    #: After ``run.reset`` (until the run starts again): the step it re-executes from.
    #: The run's status is then ``pending``: it will execute again.
    reset_from: str | None = None
    #: The queue it was submitted to (``run.queued``), None for a run started in place.
    queue: str | None = None
    #: While ``queued`` after ``run.parked``: no worker takes it before this epoch.
    not_before: float | None = None
    #: While parked, what it waits for: ``{"reason": "timer" | "watcher" | "drain",
    #: "watcher": the step that waits (a timer or a watcher) or None}``.
    parked_for: dict[str, Any] | None = None

    @property
    def duration(self) -> float | None:
        """Seconds of work over every execution (a replay adds only its own time)."""
        if not self.spans:
            return None
        now = time.time()
        return sum(span.duration(now) for span in self.spans)

    def ordered_steps(self) -> list[StepState]:
        return sorted(self.steps.values(), key=lambda s: s.pos)


def fold(run_id: str, events: list[Event]) -> RunState:
    """The state of ``run_id`` after applying ``events`` in order."""
    state = RunState(run_id)
    for event in events:
        apply(state, event)
    return state


def apply(state: RunState, event: Event) -> None:
    """Apply one event to ``state`` in place."""
    if event.seq is not None:
        state.last_seq = max(state.last_seq, event.seq)
    if event.step is None:
        _apply_run(state, event)
    else:
        _apply_step(state, event)
    state.last_event_at = event.ts if state.last_event_at is None else max(
        state.last_event_at, event.ts)


def _apply_run(state: RunState, event: Event) -> None:
    data = event.data
    kind = event.kind
    if kind == "run.created":
        state.workflow = data.get("workflow", "")
        state.args = data.get("args", {})
        state.parent_run_id = data.get("parent_run_id")
        state.parent_step = data.get("parent_step")
        state.meta = data.get("meta", {})
        state.created_at = event.ts
    elif kind == "run.started":
        _interrupt(state)
        state.executions += 1
        state.spans.append(ExecutionSpan(state.executions, event.ts, host=data.get("host"),
                                         pid=data.get("pid"), worker=data.get("worker")))
        state.owner = {k: data.get(k) for k in ("host", "pid")}
        state.started_at = event.ts
        state.finished_at = None
        state.error = None
        state.reset_from = None
        state.not_before = state.parked_for = None
    elif kind in ("run.queued", "run.parked"):
        _queued(state, event)
    elif kind == "run.reset":
        _reset(state, data)
    elif kind == "run.meta":
        state.meta.update(data.get("meta", {}))
    elif kind == "run.cancel_requested":
        state.cancel_requested = dict(data)
    status = RUN_STATUS.get(kind)
    if status is None:
        return
    state.status = status
    if status in RUN_TERMINAL:
        state.cancel_requested = None
        state.finished_at = event.ts
        state.result = data.get("result")
        state.error = data.get("error")
        if status == "failed":
            state.had_failures = True
        if state.spans and state.spans[-1].finished_at is None:
            state.spans[-1].finished_at = event.ts
            state.spans[-1].status = status


def _queued(state: RunState, event: Event) -> None:
    """The run waits for a worker: submitted (``run.queued``), or parked by the one
    that executed it until ``until`` (its execution, and attempts left open at a
    watcher's pause, end there as ``parked``)."""
    data = event.data
    if event.kind == "run.queued":
        state.queue = data.get("queue") or state.queue
        state.not_before = state.parked_for = None
        state.result = state.error = state.finished_at = None
        return
    state.not_before = data.get("until")
    state.parked_for = {"reason": data.get("reason"), "watcher": data.get("watcher")}
    if state.spans and state.spans[-1].finished_at is None:
        state.spans[-1].finished_at, state.spans[-1].status = event.ts, "parked"
    for step in state.steps.values():
        if step.spans and step.spans[-1].open:
            step.spans[-1].finished_at = max(event.ts, step.spans[-1].started_at)
            step.spans[-1].status = "parked"


def _reset(state: RunState, data: dict[str, Any]) -> None:
    """Steps are discarded: the run will execute again from ``from`` (a span its dead
    process left open was interrupted)."""
    _interrupt(state)
    for key in data.get("steps", []):
        state.steps.pop(key, None)
    state.status, state.reset_from = "pending", data.get("from")
    state.result = state.error = state.finished_at = None
    state.cancel_requested = None


def _interrupt(state: RunState) -> None:
    """A new execution begins: whatever the previous one left open was interrupted
    (its process went away); it ends at the last moment the run recorded anything.
    An attempt the previous execution left open after the run ended is closed there too:
    nobody executed it since."""
    if not state.spans:
        return
    end = state.last_event_at or state.spans[-1].started_at
    if state.spans[-1].finished_at is None:
        state.spans[-1].finished_at, state.spans[-1].status = end, "interrupted"
    for step in state.steps.values():
        if step.spans and step.spans[-1].open:
            span = step.spans[-1]
            span.finished_at, span.status = max(end, span.started_at), "interrupted"


def _apply_step(state: RunState, event: Event) -> None:
    assert event.step is not None
    step = state.steps.get(event.step)
    if step is None:
        step = state.steps[event.step] = StepState(event.step)
    data = event.data
    kind = event.kind
    if data.get("worker"):
        step.worker = data["worker"]
    _span(state, step, event)
    if kind == "step.started":
        if "action" in data:
            step.name = data.get("name", event.step)
            step.pos = data.get("pos", 0)
            step.action = data["action"]
            step.args = data.get("args", {})
            step.executor = data.get("executor", "local")
            step.parents = data.get("parents", [])
            step.concurrent = data.get("concurrent", False)
            step.child_run_id = data.get("child_run_id")
            step.started_at = event.ts
            step.watching = False
        step.attempts = max(step.attempts, event.attempt or 0)
        step.finished_at = None
        step.error = None
    elif kind in ("step.waiting", "step.bag"):
        step.bag = data.get("bag", {})
        step.watching = True
    elif kind == "step.retrying":
        step.error = data.get("error")
    elif kind in ("step.succeeded", "step.failed", "step.cancelled"):
        step.finished_at = event.ts
        step.result = data.get("result")
        step.error = data.get("error")
    status = STEP_STATUS.get(kind)
    if status is not None:
        step.status = status


_SPAN_END = {"step.succeeded": "succeeded", "step.failed": "failed",
             "step.cancelled": "cancelled", "step.retrying": "retrying"}


def _span(state: RunState, step: StepState, event: Event) -> None:
    """Keep the step's attempt spans (and ``had_failures``) up to date with ``event``."""
    kind = event.kind
    if kind == "step.started":
        # A step failed in an earlier execution starts again with its action: its
        # spans go on (a reset removes the step, and its spans, altogether).
        if step.spans and step.spans[-1].open:
            step.spans[-1].finished_at = event.ts
            step.spans[-1].status = "interrupted"
        step.execution = state.executions
        step.spans.append(AttemptSpan(event.attempt or len(step.spans) + 1,
                                      state.executions, event.ts,
                                      worker=event.data.get("worker")))
        return
    if not step.spans:
        return
    span = step.spans[-1]
    if kind == "step.waiting":
        span.status = "waiting"
        if span.waited_at is None:
            span.waited_at = event.ts
    elif kind in _SPAN_END and span.open:
        span.finished_at, span.status = event.ts, _SPAN_END[kind]
        if kind == "step.cancelled" and event.data.get("abandoned"):
            span.status = "abandoned"
        if kind in ("step.failed", "step.retrying"):
            state.had_failures = True
    if event.data.get("worker"):
        span.worker = event.data["worker"]
