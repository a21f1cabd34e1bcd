"""Cycles: what a resource does every ``cycle_every``, run by ``ob.watch_drift()``.

An agent with ``async def cycle(self)`` runs it as a recorded command (a nested run
under the agent's lease); any other resource with ``cycle_every`` is observed (recorded
with source ``cycle``) and reconciled only when its class says ``reconcile_on_cycle``.
Every cycle leaves a row in the drift history with source ``cycle``.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from orbits_nb.core.rows import ResourceRow
from orbits_nb.resources.check import check_rows

if TYPE_CHECKING:
    from orbits_nb.engine.engine import Engine


def interval_of(cls: type[Any]) -> float | None:
    """The class's ``cycle_every`` in seconds, or None when it has no cycle."""
    from orbits_nb.resources.watch import parse_every

    every = getattr(cls, "cycle_every", None)
    return None if every is None else parse_every(every)


def due(engine: Engine, rows: list[ResourceRow], last: dict[str, float],
        now: float) -> list[ResourceRow]:
    """The rows whose cycle is due (``last``: when each key's cycle last ran)."""
    from orbits_nb.engine.resume import import_class

    out = []
    for row in rows:
        try:
            interval = interval_of(import_class(row.type))
        except Exception:  # an unimportable class is reported by the drift check
            continue
        if interval is not None and now - last.get(row.key, 0.0) >= interval:
            out.append(row)
    return out


async def run_cycle(engine: Engine, row: ResourceRow) -> dict[str, Any]:
    """One cycle of ``row``'s resource; returns what it did (recorded as drift history)."""
    from orbits_nb.engine.resume import import_class
    from orbits_nb.resources.agent import command_names
    from orbits_nb.resources.commands import Command, Reconcile

    cls = import_class(row.type)
    if getattr(cls, "is_agent", False) and "cycle" in command_names(cls):
        run = engine.start(Command(resource=row.key, command="cycle"), fresh=True)
        await asyncio.to_thread(run.wait)
        [check] = await check_rows(engine, [row], source="cycle")
        return {"key": row.key, "ran": "cycle", "run_id": run.run_id, "status": check.status}
    [check] = await check_rows(engine, [row], source="cycle")
    if check.ok or not getattr(cls, "reconcile_on_cycle", False):
        return {"key": row.key, "ran": "observe", "status": check.status}
    run = engine.start(Reconcile(resources=[row.key]), fresh=True)
    await asyncio.to_thread(run.wait)
    return {"key": row.key, "ran": "reconcile", "run_id": run.run_id, "status": check.status}


async def run_due(engine: Engine, rows: list[ResourceRow], last: dict[str, float]
                  ) -> list[dict[str, Any]]:
    """Run the cycles that are due among ``rows``, one at a time; errors are results."""
    now = time.time()
    out = []
    for row in due(engine, rows, last, now):
        last[row.key] = now
        try:
            out.append(await run_cycle(engine, row))
        except Exception as err:  # a failing cycle must not stop the others
            out.append({"key": row.key, "ran": "error", "error": f"{type(err).__name__}: "
                                                                   f"{err}"})
    return out
