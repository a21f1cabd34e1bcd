"""What the monitor's buttons do. Each handler returns the line shown to the user."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from orbits_nb.core.errors import OrbitsError
from orbits_nb.core.state import RUN_TERMINAL

if TYPE_CHECKING:
    from orbits_nb.views.monitor import Monitor


def retry(monitor: Monitor, _step: str, _comment: str) -> str:
    run = monitor.run
    if monitor.remote and not run.done:
        raise OrbitsError(_elsewhere(monitor, "retry"))
    if not run.done:
        raise OrbitsError(f"run {run.run_id!r} is still executing; cancel it or wait "
                          "before retrying")
    fresh = run.retry()
    monitor.bind(fresh)
    return ("retrying: steps that succeeded are replayed from history, failed and "
            "unfinished steps run again")


def cancel(monitor: Monitor, _step: str, _comment: str) -> str:
    run = monitor.run
    if monitor.header.get("terminal"):
        raise OrbitsError(f"run {run.run_id!r} has already ended "
                          f"({monitor.header.get('status')})")
    if monitor.remote:
        raise OrbitsError(_elsewhere(monitor, "cancel"))
    run.cancel()
    return "cancelling: in-flight steps are cancelled and recorded as such"


def reset(monitor: Monitor, step: str, _comment: str) -> str:
    from orbits_nb.engine.run import Run

    run = monitor.run
    top = step.split("/", 1)[0]
    if not top:
        raise OrbitsError("select the step to reset from first")
    if monitor.header.get("status") not in RUN_TERMINAL or not run.done:
        raise OrbitsError(f"run {run.run_id!r} is executing; cancel it (or wait) before "
                          "resetting it")
    run.reset(top)
    # The old handle holds the pre-reset state in memory: follow the store from now on.
    monitor.bind(Run(run.engine, run.run_id))
    return (f"reset from {top!r}: that step and the ones after it will run again. Press "
            "Retry, or re-run the cell that starts the workflow")


def _decide(decision: str) -> Callable[[Monitor, str, str], str]:
    def handler(monitor: Monitor, step: str, comment: str) -> str:
        from orbits_nb.approval import decide

        if not step:
            raise OrbitsError(f"say which approval step to mark {decision}")
        made = decide(monitor.run.engine.store, monitor.run_id, step, decision,
                      comment=comment or None, via="notebook")
        monitor.poke()
        verb = "approved" if decision == "approved" else "rejected"
        return f"{made.step!r} {verb} by {made.by}" + (
            "; the run continues" if decision == "approved" else "; the step fails")
    return handler


def _elsewhere(monitor: Monitor, what: str) -> str:
    owner = monitor.header.get("owner") or {}
    where = f"pid {owner.get('pid')} on {owner.get('host')}" if owner.get("pid") else \
        "another process"
    return (f"run {monitor.run_id!r} is executing in {where}; {what} it there (or wait "
            "for it to end)")


HANDLERS: dict[str, Callable[[Monitor, str, str], str]] = {
    "retry": retry,
    "cancel": cancel,
    "reset": reset,
    "approve": _decide("approved"),
    "reject": _decide("rejected"),
}
