"""Runs that wait do not hold a worker slot: a watcher whose poll interval is at least
the worker's ``--park-after`` parks between polls (its bag intact), a nested watcher
or sleep parks the top-level run, and a draining worker parks nested runs too. Real
``orbits-nb worker`` processes on one DuckDB file; what happened when is read from
the recorded events, never timed."""

from __future__ import annotations

import signal
from collections import Counter
from pathlib import Path

import pytest
from worker_flows import Nested, Steps, Watching
from worker_helpers import events, run_worker, side_counts, start_worker, status, wait_for

from orbits_nb.core.state import Event, fold
from orbits_nb.engine.engine import Engine
from orbits_nb.store import open_store


@pytest.fixture
def engine(state: Path) -> Engine:
    made = Engine(state)
    yield made  # type: ignore[misc]
    made.close()


def _of(found: list[Event], run_id: str, kind: str) -> list[Event]:
    return [e for e in found if e.run_id == run_id and e.kind == kind and e.step is None]


def _stop(worker: object) -> str:
    import subprocess

    assert isinstance(worker, subprocess.Popen)
    worker.send_signal(signal.SIGTERM)
    out, _ = worker.communicate(timeout=120)
    assert worker.returncode == 0, out
    return str(out)


def test_a_watcher_frees_its_slot_between_polls_and_keeps_its_bag(
        engine: Engine, state: Path, tmp_path: Path) -> None:
    side = tmp_path / "side.txt"
    watcher = Watching(side=str(side), polls=3).submit(queue="q", engine=engine)
    other = Steps(n=1, steps=1, side=str(side)).submit(queue="q", engine=engine)
    engine.close()
    # One slot: the other run can only execute while the watcher does not hold it.
    worker = start_worker(state, "--concurrency", "1", "--park-after", "1")
    try:
        wait_for(lambda: status(state, watcher.run_id) == "succeeded" and
                 status(state, other.run_id) == "succeeded", "both runs")
    finally:
        out = _stop(worker)
    assert "parked" in out
    found = events(state)
    parked = _of(found, watcher.run_id, "run.parked")
    assert len(parked) >= 2  # after main() and after each poll but the last
    assert all(p.data["reason"] == "watcher" and p.data["watcher"] == "poll" and
               p.data["until"] >= p.ts + 1 for p in parked)
    other_start = _of(found, other.run_id, "run.started")[0]
    done = _of(found, watcher.run_id, "run.succeeded")[0]
    assert parked[0].ts < other_start.ts < done.ts
    # Each poll after a park came once its interval was over, with the bag it left.
    starts = _of(found, watcher.run_id, "run.started")
    assert all(s.ts >= p.data["until"] for p, s in zip(parked, starts[1:], strict=True))
    assert side_counts(side) == Counter({"poller main": 1, "poller watch 1": 1,
                                         "poller watch 2": 1, "poller watch 3": 1,
                                         "1 s0": 1})
    state_now = fold(watcher.run_id, [e for e in found if e.run_id == watcher.run_id])
    assert state_now.result == 3
    assert {s.status for s in state_now.spans[:-1]} == {"parked"}


@pytest.mark.parametrize(("inner", "args", "reason", "waits"), [
    ("Watching", {"polls": 2}, "watcher", "inner/poll"),
    ("Sleeper", {"seconds": 2}, "timer", "inner/cool-down"),
])
def test_a_nested_wait_parks_the_top_level_run(engine: Engine, state: Path, tmp_path: Path,
                                               inner: str, args: dict[str, object],
                                               reason: str, waits: str) -> None:
    side = tmp_path / "side.txt"
    run = Nested(inner=inner, args={**args, "side": str(side)}).submit(engine=engine)
    engine.close()
    out = run_worker(state, "--park-after", "1")
    assert "parked" in out
    assert status(state, run.run_id) == "queued"
    store = open_store(state)
    try:
        top = fold(run.run_id, store.load_run(run.run_id))
        entry = store.queued(run.run_id)
        assert store.leases("run") == []  # nothing holds the run while it waits
    finally:
        store.close()
    assert top.parked_for == {"reason": reason, "watcher": waits}
    assert entry is not None and entry.not_before == top.not_before
    while status(state, run.run_id) != "succeeded":
        due = top.not_before or 0.0
        wait_for(lambda: __import__("time").time() >= due, "the next poll")
        run_worker(state, "--park-after", "1")
        store = open_store(state)
        try:
            top = fold(run.run_id, store.load_run(run.run_id))
        finally:
            store.close()
    counts = side_counts(side)
    assert set(counts.values()) == {1}, counts  # no step, no poll executed twice


def test_a_draining_worker_parks_the_nested_run_too(engine: Engine, state: Path,
                                                    tmp_path: Path) -> None:
    side = tmp_path / "side.txt"
    run = Nested(inner="Steps", args={"n": 0, "steps": 3, "pause": 1.0,
                                      "side": str(side)}).submit(engine=engine)
    engine.close()
    worker = start_worker(state)
    wait_for(lambda: side_counts(side)["0 s0"] == 1, "the first nested step")
    assert "draining" in _stop(worker)
    found = events(state)
    for run_id in (run.run_id, f"{run.run_id}/inner"):
        parked = _of(found, run_id, "run.parked")
        assert [p.data["reason"] for p in parked] == ["drain"], run_id
        assert status(state, run_id) == "queued"
    inner = [e for e in found if e.run_id == f"{run.run_id}/inner" and e.step]
    assert ("step.started", "s1") not in [(e.kind, e.step) for e in inner]
    run_worker(state)
    assert status(state, run.run_id) == "succeeded"
    assert side_counts(side) == Counter({"0 s0": 1, "0 s1": 1, "0 s2": 1})
