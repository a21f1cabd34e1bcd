"""Futures for run and commit completion that share one lock.

A ``concurrent.futures.Future`` allocates a ``threading.Condition`` (and its lock) of
its own: with a future per commit and one per run, 10,000 runs in flight hold tens of
thousands of them. A :class:`SharedFuture` is a ``concurrent.futures.Future`` (so
``asyncio.wrap_future``, ``concurrent.futures.wait`` and callbacks work as usual)
whose state is guarded by one process-wide condition. Resolving one wakes sleeping
threads only when somebody sleeps on that very future; a thread woken for another
future goes back to sleep until its own resolves or its timeout passes.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from concurrent.futures._base import (
    CANCELLED,
    CANCELLED_AND_NOTIFIED,
    FINISHED,
    PENDING,
    RUNNING,
)
from typing import Any, TypeVar

T = TypeVar("T")

#: Guards the state of every SharedFuture (re-entrant: concurrent.futures.wait
#: acquires the condition of each future it waits for, here the same one).
_SHARED = threading.Condition(threading.RLock())
_ENDED = (CANCELLED, CANCELLED_AND_NOTIFIED, FINISHED)


class SharedFuture(concurrent.futures.Future[T]):
    """A ``concurrent.futures.Future`` without a lock of its own."""

    def __init__(self) -> None:  # the base initializer would allocate a Condition
        self._condition = _SHARED
        self._state = PENDING
        self._result: Any = None
        self._exception: BaseException | None = None
        self._waiters: list[Any] = []
        self._done_callbacks: list[Any] = []
        #: Threads blocked in result()/exception() on this future.
        self._sleepers = 0

    def _wake(self) -> None:
        """Holding the lock: wake the threads sleeping on this future, if any."""
        if self._sleepers:
            _SHARED.notify_all()

    def cancel(self) -> bool:
        with _SHARED:
            if self._state in (RUNNING, FINISHED):
                return False
            if self._state in (CANCELLED, CANCELLED_AND_NOTIFIED):
                return True
            self._state = CANCELLED
            self._wake()
        self._invoke_callbacks()  # type: ignore[attr-defined]
        return True

    def set_result(self, result: T) -> None:
        self._finish(result, None)

    def set_exception(self, exception: BaseException | None) -> None:
        self._finish(None, exception)

    def _finish(self, result: T | None, exception: BaseException | None) -> None:
        """End the future with its result, or with ``exception`` when one is given."""
        with _SHARED:
            if self._state in _ENDED:
                raise concurrent.futures.InvalidStateError(f"{self._state}: {self!r}")
            if exception is None:
                self._result = result
            else:
                self._exception = exception
            self._state = FINISHED
            for waiter in self._waiters:
                if exception is None:
                    waiter.add_result(self)
                else:
                    waiter.add_exception(self)
            self._wake()
        self._invoke_callbacks()  # type: ignore[attr-defined]

    def _sleep(self, timeout: float | None) -> None:
        """Holding the lock: wait until this future ends or ``timeout`` passes."""
        if self._state in _ENDED:
            return
        deadline = None if timeout is None else time.monotonic() + timeout
        self._sleepers += 1
        try:
            while self._state not in _ENDED:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return
                _SHARED.wait(left)
        finally:
            self._sleepers -= 1

    def result(self, timeout: float | None = None) -> T:
        with _SHARED:
            self._sleep(timeout)
            if self._state in (CANCELLED, CANCELLED_AND_NOTIFIED):
                raise concurrent.futures.CancelledError
            if self._state != FINISHED:
                raise TimeoutError(f"the future did not end within {timeout}s")
            error = self._exception
            if error is None:
                return self._result  # type: ignore[no-any-return]
        try:
            raise error
        finally:
            del error  # no reference cycle through the traceback

    def exception(self, timeout: float | None = None) -> BaseException | None:
        with _SHARED:
            self._sleep(timeout)
            if self._state in (CANCELLED, CANCELLED_AND_NOTIFIED):
                raise concurrent.futures.CancelledError
            if self._state != FINISHED:
                raise TimeoutError(f"the future did not end within {timeout}s")
            return self._exception
