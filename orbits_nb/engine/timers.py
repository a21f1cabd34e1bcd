"""Waiting for durable timers, and parking a run that only waits for one."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from orbits_nb.core.timer import RunParked

if TYPE_CHECKING:
    from orbits_nb.engine.runner import RunExecution


async def wait_due(execution: RunExecution, name: str, due: float) -> None:
    """Wait until ``due``. A top-level run on a worker (``engine.park_after`` set) with
    no other step in flight and at least ``park_after`` seconds to wait is parked: its
    queue entry waits until ``due`` and the run stops without ending, freeing its slot
    (its lease is released as the run stops, after the entry is held back)."""
    remaining = due - time.time()
    if remaining <= 0:
        return
    engine = execution.engine
    park = engine.park_after
    if park is not None and remaining >= park and execution.parent is None and \
            not execution.inflight:
        await asyncio.get_running_loop().run_in_executor(
            None, engine.store.park_run, execution.run_id, due)
        raise RunParked(f"timer {name!r} is due at {due:.3f}", run_id=execution.run_id,
                        step=name, until=due, reason="timer", watcher=name)
    await asyncio.sleep(remaining)
