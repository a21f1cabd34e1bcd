"""What the monitor's buttons do. Each handler returns the line shown to the user.

Whether a button may act at all is decided before a handler runs, by the same mapping
that enables the buttons (:func:`orbits_nb.views.status.controls`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from orbits_nb.core.errors import OrbitsError
from orbits_nb.views import status

if TYPE_CHECKING:
    from orbits_nb.views.monitor import Monitor

#: Run states (besides the one it was said in) in which an action's notice stays true;
#: "*" for a fact that stays true whatever the run does next.
LASTS: dict[str, tuple[str, ...]] = {
    "retry": ("pending", "queued", "running"),
    "cancel": ("pending", "queued", "running"),
    "approve": ("*",),
    "reject": ("*",),
}


def retry(monitor: Monitor, _step: str, _comment: str) -> str:
    was, since = monitor.header.get("status"), monitor.header.get("reset_from")
    try:
        fresh = monitor.run.retry()
    except OrbitsError as err:  # e.g. another live process executes it
        raise OrbitsError(f"could not retry run {monitor.run_id!r}: {err}") from err
    monitor.bind(fresh)
    if was == "reset":
        return f"running again from {since}: the steps before it replay from history"
    if was == "interrupted":
        return "resuming here: steps that succeeded replay, the others run again"
    return ("retrying: steps that succeeded are replayed from history, failed and "
            "unfinished steps run again")


def cancel(monitor: Monitor, _step: str, _comment: str) -> str:
    live = monitor.executing()
    if live is not None:
        live.cancel(via="notebook")
        monitor.poke()
        return ("cancelling: waiting steps stop now; a step busy in a thread is "
                "abandoned (its thread runs on until its call returns, what it prints "
                "stays with that attempt, its outcome is discarded)")
    outcome = monitor.run.cancel(via="notebook")
    monitor.poke()
    if outcome == "requested":
        return (f"asked {status.where_text(monitor.header)}, which executes the run, to "
                "cancel it: it stops there within a second")
    if outcome == "cancelled":
        return "cancelled: nothing was executing it"
    return "it had already ended: nothing to cancel"


def reset(monitor: Monitor, step: str, _comment: str) -> str:
    target = step.split("/", 1)[0]
    monitor.run.reset(target)
    # The handle (and the workflow it was started with) stays: Retry executes that
    # workflow again; the snapshot reads the reset from the store.
    monitor.refresh()
    dropped = monitor.header.get("discarded") or [target]
    return (f"reset from {target!r}: {len(dropped)} recorded step"
            f"{'' if len(dropped) == 1 else 's'} discarded ({', '.join(dropped)})")


def _decide(decision: str) -> Callable[[Monitor, str, str], str]:
    def handler(monitor: Monitor, step: str, comment: str) -> str:
        from orbits_nb.approval import decide

        if not step:
            raise OrbitsError(f"say which approval step to mark {decision}")
        made = decide(monitor.run.engine.store, monitor.run_id, step, decision,
                      comment=comment or None, via="notebook")
        monitor.poke()
        verb = "approved" if decision == "approved" else "rejected"
        where = monitor.header.get("where")
        if where == status.GONE:
            then = "; it takes effect when the run is resumed (Retry)"
        elif where == status.ELSEWHERE:
            then = f"; the run goes on in {status.where_text(monitor.header)}"
        else:
            then = "" if decision == "approved" else "; the step fails"
        return f"{made.step!r} {verb} by {made.by}{then}"
    return handler


HANDLERS: dict[str, Callable[[Monitor, str, str], str]] = {
    "retry": retry,
    "cancel": cancel,
    "reset": reset,
    "approve": _decide("approved"),
    "reject": _decide("rejected"),
}
