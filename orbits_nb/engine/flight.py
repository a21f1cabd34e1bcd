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
from typing import Any

from orbits_nb.core.action import Action, Retry
from orbits_nb.core.ports import Executor, Method, Outcome


@dataclass(eq=False)
class Flight:
    """One step of a run while ``do()`` executes it."""

    name: str
    task: asyncio.Task[Any] | None
    #: Sleeping between polls or before a retry: cancelling it here is safe.
    pausing: bool = False
    #: In the watch phase (a retry after a failure resumes watching).
    watching: bool = False
    #: A cancel arrived during a call that cannot be interrupted: it applies after it.
    cancel_pending: bool = False
    cancel_sent: bool = False

    def running(self) -> bool:
        return self.task is not None and not self.task.done()


def interruptible(executor: Executor, action: Action, method: Method) -> bool:
    """Whether cancelling a call of ``executor`` stops it (asked to the executor if it
    can tell; otherwise only coroutines are assumed to stop)."""
    check = getattr(executor, "interruptible", None)
    if callable(check):
        return bool(check(action, method))
    return inspect.iscoroutinefunction(getattr(action, method, None))


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
                     deadline: float | None, late: Callable[[], Exception]) -> Outcome:
    """Wait for ``call``: until ``deadline`` (then ``late()`` is raised and the call is
    stopped, a thread being left to finish on its own), through cancels when it cannot
    be stopped (the cancel is then pending on ``flight``)."""
    if can_stop and deadline is None:
        # A cancel of the awaiting task cancels the call and waits for its cleanup.
        return await call
    while True:
        try:
            if deadline is None:
                return await asyncio.shield(call)
            done, _ = await asyncio.wait({call}, timeout=max(0.0, deadline - time.time()))
        except asyncio.CancelledError:
            if not can_stop:
                flight.cancel_pending = True
                continue
            await stop(call)
            raise
        if done:
            return call.result()
        await stop(call)
        raise late()


async def stop(call: asyncio.Task[Any]) -> None:
    """Cancel ``call`` and let it clean up (a killed process, a cancelled coroutine)."""
    call.cancel()
    await asyncio.wait({call})
    if not call.cancelled():
        call.exception()  # retrieved: it no longer concerns anyone


def durable(done: concurrent.futures.Future[None]) -> asyncio.Future[None]:
    """An asyncio future that resolves with the writer's ``done`` future.

    Unlike ``asyncio.wrap_future``, cancelling it (a cancel reaching the step while its
    event is committed) never cancels ``done``, which the writer still resolves.
    """
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[None] = loop.create_future()

    def copy(source: concurrent.futures.Future[None]) -> None:
        if waiter.done():
            return
        error = source.exception()
        if error is None:
            waiter.set_result(None)
        else:
            waiter.set_exception(error)

    done.add_done_callback(lambda source: loop.call_soon_threadsafe(copy, source))
    return waiter
