"""What state a run is in for the person looking at it, and what its buttons may do.

Pure: a snapshot (:mod:`orbits_nb.views.snapshot`) gathers the facts (where the run
executes, whether its process still lives, what a reset discarded) into a
:class:`RunView`; everything shown about the run's state is derived here, once. The
status pill, the status line, the counts, the enabled buttons and the checks the
kernel makes before acting all come from these functions, so they cannot disagree.

>>> from orbits_nb.core.state import RunState
>>> view = RunView(RunState("r1", status="succeeded"), reset_from="deploy")
>>> run_status(view)
'reset'
>>> controls({"status": "reset", "reset_from": "deploy"})["retry"]["enabled"]
True
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from orbits_nb.core.dot import Picture
from orbits_nb.core.state import RUN_TERMINAL

#: Where a run executes: in this process, in another live one, in a process that died.
HERE, ELSEWHERE, GONE = "here", "elsewhere", "gone"
#: Run states in which nothing executes and nothing changes until somebody acts.
SETTLED = frozenset({*RUN_TERMINAL, "reset"})
#: How each run state is drawn (run states that are not step states borrow one).
PILL_STYLE = {"reset": "pending", "interrupted": "retrying"}


@dataclass
class RunView(Picture):
    """A :class:`Picture` plus the facts the run's status and buttons depend on.

    ``state`` is the run as it will be drawn: after a reset its discarded steps are
    back as pending steps and its status is ``pending``; ``recorded_status`` is the
    status the store holds.
    """

    recorded_status: str = ""
    #: HERE, ELSEWHERE, GONE, or "" when no process executes it.
    where: str = ""
    #: After ``run.reset(step)`` (until the run starts again): that step.
    reset_from: str = ""
    #: The steps that reset discarded, in order; they run again on the next start.
    discarded: tuple[str, ...] = ()
    #: Cancel was pressed and the run has not stopped yet.
    cancel_requested: bool = False


def run_status(picture: Picture) -> str:
    """The run's status as shown: the recorded one, or starting/reset/interrupted.

    ``pending`` for a run this process is about to execute again (a retry whose loop
    has not begun), ``reset`` for an ended run with discarded steps, ``interrupted``
    for an unfinished run whose process is gone.
    """
    if not isinstance(picture, RunView):
        return picture.state.status
    recorded = picture.recorded_status or picture.state.status
    if picture.where == HERE:
        return "pending" if recorded in RUN_TERMINAL else recorded
    if picture.where == GONE:
        return "interrupted"
    if picture.reset_from and (recorded in RUN_TERMINAL or recorded == "pending"):
        return "reset"
    return recorded


def where_text(head: dict[str, Any]) -> str:
    owner = head.get("owner") or {}
    worker = f"worker {head['worker']}, " if head.get("worker") else ""
    if owner.get("pid"):
        return f"{worker}pid {owner['pid']} on {owner.get('host') or 'another host'}"
    return worker.removesuffix(", ") or "another process"


def waiting_text(not_before: float | None, parked_for: dict[str, Any] | None = None,
                 now: float | None = None) -> str:
    """What a queued run waits for: ``sleeping until 14:05:09`` (a timer, or a watcher's
    next poll: ``... (then polls deploy/poll)``) while it is held back, else ``waiting
    for a worker``.

    >>> waiting_text(None)
    'waiting for a worker'
    """
    now = time.time() if now is None else now
    if not_before is None or not_before <= now:
        return "waiting for a worker"
    at = time.strftime("%H:%M:%S", time.localtime(not_before))
    parked = parked_for or {}
    if parked.get("reason") == "watcher" and parked.get("watcher"):
        return f"sleeping until {at} (then polls {parked['watcher']})"
    if parked.get("watcher"):
        return f"sleeping until {at} ({parked['watcher']})"
    return f"sleeping until {at}"


def status_line(head: dict[str, Any]) -> str:
    """What the run is doing now and what comes next, in a few words ("" if obvious)."""
    status, where = head.get("status"), head.get("where")
    if status == "reset":
        return (f"will re-run from {head.get('reset_from')}: press Retry, or re-run the "
                "cell that starts it")
    if status == "interrupted":
        return (f"its process ({where_text(head)}) is gone: press Retry to resume it "
                "here (succeeded steps replay)")
    if head.get("cancel_requested") and where in (HERE, ELSEWHERE):
        return "cancelling…" if where == HERE else f"cancelling in {where_text(head)}…"
    if status == "cancelled" and head.get("abandoned"):
        steps = ", ".join(head["abandoned"])
        return (f"cancelled; the thread of {steps} may still run (its outcome is "
                "discarded, its output kept with its attempt)")
    if where == HERE and status == "pending":
        return "starting…"
    if status == "queued" and where != ELSEWHERE:
        return waiting_text(head.get("not_before"), head.get("parked_for"), head.get("now"))
    if where == ELSEWHERE:
        return f"executing in {where_text(head)}"
    return ""


def _button(enabled: bool, label: str, title: str) -> dict[str, Any]:
    return {"enabled": enabled, "label": label, "title": title}


def controls(head: dict[str, Any], target: str = "", *, blocked: bool = False
             ) -> dict[str, Any]:
    """The monitor's Retry, Cancel and Reset buttons for run ``head`` (a header).

    ``target`` is the recorded top-level step a reset would start from ("" when the
    selection names none); ``blocked`` says a cell blocks the kernel, so no button
    (approvals included) can act until it returns: ``busy`` then says so. A disabled
    button's title says why and what to do, and is the kernel's answer if the button
    is pressed anyway.
    """
    out: dict[str, Any] = {"retry": _retry(head), "cancel": _cancel(head),
                           "reset": _reset(head, target), "busy": ""}
    if blocked:
        out["busy"] = (f"a cell is blocking this kernel (e.g. run.wait()): the buttons act "
                       f"once it returns. Interrupt it (■), or decide an approval from a "
                       f"terminal: orbits-nb approve {head.get('run_id')} STEP")
        for name in ("retry", "cancel", "reset"):
            if out[name]["enabled"]:
                out[name] = {**out[name], "enabled": False, "title": out["busy"]}
    return out


def _busy(head: dict[str, Any], verb: str) -> str:
    """Why ``verb`` cannot act while the run executes (here or elsewhere)."""
    run = f"run {head.get('run_id')!r}"
    if head.get("where") == ELSEWHERE:
        return f"{run} is executing in {where_text(head)}; {verb} it there (or wait for it)"
    return f"{run} is still executing; cancel it or wait for it before {verb}ing"


def _retry(head: dict[str, Any]) -> dict[str, Any]:
    status = head.get("status")
    label = "↻ Retry failed" if status == "failed" else "↻ Retry"
    titles = {
        "failed": "Run it again: succeeded steps replay, failed ones run again",
        "cancelled": "Run it again: succeeded steps replay, the others run",
        "reset": f"Run it again from {head.get('reset_from')}: the steps before it replay",
        "interrupted": f"Resume it here ({where_text(head)} is gone): succeeded steps "
                       "replay, the others run",
    }
    if status in titles:
        return _button(True, label, titles[status])
    if status == "succeeded":
        return _button(False, label, f"run {head.get('run_id')!r} succeeded: nothing to "
                       "retry (reset it from a step to run that step again)")
    return _button(False, label, _busy(head, "retry"))


def _cancel(head: dict[str, Any]) -> dict[str, Any]:
    status, where = head.get("status"), head.get("where")
    run = f"run {head.get('run_id')!r}"
    if where == HERE and not head.get("cancel_requested"):
        return _button(True, "■ Cancel", "Cancel it: waiting steps stop now, a step busy "
                       "in a thread finishes first; each is recorded")
    if where == HERE:
        return _button(False, "■ Cancel", f"{run} is being cancelled")
    if where == ELSEWHERE and not head.get("cancel_requested"):
        return _button(True, "■ Cancel", f"Cancel it: {where_text(head)}, which executes "
                       "it, is asked through the store and stops it within a second")
    if where == ELSEWHERE:
        return _button(False, "■ Cancel", f"{run} is being cancelled in "
                       f"{where_text(head)}")
    if status == "queued" and not head.get("cancel_requested"):
        return _button(True, "■ Cancel", "Cancel it: it waits for a worker, so it is "
                       "recorded cancelled here and executes no further")
    if status == "interrupted":
        return _button(False, "■ Cancel", f"nothing executes {run}: its process "
                       f"({where_text(head)}) is gone")
    return _button(False, "■ Cancel", f"{run} is not executing ({status})")


def _reset(head: dict[str, Any], target: str) -> dict[str, Any]:
    status = head.get("status")
    label = "⟲ Reset from selected…"
    if status == "interrupted":
        return _button(False, label, f"run {head.get('run_id')!r} did not end (its process "
                       "is gone): press Retry to resume it first")
    if status not in SETTLED:
        return _button(False, label, _busy(head, "reset"))
    if not target:
        return _button(False, label, "select a step that ran (in the diagram or the "
                       "table) to reset the run from it")
    return _button(True, f"⟲ Reset from {target}…", f"Discard {target} and the steps "
                   "after it, so they run again on the next start (asks first)")


def reset_target(picture: Picture, path: str) -> str:
    """The recorded top-level step a reset from ``path`` starts at ("" if none).

    A nested step resets from the step that runs its workflow; a step a reset already
    discarded, or one only expected, has no record to discard.
    """
    top = path.split("/", 1)[0]
    discarded = picture.discarded if isinstance(picture, RunView) else ()
    if not top or top not in picture.state.steps or top in discarded:
        return ""
    return top
