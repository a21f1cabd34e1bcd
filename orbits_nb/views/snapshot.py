"""Consistent copies of a run's state for drawing, taken without racing the engine.

A run executing in this process is copied on the engine's event-loop thread, where its
state changes (one short call); any other run, finished ones included, is folded from
the store, so a reset or a retry made elsewhere shows. A snapshot also records where
the run executes and whether that process still lives (a
:class:`~orbits_nb.views.status.RunView`). Nested workflow runs, the previous run of
the same workflow and finished child runs are read once and cached.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from orbits_nb.core.dot import Picture
from orbits_nb.core.state import RUN_TERMINAL, Event, RunState, StepState, apply, fold
from orbits_nb.views.status import ELSEWHERE, GONE, HERE, RunView

if TYPE_CHECKING:
    from orbits_nb.core.storage import Store
    from orbits_nb.engine.engine import Engine
    from orbits_nb.engine.run import Run
    from orbits_nb.engine.runner import RunExecution

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


async def settled(run: Run) -> None:
    """Return once ``run`` has ended, however it ended (its outcome is in the store)."""
    await asyncio.wait([asyncio.ensure_future(run)])


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


def fold_resets(run_id: str, events: list[Event]) -> tuple[RunState, list[StepState], str]:
    """The run's state, the steps resets discarded since it last started, and the step
    the latest reset starts from ("" when there was none)."""
    state = RunState(run_id)
    discarded: dict[str, StepState] = {}
    reset_from = ""
    for event in events:
        if event.step is None and event.kind == "run.started":
            discarded, reset_from = {}, ""
        elif event.step is None and event.kind == "run.reset":
            for key in event.data.get("steps", []):
                if key in state.steps:
                    discarded[key] = state.steps[key]
            reset_from = str(event.data.get("from") or "")
        apply(state, event)
    return state, sorted(discarded.values(), key=lambda s: s.pos), reset_from


def as_reset(state: RunState, discarded: list[StepState]) -> RunState:
    """``state`` as its next start will find it: the discarded steps pending again."""
    out = copy_state(state)
    out.status = "pending"
    for step in discarded:
        out.steps[step.key] = StepState(
            step.key, name=step.name, pos=step.pos, action=step.action, args=step.args,
            executor=step.executor, parents=list(step.parents), concurrent=step.concurrent)
    return out


def recorded_replays(state: RunState) -> frozenset[str]:
    """Succeeded steps whose latest attempt belongs to an earlier execution than the
    run's latest: that execution replayed them from the record."""
    return frozenset(key for key, step in state.steps.items()
                     if step.status == "succeeded" and step.replayed_in(state.executions))


def owner_lives(store: Store, run_id: str) -> bool:
    """Whether a live process holds the lease of ``run_id`` (or of its top-level run)."""
    leases = store.leases("run", sorted({run_id, run_id.split("/", 1)[0]}))
    return any(store.alive(lease.host, lease.pid, lease.heartbeat) for lease in leases)


def previous_run(store: Store, state: RunState) -> RunState | None:
    """The latest other top-level run of the same workflow created before ``state``."""
    if not state.workflow or state.parent_run_id:
        return None
    before = state.created_at if state.created_at is not None else 1e18
    run_id = store.previous_run(state.workflow, state.run_id, before)
    return None if run_id is None else fold(run_id, store.load_run(run_id))


#: Seconds between two looks at the drift records while a monitor refreshes.
DRIFT_REFRESH = 5.0


class Snapshotter:
    """Takes :class:`RunView` copies of one run, caching what cannot change any more."""

    def __init__(self, run: Run, *, previous: bool = True) -> None:
        self.run = run
        self.want_previous = previous
        self._previous: RunState | None = None
        self._previous_done = False
        self._finished: dict[tuple[str, float | None], RunState] = {}
        self._drifted: frozenset[str] = frozenset()
        self._drifted_at = -DRIFT_REFRESH

    @property
    def engine(self) -> Engine:
        return self.run.engine

    def _redact(self, text: str) -> str:
        redact = self.engine.writer.redact
        return redact(text) if redact is not None else text

    def executing_here(self) -> Run | None:
        """The handle executing the run in this process now, if any."""
        live = self.engine.active.get(self.run.run_id)
        return live if live is not None and not live.done else None

    def take(self) -> RunView:
        """A consistent picture of the run as it is now."""
        live = self.executing_here()
        execution = live.execution if live is not None else None
        if live is not None and execution is not None:
            picture = on_engine_loop(self.engine, lambda: self._copy_live(execution, 0))
            view = RunView(picture.state, picture.replayed, children=picture.children,
                           recorded_status=picture.state.status, where=HERE,
                           cancel_requested=live.cancel_requested)
        else:
            view = self._stored_view(live)
        self._fill_stored_children(view, 0)
        if self.want_previous:
            view.previous = self._previous_of(view.state)
        view.drifted = self._drifted_steps()
        return view

    def _stored_view(self, live: Run | None) -> RunView:
        """The run as the store has it, with what a reset discarded pending again."""
        run_id = self.run.run_id
        state, discarded, reset_from = fold_resets(run_id, self.engine.store.load_run(run_id))
        recorded = state.status
        where = HERE if live is not None else ""
        # After a reset the run is pending (it will execute again), not abandoned.
        settled = recorded in RUN_TERMINAL or state.reset_from is not None
        if not where and not settled:
            # A queued run nobody holds waits for a worker: it was not interrupted.
            where = ELSEWHERE if owner_lives(self.engine.store, run_id) else \
                "" if recorded == "queued" else GONE
        replayed = self._replayed(state)
        shown = copy_state(state, self._redact)
        if settled and (where == HERE or discarded):
            # About to execute again, or reset: drawn as its next start will find it.
            shown = as_reset(shown, discarded)
        elif where == GONE:
            # Nothing executes its unfinished steps any more; a resume runs them again.
            for step in shown.steps.values():
                if step.status in ("running", "waiting", "retrying"):
                    step.status = "pending"
        return RunView(shown, replayed, recorded_status=recorded, where=where,
                       reset_from=reset_from if discarded else "",
                       discarded=tuple(s.key for s in discarded),
                       cancel_requested=bool(live and live.cancel_requested)
                       or state.cancel_requested is not None)

    def _replayed(self, state: RunState) -> frozenset[str]:
        """Steps the latest execution replayed: by the record (whoever executed it),
        and as this process's execution of it saw them."""
        recorded = recorded_replays(state)
        execution = self.run.execution
        if execution is None or execution.state.executions != state.executions:
            return recorded
        return recorded | frozenset(k for k in execution.replayed
                                    if k in state.steps
                                    and state.steps[k].status == "succeeded")

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

    def _stored(self, run_id: str, stamp: float | None) -> Picture:
        # A finished child changes only when its step runs again (after a reset).
        key = (run_id, stamp)
        cached = self._finished.get(key)
        if cached is not None:
            return Picture(cached, recorded_replays(cached))
        state = fold(run_id, self.engine.store.load_run(run_id))
        if state.status in RUN_TERMINAL and stamp is not None:
            self._finished[key] = state
        return Picture(state, recorded_replays(state))

    def _fill_stored_children(self, picture: Picture, depth: int) -> None:
        """Children not executing here (replayed, or run elsewhere) come from the store."""
        if depth >= _MAX_DEPTH:
            return
        for step in list(picture.state.steps.values()):
            if step.child_run_id and step.key not in picture.children:
                picture.children[step.key] = self._stored(step.child_run_id,
                                                          step.finished_at)
        for child in picture.children.values():
            self._fill_stored_children(child, depth + 1)

    def _previous_of(self, state: RunState) -> RunState | None:
        if not self._previous_done:
            self._previous = previous_run(self.engine.store, state)
            self._previous_done = True
        return self._previous


def picture_of(run: Run, *, previous: bool = True) -> RunView:
    """One picture of ``run`` (for a static diagram or table)."""
    return Snapshotter(run, previous=previous).take()

