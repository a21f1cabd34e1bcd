"""Consistent copies of a run's state for drawing, taken without racing the engine.

A live run's state is mutated on the engine's event-loop thread, so its copy is made
there (one short call); a recorded run is folded from the store. Nested workflow runs,
the previous run of the same workflow and finished child runs are read once and cached.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from orbits_nb.core.dot import Picture
from orbits_nb.core.state import RUN_TERMINAL, RunState, fold

if TYPE_CHECKING:
    from orbits_nb.engine.engine import Engine
    from orbits_nb.engine.run import Run
    from orbits_nb.engine.runner import RunExecution
    from orbits_nb.store.duckdb_store import DuckDBStore

T = TypeVar("T")
_MAX_DEPTH = 8


def on_engine_loop(engine: Engine, function: Callable[[], T], timeout: float = 10.0) -> T:
    """Call ``function`` on the engine's loop thread (where run state changes).

    Only for runs executing in this process: their engine's loop already exists.
    """
    loop = engine.loop
    if not loop.is_running():
        return function()
    try:
        if asyncio.get_running_loop() is loop:
            return function()
    except RuntimeError:
        pass
    future: concurrent.futures.Future[T] = concurrent.futures.Future()

    def call() -> None:
        try:
            future.set_result(function())
        except BaseException as err:  # handed to the waiting thread
            future.set_exception(err)

    loop.call_soon_threadsafe(call)
    return future.result(timeout)


def copy_state(state: RunState, redact: Callable[[str], str] | None = None) -> RunState:
    """A copy whose step table can be read while the original keeps changing."""
    out = copy.copy(state)
    out.steps = {}
    for key, step in state.steps.items():
        clone = copy.copy(step)
        if redact is not None and clone.error:
            clone.error = {k: redact(v) if isinstance(v, str) else v
                           for k, v in clone.error.items()}
        out.steps[key] = clone
    if redact is not None and out.error:
        out.error = {k: redact(v) if isinstance(v, str) else v for k, v in out.error.items()}
    return out


def previous_run(store: DuckDBStore, state: RunState) -> RunState | None:
    """The latest other top-level run of the same workflow created before ``state``."""
    if not state.workflow or state.parent_run_id:
        return None
    before = state.created_at if state.created_at is not None else 1e18
    rows = store.fetch(
        "SELECT run_id FROM events WHERE kind = 'run.created' AND step IS NULL "
        "AND data->>'workflow' = ? AND run_id <> ? AND data->>'parent_run_id' IS NULL "
        "AND ts < ? ORDER BY ts DESC LIMIT 1", [state.workflow, state.run_id, before])
    if not rows:
        return None
    run_id = str(rows[0][0])
    return fold(run_id, store.load_run(run_id))


#: Seconds between two looks at the drift records while a monitor refreshes.
DRIFT_REFRESH = 5.0


class Snapshotter:
    """Takes :class:`Picture` copies of one run, caching what cannot change any more."""

    def __init__(self, run: Run, *, previous: bool = True) -> None:
        self.run = run
        self.want_previous = previous
        self._previous: RunState | None = None
        self._previous_done = False
        self._finished: dict[str, RunState] = {}
        self._drifted: frozenset[str] = frozenset()
        self._drifted_at = -DRIFT_REFRESH

    @property
    def engine(self) -> Engine:
        return self.run.engine

    def _redact(self, text: str) -> str:
        redact = self.engine.writer.redact
        return redact(text) if redact is not None else text

    def take(self) -> Picture:
        """A consistent picture of the run as it is now."""
        execution = self.run.execution
        if execution is not None and not self.run.done:
            picture = on_engine_loop(self.engine, lambda: self._copy_live(execution, 0))
        elif execution is not None:
            picture = self._copy_live(execution, 0)
        else:
            picture = self._stored(self.run.run_id, 0)
        self._fill_stored_children(picture, 0)
        if self.want_previous:
            picture.previous = self._previous_of(picture.state)
        picture.drifted = self._drifted_steps()
        return picture

    def _drifted_steps(self) -> frozenset[str]:
        """Steps whose resource drifted since, re-read at most every DRIFT_REFRESH s."""
        now = time.monotonic()
        if now - self._drifted_at >= DRIFT_REFRESH:
            from orbits_nb.resources.api import drifted_steps

            self._drifted = frozenset(drifted_steps(self.engine.store, self.run.run_id))
            self._drifted_at = now
        return self._drifted

    def _copy_live(self, execution: RunExecution, depth: int) -> Picture:
        picture = Picture(copy_state(execution.state, self._redact),
                          frozenset(execution.replayed))
        if depth < _MAX_DEPTH:
            for key, child in list(execution.children.items()):
                picture.children[key] = self._copy_live(child, depth + 1)
        return picture

    def _stored(self, run_id: str, depth: int) -> Picture:
        cached = self._finished.get(run_id)
        if cached is not None:
            return Picture(cached)
        state = fold(run_id, self.engine.store.load_run(run_id))
        if state.status in RUN_TERMINAL and depth > 0:
            self._finished[run_id] = state
        return Picture(state)

    def _fill_stored_children(self, picture: Picture, depth: int) -> None:
        """Children not executing here (replayed, or run elsewhere) come from the store."""
        if depth >= _MAX_DEPTH:
            return
        for step in list(picture.state.steps.values()):
            if step.child_run_id and step.key not in picture.children:
                picture.children[step.key] = self._stored(step.child_run_id, depth + 1)
        for child in picture.children.values():
            self._fill_stored_children(child, depth + 1)

    def _previous_of(self, state: RunState) -> RunState | None:
        if not self._previous_done:
            self._previous = previous_run(self.engine.store, state)
            self._previous_done = True
        return self._previous


def picture_of(run: Run, *, previous: bool = True) -> Picture:
    """One picture of ``run`` (for a static diagram or table)."""
    return Snapshotter(run, previous=previous).take()

