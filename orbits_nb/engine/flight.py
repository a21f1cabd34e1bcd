"""Steps in flight: what a run must finish before it may end.

A run ends only when none of its steps still executes; otherwise a sibling of a
failed ``asyncio.gather`` branch (or a step in a task nobody awaited) would go on
after the run was recorded as failed and released, and a retry would run it a second
time, concurrently. A step sleeping between two ``watch()`` polls or before a retry is
at a safe point (its bag is persisted): it can be cancelled there. A step inside a call
is waited for unless its executor says the call can be interrupted (a coroutine, a
child process); a thread cannot be, so its outcome is recorded before the cancel
takes effect.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from orbits_nb.core.action import Action, Retry
from orbits_nb.core.ports import Executor, Method, Outcome
from orbits_nb.executors._wakeups import mirrored

T = TypeVar("T")

#: The message of the cancel that stops a call at its step's timeout: an executor that
#: waits for a call it cannot stop when the run is cancelled abandons it then.
TIMEOUT = "orbits_nb: step timeout"


@dataclass(eq=False)
class Flight:
    """One step of a run while ``do()`` executes it."""

    name: str
    task: asyncio.Task[Any] | None
    #: Set while sleeping between polls or before a retry, the safe point to stop it:
    #: resolving it early with True stops the step there.
    pause: asyncio.Future[bool] | None = None
    #: In the watch phase (a retry after a failure resumes watching).
    watching: bool = False
    #: A cancel arrived during a call that cannot be interrupted: it applies after it.
    cancel_pending: bool = False
    #: The current call was cancelled while its thread could not be stopped: the step
    #: ends cancelled at once, the thread runs on, its outcome is discarded.
    abandoned: bool = False
    cancel_sent: bool = False
    #: Where the current attempt's calls ran, as the executor said (e.g. a Dask
    #: worker's address); recorded with the events that end or pause the attempt.
    placement: dict[str, Any] | None = None

    def place(self, where: dict[str, Any]) -> None:
        """The executor says where a call of the current attempt ran."""
        before = self.placement or {}
        workers = list(before.get("workers") or ([before["worker"]] if "worker" in before
                                                 else []))
        for worker in where.get("workers") or [where.get("worker")]:
            if worker and (not workers or workers[-1] != worker):
                workers.append(worker)
        workers = workers[-20:]  # a long watch may hop between workers many times
        self.placement = {k: v for k, v in where.items() if k != "workers"}
        if workers:
            self.placement["worker"] = workers[-1]
        if len(workers) > 1:
            self.placement["workers"] = workers

    def running(self) -> bool:
        return self.task is not None and not self.task.done()

    def stop_at_pause(self) -> bool:
        """End the current pause with a stop; False when the step is not pausing."""
        if self.pause is None or self.pause.done():
            return False
        self.pause.set_result(True)
        return True

    async def sleep(self, seconds: float) -> None:
        """Pause for ``seconds``; CancelledError if stopped meanwhile (the step then
        records itself cancelled, and the run it belongs to is not cancelled)."""
        loop = asyncio.get_running_loop()
        self.pause = pause = loop.create_future()

        def wake() -> None:
            if not pause.done():
                pause.set_result(False)

        timer = loop.call_later(seconds, wake)
        try:
            stopped = await pause
        finally:
            timer.cancel()
            self.pause = None
        if stopped:
            raise asyncio.CancelledError


def interruptible(executor: Executor, action: Action, method: Method) -> bool:
    """Whether cancelling a call of ``executor`` stops it (asked to the executor if it
    can tell; otherwise only coroutines are assumed to stop)."""
    check = getattr(executor, "interruptible", None)
    if callable(check):
        return bool(check(action, method))
    return inspect.iscoroutinefunction(getattr(action, method, None))


def abandons(executor: Executor, action: Action, method: Method) -> bool:
    """Whether a cancelled call of ``executor`` that cannot be interrupted is left to
    run on its own (a thread of this process) instead of being waited for."""
    check = getattr(executor, "abandons", None)
    return bool(check(action, method)) if callable(check) else False


def retry_delay(policy: Retry, error: Exception, retries: int, deadline: float | None,
                flight: Flight) -> float | None:
    """Seconds before the next attempt, or None when ``error`` fails the step (not
    retried by the policy, no attempt left, or a cancel pending)."""
    if flight.cancel_pending or not policy.retries(error) or retries + 1 >= policy.attempts:
        return None
    delay = policy.delay_for(retries + 1)
    if deadline is not None:
        delay = min(delay, max(0.0, deadline - time.time()))
    return delay


async def outcome_of(call: asyncio.Task[Outcome], flight: Flight, can_stop: bool,
                     deadline: float | None, late: Callable[[], Exception], *,
                     abandon: bool = False) -> Outcome:
    """Wait for ``call``: until ``deadline`` (then ``late()`` is raised and the call is
    stopped, a thread being left to finish on its own), through cancels.

    A cancel reaches the call once, however many arrive (a run's cancel comes both
    through ``asyncio.gather`` and from the run winding down): an executor that
    finds it cannot stop the call after all (a function already running on a
    worker) finishes it undisturbed. A call that cannot be stopped is not
    cancelled at all. Either way, a call that finishes leaves the cancel pending on
    ``flight``, applied once its outcome is recorded. With ``abandon`` (a thread of
    this process), a call that cannot be stopped is not waited for either: the cancel
    applies at once, ``flight.abandoned`` says so, and the call's outcome, whenever it
    comes, is discarded.
    """
    sent = False
    while True:
        timeout = None if deadline is None else max(0.0, deadline - time.time())
        try:
            done = await ended(call, timeout)
        except asyncio.CancelledError:
            flight.cancel_pending = True
            if can_stop and not sent:
                sent = True
                call.cancel()
            elif not can_stop and abandon:
                flight.abandoned = True
                call.add_done_callback(_discarded)
                raise
            continue
        if done:
            break
        await stop(call, TIMEOUT)
        raise late()
    if sent and (call.cancelled() or call.exception() is not None):
        raise asyncio.CancelledError
    return call.result()


async def ended(call: asyncio.Future[Any], timeout: float | None) -> bool:
    """Wait until ``call`` ends or ``timeout`` passes (whether it ended); cancelling
    the wait leaves ``call`` alone. One waiter and one callback: what
    ``asyncio.wait({call})`` does without its sets and counters."""
    if call.done():
        return True
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[None] = loop.create_future()

    def wake(_: Any = None) -> None:
        if not waiter.done():
            waiter.set_result(None)

    call.add_done_callback(wake)
    timer = None if timeout is None else loop.call_later(timeout, wake)
    try:
        await waiter
    finally:
        call.remove_done_callback(wake)
        if timer is not None:
            timer.cancel()
    return call.done()


def _discarded(call: asyncio.Future[Any]) -> None:
    if not call.cancelled():
        call.exception()  # retrieved: the step it belonged to ended without it


async def stop(call: asyncio.Task[Any], reason: str | None = None) -> None:
    """Cancel ``call`` and let it clean up (a killed process, a cancelled coroutine)."""
    call.cancel(reason)
    await asyncio.wait({call})
    if not call.cancelled():
        call.exception()  # retrieved: it no longer concerns anyone


def result_of(future: concurrent.futures.Future[T]) -> asyncio.Future[T]:
    """An asyncio future of the running loop that resolves with ``future``.

    Unlike ``asyncio.wrap_future``, cancelling the wait never cancels ``future``: a
    step cancelled while its event is committed leaves the writer's future alone, and
    a caller giving up on ``await run`` does not cancel the run.
    """
    return mirrored(future)  # many futures resolved at once wake the loop once
