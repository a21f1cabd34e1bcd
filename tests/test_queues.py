"""The queue verbs of the store port, on every store (DuckDB file, memory, PostgreSQL)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from stores import Location

import orbits_nb as ob
from orbits_nb.core.rows import Batch, Owner, QueuedRun, QueueRow
from orbits_nb.core.state import Event
from orbits_nb.core.storage import Store


def _created(run_id: str) -> list[Event]:
    return [Event(run_id, "run.created", data={"workflow": "m:W", "args": {}})]


def _fill(store: Store, queue: QueueRow, keys: list[str | None]) -> list[str]:
    ids = []
    for n, key in enumerate(keys):
        run_id = f"r{n:03d}"
        assert store.enqueue(QueuedRun(run_id, queue.name, key, submitted_at=1000.0 + n),
                             _created(run_id), queue)
        ids.append(run_id)
    return ids


def _owner(store: Store, name: str = "w1") -> Owner:
    return Owner(name, store.host, os.getpid())


def test_enqueue_records_the_run_and_is_idempotent(any_store: Store) -> None:
    queue = QueueRow("deploys", 2, 1)
    assert any_store.enqueue(QueuedRun("r1", "deploys", "acme"), _created("r1"), queue)
    assert not any_store.enqueue(QueuedRun("r1", "deploys", "acme"), _created("r1"), queue)
    assert [e.kind for e in any_store.load_run("r1")] == ["run.created"]
    entry = any_store.queued("r1")
    assert entry is not None and (entry.queue, entry.key) == ("deploys", "acme")
    [stats] = any_store.queue_stats()
    assert (stats.queue, stats.depth, stats.running) == (queue, 1, 0)


def test_claims_honour_concurrency_and_per_key(any_store: Store) -> None:
    queue = QueueRow("q", 3, 1)
    _fill(any_store, queue, ["a", "a", "b", "b", "c", "c", "d"])
    first = any_store.claim_runs(_owner(any_store), 10)
    # Oldest first, one per key, three in all.
    assert [(e.run_id, e.key) for e in first] == [("r000", "a"), ("r002", "b"),
                                                  ("r004", "c")]
    # Another worker gets nothing while they run: the limits count every holder.
    assert any_store.claim_runs(_owner(any_store, "w2"), 10) == []
    [stats] = any_store.queue_stats()
    assert (stats.depth, stats.running, stats.oldest_submitted_at) == (4, 3, 1001.0)
    # One ends: its slot and its key are free again.
    any_store.dequeue("r000")
    any_store.release_lease("run", "r000", "w1")
    assert [e.run_id for e in any_store.claim_runs(_owner(any_store, "w2"), 10)] == ["r001"]


def test_unbounded_queue_and_queue_filter(any_store: Store) -> None:
    _fill(any_store, QueueRow("free"), [None, None, None])
    any_store.enqueue(QueuedRun("other", "elsewhere"), _created("other"))
    claimed = any_store.claim_runs(_owner(any_store), 10, ["free"])
    assert [e.run_id for e in claimed] == ["r000", "r001", "r002"]
    assert [e.run_id for e in any_store.claim_runs(_owner(any_store), 10)] == ["other"]


def test_a_dead_holders_run_is_taken_over(shared_location: Location) -> None:
    store = shared_location.open(lease_timeout=0.5)
    _fill(store, QueueRow("q", 1), [None, None])
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead = Owner("dead", store.host, int(gone.stdout))
    assert [e.run_id for e in store.claim_runs(dead, 1)] == ["r000"]
    # Its pid is gone on this host: the run is free at once, and still first in line.
    taken = store.claim_runs(_owner(store), 1)
    assert [(e.run_id, e.takes) for e in taken] == [("r000", 1)]
    # Another host judges by heartbeat: after the timeout the run is taken over there.
    other = shared_location.open(host="elsewhere", lease_timeout=0.5)
    assert other.claim_runs(Owner("w2", "elsewhere", 1), 1) == []
    time.sleep(0.8)
    assert [e.run_id for e in other.claim_runs(Owner("w2", "elsewhere", 1), 1)] == ["r000"]


def test_parked_runs_wait_until_due(any_store: Store) -> None:
    _fill(any_store, QueueRow("q"), [None])
    any_store.park_run("r000", time.time() + 3600)
    assert any_store.claim_runs(_owner(any_store), 5) == []
    any_store.park_run("r000", time.time() - 1)
    assert [e.run_id for e in any_store.claim_runs(_owner(any_store), 5)] == ["r000"]


def test_ended_runs_are_dropped_and_cancels_flagged(any_store: Store) -> None:
    _fill(any_store, QueueRow("q"), [None, None, None])
    any_store.write(Batch(events=[
        Event("r000", "run.started", ts=2000.0), Event("r000", "run.succeeded", ts=2001.0),
        Event("r001", "run.cancel_requested", data={"by": "me", "via": "cli"})]))
    claimed = any_store.claim_runs(_owner(any_store), 5)
    assert [(e.run_id, e.cancel) for e in claimed] == [("r001", True), ("r002", False)]
    assert any_store.queued("r000") is None  # it ended (elsewhere) after it was queued


def test_a_run_that_failed_before_it_was_queued_is_runnable(any_store: Store) -> None:
    any_store.write(Batch(events=[
        *_created("r9"), Event("r9", "run.started", ts=time.time() - 10),
        Event("r9", "run.failed", ts=time.time() - 9)]))
    any_store.enqueue(QueuedRun("r9", "q"))
    assert [e.run_id for e in any_store.claim_runs(_owner(any_store), 5)] == ["r9"]


def test_remove_queue_refuses_while_runs_wait(any_store: Store) -> None:
    _fill(any_store, QueueRow("q", 2), [None, None])
    with pytest.raises(ob.InvalidArgument, match="still holds 2 run"):
        any_store.remove_queue("q")
    assert any_store.queued("r000") is not None
    assert any_store.remove_queue("q", force=True) == 2
    assert any_store.queue_stats() == []
    with pytest.raises(ob.InvalidArgument, match="no queue 'q'"):
        any_store.remove_queue("q")


def test_declare_replaces_limits_and_submit_by_name_keeps_them(any_store: Store) -> None:
    any_store.declare_queue(QueueRow("q", 4, 2))
    any_store.enqueue(QueuedRun("r1", "q"), _created("r1"))  # by name: limits stay
    assert any_store.queue_stats()[0].queue == QueueRow("q", 4, 2)
    any_store.declare_queue(QueueRow("q", 1, None))
    assert any_store.queue_stats()[0].queue == QueueRow("q", 1, None)


@pytest.mark.parametrize("bad", [{"concurrency": 0}, {"per_key": -1},
                                 {"concurrency": True}, {"per_key": "2"}])
def test_queue_limits_are_checked(bad: dict[str, object]) -> None:
    with pytest.raises(ob.InvalidArgument, match="whole number of at least 1"):
        ob.Queue("q", **bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["", "has space", "-dash", 3, "x" * 101])
def test_queue_names_are_checked(name: object) -> None:
    with pytest.raises(ob.InvalidArgument, match="queue name"):
        ob.Queue(name)  # type: ignore[arg-type]


def test_a_copied_store_keeps_its_queues_and_waiting_runs(tmp_path: Path) -> None:
    from orbits_nb.store import open_store
    from orbits_nb.store.transfer import copy_store

    source = open_store(tmp_path / "a.duckdb")
    _fill(source, QueueRow("q", 2, 1), ["k", None])
    target = open_store(tmp_path / "b.duckdb")
    try:
        copy_store(source, target)
        assert [(s.queue, s.depth) for s in target.queue_stats()] == [(QueueRow("q", 2, 1),
                                                                       2)]
        assert [e.run_id for e in target.claim_runs(_owner(target), 5)] == ["r000", "r001"]
    finally:
        source.close()
        target.close()
