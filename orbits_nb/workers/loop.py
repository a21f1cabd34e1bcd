"""The worker: claims queued runs, executes each in a child process, watches them.

One claim takes up to the free slots' worth of runs (their run leases, under the
worker's token) within every queue's limits; each run then executes in a child
process started ahead (prefork style, :mod:`.pool`), so a run that ignores a cancel
can be terminated without touching the others. The worker heartbeats the leases it
holds, dequeues runs that ended, and takes over runs whose owner died when the lease
rules free them.

SIGTERM (or SIGINT) drains: no new claim, each child starts no new step and stops
once its running steps finish (the run stays queued for another worker); the leases
are released and the worker exits 0. A second signal kills the children at once.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from orbits_nb.core.rows import Owner, QueuedRun
from orbits_nb.core.state import RUN_TERMINAL, RunState, fold
from orbits_nb.workers.child import (
    ENDED,
    PARK_ENV,
    PARKED,
    QUEUES_ENV,
    TOKEN_ENV,
    WORKER_ENV,
)
from orbits_nb.workers.claims import cancel_unstarted, record_cancelled
from orbits_nb.workers.pool import CANCEL, CLAIMED, Pool, Slot

if TYPE_CHECKING:
    from orbits_nb.core.storage import Store

#: Seconds a child has to end its run after a cancel request before it is terminated.
CANCEL_GRACE = 5.0
#: Timers at least this long park the run instead of holding the worker's slot.
PARK_AFTER = 30.0
#: Seconds between two looks at the queue's mark while idle, and at the children.
LOOK = 0.01
#: Seconds between two claims while the queue's mark does not move: timers fall due and
#: leases expire unsignalled; a submit or a run leaving its queue moves the mark
#: (``queue_mark``), and the next look claims at once.
POLL = 1.0
#: Seconds between two claims that found nothing on a store without a queue mark.
BLIND = 0.05


@dataclass
class Child:
    """A run executing in a child process."""

    entry: QueuedRun
    slot: Slot
    started: float = field(default_factory=time.monotonic)
    cancel_seen: float | None = None


class Worker:
    """Drains queued runs (see the module). ``run()`` returns the exit code."""

    def __init__(self, store: Store, state: str, *, queues: Sequence[str] = (),
                 concurrency: int = 4, once: bool = False, name: str | None = None,
                 park_after: float = PARK_AFTER, cancel_grace: float = CANCEL_GRACE,
                 poll: float = POLL, say: Callable[[str], None] = print) -> None:
        self.store = store
        self.state = state
        self.queues = list(queues)
        self.concurrency = concurrency
        self.once = once
        self.owner = Owner(uuid.uuid4().hex, store.host, os.getpid())
        self.name = name or f"worker-{store.host}-{os.getpid()}"
        self.park_after = park_after
        self.cancel_grace = cancel_grace
        self.poll = poll
        self.say = say
        self.children: dict[str, Child] = {}
        self.draining = False
        self._beat = 0.0
        self.pool = Pool({**os.environ, TOKEN_ENV: self.owner.token, WORKER_ENV: self.name,
                          PARK_ENV: str(park_after), "ORBITS_NB_STATE": state,
                          QUEUES_ENV: "\n".join(self.queues),
                          "ORBITS_NB_HOST": store.host, "ORBITS_NB_PROGRESS": "0"})
        self._quiet: tuple[object, float] | None = None
        #: The process asked to claim a run for itself, with the mark and time then.
        self._asked: tuple[Slot, object, float] | None = None

    # -- signals ------------------------------------------------------------------------
    def on_signal(self, *_: Any) -> None:
        """First signal: drain; second: stop at once."""
        if self.draining:
            for slot in self.pool.slots:
                slot.process.kill()
            os._exit(1)
        self.draining = True
        self.say(f"{self.name}: draining ({len(self.children)} run(s) finishing their "
                 "steps); send the signal again to stop at once")
        self.pool.signal_busy(signal.SIGTERM)

    # -- the loop -----------------------------------------------------------------------
    def run(self) -> int:
        self.say(f"{self.name}: taking runs from "
                 f"{', '.join(self.queues) or 'every queue'} of {self.store.location} "
                 f"({self.concurrency} at a time)")
        try:
            while True:
                self._watch()
                took = 0 if self.draining else self._claim()
                self._heartbeat()
                if (self.draining or (self.once and not took)) and not self.children \
                        and self._asked is None:
                    return 0
                if not took:
                    self.store.tick()
                    time.sleep(LOOK)
        finally:
            self._release_all()
            self.store.close()

    def _claim(self) -> int:
        free = self.concurrency - len(self.children)
        if free <= 0 or self._asked is not None:
            return 0
        self.pool.ready(self.concurrency + 1)
        # Taken before the claim: a run queued meanwhile moves it, and is claimed next.
        mark, now = self.store.queue_mark(), time.monotonic()
        if self._quiet is not None:
            since = now - self._quiet[1]
            if mark is None and since < BLIND:
                return 0  # a store that cannot tell (a server): claim now and then
            if mark is not None and mark == self._quiet[0] and since < self.poll:
                return 0  # nothing queued nor dequeued since the last claim found nothing
        idle = self.pool.idle()
        if idle is not None:
            # The ready process claims for itself and begins at once: the file is
            # opened once per run taken, by the process that executes it.
            self.pool.claim(idle, free)
            self._asked = (idle, mark, now)
            return 1
        entries = self.store.claim_runs(self.owner, free, self.queues)
        self._quiet = None if entries else (mark, now)
        for entry in entries:
            if entry.cancel:
                self._cancel_unstarted(entry)
            else:
                self._spawn(entry)
        if entries:
            self.store.close()  # hand the file to the children now, not when idle
        return len(entries)

    def _spawn(self, entry: QueuedRun) -> None:
        self._took(Child(entry, self.pool.send(entry.run_id)))

    def _took(self, child: Child) -> None:
        entry = child.entry
        self.children[entry.run_id] = child
        where = ", ".join([entry.queue] * bool(entry.queue) +
                          [f"key {entry.key}"] * bool(entry.key) +
                          [f"take {entry.takes + 1}"] * bool(entry.takes))
        self.say(f"{self.name}: took {entry.run_id}" + (f" ({where})" if where else ""))

    def _watch(self) -> None:
        while not self.pool.reports.empty():
            slot, code, run_id, status, following = self.pool.reports.get()
            if code == CLAIMED:
                self._claimed(slot, run_id, status.split())
                continue
            child = self.children.get(run_id)
            if child is None or child.slot is not slot:
                continue
            if code == CANCEL:
                child.cancel_seen = time.monotonic()
                continue
            del self.children[run_id]
            self.pool.done(slot)
            if code == ENDED:
                # The child dequeued it and released its lease: nothing to open here.
                self._quiet = None
                self.say(f"{self.name}: {run_id} {status} after "
                         f"{time.monotonic() - child.started:.2f}s")
                if following is not None:
                    # It claimed its next run itself, in the same hold of the file.
                    next_id, takes = following
                    slot.run_id = next_id
                    self._took(Child(QueuedRun(next_id, "", takes=takes), slot))
            else:
                self._ended(child, code)
        if self._asked is not None and not self._asked[0].alive() and \
                self.pool.reports.empty():
            self.pool.kill(self._asked[0])  # it died claiming: another one is asked
            self._asked = None
        for run_id, child in list(self.children.items()):
            died = child.slot.process.poll()
            if died is None:
                self._check_cancel(child)
                continue
            if child.slot.reader is not None:
                child.slot.reader.join(1)  # a report it made before it ended
            if not self.pool.reports.empty():
                continue  # read on the next round
            del self.children[run_id]
            self.pool.kill(child.slot)
            self._ended(child, died)

    def _claimed(self, slot: Slot, run_id: str, rest: list[str]) -> None:
        """The process asked to claim took ``run_id`` ("-": nothing was runnable) and
        executes it; the runs after it in ``rest`` (``TAKES [ID TAKES ...]``) go to
        other processes at once."""
        asked, self._asked = self._asked, None
        if run_id == "-":
            self.pool.done(slot)
            if asked is not None:
                self._quiet = asked[1:]
            return
        slot.run_id = run_id
        self._quiet = None  # more may be runnable: the next look asks again
        self._took(Child(QueuedRun(run_id, "", takes=int(rest[0])), slot))
        for other, takes in zip(rest[1::2], rest[2::2], strict=False):
            self._spawn(QueuedRun(other, "", takes=int(takes)))

    def _ended(self, child: Child, code: int) -> None:
        """A run stopped otherwise than by ending in its child (parked, drained, the
        child failed or died)."""
        run_id = child.entry.run_id
        self._quiet = None  # a slot is free: look at the queue again now
        took = time.monotonic() - child.started
        if code == PARKED:
            # Its engine released the lease as the run stopped; the entry waits.
            how = "parked" if not self.draining else "left queued (draining)"
        else:
            state = self._state(run_id)
            if state is not None and state.status in RUN_TERMINAL:
                self.store.dequeue(run_id)
                how = state.status
            else:
                # Not executed to an end: try again a little later.
                self.store.park_run(run_id, time.time() + min(60.0, 1.0 + child.entry.takes))
                how = f"left queued (its process ended with code {code})"
            self.store.release_lease("run", run_id, self.owner.token)
        self.say(f"{self.name}: {run_id} {how} after {took:.2f}s")

    def _state(self, run_id: str) -> RunState | None:
        events = self.store.load_run(run_id)
        return fold(run_id, events) if events else None

    # -- cancels ------------------------------------------------------------------------
    def _check_cancel(self, child: Child) -> None:
        """The child says when its run got a cancel request; past the grace, the
        process is terminated."""
        now = time.monotonic()
        if child.cancel_seen is None or now - child.cancel_seen < self.cancel_grace:
            return
        # The run's own cancel did not end it in time (a main() that cannot stop).
        self.pool.kill(child.slot)
        del self.children[child.entry.run_id]
        state = self._state(child.entry.run_id)
        if state is not None and state.status not in RUN_TERMINAL:
            record_cancelled(self.store, state, "the worker terminated the process executing "
                                          "it after the cancel was not honoured")
        self._ended(child, -9)

    def _cancel_unstarted(self, entry: QueuedRun) -> None:
        cancel_unstarted(self.store, entry, self.owner.token)
        self.say(f"{self.name}: {entry.run_id} cancelled before it began")

    # -- leases -------------------------------------------------------------------------
    def _heartbeat(self) -> None:
        now = time.monotonic()
        if now - self._beat < min(15.0, self.store.lease_timeout / 4):
            return
        self._beat = now
        self.store.renew_leases("run", [(run_id, self.owner.token)
                                        for run_id in self.children])

    def _release_all(self) -> None:
        self.pool.close()
        for run_id in list(self.children):
            self.store.release_lease("run", run_id, self.owner.token)
        self.children.clear()


__all__ = ["ENDED", "Worker"]
