"""Waiting for durable timers, and parking a run that only waits (for a timer, or for
a watcher's next poll) so that it frees its worker slot."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from orbits_nb.core.timer import RunParked

if TYPE_CHECKING:
    from orbits_nb.engine.runner import RunExecution


async def wait_due(execution: RunExecution, name: str, due: float) -> None:
    """Wait until ``due``, parking the run when it may (see :func:`park`)."""
    remaining = due - time.time()
    if remaining <= 0:
        return
    await park(execution, due, own=0, reason="timer", watcher=name)
    await asyncio.sleep(remaining)


async def park(execution: RunExecution, until: float, *, own: int, reason: str,
               watcher: str | None) -> None:
    """Park the run if it only waits until ``until``: on a worker (``engine.park_after``
    set), at least ``park_after`` seconds ahead, and nothing else of the run in flight
    (``own`` steps of ``execution`` itself, one step in each run above it: the one
    that executes it). Its top-level run's queue entry waits until ``until`` and the
    run stops without ending (RunParked), freeing its slot (its lease is released as
    the run stops, after the entry is held back). Returns when it may not park."""
    engine = execution.engine
    limit = engine.park_after
    if limit is None or until - time.time() < limit or not execution.solo(own):
        return
    top = execution.run_id.split("/", 1)[0]
    await asyncio.get_running_loop().run_in_executor(None, engine.store.park_run, top,
                                                     until)
    what = f"timer {watcher!r}" if reason == "timer" else "the watcher"
    raise RunParked(f"{what} waits until {until:.3f}", run_id=execution.run_id,
                    step=watcher, until=until, reason=reason, watcher=watcher)
