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
from orbits_nb.core.state import StepState, short_error
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
            "duration": step.duration if step.finished_at else None,
            "summary": "" if shown == "expected" else summary(step, redact),
            "approval": step.action == APPROVAL_ACTION and shown == "waiting",
            "run_id": owner.state.run_id,
        })
    return out


def counts(picture: Picture) -> dict[str, int]:
    """Steps per display state, nested runs included (expected steps too)."""
    out: dict[str, int] = {}
    for _, _, _, shown, _ in walk(picture):
        out[shown] = out.get(shown, 0) + 1
    return out


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
    head = {
        "run_id": state.run_id, "workflow": short_action(state.workflow),
        "workflow_path": state.workflow, "status": shown,
        "recorded_status": view.recorded_status or state.status,
        "terminal": shown in status.SETTLED and view.where != status.HERE,
        "where": view.where, "reset_from": view.reset_from,
        "discarded": list(view.discarded), "cancel_requested": view.cancel_requested,
        "counts": tally, "total": total,
        "known": total - expected, "done": done, "created_at": state.created_at,
        "started_at": state.started_at, "finished_at": state.finished_at,
        "now": time.time(), "executions": state.executions,
        # The old error of a reset run, or of a retry about to start, is not news.
        "error": "" if shown in ("reset", "pending") else
        (redact(error) if redact is not None else error),
        "owner": state.owner, "notebook": state.meta.get("notebook"),
        "previous_run_id": picture.previous.run_id if picture.previous else None,
    }
    head["note"] = status.status_line(head)
    return head


def progress_text(head: dict[str, Any]) -> str:
    """``3/5 steps done · 1 running · 2.4 s`` (expected steps count in the total)."""
    tally: dict[str, int] = head["counts"]
    parts = [f"{head['done']}/{head['total']} steps done"]
    for name in PROGRESS_STATES:
        if tally.get(name):
            parts.append(f"{tally[name]} {STYLES[name].label}")
    started, finished = head.get("started_at"), head.get("finished_at")
    if started and head.get("status") not in ("reset", "pending"):
        parts.append(seconds((finished or head["now"]) - started))
    return " · ".join(parts)


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
