"""What makes a worker prompt: an idle worker takes a submitted run without waiting
for its poll interval, a claim reads the queue page by page yet finds a runnable run
past many blocked ones, and the cheap marks move exactly when a run is queued or a
command is recorded. Real processes and real files; no timing assertion beyond the
configured poll interval the pickup must not wait for."""

from __future__ import annotations

import os
import time
from pathlib import Path

from worker_flows import NoopSteps
from worker_helpers import start_worker, wait_for

from orbits_nb.core.rows import Batch, Owner, QueuedRun, QueueRow
from orbits_nb.core.state import Event
from orbits_nb.core.storage import Store
from orbits_nb.engine.engine import Engine
from orbits_nb.store import open_store
from orbits_nb.store.queue_claims import PAGE

#: A poll interval no pickup below may have waited for.
POLL = 30.0


def _first(store: Store, run_id: str, kind: str) -> float | None:
    return next((e.ts for e in store.load_run(run_id) if e.kind == kind), None)


def test_an_idle_worker_takes_a_submitted_run_without_waiting_for_its_poll(
        state: Path) -> None:
    worker = start_worker(state, "--poll", str(POLL), "--concurrency", "2")
    engine = Engine(state)
    try:
        delays = []
        for n in range(4):  # the first shows the worker up and idle: not counted
            run = NoopSteps(idle=n).submit(queue="idle", engine=engine)
            entry = engine.store.queued(run.run_id)
            assert entry is not None
            begun = wait_for(lambda r=run.run_id: _first(engine.store, r, "step.started"),
                             f"run {run.run_id} to begin", limit=4 * POLL)
            wait_for(lambda r=run.run_id: _first(engine.store, r, "run.succeeded"),
                     f"run {run.run_id} to end", limit=4 * POLL)
            delays.append(begun - entry.submitted_at)
            # The worker claims once more as the run ends, finds nothing, and from then
            # on waits for the queue's mark (or its 30 s poll).
            wait_for(lambda: engine.store.queued(run.run_id) is None, "the dequeue")
            engine.close()
            time.sleep(1.0)  # idle for a while: only the mark can wake it before 30 s
        # Without the mark, the worker would claim ~29 s after its last empty claim.
        assert all(0 <= d < POLL / 2 for d in delays[1:]), delays
    finally:
        engine.close()
        worker.terminate()
        out, _ = worker.communicate(timeout=120)
    assert worker.returncode == 0, out
    assert out.count(" succeeded after ") == 4, out


def _created(run_id: str) -> list[Event]:
    return [Event(run_id, "run.created", data={"workflow": "m:W", "args": {}})]


def test_a_claim_finds_a_runnable_run_past_a_page_of_blocked_ones(any_store: Store
                                                                  ) -> None:
    queue = QueueRow("q", None, 1)
    blocked = [f"a{n:03d}" for n in range(PAGE + 6)]
    for n, run_id in enumerate([*blocked, "b000"]):
        key = "b" if run_id == "b000" else "a"
        assert any_store.enqueue(QueuedRun(run_id, "q", key, submitted_at=1000.0 + n),
                                 _created(run_id), queue)
    owner = Owner("w1", any_store.host, os.getpid())
    first = any_store.claim_runs(owner, 1)
    assert [e.run_id for e in first] == ["a000"]
    # Key "a" executes: every other "a" run waits, and the "b" run beyond them begins.
    second = any_store.claim_runs(Owner("w2", any_store.host, os.getpid()), 5)
    assert [e.run_id for e in second] == ["b000"]


def test_the_marks_move_on_a_submit_and_on_a_command_only(state: Path) -> None:
    watcher, writer = open_store(state), open_store(state)
    try:
        writer.write(Batch(events=_created("r1")))
        queued, commanded = watcher.queue_mark(), watcher.command_mark()
        writer.write(Batch(events=[Event("r1", "run.started")]))
        assert (watcher.queue_mark(), watcher.command_mark()) == (queued, commanded)
        assert writer.enqueue(QueuedRun("r2", "q"), _created("r2"))
        assert watcher.queue_mark() != queued
        assert watcher.command_mark() == commanded
        queued = watcher.queue_mark()
        writer.write(Batch(events=[Event("r1", "run.cancel_requested",
                                         data={"by": "test", "via": "store"})]))
        assert watcher.command_mark() != commanded
        assert watcher.queue_mark() == queued
        writer.dequeue("r2")  # a slot may be free: waiting workers look again
        assert watcher.queue_mark() != queued
    finally:
        watcher.close()
        writer.close()
