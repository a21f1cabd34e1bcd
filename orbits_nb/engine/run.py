"""The :class:`Run` handle: status, result, steps, logs, wait/await, cancel, reset."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from orbits_nb.core.errors import ActionNotFound, OrbitsError, RemoteError
from orbits_nb.core.rows import Batch
from orbits_nb.core.state import RUN_TERMINAL, Event, RunState, fold, short_error
from orbits_nb.engine.flight import result_of
from orbits_nb.engine.table import duration_text, relation_table, step_relation

if TYPE_CHECKING:
    import duckdb

    from orbits_nb.core.ports import Executor
    from orbits_nb.core.workflow import Workflow
    from orbits_nb.engine.engine import Engine
    from orbits_nb.engine.runner import RunExecution


class Run:
    """A handle on one run, live in this process or recorded in the store."""

    def __init__(self, engine: Engine, run_id: str, *, workflow: Workflow | None = None,
                 execution: RunExecution | None = None,
                 future: concurrent.futures.Future[Any] | None = None) -> None:
        self.engine = engine
        self.run_id = run_id
        self.workflow = workflow
        self.execution = execution
        self._future: concurrent.futures.Future[Any] | None = None
        #: The outcome once the future resolved (the future itself is let go then).
        self._settled: _Settled | None = None
        if future is not None:
            self.attach_future(future)
        self.cancel_requested = False
        #: The executor given to start(), used again by retry().
        self.executor: Executor | None = None

    def attach_future(self, future: concurrent.futures.Future[Any]) -> None:
        self._future = future
        future.add_done_callback(self._settle)

    def _settle(self, future: concurrent.futures.Future[Any]) -> None:
        """Keep the outcome, not the future (its lock and condition weigh more)."""
        if future.cancelled():
            self._settled = _Settled(cancelled=True)
        else:
            error = future.exception()
            self._settled = _Settled(None if error is not None else future.result(), error)
        if self._future is future:
            self._future = None

    @property
    def future(self) -> concurrent.futures.Future[Any] | None:
        """What resolves with the run's outcome, for a run started in this process."""
        return self._future

    # -- state ------------------------------------------------------------------------
    def state(self) -> RunState:
        """The run's current state (live in memory while executing, else from the store)."""
        execution, future = self.execution, self._future
        if execution is not None and not execution.released and future is not None \
                and not future.done():
            return execution.state
        self.engine.writer.flush_for_read()
        return fold(self.run_id, self.engine.store.load_run(self.run_id))

    @property
    def done(self) -> bool:
        future = self._future
        if future is not None:
            return future.done()
        if self._settled is not None:
            return True
        return self.state().status in RUN_TERMINAL

    @property
    def status(self) -> str:
        """``pending``, ``running``, ``succeeded``, ``failed`` or ``cancelled``."""
        return self.state().status

    @property
    def result(self) -> Any:
        return self.state().result

    @property
    def error(self) -> dict[str, Any] | None:
        """The error of a failed run: ``type``, ``message``, ``traceback``."""
        return self.state().error

    def steps(self) -> duckdb.DuckDBPyRelation:
        """The run's steps in order, as an in-memory DuckDB relation (``.df()``,
        ``.fetchall()``, SQL): ``step``, ``status``, ``attempts``, ``action``,
        ``started_at``, ``duration_s`` (the work of its attempts, kept when a later
        execution replays it), ``replayed`` (replayed from the record in the latest
        execution), ``result``, ``error``, ``worker`` (where the latest attempt ran, when
        an executor reported it). A notebook shows it as a readable table."""
        return step_relation(self.state())

    def logs(self, step: str | None = None) -> str:
        """Captured print and logging output, of one step or of the whole run."""
        self.engine.writer.flush_for_read()
        lines = self.engine.store.logs(self.run_id, step)
        if step is None:
            return "\n".join(f"[{line.step}] {line.message}" for line in lines)
        return "\n".join(line.message for line in lines)

    # -- waiting --------------------------------------------------------------------
    def wait(self, timeout: float | None = None) -> Any:
        """Block until the run ends; return its result or raise its error.

        In a terminal, progress is shown on stderr meanwhile (``ORBITS_NB_PROGRESS=1``
        forces it, ``0`` silences it).
        """
        from orbits_nb.engine.progress import shown_while_waiting

        with shown_while_waiting(self):
            return self._wait(timeout)

    def _wait(self, timeout: float | None) -> Any:
        future = self._future
        if future is not None:
            return future.result(timeout)
        if self._settled is not None:
            return self._settled.outcome()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            state = self.state()
            if state.status in RUN_TERMINAL:
                return self._outcome(state)
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"run {self.run_id!r} still {state.status}")
            time.sleep(0.2)

    def _outcome(self, state: RunState) -> Any:
        if state.status == "succeeded":
            return state.result
        error = state.error or {}
        raise RemoteError(str(error.get("type", "Error")), str(error.get("message", "")),
                          str(error.get("traceback", "")))

    def __await__(self) -> Generator[Any, None, Any]:
        future = self._future
        if future is None:
            if self._settled is not None:
                return _settled(self._settled).__await__()
            return asyncio.get_running_loop().run_in_executor(None, self.wait).__await__()
        # Giving up on the wait (a timeout, an interrupted cell) leaves the run going,
        # as with wait(); run.cancel() is how a run is cancelled.
        return result_of(future).__await__()

    # -- control --------------------------------------------------------------------
    def cancel(self, *, via: str = "python") -> str:
        """Cancel the run, wherever it executes; returns what happened.

        Executing here: its steps are cancelled and recorded as such (``cancelling``).
        A coroutine stops at its next ``await``, a child process is terminated; a plain
        ``main()``/``watch()`` busy in a thread cannot be stopped: its attempt is
        recorded as abandoned (its thread runs on, its output still lands in that
        attempt, its outcome is discarded) and the run ends cancelled at once.
        Executing in another process (or on another host): a ``run.cancel_requested``
        event tells its owner, which cancels it within a second (``requested``).
        Executing nowhere (not started, its process gone): it is recorded as cancelled
        here (``cancelled``). ``ended`` when it had ended already. A nested run is
        cancelled with the run it is nested in.
        """
        from orbits_nb.engine.control import cancel_elsewhere, request

        future = self._future
        if future is not None:
            if future.done():
                return "ended"
            self.cancel_here(request(via))
            return "cancelling"
        if self._settled is not None:
            return "ended"
        return cancel_elsewhere(self.engine, self.run_id, via)

    def cancel_here(self, asked: dict[str, Any] | None) -> None:
        """Cancel the run executing in this process; ``asked`` (who asked, how) is
        recorded, unless the request is already recorded (it came through the store)."""
        future = self._future
        if future is None or future.done():
            return
        if self.execution is None and self.engine.withdraw(self):
            return  # it was queued (``max_active_runs``): it never begins
        self.cancel_requested = True
        execution = self.execution
        if execution is not None:
            self.engine.loop.call_soon_threadsafe(_cancel_on_loop, execution, asked)

    def reset(self, step: str) -> None:
        """Discard ``step`` and every step that started after it in this run.

        The next start re-executes from ``step`` (the run is ``pending`` meanwhile).
        The run must not be executing, here or in another live process (a run whose
        process died may be reset).
        """
        from orbits_nb.engine.control import held, root_of

        future = self._future
        if future is not None and not future.done():
            raise OrbitsError(f"run {self.run_id!r} is executing", run_id=self.run_id,
                              hint="cancel it (run.cancel()) or wait for it before reset()",
                              cli_hint="wait for it to finish (or stop the process "
                                       "executing it), then reset it")
        self.engine.writer.flush()
        self.engine.completed.forget(self.run_id)
        with self.engine.store.keep_open(), held(self.engine, self.run_id,
                                                 "reset") as owner:
            events = self._reset_events(step)
            self.engine.writer.submit(Batch(events=events, release_leases=[
                (root_of(self.run_id), owner.token)])).result()

    def _reset_events(self, step: str) -> list[Event]:
        state = fold(self.run_id, self.engine.store.load_run(self.run_id))
        target = state.steps.get(step)
        if target is None:
            known = ", ".join(s.key for s in state.ordered_steps()) or "none"
            raise OrbitsError(f"run {self.run_id!r} has no step {step!r} (steps: {known})",
                              run_id=self.run_id, step=step,
                              hint="name a step as run.steps() lists it",
                              cli_hint=f"name a step as `orbits-nb show {self.run_id}` "
                                       "lists it")
        dropped = [s for s in state.steps.values() if s.pos >= target.pos]
        events = [Event(self.run_id, "run.reset", data={"steps": [s.key for s in dropped],
                                                       "from": step})]
        for s in dropped:
            if s.child_run_id:
                child = fold(s.child_run_id, self.engine.store.load_run(s.child_run_id))
                events.append(Event(s.child_run_id, "run.reset",
                                    data={"steps": list(child.steps), "from": step}))
        return events

    def retry(self) -> Run:
        """Execute the run again: completed steps replay, failed ones run again.

        A run executing here returns its live handle; one executing in another live
        process is refused (naming it): cancel it there first. A run submitted to a
        queue goes back to that queue; any other executes here.
        """
        from orbits_nb.engine.control import live_owner, owned

        future = self._future
        if future is not None and not future.done():
            return self
        lease = live_owner(self.engine, self.run_id)
        if lease is not None:
            raise owned(lease, "retry")
        workflow = self.workflow or self._load_workflow()
        meta = self.state().meta if self.workflow is None else {}
        if meta.get("queue"):
            return self.engine.submit(workflow, run_id=self.run_id, queue=meta["queue"],
                                      key=meta.get("key"))
        return self.engine.start(workflow, run_id=self.run_id, executor=self.executor)

    def _load_workflow(self) -> Workflow:
        from orbits_nb.engine.resume import load_workflow

        state = self.state()
        try:
            return load_workflow(state.workflow, state.args)
        except ActionNotFound:
            raise
        except Exception as err:
            raise ActionNotFound(f"cannot rebuild {state.workflow} for run "
                                 f"{self.run_id!r}: {err}", run_id=self.run_id) from err

    # -- display --------------------------------------------------------------------
    def __repr__(self) -> str:
        state = self.state()
        steps = state.ordered_steps()
        ok = sum(s.status == "succeeded" for s in steps)
        head = (f"Run {self.run_id} [{state.status}] {ok}/{len(steps)} steps succeeded")
        if state.executions > 1:
            head += f", {state.executions} executions\n  executions: " + ", ".join(
                f"#{span.execution} {span.status} {duration_text(span.duration())}"
                for span in state.spans)
        if state.error:
            head += f"\n  error: {short_error(state.error)}"
        if not steps:
            return head
        table = relation_table(step_relation(state))
        if not any(row["worker"] for row in table.rows):
            table.columns = [c for c in table.columns if c != "worker"]
        return head + "\n" + table.text()

    def graph(self, *, rankdir: str = "TB", title: bool = True,
              max_nodes: int | None = 150, previous: bool = True) -> Any:
        """The run's diagram as a ``graphviz.Digraph`` (displays without system Graphviz).

        Steps are coloured by state; steps of the previous run of this workflow not
        reached yet are greyed; runs above ``max_nodes`` steps are condensed.
        """
        from orbits_nb.views.graph import run_graph

        return run_graph(self, rankdir=rankdir, title=title, max_nodes=max_nodes,
                         previous=previous)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        from orbits_nb.views.display import mimebundle

        return mimebundle(self, include, exclude)

    def _ipython_display_(self) -> None:
        from orbits_nb.views.display import ipython_display

        ipython_display(self)


class _Settled:
    """How a run started here ended: its result, its error, or a cancel."""

    __slots__ = ("cancelled", "error", "result")

    def __init__(self, result: Any = None, error: BaseException | None = None, *,
                 cancelled: bool = False) -> None:
        self.result, self.error, self.cancelled = result, error, cancelled

    def outcome(self) -> Any:
        if self.cancelled:
            raise concurrent.futures.CancelledError
        if self.error is not None:
            raise self.error
        return self.result


async def _settled(settled: _Settled) -> Any:
    return settled.outcome()


def _cancel_on_loop(execution: RunExecution, asked: dict[str, Any] | None) -> None:
    if asked is not None and not execution.cancelling:
        execution.defer("run.cancel_requested", **asked)
    execution.cancel()
