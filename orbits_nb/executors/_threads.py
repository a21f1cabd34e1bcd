"""A pool of daemon threads for the blocking calls of steps.

``concurrent.futures.ThreadPoolExecutor`` joins its workers when the interpreter
exits, so one ``main()`` that never returns (a step abandoned after its timeout)
would keep a finished script alive forever. These workers are daemon threads: the
interpreter exits without waiting for a call nobody waits for any more. Idle workers
leave after a while, so short-lived executors do not accumulate threads.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
_Item = tuple["concurrent.futures.Future[Any]", Callable[..., Any], tuple[Any, ...],
              dict[str, Any]]


class DaemonThreads(concurrent.futures.Executor):
    """Up to ``max_workers`` daemon threads named ``{name}-N``, started on demand."""

    def __init__(self, max_workers: int, name: str = "orbits-nb-step",
                 idle_seconds: float = 30.0) -> None:
        if max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, got {max_workers}")
        self.max_workers = max_workers
        self.name = name
        self.idle_seconds = idle_seconds
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        # One token per worker waiting for work, as in ThreadPoolExecutor.
        self._idle = threading.Semaphore(0)
        self._lock = threading.Lock()
        self._workers = 0
        self._numbers = itertools.count(1)

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any
               ) -> concurrent.futures.Future[T]:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._queue.put((future, fn, args, kwargs))
        if not self._idle.acquire(blocking=False):
            self._grow()
        return future

    def _grow(self) -> None:
        with self._lock:
            if self._workers >= self.max_workers:
                return  # the call waits in the queue for a worker to come free
            self._workers += 1
        thread = threading.Thread(target=self._work, daemon=True,
                                  name=f"{self.name}-{next(self._numbers)}")
        thread.start()

    def _work(self) -> None:
        while True:
            try:
                future, call, args, kwargs = self._queue.get(timeout=self.idle_seconds)
            except queue.Empty:
                # Leave only if no submitter counted on this worker meanwhile.
                if self._idle.acquire(blocking=False):
                    with self._lock:
                        self._workers -= 1
                    return
                continue
            if future.set_running_or_notify_cancel():
                try:
                    result = call(*args, **kwargs)
                except BaseException as error:  # the awaiting side decides what it means
                    future.set_exception(error)
                else:
                    future.set_result(result)
            del future, call, args, kwargs  # drop references before idling
            self._idle.release()
