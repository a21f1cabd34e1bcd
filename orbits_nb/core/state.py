"""Run and step state, folded from the append-only event log.

The event log is the system of record; this module turns a run's events into the
current state of the run and of each step. It is pure: the stores load events, the
engine appends them.
"""

from __future__ import annotations

import time
import traceback as tb
from dataclasses import dataclass, field
from typing import Any

from orbits_nb.core.errors import OrbitsError, RemoteError
from orbits_nb.core.masking import mask

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

    @property
    def duration(self) -> float | None:
        if self.started_at is None:
            return None
        return (self.finished_at or time.time()) - self.started_at


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
        state.executions += 1
        state.owner = {k: data.get(k) for k in ("host", "pid")}
        state.started_at = event.ts
        state.finished_at = None
        state.error = None
    elif kind == "run.reset":
        for key in data.get("steps", []):
            state.steps.pop(key, None)
    elif kind == "run.meta":
        state.meta.update(data.get("meta", {}))
    status = RUN_STATUS.get(kind)
    if status is None:
        return
    state.status = status
    if status in RUN_TERMINAL:
        state.finished_at = event.ts
        state.result = data.get("result")
        state.error = data.get("error")


def _apply_step(state: RunState, event: Event) -> None:
    assert event.step is not None
    step = state.steps.get(event.step)
    if step is None:
        step = state.steps[event.step] = StepState(event.step)
    data = event.data
    kind = event.kind
    if data.get("worker"):
        step.worker = data["worker"]
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


def error_info(error: BaseException) -> dict[str, Any]:
    """A JSON description of an exception: type, message, traceback, fields.

    Known secret values are masked in every text of it (the message of an exception
    the user raised may well hold a revealed secret).
    """
    if isinstance(error, RemoteError):
        return {"type": error.type_name, "message": mask(error.message),
                "traceback": mask(error.traceback)}
    info: dict[str, Any] = {
        "type": f"{type(error).__module__}.{type(error).__qualname__}".removeprefix(
            "builtins.").removeprefix("orbits_nb.core.errors."),
        "message": mask(str(error)),
        "traceback": mask(user_traceback(error)),
    }
    if isinstance(error, OrbitsError):
        info["fields"] = {k: mask(v) if isinstance(v, str) else v
                          for k, v in error.fields.items()
                          if isinstance(v, (str, int, float, bool))}
    return info


_MACHINERY = ("/orbits_nb/engine/", "/orbits_nb/executors/", "/orbits_nb/core/workflow.py",
              "/concurrent/futures/",
              "/asyncio/")


def user_traceback(error: BaseException) -> str:
    """The formatted traceback without the engine's own frames (they say nothing
    about the user's code)."""
    frames = [f for f in tb.extract_tb(error.__traceback__)
              if not any(part in f.filename.replace("\\", "/") for part in _MACHINERY)]
    lines = ["Traceback (most recent call last):\n", *tb.format_list(frames),
             *tb.format_exception_only(error)]
    return "".join(lines)


def short_error(info: dict[str, Any] | None) -> str:
    if not info:
        return ""
    name = str(info.get("type", "Error")).rsplit(".", 1)[-1]
    return f"{name}: {info.get('message', '')}"
