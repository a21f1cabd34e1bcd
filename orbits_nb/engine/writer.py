"""Group commit: one thread writes every pending batch in one transaction.

A step's completion is awaited (``commit``) before the workflow goes on; lower-value
records (a step starting, log lines, heartbeats) are ``defer``-red and ride along
with the next commit, or are flushed after ``lazy_delay`` seconds.

When the store cannot be written (a full disk, a read-only or damaged file) nothing
is dropped silently: every record is kept, in order, and written again with backoff.
Commits wait while the writer retries; once the failure has lasted ``retry_for``
seconds (``$ORBITS_NB_WRITE_RETRY``, default 30) they fail with the
:class:`~orbits_nb.StoreError`, and later ones fail at once until a write succeeds.
Memory stays bounded: beyond ``max_kept_logs`` the oldest kept log lines are dropped,
which is reported once on stderr and, when the store recovers, in the runs' logs.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import math
import sys
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from orbits_nb.core.errors import StoreError
from orbits_nb.core.rows import Batch, LogLine, Owner
from orbits_nb.core.state import Event
from orbits_nb.core.storage import Store
from orbits_nb.engine.futures import SharedFuture
from orbits_nb.store.guard import seconds_from_env

RETRY_ENV = "ORBITS_NB_WRITE_RETRY"
_FIRST_DELAY = 0.05
_MAX_DELAY = 2.0


@dataclass
class _Outage:
    """A spell during which the store could not be written."""

    error: StoreError
    since: float
    attempts: int = 0
    retry_at: float = 0.0
    gave_up: bool = False
    lost: dict[str, int] = field(default_factory=dict)  # run id -> dropped log lines


def _report(text: str) -> None:
    stream = sys.__stderr__ or sys.stderr
    print(text, file=stream, flush=True)


def _describe(batch: Batch) -> str:
    parts = [f"{len(items)} {name}" for name, items in (
        ("events", batch.events), ("log lines", batch.logs),
        ("lease releases", batch.release_leases), ("heartbeats", batch.heartbeats))
        if items]
    return ", ".join(parts) or "no records"


class Writer:
    def __init__(self, store: Store, *, lazy_delay: float = 0.05,
                 redact: Callable[[str], str] | None = None,
                 retry_for: float | None = None, max_kept_logs: int = 50_000) -> None:
        self.store = store
        self.lazy_delay = lazy_delay
        #: How views mask secrets in what they show (the store masks what it writes).
        self.redact = redact
        self.retry_for = seconds_from_env(RETRY_ENV, 30.0) if retry_for is None else retry_for
        self.max_kept_logs = max_kept_logs
        self._cond = threading.Condition()
        self._urgent: list[tuple[Batch, concurrent.futures.Future[None]]] = []
        self._opens: list[tuple[str, Owner, concurrent.futures.Future[list[Event]]]] = []
        self._lazy = Batch()
        self._lazy_since = 0.0
        #: When the writer thread wakes by itself (inf: never; 0: it is not waiting).
        self._wakes_at = 0.0
        self._outage: _Outage | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.commits = 0
        #: Failed write attempts and log lines dropped beyond ``max_kept_logs``.
        self.failures = 0
        self.lost_logs = 0

    @property
    def failing(self) -> StoreError | None:
        """The error of the store's current write failure, if it is failing."""
        outage = self._outage
        return outage.error if outage is not None else None

    def _ensure_thread(self) -> bool:
        if self._thread is not None and self._thread.is_alive():
            return True
        if sys.is_finalizing():
            # A thread started while the interpreter tears down never runs, and
            # whoever waited for it to start would hang the exit for ever.
            return False
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="orbits-nb-writer",
                                        daemon=True)
        self._thread.start()
        return True

    def _exiting(self) -> StoreError:
        return StoreError(f"records for {self.store.location} arrived while this process was "
                          "exiting and were not written", path=str(self.store.location))

    def submit(self, batch: Batch) -> concurrent.futures.Future[None]:
        """Queue ``batch`` for the next commit; the future resolves once it is durable."""
        future: concurrent.futures.Future[None] = SharedFuture()
        with self._cond:
            if not self._ensure_thread():
                future.set_exception(self._exiting())
                return future
            self._urgent.append((batch, future))
            self._cond.notify()
        return future

    def open_run(self, run_id: str, owner: Owner) -> concurrent.futures.Future[list[Event]]:
        """Take ``run_id``'s lease for ``owner`` and load its events, batched with others.

        The future raises :class:`~orbits_nb.RunOwned` when a live process owns the run.
        """
        future: concurrent.futures.Future[list[Event]] = SharedFuture()
        with self._cond:
            if not self._ensure_thread():
                future.set_exception(self._exiting())
                return future
            self._opens.append((run_id, owner, future))
            self._cond.notify()
        return future

    async def commit(self, batch: Batch) -> None:
        # Shielded: a caller that stops waiting (a cancelled step) must not cancel the
        # write itself, which is queued already and may hold what others wait for.
        await asyncio.shield(asyncio.wrap_future(self.submit(batch)))

    def defer(self, batch: Batch) -> None:
        with self._cond:
            if not self._ensure_thread():
                return  # exiting: nothing will write it (stop() reported what was left)
            if not self._lazy:
                self._lazy_since = time.monotonic()
                # A writer that wakes before the delay is over sees the record then:
                # waking it now would only cost a thread switch (one per step).
                if self._wakes_at > self._lazy_since + self.lazy_delay:
                    self._cond.notify()
            self._lazy.extend(batch)

    def flush(self, timeout: float | None = None) -> None:
        """Block until everything queued so far is committed."""
        self.submit(Batch()).result(timeout)

    def flush_for_read(self) -> None:
        """Before a read: commit what is queued, so the read sees it. While the store
        cannot be written (a full disk), do not wait: the read shows what is durable,
        and the failure is reported where a write needs it. Returns at once when
        nothing is pending."""
        if self.failing is not None:
            return
        with self._cond:
            # Nothing queued, and the writer waiting (not in a commit): all is durable.
            if self._wakes_at != 0.0 and not (self._urgent or self._lazy):
                return
        with suppress(StoreError):
            self.flush()

    def stop(self) -> None:
        """Write what is queued (retrying as usual), then end the thread.

        Records that still cannot be written are reported as lost on stderr.
        """
        if self._thread is None:
            return
        # What cannot be written is reported below, not raised: this runs at exit.
        with suppress(StoreError, concurrent.futures.TimeoutError):
            self.flush(self.retry_for + 10)
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join(5)
        self._thread = None
        with self._cond:
            left, self._lazy = self._lazy, Batch()
            waiting, self._urgent = self._urgent, []
        for batch, future in waiting:
            left.extend(batch)
            _settle(future, error=self._given_up())
        if left:
            _report(f"orbits_nb: {_describe(left)} could not be written to "
                    f"{self.store.location} before this process stopped and are lost: "
                    f"{self.failing or 'the writer stopped'}")

    # -- the writer thread ------------------------------------------------------------
    def _next_wait(self) -> float | None:
        """0 when there is work now, else how long to wait (None: until notified)."""
        now = time.monotonic()
        if self._stopping or self._opens:
            return 0.0
        outage = self._outage
        if outage is not None and (self._urgent or self._lazy):
            if self._urgent and outage.gave_up:
                return 0.0  # fail it at once, or find the store writable again
            return max(0.0, outage.retry_at - now)
        if self._urgent:
            return 0.0
        if self._lazy:
            return max(0.0, self.lazy_delay - (now - self._lazy_since))
        return None

    def _take(self) -> tuple[Batch, list[concurrent.futures.Future[None]]] | None:
        with self._cond:
            while True:
                wait = self._next_wait()
                if wait == 0.0:
                    break
                idle = wait is None
                if idle and self.store.is_open:
                    wait = self.store.idle_release
                self._wakes_at = math.inf if wait is None else time.monotonic() + wait
                notified = self._cond.wait(wait)
                self._wakes_at = 0.0
                if not notified and idle and self.store.is_open:
                    return Batch(), []  # timed out idle: let the store hand the file over
            merged, self._lazy = self._lazy, Batch()
            futures = []
            for batch, future in self._urgent:
                merged.extend(batch)
                futures.append(future)
            self._urgent.clear()
            return merged, futures

    def _commit(self, batch: Batch, futures: list[concurrent.futures.Future[None]]) -> None:
        if batch:
            try:
                self.store.write(batch)
            except StoreError as err:
                self._failed(batch, futures, err)
                return
            except BaseException as err:  # not the store's fault: retrying cannot help
                _report(f"orbits_nb: could not write {_describe(batch)} to "
                        f"{self.store.location}; they are lost: {err!r}")
                for future in futures:
                    _settle(future, error=err)
                return
            self.commits += 1
            if self._outage is not None:
                self._recovered()
        for future in futures:
            _settle(future)

    def _failed(self, batch: Batch, futures: list[concurrent.futures.Future[None]],
                err: StoreError) -> None:
        """Keep ``batch`` for the next attempt; fail ``futures`` once retrying is over."""
        now = time.monotonic()
        with self._cond:
            self.failures += 1
            outage = self._outage
            if outage is None:
                outage = self._outage = _Outage(err, now)
                _report(f"orbits_nb: {err}. Retrying for {self.retry_for:g}s; the "
                        "records are kept in memory meanwhile")
            outage.error = err
            outage.attempts += 1
            outage.retry_at = now + min(_FIRST_DELAY * 2 ** (outage.attempts - 1),
                                        _MAX_DELAY)
            outage.gave_up = outage.gave_up or self._stopping or (
                now - outage.since >= self.retry_for)
            batch.extend(self._lazy)
            self._lazy = batch
            self._bound(outage)
            if not outage.gave_up:
                self._urgent[:0] = [(Batch(), future) for future in futures]
                return
        for future in futures:
            _settle(future, error=self._given_up())

    def _bound(self, outage: _Outage) -> None:
        """Drop the oldest kept log lines beyond ``max_kept_logs`` (reported once)."""
        overflow = len(self._lazy.logs) - self.max_kept_logs
        if overflow <= 0:
            return
        dropped, self._lazy.logs = self._lazy.logs[:overflow], self._lazy.logs[overflow:]
        if not outage.lost:
            _report(f"orbits_nb: {self.store.location} still cannot be written; dropping the "
                    f"oldest log lines beyond {self.max_kept_logs} kept in memory")
        for line in dropped:
            outage.lost[line.run_id] = outage.lost.get(line.run_id, 0) + 1
        self.lost_logs += overflow

    def _given_up(self) -> StoreError:
        outage = self._outage
        if outage is None:
            return StoreError(f"the writer of {self.store.location} stopped before this "
                              "record was written", path=str(self.store.location))
        err = outage.error
        seconds = time.monotonic() - outage.since
        return StoreError(
            f"{err.message} (still failing after {seconds:.0f}s of retries; the records "
            "stay queued in memory and are written if the file becomes writable while "
            "this process runs; resume the run then)",
            **{**err.fields, "retried_for": seconds})

    def _recovered(self) -> None:
        outage, self._outage = self._outage, None
        assert outage is not None
        seconds = time.monotonic() - outage.since
        lost = sum(outage.lost.values())
        _report(f"orbits_nb: {self.store.location} can be written again after {seconds:.0f}s; "
                + (f"{lost} log lines were lost" if lost else "nothing was lost"))
        notes = [LogLine(run_id, None, None, "stderr",
                         f"orbits_nb: {count} log lines of this run were lost while "
                         f"{self.store.location} could not be written ({outage.error.message})")
                 for run_id, count in outage.lost.items()]
        if notes:
            self.defer(Batch(logs=notes))

    def _serve_opens(self) -> None:
        with self._cond:
            opens, self._opens = self._opens, []
        if not opens:
            return
        try:
            loaded = self.store.open_runs([(run_id, owner) for run_id, owner, _ in opens])
        except BaseException as err:
            for *_, future in opens:
                _settle(future, error=err)
            return
        for run_id, owner, future in opens:
            outcome = loaded[run_id]
            if isinstance(outcome, BaseException):
                _settle(future, error=outcome)
            elif not _settle(future, outcome):
                # Nobody waits for this run any more (its start was cancelled): give
                # the lease back at once, or the run would look owned by a live process.
                self.defer(Batch(release_leases=[(run_id, owner.token)]))

    def _loop(self) -> None:
        while True:
            taken = self._take()
            if taken is None:
                return
            try:
                self._commit(*taken)
                self._serve_opens()
            except Exception as err:  # a bug here must not stop every later write
                _report(f"orbits_nb: the store writer hit an unexpected error: {err!r}")
            try:
                self.store.tick()
            except Exception as err:  # a failing close must not kill the writer
                _report(f"orbits_nb: could not release the store: {err}")
            with self._cond:
                if self._stopping and (self._outage is not None
                                       or not (self._urgent or self._lazy)):
                    return


def _settle(future: concurrent.futures.Future[Any], result: Any = None, *,
            error: BaseException | None = None) -> bool:
    """Resolve ``future``; False when its waiter had already given up (cancelled it).

    The writer thread must outlive every waiter: resolving a cancelled future raises,
    and an exception there would stop every later write of the process.
    """
    try:
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)
    except concurrent.futures.InvalidStateError:
        return False
    return True
