"""Group commit: one thread writes every pending batch in one transaction.

A step's completion is awaited (``commit``) before the workflow goes on; lower-value
records (a step starting, log lines, heartbeats) are ``defer``-red and ride along
with the next commit, or are flushed after ``lazy_delay`` seconds.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import sys
import threading
import time
from collections.abc import Callable

from orbits_nb.core.state import Event
from orbits_nb.store.duckdb_store import Batch, DuckDBStore, Owner


class Writer:
    def __init__(self, store: DuckDBStore, *, lazy_delay: float = 0.05,
                 redact: Callable[[str], str] | None = None) -> None:
        self.store = store
        self.lazy_delay = lazy_delay
        self.redact = redact
        self._cond = threading.Condition()
        self._urgent: list[tuple[Batch, concurrent.futures.Future[None]]] = []
        self._opens: list[tuple[str, Owner, concurrent.futures.Future[list[Event]]]] = []
        self._lazy = Batch()
        self._lazy_since = 0.0
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.commits = 0

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stopping = False
            self._thread = threading.Thread(target=self._loop, name="orbits-nb-writer",
                                            daemon=True)
            self._thread.start()

    def submit(self, batch: Batch) -> concurrent.futures.Future[None]:
        """Queue ``batch`` for the next commit; the future resolves once it is durable."""
        future: concurrent.futures.Future[None] = concurrent.futures.Future()
        with self._cond:
            self._ensure_thread()
            self._urgent.append((batch, future))
            self._cond.notify()
        return future

    def open_run(self, run_id: str, owner: Owner) -> concurrent.futures.Future[list[Event]]:
        """Take ``run_id``'s lease for ``owner`` and load its events, batched with others.

        The future raises :class:`~orbits_nb.RunOwned` when a live process owns the run.
        """
        future: concurrent.futures.Future[list[Event]] = concurrent.futures.Future()
        with self._cond:
            self._ensure_thread()
            self._opens.append((run_id, owner, future))
            self._cond.notify()
        return future

    async def commit(self, batch: Batch) -> None:
        await asyncio.wrap_future(self.submit(batch))

    def defer(self, batch: Batch) -> None:
        with self._cond:
            self._ensure_thread()
            if not self._lazy:
                self._lazy_since = time.monotonic()
                self._cond.notify()
            self._lazy.extend(batch)

    def flush(self, timeout: float | None = None) -> None:
        """Block until everything queued so far is committed."""
        self.submit(Batch()).result(timeout)

    def stop(self) -> None:
        if self._thread is None:
            return
        self.flush()
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join(5)
        self._thread = None

    def _take(self) -> tuple[Batch, list[concurrent.futures.Future[None]]] | None:
        with self._cond:
            while True:
                if self._urgent or self._opens or self._stopping:
                    break
                if self._lazy and time.monotonic() - self._lazy_since >= self.lazy_delay:
                    break
                wait: float | None
                if self._lazy:
                    wait = self.lazy_delay - (time.monotonic() - self._lazy_since)
                else:
                    wait = self.store.idle_release if self.store.is_open else None
                if not self._cond.wait(wait) and self.store.is_open and not self._lazy:
                    return Batch(), []  # timed out idle: let the store hand the file over
            merged, self._lazy = self._lazy, Batch()
            futures = []
            for batch, future in self._urgent:
                merged.extend(batch)
                futures.append(future)
            self._urgent.clear()
            return merged, futures

    def _serve_opens(self) -> None:
        with self._cond:
            opens, self._opens = self._opens, []
        if not opens:
            return
        try:
            loaded = self.store.open_runs([(run_id, owner) for run_id, owner, _ in opens])
        except BaseException as err:
            for *_, future in opens:
                future.set_exception(err)
            return
        for run_id, _, future in opens:
            outcome = loaded[run_id]
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)

    def _loop(self) -> None:
        while True:
            taken = self._take()
            if taken is None:
                return
            batch, futures = taken
            error: BaseException | None = None
            if batch:
                try:
                    self.store.write(batch, redact=self.redact)
                    self.commits += 1
                except BaseException as err:
                    error = err
                    if not futures:
                        print(f"orbits_nb: could not write to the store: {err}",
                              file=sys.__stderr__)
            for future in futures:
                if error is None:
                    future.set_result(None)
                else:
                    future.set_exception(error)
            self._serve_opens()
            try:
                self.store.tick()
            except Exception as err:  # a failing close must not kill the writer
                print(f"orbits_nb: could not release the store: {err}", file=sys.__stderr__)
            if self._stopping and not self._urgent and not self._lazy:
                return
