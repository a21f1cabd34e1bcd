"""One execution of a run: durable ``do()`` with replay, retries, watchers, timeouts.

Step keys are the step name plus its occurrence (``deploy``, ``deploy#2``, ...).
A step recorded as succeeded returns its recorded result without running; a step
recorded as waiting resumes its watcher with its bag; anything else runs again.
Before a run ends, every step of it still in flight is finished (see ``flight``).
"""

from __future__ import annotations

import asyncio
import inspect
import sys
import time
from typing import TYPE_CHECKING, Any

from orbits_nb.core.action import IN_PROGRESS, Action, check_class
from orbits_nb.core.errors import (
    DuplicateStep,
    InvalidArgument,
    NondeterminismError,
    StepFailed,
    StepTimeout,
)
from orbits_nb.core.ports import Executor, Method
from orbits_nb.core.rows import Batch, LogLine
from orbits_nb.core.serde import check_json, secrets_in
from orbits_nb.core.state import Event, RunState, StepState, apply, error_info
from orbits_nb.core.timer import RunParked
from orbits_nb.core.workflow import Workflow, current_runner
from orbits_nb.engine import capture
from orbits_nb.engine.capture import StepSink, current_sink
from orbits_nb.engine.flight import (
    Flight,
    abandons,
    interruptible,
    outcome_of,
    result_of,
    retry_delay,
)
from orbits_nb.engine.timers import park, wait_due
from orbits_nb.executors._boundary import aborted, contained

if TYPE_CHECKING:
    from orbits_nb.engine.engine import Engine

RESERVED = ("#", "/")
#: The last line of an abandoned attempt's logs, once its call returned.
ABANDONED_END = ("orbits_nb: the call abandoned by the cancel has returned; its outcome "
                 "was discarded")


class RunExecution:
    """Executes ``workflow.define()`` for ``run_id`` against its recorded history."""

    def __init__(self, engine: Engine, workflow: Workflow, state: RunState,
                 parent: RunExecution | None = None, executor: Executor | None = None
                 ) -> None:
        self.engine = engine
        self.workflow = workflow
        #: Where this run's steps execute unless a step or its action says otherwise
        #: (given to start(), the workflow's ``executor``, or its parent run's).
        self.executor = executor or workflow.executor
        self.state = state
        self.run_id = state.run_id
        self.parent = parent
        self.recorded: dict[str, StepState] = dict(state.steps)
        self.by_pos = {s.pos: s for s in self.recorded.values() if s.status == "succeeded"}
        # Steps recorded after a failed step ran on the error path (e.g. an alert in an
        # `except StepFailed`); a retry that now gets further may put other steps there.
        failed = [s.pos for s in self.recorded.values() if s.status in ("failed", "cancelled")]
        self.diverged_at = min(failed) if failed else None
        self.counts: dict[str, int] = {}
        self.inflight: dict[str, Flight] = {}
        self.inflight_names: set[str] = set()
        self.calls = 0
        self.frontier: list[str] = []
        self.sibling_parents: list[str] = []
        self.visited: set[str] = set()
        self.replayed: set[str] = set()
        self.children: dict[str, RunExecution] = {}
        self.cancelling = False
        #: The run is ending: no new step starts, and a step at a pause stops there.
        self.closing = False
        self.task: asyncio.Task[Any] | None = None
        #: The execution is over and keeps only what the run's handle shows (which
        #: steps it replayed); the rest is read from the store.
        self.released = False
        #: A watcher the run parked at (its step, its next poll): it polls then.
        parked = state.parked_for or {}
        self.parked_at: tuple[str, float] | None = (
            (parked["watcher"], state.not_before) if parked.get("reason") == "watcher"
            and parked.get("watcher") and state.not_before is not None else None)

    @classmethod
    def returned(cls, engine: Engine, workflow: Workflow, state: RunState,
                 steps: tuple[str, ...]) -> RunExecution:
        """The execution of a completed run returned as recorded: every step replayed."""
        execution = cls(engine, workflow, RunState(state.run_id, workflow=state.workflow,
                                                   args=state.args, status=state.status,
                                                   result=state.result,
                                                   executions=state.executions))
        execution.replayed = set(steps)
        execution.released = True
        return execution

    def release(self) -> None:
        """Keep only what the finished run's handle shows: the steps it replayed and
        its execution count. Its steps, results and nested executions are let go (the
        store has them), so a process with many finished runs stays small."""
        state = self.state
        self.state = RunState(state.run_id, workflow=state.workflow, status=state.status,
                              executions=state.executions)
        self.recorded, self.by_pos, self.counts, self.children = {}, {}, {}, {}
        self.visited, self.inflight_names = set(), set()
        self.frontier, self.sibling_parents = [], []
        self.replayed = {key for key in self.replayed if key in state.steps}
        self.task = None
        self.released = True

    def cancel(self) -> None:
        """Cancel the run's task (call on the engine loop); cleanup still runs."""
        self.cancelling = True
        if self.task is not None:
            self.task.cancel()

    def solo(self, own: int) -> bool:
        """Whether only ``own`` steps of this run are in flight and, in each run above
        it, only the step that executes the run below (a run that waits for nothing
        else may park)."""
        run: RunExecution | None = self
        while run is not None:
            if len(run.inflight) != own:
                return False
            run, own = run.parent, 1
        return True

    def _cancel_requested(self) -> bool:
        task = asyncio.current_task()
        return self.cancelling or (task is not None and task.cancelling() > 0)

    # -- events ---------------------------------------------------------------------
    def _event(self, kind: str, step: str | None = None, attempt: int | None = None,
               **data: Any) -> Event:
        event = Event(self.run_id, kind, step, attempt, data)
        apply(self.state, event)
        self.engine.notify(self)
        return event

    def defer(self, kind: str, step: str | None = None, attempt: int | None = None,
              **data: Any) -> None:
        self.engine.writer.defer(Batch(events=[self._event(kind, step, attempt, **data)]))

    async def commit(self, kind: str, step: str | None = None, attempt: int | None = None,
                     **data: Any) -> None:
        """Record an event and wait until it is durable.

        The event is queued before the first ``await``, so a cancel arriving meanwhile
        can neither lose it nor reorder it; the wait itself is shielded so the cancel
        does not reach the writer's future.
        """
        batch = Batch(events=[self._event(kind, step, attempt, **data)])
        await result_of(self.engine.writer.submit(batch))

    # -- the run --------------------------------------------------------------------
    async def execute(self) -> Any:
        if not self.state.workflow:
            self.defer("run.created", workflow=self.workflow.type_name(),
                       args=self.workflow.args,
                       parent_run_id=self.parent.run_id if self.parent else None,
                       parent_step=self.run_id.rsplit("/", 1)[-1] if self.parent else None,
                       meta=self.engine.run_meta())
        started: dict[str, Any] = {"host": self.engine.owner.host,
                                   "pid": self.engine.owner.pid}
        if self.engine.worker:
            started["worker"] = self.engine.worker
        self.defer("run.started", **started)
        token = current_runner.set(self)
        try:
            try:
                result = await self._define()
            except BaseException:
                await self._settle(cancel=self._cancel_requested())
                raise
            await self._settle(cancel=self._cancel_requested())
        except RunParked as parked:
            # It stops without ending, its slot free: a worker executes it again.
            await self.commit("run.parked", **parked.parked())
            raise
        except asyncio.CancelledError:
            await self.commit("run.cancelled", error={
                "type": "RunCancelled", "message": "the run was cancelled"})
            raise
        except Exception as err:
            await self.commit("run.failed", error=error_info(err))
            raise
        finally:
            current_runner.reset(token)
        await self.commit("run.succeeded", result=result)
        return result

    async def _define(self) -> Any:
        pending = self.workflow.define()
        if not inspect.isawaitable(pending):
            raise InvalidArgument(
                f"{type(self.workflow).__qualname__}.define must be `async def "
                "define(self)`", run_id=self.run_id)
        try:
            result = await pending
        except (Exception, asyncio.CancelledError):
            raise
        except BaseException as error:  # as ``contained`` does, one coroutine fewer
            raise aborted(error) from None
        return check_json(result, f"result of workflow {type(self.workflow).__name__}")

    async def _settle(self, cancel: bool) -> None:
        """Finish every step still in flight before the run ends (see ``flight``).

        Steps in a call are waited for, steps at a pause cancelled there; with
        ``cancel`` every step is cancelled (a call that cannot be interrupted still
        finishes first). A cancel arriving meanwhile is raised once all is finished.
        """
        cancelled = False
        while True:
            self._wind_down(cancel)
            current = asyncio.current_task()
            tasks = {f.task for f in self.inflight.values()
                     if f.task is not None and f.task is not current and f.running()}
            if not tasks:
                break
            try:
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:
                cancel = cancelled = True
        if cancelled:
            raise asyncio.CancelledError

    def _wind_down(self, cancel: bool) -> None:
        """Start no new step; stop steps at a pause (all steps with ``cancel``), here
        and in nested runs still executing."""
        self.closing = True
        current = asyncio.current_task()
        for flight in self.inflight.values():
            if flight.task is None or flight.task is current or not flight.running():
                continue
            if cancel and not flight.cancel_sent:
                flight.cancel_sent = True
                flight.task.cancel()
            else:
                flight.stop_at_pause()
        for child in self.children.values():
            if child.task is not None and not child.task.done():
                child._wind_down(cancel=False)

    # -- do() -----------------------------------------------------------------------
    async def do(self, name: str, action: Action, executor: Executor | None) -> Any:
        if self.closing:
            # The run is ending (a sibling failed, or it was cancelled): this step does
            # not start, and nothing is recorded for it.
            raise asyncio.CancelledError
        if self.engine.draining:
            raise RunParked("the worker stops: the run continues on another",
                            run_id=self.run_id, until=None, reason="drain", watcher=None)
        key = self._key(name, action)
        ordinal = self.calls
        self.calls += 1
        concurrent = bool(self.inflight)
        record = self.recorded.get(key)
        if record is not None and record.action and record.action != action.type_name():
            raise NondeterminismError(
                f"run {self.run_id!r} is not deterministic: step {key!r} was recorded as "
                f"{record.action} but the code now runs {action.type_name()} under that "
                "name", run_id=self.run_id, step=key, expected=record.action,
                actual=action.type_name(), **replay_hints(self.run_id, key))
        if record is None and not concurrent:
            self._check_position(ordinal, key, action)
        self.visited.add(key)
        if record is not None and record.status == "succeeded":
            self.replayed.add(key)
            self._completed(key)
            self.engine.notify(self)
            return record.result
        flight = self.inflight[key] = Flight(name, asyncio.current_task())
        self.inflight_names.add(name)
        try:
            return await self._run_step(key, ordinal, action, executor, record, concurrent,
                                        flight)
        finally:
            del self.inflight[key]
            self.inflight_names.discard(name)

    async def wait_due(self, name: str, due: float) -> None:
        """Wait for a durable timer; on a worker, a run that only waits for it parks."""
        await wait_due(self, name, due)

    def _key(self, name: str, action: Action) -> str:
        if not isinstance(name, str) or not name.strip():
            raise DuplicateStep(f"a step name must be a non-empty string, got {name!r}")
        if any(ch in name for ch in RESERVED):
            raise DuplicateStep(
                f"step name {name!r} contains '#' or '/', which orbits_nb reserves for "
                "repeated and nested steps; choose another name", step=name)
        if not isinstance(action, Action):
            raise InvalidArgument(
                f"do({name!r}, ...) needs an orbits_nb.Action instance, got "
                f"{type(action).__name__}", step=name)
        if name in self.inflight_names:
            raise DuplicateStep(
                f"step name {name!r} is used by two steps running at the same time, so "
                "which one is which cannot be told apart on replay; give each a distinct "
                f"name (e.g. f'{name}-{{item}}')", run_id=self.run_id, step=name)
        count = self.counts.get(name, 0) + 1
        self.counts[name] = count
        return name if count == 1 else f"{name}#{count}"

    def _check_position(self, ordinal: int, key: str, action: Action) -> None:
        earlier = self.by_pos.get(ordinal)
        if earlier is None or earlier.key == key or earlier.key in self.visited:
            return
        if earlier.concurrent:
            return
        if self.diverged_at is not None and earlier.pos > self.diverged_at:
            return
        raise NondeterminismError(
            f"run {self.run_id!r} is not deterministic: step number {ordinal + 1} was "
            f"recorded as {earlier.key!r} ({earlier.action}) but the code now runs "
            f"{key!r} ({action.type_name()}) there", run_id=self.run_id, step=key,
            expected=earlier.key, actual=key, **replay_hints(self.run_id, earlier.key))

    def _completed(self, key: str) -> None:
        self.frontier.append(key)

    # -- one step ---------------------------------------------------------------------
    def _static(self, key: str, name: str, ordinal: int, action: Action, executor: Executor,
                record: StepState | None, concurrent: bool) -> dict[str, Any]:
        """What a step's first ``step.started`` event records about it."""
        # A step started before anything completed since its sibling started (the
        # branches of an asyncio.gather) shares the sibling's parents.
        if self.frontier:
            parents, self.frontier = self.frontier, []
            self.sibling_parents = parents
        else:
            parents = self.sibling_parents
        static = {"name": name, "pos": ordinal if record is None else record.pos,
                  # One string per class, shared by the events and states of its steps.
                  "action": sys.intern(action.type_name()), "args": action.args,
                  "executor": executor.describe(), "parents": parents,
                  "concurrent": concurrent}
        if isinstance(action, Workflow):
            static["child_run_id"] = f"{self.run_id}/{key}"
        return static

    async def _run_step(self, key: str, ordinal: int, action: Action,
                        executor: Executor | None, record: StepState | None,
                        concurrent: bool, flight: Flight) -> Any:
        check_class(type(action))  # class attributes may have been changed since
        executor = executor or action.executor or self.executor or self.engine.executor
        self.engine.adopt(executor)
        static = self._static(key, flight.name, ordinal, action, executor, record,
                              concurrent)
        self.engine.learn_secrets(secrets_in(action.args))
        first_start = record.started_at if record and record.watching else None
        started = first_start or time.time()
        deadline = started + action.timeout if action.timeout else None
        flight.watching = record is not None and record.watching and record.status in (
            "waiting", "cancelled", "running", "retrying")
        action.bag = dict(record.bag) if flight.watching and record else {}
        attempt = record.attempts if record else 0
        retries = 0
        fresh_incarnation = record is None or (record.status in ("failed", "cancelled")
                                               and not flight.watching)
        while True:
            attempt += 1
            flight.placement = None
            data = static if fresh_incarnation else {"resumed": flight.watching}
            fresh_incarnation = False
            self.defer("step.started", key, attempt, **data)
            try:
                result = await self._attempt(key, attempt, action, executor, deadline, flight)
            except asyncio.CancelledError:
                await self.commit("step.cancelled", key, attempt, **placed(flight),
                                  **abandoned(flight))
                raise
            except RunParked as parked:
                # Not an end of the step: its run (and the runs above) give up the slot.
                parked.fields["watcher"] = "/".join(
                    p for p in (key, parked.fields.get("watcher")) if p) \
                    if parked.fields.get("reason") != "drain" else None
                raise
            except Exception as err:
                delay = retry_delay(type(action).retry, err, retries, deadline, flight)
                if delay is None:
                    await self.commit("step.failed", key, attempt, error=error_info(err),
                                      **placed(flight))
                    self._completed(key)
                    if flight.cancel_pending:
                        raise asyncio.CancelledError from err
                    raise StepFailed(self.run_id, key, err, attempt) from err
                retries += 1
                self.defer("step.retrying", key, attempt, error=error_info(err), delay=delay,
                           **placed(flight))
                try:
                    await self._pause(flight, delay)
                except asyncio.CancelledError:
                    await self.commit("step.cancelled", key, attempt)
                    raise
                continue
            await self.commit("step.succeeded", key, attempt, result=result,
                              **placed(flight))
            self._completed(key)
            if flight.cancel_pending:
                raise asyncio.CancelledError  # the call finished; now the cancel applies
            return result

    async def _pause(self, flight: Flight, seconds: float) -> None:
        """Sleep between polls or before a retry: the safe point to stop a step."""
        if self.closing or flight.cancel_pending:
            raise asyncio.CancelledError
        await flight.sleep(seconds)

    async def _attempt(self, key: str, attempt: int, action: Action, executor: Executor,
                       deadline: float | None, flight: Flight) -> Any:
        action.run_id, action.step, action.attempt = self.run_id, key, attempt
        action.__dict__["_engine"] = self.engine
        if isinstance(action, Workflow):
            return await self._run_child(key, action, executor)
        name = type(action).__name__
        if not flight.watching:
            value = await self._call(key, attempt, action, executor, "main", deadline, flight)
            if value is not IN_PROGRESS:
                return check_json(value, f"result of step {key!r} ({name})")
            await self.commit("step.waiting", key, attempt,
                              bag=check_json(action.bag, f"bag of step {key!r}"),
                              **placed(flight))
            flight.watching = True
        saved = dict(action.bag)
        while True:
            pause = self._next_poll(key, type(action).poll_interval)
            if deadline is not None:
                pause = min(pause, max(0.0, deadline - time.time()))
            if self.engine.draining:
                raise RunParked("the worker stops: the watcher polls again on another",
                                run_id=self.run_id, until=None, reason="drain",
                                watcher=None)
            # Its bag is recorded: a worker resumes watch() with it at the next poll.
            await park(self, time.time() + pause, own=1, reason="watcher", watcher=None)
            await self._pause(flight, pause)
            value = await self._call(key, attempt, action, executor, "watch", deadline, flight)
            if action.bag != saved:
                saved = dict(action.bag)
                await self.commit("step.bag", key, attempt,
                                  bag=check_json(saved, f"bag of step {key!r}"),
                                  **placed(flight))
            if value is not IN_PROGRESS:
                return check_json(value, f"result of step {key!r} ({name})")

    def _next_poll(self, key: str, interval: float) -> float:
        """Seconds before the watcher of step ``key`` polls: its interval, or what is
        left of it when the run parked at this watcher."""
        if self.parked_at is None or self.parked_at[0] != key:
            return interval
        left = self.parked_at[1] - time.time()
        self.parked_at = None
        return max(0.0, min(interval, left))

    async def _call(self, key: str, attempt: int, action: Action, executor: Executor,
                    method: Method, deadline: float | None, flight: Flight) -> Any:
        def late() -> StepTimeout:
            return StepTimeout(
                f"step {key!r} ({type(action).__name__}) exceeded its timeout of "
                f"{action.timeout}s in {method}()", run_id=self.run_id, step=key)

        if deadline is not None and time.time() >= deadline:
            raise late()
        sink = StepSink(lambda stream, line: self.engine.writer.defer(
            Batch(logs=[LogLine(self.run_id, key, attempt, stream, line)])), flight.place)
        token = current_sink.set(sink)
        try:
            # The call's own task copies this context: its output goes to the sink.
            call = asyncio.ensure_future(contained(executor.call(action, method)))
        finally:
            current_sink.reset(token)
        capture.begin()  # before the call's task first runs
        try:
            outcome = await outcome_of(call, flight, interruptible(executor, action, method),
                                       deadline, late,
                                       abandon=abandons(executor, action, method))
        finally:
            capture.end()
            sink.close()
            if flight.abandoned:
                # Its attempt's logs say when the thread stopped (until then, it runs).
                call.add_done_callback(lambda _: sink.record("log", ABANDONED_END))
        action.bag = outcome.bag
        return outcome.value

    async def _run_child(self, key: str, child: Workflow, executor: Executor) -> Any:
        child_id = f"{self.run_id}/{key}"
        state = await self.engine.load_state(child_id)
        # The executor chosen for the nested step is where the nested run's steps go.
        execution = RunExecution(self.engine, child, state, parent=self, executor=executor)
        self.children[key] = execution
        execution.task = asyncio.create_task(execution.execute())
        return await execution.task


def placed(flight: Flight) -> dict[str, Any]:
    """What an attempt's event records about where its calls ran (nothing locally)."""
    return dict(flight.placement) if flight.placement else {}


def abandoned(flight: Flight) -> dict[str, Any]:
    """What a cancelled attempt records when its thread could not be stopped."""
    return {"abandoned": True} if flight.abandoned else {}


def replay_hints(run_id: str, step: str) -> dict[str, str]:
    """What to do when the code no longer matches the recorded ``step``: in Python and
    from the command line (the ``hint``/``cli_hint`` fields of the error)."""
    import shlex

    root = run_id.split("/", 1)[0]
    run, key = shlex.quote(run_id), shlex.quote(step)
    return {
        "hint": f"restore the code, or run.reset({step!r}) to discard that step and what "
                "followed it, or start(fresh=True)",
        "cli_hint": f"restore the code, or discard that step and what followed it with "
                    f"`orbits-nb reset {run} {key}` (every step: `orbits-nb reset {run} "
                    f"--all`) and run it again (`orbits-nb resume {shlex.quote(root)}`)",
    }
