"""The step inspector: everything about one selected step, read from the store.

Arguments (secrets masked), result, error with traceback, each attempt, captured
logs, and for an approval step its question. Recorded data comes from the store,
where secret values were already redacted when written.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from orbits_nb.core.dot import STYLES, Picture, display_status, seconds, short_action
from orbits_nb.core.state import AttemptSpan, Event, fold, short_error
from orbits_nb.views.model import APPROVAL_ACTION, mask, to_text
from orbits_nb.views.status import RunView, reset_target

if TYPE_CHECKING:
    from orbits_nb.engine.run import Run

LOG_LINES = 400


def resolve(picture: Picture, path: str) -> tuple[Picture, str] | None:
    """The (nested) run picture that owns step ``path``, and the step key in it."""
    parts = path.split("/")
    here = picture
    for part in parts[:-1]:
        child = here.children.get(part)
        if child is None:
            return None
        here = child
    return here, parts[-1]


def detail(run: Run, picture: Picture, path: str,
           groups: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """The inspector's content for ``path`` (a step path or a condensed group)."""
    if groups and path in groups:
        members = groups[path]
        statuses = {m: _status(picture, m) for m in members}
        return {"path": path, "group": True, "title": f"{len(members)} steps",
                "members": [{"path": m, "status": statuses[m]} for m in members[:500]],
                "more": max(0, len(members) - 500)}
    found = resolve(picture, path)
    if found is None:
        return {"path": path, "missing": True, "title": path}
    owner, key = found
    if key not in owner.state.steps:
        return _expected(owner, key, path)
    run.engine.writer.flush(10)
    events = run.engine.store.load_run(owner.state.run_id)
    step = fold(owner.state.run_id, events).steps.get(key) or owner.state.steps[key]
    status = display_status(step, owner.replayed)
    error = step.error or {}
    out: dict[str, Any] = {
        "path": path, "key": key, "run_id": owner.state.run_id, "title": key,
        "action": short_action(step.action), "action_path": step.action,
        "executor": step.executor, "status": status, "attempts": step.attempts,
        "started": _clock(step.started_at), "finished": _clock(step.finished_at),
        "duration": (seconds(step.duration) + (" (recorded; replayed)" if status == "replayed"
                                               else "")) if step.started_at else "",
        "args": to_text(mask(step.args)), "result": to_text(step.result),
        "error": short_error(step.error) if step.error else "",
        "traceback": str(error.get("traceback") or ""),
        "history": _attempts(events, key, step.spans), "child_run_id": step.child_run_id or "",
        "bag": to_text(step.bag) if step.bag else "",
        "worker": step.worker or "", "dashboard": _dashboard(events, key),
    }
    view = picture if isinstance(picture, RunView) and owner is picture else None
    discarded = view is not None and key in view.discarded
    resets = [e.ts for e in events if e.kind == "run.reset" and key in e.data.get("steps", ())]
    # A step run again after a reset shows the lines of its new attempts only.
    since = resets[-1] if resets and not discarded else None
    out.update(_logs(run, owner.state.run_id, key, since))
    out.update(_reset(picture, path))
    if view is not None and discarded:
        out["discarded"] = (f"Discarded by the reset from {view.reset_from}: it runs "
                            "again on the next start (Retry).")
        out["logs_label"] = "Logs before the reset"
    if step.action == APPROVAL_ACTION:
        out["approval"] = {"prompt": step.args.get("prompt", ""),
                           "details": to_text(step.args.get("details")),
                           "pending": status == "waiting"}
    return out


def _status(picture: Picture, path: str) -> str:
    found = resolve(picture, path)
    if found is None:
        return "expected"
    owner, key = found
    step = owner.state.steps.get(key)
    return display_status(step, owner.replayed) if step else "expected"


def _expected(owner: Picture, key: str, path: str) -> dict[str, Any]:
    previous = owner.previous
    step = previous.steps.get(key) if previous else None
    if step is None:
        return {"path": path, "missing": True, "title": key}
    return {"path": path, "key": key, "title": key, "status": "expected",
            "action": short_action(step.action), "action_path": step.action,
            "expected_from": previous.run_id if previous else "",
            "previous_status": step.status,
            "previous_duration": seconds(step.duration) if step.finished_at else ""}


def _clock(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else ""


def _attempts(events: list[Event], key: str,
              spans: list[AttemptSpan] | None = None) -> list[dict[str, Any]]:
    """One line per attempt: how it ended (as the fold closed it: an attempt whose
    process went away is ``interrupted``), in which execution, and its error."""
    attempts: dict[int, dict[str, Any]] = {}
    for event in events:
        if event.kind == "run.reset" and key in event.data.get("steps", ()):
            attempts.clear()  # a reset discarded the attempts before it
        if event.step != key or event.attempt is None:
            continue
        entry = attempts.setdefault(event.attempt, {"attempt": event.attempt,
                                                    "started": _clock(event.ts),
                                                    "status": "running", "error": ""})
        kind = event.kind.removeprefix("step.")
        if kind in ("succeeded", "failed", "cancelled", "retrying", "waiting"):
            entry["status"] = kind
        if event.data.get("error"):
            entry["error"] = short_error(event.data["error"])
        if event.data.get("worker"):  # where the attempt ran (a Dask worker)
            entry["worker"] = " → ".join(event.data.get("workers") or [event.data["worker"]])
    for span in spans or ():
        closed = attempts.get(span.attempt)
        if closed is not None:
            closed.update(status=span.status, execution=span.execution,
                         duration=seconds(span.duration()) if not span.open else "")
    return [attempts[n] for n in sorted(attempts)]


def _dashboard(events: list[Event], key: str) -> str:
    """The dashboard of the cluster that ran the step's latest attempt, if it has one."""
    links = [e.data["dashboard"] for e in events
             if e.step == key and isinstance(e.data.get("dashboard"), str)]
    link = links[-1] if links else ""
    return link if link.startswith(("http://", "https://")) else ""


def _logs(run: Run, run_id: str, key: str, since: float | None = None) -> dict[str, Any]:
    lines = [line for line in run.engine.store.logs(run_id, key)
             if since is None or line.ts >= since]
    shown = lines[-LOG_LINES:]
    # Several attempts: each line says which (an abandoned attempt's late output never
    # reads as the next one's).
    several = len({line.attempt for line in shown}) > 1
    text = "\n".join(f"{f'#{line.attempt} ' if several else ''}"
                     f"{'' if line.stream == 'stdout' else line.stream + ': '}{line.message}"
                     for line in shown)
    return {"logs": text, "logs_hidden": len(lines) - len(shown)}


def _reset(picture: Picture, path: str) -> dict[str, Any]:
    """What "reset from here" would discard: nested steps reset from their top step."""
    top = reset_target(picture, path)
    if not top:
        return {"reset_from": "", "reset_discards": []}
    state = picture.state
    gone = set(picture.discarded) if isinstance(picture, RunView) else set()
    target = state.steps[top]
    dropped = [s.key for s in state.ordered_steps() if s.pos >= target.pos
               and s.key not in gone]
    return {"reset_from": top, "reset_discards": dropped}


def legend() -> list[dict[str, str]]:
    return [{"status": name, "fill": s.fill, "border": s.border, "text": s.text}
            for name, s in STYLES.items()]
