"""What every view of a run shows, as plain data: the header line and the step rows.

The static HTML, the text fallback and the monitor widget all read these, so a run
looks the same in JupyterLab, in a papermill report and in a terminal.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

from orbits_nb.core.dot import STYLES, Picture, display_status, seconds, short_action
from orbits_nb.core.serde import MASK, Secret
from orbits_nb.core.state import RUN_TERMINAL, StepState, short_error
from orbits_nb.views import status
from orbits_nb.views.status import RunView

APPROVAL_ACTION = "orbits_nb.approval:Approval"
_ACTIVE = ("running", "waiting", "retrying")
#: Step states named in the progress line, after "n/m steps done".
PROGRESS_STATES = ("running", "waiting", "retrying", "failed", "cancelled", "pending",
                   "expected")


def mask(value: Any) -> Any:
    """``value`` with secrets (live, or recorded as ``{"$secret": name}``) masked."""
    if isinstance(value, Secret):
        return MASK
    if isinstance(value, dict):
        if "$secret" in value and set(value) <= {"$secret", "env"}:
            return MASK
        return {str(k): mask(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask(v) for v in value]
    return value


def to_text(value: Any, limit: int = 20_000, indent: int | None = 2) -> str:
    """JSON text of a (masked) value, cut at ``limit`` characters."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(
        mask(value), indent=indent, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[:limit] + f"\n… ({len(text) - limit} more)"


def summary(step: StepState, redact: Callable[[str], str] | None = None,
            width: int = 90) -> str:
    """One line: the error of a failed step, else its result."""
    if step.error and step.status != "succeeded":
        text = short_error(step.error)
    elif step.status == "succeeded":
        text = to_text(step.result, width * 2, None)
    else:
        text = ""
    text = " ".join(text.split())
    if redact is not None:
        text = redact(text)
    return text if len(text) <= width else text[: width - 1] + "…"


def walk(picture: Picture, prefix: str = "", depth: int = 0
         ) -> Iterator[tuple[str, int, StepState, str, Picture]]:
    """Every step of the run and its nested runs, in order: (path, depth, step, status)."""
    for step in picture.state.ordered_steps():
        path = prefix + step.key
        yield path, depth, step, display_status(step, picture.replayed), picture
        child = picture.children.get(step.key)
        if child is not None:
            yield from walk(child, path + "/", depth + 1)
    previous = picture.previous
    if previous is not None and picture.state.status != "succeeded":
        for step in previous.ordered_steps():
            if step.key not in picture.state.steps:
                ghost = StepState(step.key, name=step.name, action=step.action)
                yield prefix + step.key, depth, ghost, "expected", picture


def rows(picture: Picture, redact: Callable[[str], str] | None = None) -> list[dict[str, Any]]:
    """The step table: one row per step (nested steps indented by ``depth``)."""
    out = []
    for path, depth, step, shown, owner in walk(picture):
        out.append({
            "path": path, "step": step.key, "depth": depth, "status": shown,
            "attempts": step.attempts, "action": short_action(step.action),
            "started_at": step.started_at, "finished_at": step.finished_at,
            # A replayed step keeps the duration of the work as it was done.
            "duration": step.duration if step.finished_at else None,
            "replayed": shown == "replayed",
            **step_clock(step),
            "drifted": step.key in owner.drifted,
            "summary": "" if shown == "expected" else summary(step, redact),
            "approval": step.action == APPROVAL_ACTION and shown == "waiting",
            "run_id": owner.state.run_id,
        })
    return out


def step_clock(step: StepState) -> dict[str, Any]:
    """Seconds of the step's closed attempts, and since when its open one runs: a live
    duration counts only time somebody executed the step."""
    spans = step.spans
    open_since = spans[-1].started_at if spans and spans[-1].open else None
    if not spans and step.finished_at is None and step.started_at is not None:
        open_since = step.started_at
    before = sum(s.duration() for s in spans if not s.open)
    return {"work_before": before, "open_since": open_since}


def counts(picture: Picture) -> dict[str, int]:
    """Steps per display state, nested runs included (expected steps too)."""
    out: dict[str, int] = {}
    for _, _, _, shown, _ in walk(picture):
        out[shown] = out.get(shown, 0) + 1
    return out


def execution_spans(picture: Picture) -> list[dict[str, Any]]:
    """Each execution of the run: number, status, when, how long, who executed it.

    An execution still open in the record whose process is gone is shown
    ``interrupted``, ending at the last moment the run recorded anything.
    """
    state = picture.state
    gone = isinstance(picture, RunView) and picture.where == status.GONE
    out = []
    for span in state.spans:
        finished, shown = span.finished_at, span.status
        if finished is None and gone:
            finished = max(state.last_event_at or span.started_at, span.started_at)
            shown = "interrupted"
        out.append({"execution": span.execution, "status": shown,
                    "started_at": span.started_at, "finished_at": finished,
                    "duration": None if finished is None else finished - span.started_at,
                    "host": span.host, "pid": span.pid})
    return out


def work_clock(state_spans: list[dict[str, Any]], started: float | None,
               finished: float | None) -> tuple[float, float | None]:
    """Seconds of work in closed executions, and since when the open one runs."""
    if not state_spans:
        if started is None:
            return 0.0, None
        return ((finished - started, None) if finished is not None else (0.0, started))
    closed = sum(s["duration"] for s in state_spans if s["duration"] is not None)
    last = state_spans[-1]
    return closed, (last["started_at"] if last["finished_at"] is None else None)


def work_seconds(head: dict[str, Any], now: float) -> float:
    """The run's work time at ``now`` (kernel clock): the sum of its executions, so a
    replay adds only its own time and a new execution never restarts the clock."""
    open_since = head.get("open_since")
    return float(head.get("work_before") or 0.0) + (
        max(0.0, now - open_since) if open_since is not None else 0.0)


class Clock:
    """The header timer as shown: never less than it showed before for the run.

    A new snapshot can carry an earlier kernel time than the clock already counted
    to (a browser's estimate of the kernel's clock moves), so what is shown only
    grows; the front end keeps the same rule.
    """

    def __init__(self) -> None:
        self._shown: dict[str, float] = {}

    def shown(self, head: dict[str, Any], now: float) -> float:
        run_id = str(head.get("run_id"))
        value = max(work_seconds(head, now), self._shown.get(run_id, 0.0))
        self._shown[run_id] = value
        return value


def total_of(head_counts: dict[str, int], done: int, final: bool,
             estimated: bool) -> tuple[str, int | None]:
    """How sure the step total is (``final``, ``estimate``, ``unknown``) and its value.

    While the run can still add steps the total is never "all done": on a first run it
    is unknown, otherwise an estimate (from the previous run or the steps recorded so
    far) kept above the steps done.
    """
    total = sum(head_counts.values())
    if final:
        return "final", total
    if not estimated:
        return "unknown", None
    return "estimate", max(total, done + 1)


def header(picture: Picture, redact: Callable[[str], str] | None = None) -> dict[str, Any]:
    """The run's headline: status (as shown), progress counts, timings, error, and
    where it executes (see :mod:`orbits_nb.views.status`)."""
    state = picture.state
    view = picture if isinstance(picture, RunView) else RunView(state)
    tally = counts(picture)
    expected = tally.get("expected", 0)
    total = sum(tally.values())
    done = tally.get("succeeded", 0) + tally.get("replayed", 0)
    error = short_error(state.error)
    shown = status.run_status(picture)
    terminal = shown in status.SETTLED and view.where != status.HERE
    spans = execution_spans(picture)
    work_before, open_since = work_clock(spans, state.started_at, state.finished_at)
    if open_since is not None and view.where == status.GONE:
        # Nothing executes it: its clock stands still at the last record.
        work_before += max(0.0, (state.last_event_at or open_since) - open_since)
        open_since = None
    # Steps known from an earlier run or execution make an estimate; else unknown.
    estimated = (picture.previous is not None or state.executions > 1
                 or bool(view.discarded) or view.recorded_status in RUN_TERMINAL)
    sure, shown_total = total_of(tally, done, terminal, estimated)
    head = {
        "run_id": state.run_id, "workflow": short_action(state.workflow),
        "workflow_path": state.workflow, "status": shown,
        "recorded_status": view.recorded_status or state.status,
        "terminal": terminal,
        "where": view.where, "reset_from": view.reset_from,
        "discarded": list(view.discarded), "cancel_requested": view.cancel_requested,
        "counts": tally, "total": total, "total_sure": sure, "shown_total": shown_total,
        "known": total - expected, "done": done, "created_at": state.created_at,
        "started_at": state.started_at, "finished_at": state.finished_at,
        "now": time.time(), "executions": state.executions,
        "execution_spans": spans, "work_before": work_before, "open_since": open_since,
        "had_failures": state.had_failures,
        # The old error of a reset run, or of a retry about to start, is not news.
        "error": "" if shown in ("reset", "pending") else
        (redact(error) if redact is not None else error),
        "owner": state.owner, "notebook": state.meta.get("notebook"),
        # Who executes it (a worker), and while queued what it waits for.
        "worker": state.spans[-1].worker if state.spans else None,
        "not_before": state.not_before, "parked_for": state.parked_for,
        "previous_run_id": picture.previous.run_id if picture.previous else None,
    }
    head["note"] = status.status_line(head)
    return head


def count_text(head: dict[str, Any]) -> str:
    """``3/5 steps done``, ``3/~6 steps done (estimate)`` or ``3 steps done · total
    unknown (first run)``: never a completed count while the run can add steps."""
    done, sure = head["done"], head.get("total_sure", "final")
    if sure == "final":
        return f"{done}/{head['total']} steps done"
    if sure == "estimate":
        return f"{done}/~{head['shown_total']} steps done (estimate)"
    return f"{done} steps done · total unknown (first run)"


def executions_text(head: dict[str, Any]) -> str:
    """``execution 2 of 2 (1 interrupted, 2 running)``; "" for a run executed once."""
    spans = head.get("execution_spans") or []
    if len(spans) < 2:
        return ""
    each = ", ".join(f"{s['execution']} {s['status']}" for s in spans)
    return f"execution {spans[-1]['execution']} of {len(spans)} ({each})"


def progress_text(head: dict[str, Any], now: float | None = None) -> str:
    """``3/5 steps done · 1 running · 2.4 s`` (the time is work: every execution's)."""
    tally: dict[str, int] = head["counts"]
    parts = [count_text(head)]
    for name in PROGRESS_STATES:
        if tally.get(name):
            parts.append(f"{tally[name]} {STYLES[name].label}")
    timed = head.get("open_since") is not None or head.get("work_before")
    if timed and head.get("status") not in ("reset", "pending"):
        parts.append(seconds(work_seconds(head, head["now"] if now is None else now)))
    runs = executions_text(head)
    if runs:
        parts.append(runs)
    return " · ".join(parts)


def stale_notice(notice: dict[str, Any], head: dict[str, Any]) -> bool:
    """Whether ``notice`` speaks of a state the run has left: a status outside its
    ``until``, or an end of the run after it was asked for (a "retrying…" notice
    goes once the retried run ended, even if it ended before the notice was said)."""
    until = notice.get("until", ())
    if "*" in until:
        return False
    if head.get("status") not in until:
        return True
    finished = head.get("finished_at")
    return bool(head.get("terminal") and finished is not None
                and finished >= float(notice.get("at") or 0.0))


def active_first(table: list[dict[str, Any]], limit: int) -> tuple[list[dict[str, Any]], int]:
    """At most ``limit`` rows: every failed or active step, then the others in order."""
    if len(table) <= limit:
        return table, 0
    keep = {i for i, r in enumerate(table) if r["status"] in ("failed", *_ACTIVE)}
    for i in range(len(table)):
        if len(keep) >= limit:
            break
        keep.add(i)
    chosen = [table[i] for i in sorted(keep)]
    return chosen, len(table) - len(chosen)


def auto_page(table: list[dict[str, Any]], size: int, live: bool) -> int:
    """The page to show when following: the first problem or activity, else the end."""
    for index, row in enumerate(table):
        if row["status"] in ("failed", *_ACTIVE):
            return index // size
    if live:
        started = [i for i, r in enumerate(table) if r["status"] not in ("expected",
                                                                         "pending")]
        return (started[-1] // size) if started else 0
    return 0


def approvals(picture: Picture) -> list[dict[str, Any]]:
    """The approval steps waiting for a decision, nested runs included."""
    out = []
    for path, _, step, shown, owner in walk(picture):
        if step.action == APPROVAL_ACTION and shown == "waiting":
            out.append({"path": path, "run_id": owner.state.run_id, "step": step.key,
                        "prompt": str(step.args.get("prompt", "")),
                        "details": to_text(step.args.get("details"), 2000),
                        "since": step.started_at})
    return out
