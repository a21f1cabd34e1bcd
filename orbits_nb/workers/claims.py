"""What a claim's taker does with a run whose cancel was requested before it began:
whoever claimed it (the worker, or a child going on to its next run) ends it cancelled
without executing it, dequeues it and lets its lease go."""

from __future__ import annotations

from typing import TYPE_CHECKING

from orbits_nb.core.rows import Batch, QueuedRun
from orbits_nb.core.state import RUN_TERMINAL, Event, RunState, fold

if TYPE_CHECKING:
    from orbits_nb.core.storage import Store


def cancel_unstarted(store: Store, entry: QueuedRun, token: str) -> None:
    events = store.load_run(entry.run_id)
    state = fold(entry.run_id, events) if events else None
    if state is not None and state.status not in RUN_TERMINAL:
        record_cancelled(store, state, "the run was cancelled before it began")
    store.dequeue(entry.run_id)
    store.release_lease("run", entry.run_id, token)


def record_cancelled(store: Store, state: RunState, message: str) -> None:
    """End ``state``'s run cancelled, with its open attempts, saying why."""
    error = {"type": "RunCancelled", "message": message}
    events = [Event(state.run_id, "step.cancelled", step.key, step.attempts,
                    data={"error": error})
              for step in state.steps.values()
              if step.status in ("running", "waiting", "retrying")]
    events.append(Event(state.run_id, "run.cancelled", data={"error": error}))
    store.write(Batch(events=events))
