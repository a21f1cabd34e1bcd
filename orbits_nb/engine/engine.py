"""The engine: joins a store, executors and an event loop of its own.

Runs execute on the engine's loop, in a background thread, so a notebook cell can
start a run and return at once, ``await run`` works in any asyncio code, and
``run.wait()`` blocks safely in scripts and under papermill (no nested loops).
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import functools
import json
import os
import sys
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from orbits_nb.core.errors import (
    InvalidArgument,
    NondeterminismError,
    OrbitsError,
    RunNotFound,
    StoreError,
)
from orbits_nb.core.ports import Executor
from orbits_nb.core.rows import Batch, Owner
from orbits_nb.core.serde import Secret, digest, mask_json
from orbits_nb.core.state import Event, RunState, apply, fold
from orbits_nb.core.storage import Store
from orbits_nb.core.workflow import Workflow
from orbits_nb.engine.flight import result_of
from orbits_nb.engine.futures import SharedFuture
from orbits_nb.engine.origin import run_source, user_name
from orbits_nb.engine.recorded import Completed, CompletedRuns, completed_as_recorded
from orbits_nb.engine.run import Run
from orbits_nb.engine.runner import RunExecution
from orbits_nb.engine.writer import Writer
from orbits_nb.executors._wakeups import inbox
from orbits_nb.executors.local import LocalExecutor
from orbits_nb.store import default_state_path, open_store, state_location
from orbits_nb.store.guard import check_run_id

HEARTBEAT_SECONDS = 15.0


def run_id_for(workflow: Workflow, fresh: bool = False) -> str:
    """The default run id: the class name and a hash of the class and its arguments."""
    base = f"{type(workflow).__name__}-" + digest(
        {"workflow": workflow.type_name(), "args": workflow.args}, 10)
    return f"{base}-{uuid.uuid4().hex[:8]}" if fresh else base


class Engine:
    """Executes workflows durably against one store.

    >>> engine = Engine(":memory:")                       # doctest: +SKIP
    >>> engine.start(Hello(who="acme")).wait()            # doctest: +SKIP
    """

    #: Set by ``orbits-nb worker`` in the process executing a run: the worker's id
    #: (recorded with ``run.started``), the shortest timer wait that parks the run
    #: instead of holding the slot (None: never park), and whether the worker drains
    #: (no new step starts; the run parks so that another worker continues it).
    worker: str | None = None
    park_after: float | None = None
    draining: bool = False

    def __init__(self, store: Store | str | Path | None = None, *,
                 executor: Executor | None = None, max_threads: int = 64,
                 max_active_runs: int | None = None) -> None:
        """``max_active_runs`` bounds the runs executing at once (None: no bound);
        runs started beyond it wait in order, queued, and begin as others end."""
        if max_active_runs is not None and (
                not isinstance(max_active_runs, int) or isinstance(max_active_runs, bool)
                or max_active_runs < 1):
            raise InvalidArgument(f"Engine(max_active_runs=...) must be a whole number of "
                                  f"at least 1, or None for no bound; got {max_active_runs!r}")
        self.max_active_runs = max_active_runs
        #: Runs started beyond ``max_active_runs``, in order, and how many execute now.
        self._queued: deque[tuple[Run, Workflow]] = deque()
        self._admitted = 0
        if store is None:
            store = state_location()
        self.store: Store = open_store(store) if isinstance(store, (str, Path)) else store
        self.executor: Executor = executor or LocalExecutor(max_threads)
        self.owner = Owner(uuid.uuid4().hex, self.store.host, os.getpid())
        self.max_threads = max_threads
        self.writer = Writer(self.store, redact=self._redact)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._beat: asyncio.Task[None] | None = None
        self._watch: asyncio.Task[None] | None = None
        self._lock = threading.RLock()
        self.active: dict[str, Run] = {}
        self._listeners: list[Callable[[RunExecution], None]] = []
        self.meta: dict[str, Any] = {}
        #: Executors with resources of their own (a Dask cluster), closed with the engine.
        self._closable: dict[int, Any] = {}
        #: Runs seen completing here, returned again without reading the store.
        self.completed = CompletedRuns()

    # -- loop ---------------------------------------------------------------------
    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                # For the engine's own short calls; steps run in the executor's threads.
                loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(
                    self.max_threads, thread_name_prefix="orbits-nb-io"))
                ready = threading.Event()
                self._thread = threading.Thread(target=self._serve, args=(loop, ready),
                                                name="orbits-nb-engine", daemon=True)
                self._thread.start()
                ready.wait()
                self._loop = loop
                loop.call_soon_threadsafe(self._start_heartbeat)
                atexit.register(self._exit)
            return self._loop

    @staticmethod
    def _serve(loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        while True:
            try:
                loop.run_forever()
            except BaseException as err:
                # asyncio re-raises SystemExit/KeyboardInterrupt out of run_forever when a
                # task raises them (user code in a task of its own); the task already
                # holds the error, and the engine must keep serving the other runs.
                print(f"orbits_nb: {type(err).__name__} escaped a task on the engine "
                      "loop; the engine keeps running", file=sys.__stderr__)
                continue
            # Stopped by close(): let go of the selector, the self-pipe (file descriptors)
            # and the default executor's threads; later posts find the loop closed.
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
            return

    def _start_heartbeat(self) -> None:
        from orbits_nb.engine.control import CommandWatch

        loop = asyncio.get_running_loop()
        self._beat = loop.create_task(self._heartbeat())
        # Requests from other processes (a cancel) to the runs executing here.
        self._watch = loop.create_task(CommandWatch(self).serve())

    def _stop_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        # A task left pending when the loop stops is reported as destroyed later.
        for task in (self._beat, self._watch):
            if task is not None:
                task.cancel()
        loop.call_soon(loop.stop)  # after the heartbeat took its cancellation

    async def _heartbeat(self) -> None:
        while True:
            # Several beats per lease timeout: a live owner on a host is never taken over.
            await asyncio.sleep(min(HEARTBEAT_SECONDS, self.store.lease_timeout / 4))
            ids = [run_id for run_id, run in list(self.active.items()) if not run.done]
            if ids:
                self.writer.defer(Batch(heartbeats=[(i, self.owner.token) for i in ids]))

    def leave(self) -> None:
        """Close as the process's exit does (see ``_exit``): runs still in flight are
        left resumable rather than cancelled."""
        self._exit()

    def _exit(self) -> None:
        """The interpreter exits (a kernel restart or shutdown, a script's end) while
        runs are in flight: they are left as a killed process leaves them, not recorded
        as cancelled. What is pending is committed, their leases are given back, and
        whoever executes them next closes their open attempts as interrupted and
        continues them."""
        live = [run_id for run_id, run in list(self.active.items()) if not run.done]
        if not live:
            self.close()
            return
        self.writer.stop()
        with contextlib.suppress(Exception):  # exiting: a lease that stays expires
            for run_id in live:
                self.store.release_lease("run", run_id, self.owner.token)
        self._close_executors()
        self.store.busy = False
        with contextlib.suppress(Exception):
            self.store.close()

    def _close_executors(self) -> None:
        for executor in list(self._closable.values()):
            with contextlib.suppress(Exception):  # closing: nobody is left to tell
                executor.close()
        self._closable.clear()

    def close(self) -> None:
        """Cancel active runs, commit what is pending and release the state file."""
        for run in list(self.active.values()):
            if not run.done:
                run.cancel_here(None)
        for run in list(self.active.values()):
            # The run records its own failure or cancellation.
            with contextlib.suppress(BaseException):
                run.wait(5)
        self._close_executors()
        self.writer.stop()
        self.store.busy = False
        self.store.close()
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._stop_loop, self._loop)
            self._loop = None

    # -- runs -------------------------------------------------------------------------
    def start(self, workflow: Workflow, *, run_id: str | None = None,
              fresh: bool = False, executor: Executor | None = None) -> Run:
        """Start or resume ``workflow``; returns at once with the :class:`Run` handle.

        ``executor`` is where the run's steps execute unless a step or its action says
        otherwise (default: the workflow's ``executor``, else the engine's).
        """
        if executor is not None and not isinstance(executor, Executor):
            raise TypeError(f"start(executor=...) needs an executor (describe() and "
                            f"async call()), got {type(executor).__name__}")
        if not isinstance(workflow, Workflow):
            raise TypeError(f"start() needs a Workflow, got {type(workflow).__name__}")
        if run_id is not None and run_id != "":
            check_run_id(run_id)
        run_id = run_id or run_id_for(workflow, fresh)
        with self._lock:
            live = self.active.get(run_id)
            if live is not None and not live.done:
                if live.workflow is not None and type(live.workflow) is not type(workflow):
                    # Typically a notebook cell that redefined the class while the run
                    # of the old definition is still executing.
                    raise OrbitsError(
                        f"run {run_id!r} is still executing here with an earlier "
                        f"definition of {type(live.workflow).__qualname__}", run_id=run_id,
                        hint="cancel it (run.cancel()) or wait for it, then start again "
                             "to continue with the new code",
                        cli_hint="wait for it to finish (or stop the process executing "
                                 f"it), then `orbits-nb resume {run_id}`")
                return live
            recorded = None if _in_notebook_run() else self.completed.lookup(
                run_id, workflow, self.store.write_mark())
            if recorded is not None:
                return self._returned(run_id, workflow, recorded)
            loop = self.loop
            self.store.busy = True
            run = Run(self, run_id, workflow=workflow)
            run.executor = executor
            self.active[run_id] = run
            run.attach_future(SharedFuture())
            if self.max_active_runs is not None and self._admitted >= self.max_active_runs:
                self._queued.append((run, workflow))
                return run
            self._admitted += 1
        # Through the loop's inbox: many starts in a row wake the loop once.
        inbox(loop).post(functools.partial(self._begin, run, workflow))
        return run

    def submit(self, workflow: Workflow, *, queue: Any = "default", key: str | None = None,
               run_id: str | None = None, fresh: bool = False, priority: int = 0) -> Run:
        """Queue ``workflow``'s run for a worker (see :meth:`Workflow.submit`)."""
        from orbits_nb.engine.submit import submit

        return submit(self, workflow, queue=queue, key=key, run_id=run_id, fresh=fresh,
                      priority=priority)

    def _admit_queued(self) -> None:
        """Begin queued runs while there is room (on the loop, holding ``_lock``)."""
        bound = self.max_active_runs
        while self._queued and (bound is None or self._admitted < bound):
            run, workflow = self._queued.popleft()
            future = run.future
            if future is None or future.done():
                continue
            self._admitted += 1
            self._begin(run, workflow)

    def _begin(self, run: Run, workflow: Workflow) -> None:
        """Execute an admitted run (on the loop): its future gets the outcome."""
        future = run.future
        assert future is not None
        task = asyncio.get_running_loop().create_task(self._execute(run, workflow))
        task.add_done_callback(functools.partial(_copy_outcome, future))

    def withdraw(self, run: Run) -> bool:
        """Take a run that is still queued out of the queue (its wait then raises
        ``CancelledError``); False when it is not queued."""
        with self._lock:
            for entry in self._queued:
                if entry[0] is run:
                    self._queued.remove(entry)
                    break
            else:
                return False
            if self.active.get(run.run_id) is run:
                del self.active[run.run_id]
            self._idle_check()
        if run.future is not None:
            run.future.cancel()
        return True

    def _returned(self, run_id: str, workflow: Workflow, recorded: Completed) -> Run:
        """The handle of a run that completed, resolved with its recorded result."""
        future: concurrent.futures.Future[Any] = SharedFuture()
        future.set_result(recorded.result)
        run = Run(self, run_id, workflow=workflow, future=future)
        run.execution = RunExecution.returned(self, workflow, recorded.state(run_id),
                                              recorded.steps)
        return run

    async def _execute(self, run: Run, workflow: Workflow) -> Any:
        """Take the run's lease, load its history (both batched by the writer), run it;
        a run completed with this workflow returns its recorded result instead."""
        run_id = run.run_id
        leased = False
        try:
            events = await result_of(self.writer.open_run(run_id, self.owner))
            leased = True
            state = fold(run_id, events)
            if state.workflow and state.workflow != workflow.type_name():
                raise NondeterminismError(
                    f"run {run_id!r} was recorded for {state.workflow}, not "
                    f"{workflow.type_name()}", run_id=run_id, expected=state.workflow,
                    actual=workflow.type_name(),
                    hint="use another run_id or start(fresh=True)",
                    cli_hint="start the workflow under another run id (the code that "
                             f"starts it chooses it); `orbits-nb show {run_id}` shows "
                             "what the id holds")
            if completed_as_recorded(events, state, workflow):
                if _in_notebook_run():
                    await self._record_return(state)
                recorded = Completed.of(state, self.store.write_mark())
                run.execution = RunExecution.returned(self, workflow, state, recorded.steps)
                self.completed.remember(run_id, recorded)
                return state.result
            execution = RunExecution(self, workflow, state, executor=run.executor)
            execution.task = asyncio.current_task()
            run.execution = execution
            if run.cancel_requested:
                raise asyncio.CancelledError
            if state.cancel_requested:
                # Asked before this process took the run over: it ends cancelled.
                run.cancel_requested = execution.cancelling = execution.closing = True
            result = await execution.execute()
            # While the lease is held nobody else writes this run: a write by anybody
            # else from now on changes the mark, and the completion is then read again.
            self.completed.remember(run_id, Completed.of(
                execution.state, self.store.write_mark(), workflow.args))
            return result
        finally:
            if run.execution is not None and not run.execution.released:
                run.execution.release()
                if not run.execution.replayed:
                    run.execution = None  # nothing to show that the store lacks
            if leased:
                await result_of(self.writer.submit(
                    Batch(release_leases=[(run_id, self.owner.token)])))
            with self._lock:
                if self.active.get(run_id) is run:
                    del self.active[run_id]
                self._admitted -= 1
                self._admit_queued()
                self._idle_check()

    async def _record_return(self, state: RunState) -> None:
        """Record that this process started the completed run and got its recorded
        result at once: the kernel of ``orbits-nb run`` reports (and resumes) the runs
        it started by their ``run.started`` events."""
        events = [Event(state.run_id, "run.started",
                        data={"host": self.owner.host, "pid": self.owner.pid}),
                  Event(state.run_id, "run.succeeded", data={"result": state.result})]
        await result_of(self.writer.submit(Batch(events=events)))
        for event in events:
            apply(state, event)

    def _idle_check(self) -> None:
        self.store.busy = bool(self.active)

    async def load_state(self, run_id: str) -> RunState:
        loop = asyncio.get_running_loop()
        events = await loop.run_in_executor(None, self.store.load_run, run_id)
        return fold(run_id, events)

    def get_run(self, run_id: str) -> Run:
        """The handle of a run, live in this process or recorded in the store."""
        live = self.active.get(check_run_id(run_id))
        if live is not None:
            return live
        state = fold(run_id, self.store.load_run(run_id))
        if not state.workflow:
            raise RunNotFound(f"no run {run_id!r} in {self.store.location}", run_id=run_id,
                              hint="list runs with ob.history()",
                              cli_hint="list runs with `orbits-nb runs`")
        return Run(self, run_id)

    def adopt(self, executor: Executor) -> None:
        """Close ``executor`` with the engine if it has a ``close()`` (a Dask executor
        that started its own cluster)."""
        if callable(getattr(executor, "close", None)):
            self._closable.setdefault(id(executor), executor)

    # -- observers, secrets, metadata ---------------------------------------------------
    def notify(self, execution: RunExecution) -> None:
        for listener in list(self._listeners):
            listener(execution)

    def subscribe(self, listener: Callable[[RunExecution], None]) -> Callable[[], None]:
        """Call ``listener`` (on the engine thread) after each state change."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def learn_secrets(self, secrets: Iterable[Secret]) -> None:
        """Mask the values of ``secrets`` from now on (in this whole process).

        Revealing a secret already teaches its value to the process-wide masking
        registry; this reveals the ones an action is about to use, so their values are
        masked even if only another process (a subprocess executor) reveals them.
        """
        for secret in secrets:
            with contextlib.suppress(Exception):  # reported by the action that uses it
                secret.reveal()

    @staticmethod
    def _redact(text: str) -> str:
        return mask_json(text)

    def run_meta(self) -> dict[str, Any]:
        """Context recorded with each new run (e.g. the notebook that started it)."""
        meta = dict(self.meta)
        notebook = os.environ.get("ORBITS_NB_NOTEBOOK")
        if notebook:
            meta.setdefault("notebook", notebook)
        # Set by `orbits-nb run` for its kernel, so `orbits-nb resume` can re-execute the
        # notebook with the same parameters (secrets arrive already masked).
        notebook_run = os.environ.get("ORBITS_NB_NOTEBOOK_RUN")
        if notebook_run:
            meta.setdefault("notebook_run_id", notebook_run)
            meta.setdefault("parameters", json.loads(
                os.environ.get("ORBITS_NB_PARAMETERS") or "{}"))
        meta.setdefault("source", run_source())
        meta.setdefault("user", user_name())
        meta.setdefault("host", self.owner.host)
        return meta


def _in_notebook_run() -> bool:
    """Whether this process is the kernel of a notebook run (``orbits-nb run``)."""
    return bool(os.environ.get("ORBITS_NB_NOTEBOOK_RUN"))


def _copy_outcome(future: concurrent.futures.Future[Any], task: asyncio.Task[Any]) -> None:
    """Resolve a run's future with the outcome of the task that executed it."""
    if future.done():
        return
    if task.cancelled():
        future.cancel()
    elif (error := task.exception()) is not None:
        future.set_exception(error)
    else:
        future.set_result(task.result())


_engines: dict[Path | str, Engine] = {}
_engines_lock = threading.Lock()


def _engine_of(path: Path | str) -> Engine:
    with _engines_lock:
        engine = _engines.get(path)
        if engine is None:
            engine = _engines[path] = Engine(path)
        return engine


def close_engines() -> None:
    """Close every engine this process made through :func:`default_engine` or
    :func:`engine_for`, as the process's exit would (runs still in flight are left
    resumable, their leases given back; see ``Engine.leave``), and forget them: a
    later call makes a fresh engine."""
    with _engines_lock:
        engines = list(_engines.values())
        _engines.clear()
    for engine in engines:
        with contextlib.suppress(Exception):  # closing: nobody is left to tell
            engine.leave()


def default_engine() -> Engine:
    """The engine of this process for the default state file (created on first use)."""
    return _engine_of(state_location())


def engine_for(state: str | Path) -> Engine:
    """The engine of this process for an existing state file (one engine per file).

    A relative path is taken from the working directory (a kernel's is its notebook's
    folder). A missing file is refused rather than created: a mistyped path must not
    leave an empty store behind.
    """
    path = Path(state).expanduser().resolve()
    if path != default_state_path() and not path.is_file():
        raise StoreError(f"no state file at {path}: pass the path of an existing state "
                         "file (orbits-nb run and orbits-nb demo print it)", path=str(path))
    return _engine_of(path)
