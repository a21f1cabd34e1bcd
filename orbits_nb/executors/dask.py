"""The Dask executor: a step's ``main()``/``watch()`` runs on a ``dask.distributed`` worker.

The engine stays the owner of the run and the store its record; Dask only executes
the calls. Each call is one Dask task (``pure=False``, keyed by the action's class
name so the dashboard groups them). The action travels by cloudpickle, its
arguments, result, bag and errors come back, and its ``print``/logging output
reaches the step's logs while it runs (see ``_dask_task`` and ``_dask_client``).

Cancelling a call cancels its Dask future: a call still waiting for a worker never
starts, and a coroutine running on a worker is cancelled there. A plain function
already running on a worker cannot be stopped (Dask does not interrupt threads):
the engine then waits for it and records its outcome before the cancel applies, as
for a thread in the kernel; only a timeout abandons it.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import uuid
from typing import Any

from orbits_nb.core.action import Action
from orbits_nb.core.errors import InvalidArgument, OrbitsError, RemoteError
from orbits_nb.core.masking import remember_all
from orbits_nb.core.ports import Method, Outcome
from orbits_nb.engine.capture import current_sink
from orbits_nb.engine.flight import TIMEOUT
from orbits_nb.executors._boundary import aborted, contained, is_abort
from orbits_nb.executors._dask_client import Connection, Route

#: Seconds a cancel waits for the workers to say whether a call began.
CLAIM_TIMEOUT = 30.0


class DaskError(OrbitsError):
    """A Dask cluster could not run or finish a step's call."""


class SchedulerLost(DaskError):
    """The Dask scheduler is unreachable or went away while calls were in flight.

    The outcome of those calls is unknown, so the steps fail; once the scheduler is
    back, executing the run again (``run.retry()``) continues it.
    """


class WorkerLost(DaskError, ConnectionError):
    """Dask gave up on a call after the workers running it died (``KilledWorker``).

    Unlike orbits_nb's other errors it is retried by an action's ``Retry`` policy
    (it is a ``ConnectionError``): the next attempt starts on a living worker.
    """

    transient = True


class DaskExecutor:
    """Runs each ``main``/``watch`` call of a step as a task on a Dask cluster.

    Three ways to give it a cluster: a scheduler address
    (``DaskExecutor("tcp://scheduler:8786")``), a ``distributed.Client`` you made
    (``DaskExecutor(client=client)``; it stays yours), or nothing
    (``DaskExecutor()``: a ``distributed.LocalCluster`` of worker processes, started
    at the first call, with ``cluster={...}`` passed to it, closed with the engine).

    ``resources={"aws_api": 1}`` makes each call hold that much of a resource the
    workers declare (``dask worker --resources aws_api=10``): at most as many such
    calls run at once as the workers hold in total. ``priority``, ``workers`` and
    ``allow_other_workers`` go to ``Client.submit`` as they are.

    >>> self.do("build", Build(), executor=ob.DaskExecutor("tcp://10.0.0.5:8786"))  # doctest: +SKIP
    """

    def __init__(self, address: str | None = None, *, client: Any = None,
                 resources: dict[str, float] | None = None, priority: int = 0,
                 workers: list[str] | None = None, allow_other_workers: bool = False,
                 cluster: dict[str, Any] | None = None) -> None:
        if address is not None and client is not None:
            raise InvalidArgument("DaskExecutor takes a scheduler address or client=, "
                                  "not both", argument="address")
        if address is not None and (not isinstance(address, str) or not address.strip()):
            raise InvalidArgument(f"DaskExecutor: address must be a scheduler address such "
                                  f"as 'tcp://127.0.0.1:8786', got {address!r}",
                                  argument="address")
        if client is not None and not callable(getattr(client, "submit", None)):
            raise InvalidArgument(f"DaskExecutor: client= must be a distributed.Client, "
                                  f"got {type(client).__name__}", argument="client")
        if cluster is not None and (address is not None or client is not None):
            raise InvalidArgument("DaskExecutor: cluster= configures the local cluster it "
                                  "starts; it does not go with an address or client=",
                                  argument="cluster")
        self.resources = _check_resources(resources)
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise InvalidArgument(f"DaskExecutor: priority must be an integer, got "
                                  f"{priority!r}", argument="priority")
        self.priority = priority
        self.workers = list(workers) if workers else None
        self.allow_other_workers = bool(allow_other_workers)
        self._connection = Connection(address, client, dict(cluster or {}))

    def options(self, **changes: Any) -> DaskExecutor:
        """A copy with other ``resources``/``priority``/``workers`` that shares this
        executor's cluster connection, e.g. ``dask.options(resources={"aws_api": 1})``."""
        unknown = set(changes) - {"resources", "priority", "workers", "allow_other_workers"}
        if unknown:
            raise InvalidArgument(f"DaskExecutor.options() got unknown options "
                                  f"{sorted(unknown)}", argument=sorted(unknown)[0])
        copy = DaskExecutor(resources=changes.get("resources", self.resources),
                            priority=changes.get("priority", self.priority),
                            workers=changes.get("workers", self.workers),
                            allow_other_workers=changes.get("allow_other_workers",
                                                            self.allow_other_workers))
        copy._connection = self._connection
        return copy

    # -- the Executor port ----------------------------------------------------------
    def describe(self) -> str:
        return f"dask {self._connection.scheduler_address()}"

    def interruptible(self, action: Action, method: Method) -> bool:
        """A cancel reaches every call: see the module docstring for what it stops."""
        return True

    async def call(self, action: Action, method: Method) -> Outcome:
        return await contained(self._call(action, method))

    def close(self) -> None:
        """Close the client and the local cluster this executor started (a client
        given as ``client=`` stays open). The next call connects again."""
        self._connection.close()

    # -- one call ---------------------------------------------------------------------
    async def _call(self, action: Action, method: Method) -> Outcome:
        from orbits_nb.executors._dask_task import run_call

        loop = asyncio.get_running_loop()
        client = await loop.run_in_executor(None, self._client)
        payload = _payload(action, method)
        token = uuid.uuid4().hex
        sink = current_sink.get()
        route = self._connection.routes[token] = Route(sink, loop)
        try:
            future = client.submit(
                run_call, payload, token, self._connection.topic,
                self._connection.dashboard(), key=f"{type(action).__name__}-{token}",
                pure=False, resources=self.resources, priority=self.priority,
                workers=self.workers, allow_other_workers=self.allow_other_workers)
            reply: tuple[Any, ...] | None = None
            try:
                reply = await self._reply(future, action, method, token, route)
            finally:
                self._place(route, reply)
            return self._outcome(reply, route)
        finally:
            self._connection.routes.pop(token, None)

    def _client(self) -> Any:
        return self._connection.client(lambda reason: SchedulerLost(
            f"DaskExecutor: {reason}; the steps that were to run there failed, and "
            "executing the run again continues it", hint="run.retry() once the "
            "scheduler is up", cli_hint="`orbits-nb resume RUN_ID` once the scheduler is up"))

    async def _reply(self, future: Any, action: Action, method: Method, token: str,
                     route: Route) -> tuple[Any, ...]:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def resolve() -> None:
            if not done.done():
                done.set_result(None)

        def settled(_: Any) -> None:
            if not loop.is_closed():
                loop.call_soon_threadsafe(resolve)

        future.add_done_callback(settled)
        either: set[asyncio.Future[Any]] = {done, route.replied}
        try:
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError as stop:
            thread = not inspect.iscoroutinefunction(getattr(action, method))
            if stop.args == (TIMEOUT,) or not thread or not await self._began(token, route):
                future.cancel(reason="cancelled by orbits_nb")
                raise
            # Dask cannot stop a function running in a worker thread: its outcome is
            # recorded first, and the engine applies the cancel after it.
            # Only a timeout cancels again (the engine cancels a call once): it abandons
            # the call, and Dask drops its result.
            try:
                await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:
                future.cancel(reason="cancelled by orbits_nb")
                raise
        if route.replied.done():
            return route.replied.result()
        return await self._collect(future)

    async def _began(self, token: str, route: Route) -> bool:
        """Whether the call began on a worker; when not, it never will.

        The start notice is an event and may still be on its way, so unless it came
        the workers are asked (:func:`~orbits_nb.executors._dask_task.claim`). A
        timeout while asking counts as not begun; no answer within
        ``CLAIM_TIMEOUT`` leaves what the start notices said.
        """
        if route.started.is_set():
            return True
        from orbits_nb.executors._dask_task import claim

        loop = asyncio.get_running_loop()
        client = self._connection.current()
        if client is None:
            return False

        def ask() -> bool:
            answers = client.run(claim, token, on_error="return")
            return any(answer is True for answer in answers.values())

        try:
            return await asyncio.wait_for(loop.run_in_executor(None, ask), CLAIM_TIMEOUT)
        except asyncio.CancelledError:
            return False
        except Exception:  # scheduler gone or silent: what the events said
            return route.started.is_set()

    async def _collect(self, future: Any) -> tuple[Any, ...]:
        loop = asyncio.get_running_loop()
        status = future.status
        if status == "finished":
            reply: tuple[Any, ...] = await loop.run_in_executor(None, future.result)
            return reply
        if status == "cancelled":
            raise SchedulerLost(
                f"the Dask scheduler at {self._connection.scheduler_address()} went away "
                "while this step ran on it; its outcome is unknown. Start the scheduler "
                "again and execute the run again to continue it",
                hint="run.retry() once the scheduler is up",
                cli_hint="`orbits-nb resume RUN_ID` once the scheduler is up")
        error = await loop.run_in_executor(None, future.exception)
        raise _dask_error(error)

    def _place(self, route: Route, reply: tuple[Any, ...] | None) -> None:
        sink = current_sink.get()
        if reply is not None:  # the worker that replied, if its start notice was lost
            worker = str(reply[-1].get("worker", ""))
            if worker and (not route.workers or route.workers[-1] != worker):
                route.workers.append(worker)
        if sink is None or not route.workers:
            return
        where: dict[str, Any] = {"worker": route.workers[-1]}
        if len(route.workers) > 1:
            where["workers"] = list(route.workers)
        dashboard = self._connection.dashboard()
        if dashboard:
            where["dashboard"] = dashboard
        sink.place(where)

    def _outcome(self, reply: tuple[Any, ...], route: Route) -> Outcome:
        from orbits_nb.executors._dask_task import load

        status, body, description, secrets, lines, count, where = reply
        # The secrets the worker revealed are masked before anything of it is recorded.
        remember_all(secrets)
        route.finish(lines, count)
        if status == "ok":
            value, bag = load(body)
            return Outcome(value, bag)
        if status == "cancelled":
            raise asyncio.CancelledError
        raise _remote_error(body, description, str(where.get("worker", "")))

    def __getstate__(self) -> dict[str, Any]:
        # The connection (client, cluster, routes) stays with the engine when an action
        # whose class names this executor travels to a worker.
        state = dict(self.__dict__)
        state["_connection"] = None
        return state

    def __repr__(self) -> str:
        return f"DaskExecutor({self._connection.scheduler_address()!r})" if getattr(
            self, "_connection", None) else "DaskExecutor()"


def _check_resources(resources: Any) -> dict[str, float] | None:
    if resources is None:
        return None
    if not isinstance(resources, dict) or not all(
            isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool)
            and v > 0 for k, v in resources.items()):
        raise InvalidArgument(f"DaskExecutor: resources must map resource names to "
                              f"positive amounts, e.g. {{'aws_api': 1}}; got {resources!r}",
                              argument="resources")
    return {k: float(v) for k, v in resources.items()}


def _payload(action: Action, method: Method) -> bytes:
    import cloudpickle

    try:
        return bytes(cloudpickle.dumps((action, method)))
    except Exception as err:
        raise InvalidArgument(
            f"{type(action).__name__} cannot be sent to a Dask worker: {err}; keep "
            "unpicklable things (clients, connections, locks) out of the action's "
            "attributes and make them in main()", step=action.step) from None


def _remote_error(body: bytes | None, description: Any, worker: str) -> BaseException:
    """The action's error as itself when it unpickles here, else a RemoteError."""
    from orbits_nb.executors._dask_task import load

    type_name, message, text = description
    if body is not None:
        try:
            error: BaseException = load(body)
        except Exception:
            pass
        else:
            if is_abort(error):
                return aborted(error)
            if error.__traceback__ is None:  # else it travelled with the error (tblib)
                with contextlib.suppress(Exception):
                    error.add_note(f"raised on Dask worker {worker}:\n{text}")
            return error
    return RemoteError(type_name, message, text)


def _dask_error(error: BaseException | None) -> BaseException:
    """What a Dask-side failure (not the action's own error) means for the step."""
    name = type(error).__name__ if error is not None else "unknown"
    if name == "KilledWorker":
        return WorkerLost(f"the Dask workers running this step died ({error}); Dask gave "
                          "up on it. A Retry policy retries it on a living worker")
    if isinstance(error, ModuleNotFoundError | ImportError) and "orbits_nb" in str(error):
        return DaskError("orbits_nb is not installed on the Dask workers; install the same "
                         "version there (pip install 'orbits_nb[dask]')")
    return DaskError(f"Dask could not run this step: {name}: {error}")
