"""Workflows: actions whose ``define()`` calls durable ``do(name, action)`` steps."""

from __future__ import annotations

import inspect
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Protocol

from orbits_nb.core.action import Action
from orbits_nb.core.errors import InvalidArgument, OrbitsError

if TYPE_CHECKING:
    from orbits_nb.core.ports import Executor
    from orbits_nb.core.queue import Queue
    from orbits_nb.engine.engine import Engine
    from orbits_nb.engine.run import Run


class StepRunner(Protocol):
    """What ``Workflow.do`` delegates to while a run executes (the engine side)."""

    workflow: Workflow

    async def do(self, name: str, action: Action, executor: Executor | None) -> Any: ...

    async def wait_due(self, name: str, due: float) -> None: ...


def process_engine() -> Engine:
    """The engine of this process (created on first use)."""
    # Imported here: the core must not depend on the engine at import time.
    from orbits_nb.engine.engine import default_engine

    return default_engine()


#: The run a ``define()`` coroutine belongs to; tasks made by ``asyncio.gather`` copy it.
current_runner: ContextVar[StepRunner | None] = ContextVar("orbits_nb_runner", default=None)


class Workflow(Action):
    """An action made of durable steps.

    Implement ``async def define(self)`` and call ``await self.do(name, action)``;
    each step's result is recorded, so executing the run again replays completed
    steps from the store instead of running them. Run parallel steps with
    ``asyncio.gather``; a failed step raises :class:`~orbits_nb.StepFailed`.

    >>> class Hello(Workflow):
    ...     async def define(self):
    ...         return await self.do("greet", Greet(who=self.args["who"]))
    >>> run = Hello(who="acme").start()      # doctest: +SKIP
    >>> run.wait()                           # doctest: +SKIP
    'hello acme'
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "define" in cls.__dict__ and not inspect.iscoroutinefunction(
                cls.define):
            raise InvalidArgument(
                f"{cls.__qualname__}.define must be `async def define(self)`: steps are "
                "awaited (`await self.do(name, action)`), so define() is a coroutine")

    async def define(self) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define `async def define(self)`")

    async def do(self, name: str, action: Action, *, executor: Executor | None = None) -> Any:
        """Run ``action`` as the durable step ``name`` and return its result."""
        runner = current_runner.get()
        if runner is None or runner.workflow is not self:
            raise OrbitsError(
                f"{type(self).__name__}.do({name!r}) was called outside its own define(); "
                "start the workflow with .start() and call do() from define()"
            )
        return await runner.do(name, action, executor)

    async def sleep(self, name: str, seconds: float) -> None:
        """Wait ``seconds``, durably: the step ``name`` records when it is due, so a
        restart waits only what is left. On a worker the run frees its slot meanwhile."""
        from orbits_nb.core.timer import Due, seconds_of

        due = await self.do(name, Due(seconds=seconds_of(seconds)))
        await self._runner(name).wait_due(name, float(due))

    async def wait_until(self, name: str, when: Any) -> None:
        """Wait until ``when`` (a timezone-aware datetime or epoch seconds), durably, as
        :meth:`sleep` does."""
        from orbits_nb.core.timer import Due, epoch_of

        due = await self.do(name, Due(at=epoch_of(when)))
        await self._runner(name).wait_due(name, float(due))

    def _runner(self, name: str) -> StepRunner:
        runner = current_runner.get()
        if runner is None or runner.workflow is not self:
            raise OrbitsError(f"{type(self).__name__} waited on {name!r} outside its own "
                              "define(); call sleep()/wait_until() from define()")
        return runner

    def main(self) -> Any:
        raise OrbitsError(
            f"{type(self).__name__} is a workflow: start it with .start(), or use it as a "
            "step with `await self.do(name, workflow)`"
        )

    def start(self, *, run_id: str | None = None, fresh: bool = False,
              engine: Engine | None = None, executor: Executor | None = None) -> Run:
        """Start (or resume) this workflow's run in the background; return its handle.

        The default run id derives from the class and its arguments, so starting the
        same workflow again resumes the same run. ``run_id`` names a run explicitly;
        ``fresh=True`` starts a new one. ``executor`` is where its steps (and those of
        nested workflows) run unless a step says otherwise; it defaults to the
        workflow's ``executor`` attribute.
        """
        # Imported here: the core must not depend on the engine at import time.
        from orbits_nb.engine.engine import default_engine

        return (engine or default_engine()).start(self, run_id=run_id, fresh=fresh,
                                                  executor=executor)

    def submit(self, *, queue: str | Queue = "default", key: str | None = None,
               run_id: str | None = None, fresh: bool = False, priority: int = 0,
               engine: Engine | None = None) -> Run:
        """Queue this workflow's run for an ``orbits-nb worker``; return its handle at once.

        The run is recorded as created and waits in ``queue`` (a name or a
        :class:`~orbits_nb.Queue`); ``key`` groups runs for the queue's ``per_key``
        limit (e.g. a tenant); higher ``priority`` goes first. ``run.wait()``,
        ``await run`` and ``run.status`` follow it from the store. Run ids follow the
        rules of :meth:`start`; submitting a run that waits or executes already returns
        its handle.
        """
        return (engine or process_engine()).submit(self, queue=queue, key=key,
                                                   run_id=run_id, fresh=fresh,
                                                   priority=priority)

    def run(self, *, run_id: str | None = None, fresh: bool = False,
            engine: Engine | None = None, timeout: float | None = None,
            executor: Executor | None = None) -> Any:
        """Start the run and wait for its result (for scripts)."""
        return self.start(run_id=run_id, fresh=fresh, engine=engine,
                          executor=executor).wait(timeout)
