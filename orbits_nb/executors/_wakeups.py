"""Waking an event loop from other threads once per batch, not once per result.

``call_soon_threadsafe`` writes to the loop's self-pipe at every call: with hundreds
of steps finishing in worker threads (or committed in one group by the writer), that
is one system call and one loop wake-up each. Results posted here queue up and the
loop is woken once for all those that arrive before it runs them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class Inbox:
    """Callbacks for one loop, run there in the order they were posted."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = weakref.ref(loop)
        self._lock = threading.Lock()
        self._items: list[Callable[[], None]] = []

    def post(self, callback: Callable[[], None]) -> None:
        with self._lock:
            self._items.append(callback)
            first = len(self._items) == 1
        if not first:
            return  # a wake-up is on its way already
        loop = self._loop()
        if loop is None or loop.is_closed():
            return  # the waiting side is long gone
        with contextlib.suppress(RuntimeError):  # closed meanwhile
            loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        with self._lock:
            items, self._items = self._items, []
        for callback in items:
            try:
                callback()
            except Exception as error:  # one bad callback must not drop the others
                loop = self._loop()
                if loop is not None:
                    loop.call_exception_handler({"message": "orbits_nb: a result could "
                                                 "not be delivered", "exception": error})


_inboxes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Inbox] = (
    weakref.WeakKeyDictionary())
_creating = threading.Lock()


def inbox(loop: asyncio.AbstractEventLoop) -> Inbox:
    found = _inboxes.get(loop)
    if found is None:
        with _creating:
            found = _inboxes.get(loop)
            if found is None:
                found = _inboxes[loop] = Inbox(loop)
    return found


def mirrored(future: concurrent.futures.Future[T]) -> asyncio.Future[T]:
    """An asyncio future of the running loop that resolves with ``future``, woken
    through the loop's inbox; cancelling it leaves ``future`` alone."""
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[T] = loop.create_future()
    box = inbox(loop)

    def copy(source: concurrent.futures.Future[T]) -> None:
        if waiter.done():
            return
        if source.cancelled():
            waiter.cancel()
        elif (error := source.exception()) is not None:
            waiter.set_exception(error)
        else:
            waiter.set_result(source.result())

    future.add_done_callback(lambda source: box.post(lambda: copy(source)))
    return waiter


def awaited(future: concurrent.futures.Future[T]) -> asyncio.Future[T]:
    """``asyncio.wrap_future`` for the running loop, woken through its inbox: a
    cancelled wait cancels ``future`` (a call still queued for a thread never runs)."""
    waiter = mirrored(future)

    def cancelled(_: Any) -> None:
        if waiter.cancelled():
            future.cancel()

    waiter.add_done_callback(cancelled)
    return waiter
