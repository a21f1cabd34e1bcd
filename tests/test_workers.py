"""``orbits-nb worker`` processes on one DuckDB state file: drain, limits, takeover,
SIGTERM, durable timers, cancels, imports. Real processes throughout; the limits are
checked from the recorded timestamps, never from timing."""

from __future__ import annotations

import random
import signal
from collections import Counter
from pathlib import Path

import pytest
from worker_flows import Sleeper, Steps, Stubborn
from worker_helpers import (
    check_limits,
    check_no_completed_step_again,
    drain,
    events,
    execution_intervals,
    run_worker,
    side_counts,
    start_worker,
    status,
    wait_for,
)

import orbits_nb as ob
from orbits_nb.core.rows import Batch
from orbits_nb.core.state import Event, fold
from orbits_nb.engine.engine import Engine
from orbits_nb.store import open_store


@pytest.fixture
def engine(state: Path) -> Engine:
    made = Engine(state)
    yield made  # type: ignore[misc]
    made.close()


def _leases(state: Path) -> list[object]:
    store = open_store(state)
    try:
        return list(store.leases("run"))
    finally:
        store.close()


@pytest.mark.slow
def test_two_workers_drain_fifty_runs_within_the_limits(engine: Engine, state: Path,
                                                        tmp_path: Path) -> None:
    side = tmp_path / "side.txt"
    queue = ob.Queue("deploys", concurrency=3, per_key=1)
    keys = {}
    for n in range(50):
        run = Steps(n=n, steps=2, pause=0.02, side=str(side)).submit(
            queue=queue, key=f"tenant{n % 5}", engine=engine)
        keys[run.run_id] = f"tenant{n % 5}"
        assert run.status == "queued"
    engine.close()
    # Two slots each against the queue's three: neither worker can fill the queue alone,
    # so both take runs and the limit is held across the two processes.
    workers = [start_worker(state, "--concurrency", "2") for _ in range(2)]
    found = drain(state, keys, workers)
    spans = execution_intervals(found)
    assert set(spans) == set(keys) and all(len(s) == 1 for s in spans.values())
    check_limits(found, keys, concurrency=3)
    # Both workers took runs, every step executed exactly once.
    takers = {e.data.get("worker") for e in found if e.kind == "run.started"}
    assert len(takers) == 2
    assert set(side_counts(side).values()) == {1} and len(side_counts(side)) == 100
    assert Counter(e.kind for e in found)["step.started"] == 100


@pytest.mark.slow
def test_a_killed_worker_s_run_is_taken_over_without_repeating_steps(
        engine: Engine, state: Path, tmp_path: Path) -> None:
    side = tmp_path / "side.txt"
    rng = random.Random(12)
    trials = 20
    runs = [Steps(n=n, steps=4, pause=0.3, side=str(side)).submit(
        queue="crash", engine=engine).run_id for n in range(trials)]
    engine.close()
    env = {"ORBITS_NB_LEASE_TIMEOUT": "2"}
    cut: list[str] = []
    for n, run_id in enumerate(runs):
        worker = start_worker(state, "--concurrency", "1", **env)
        at = rng.randint(1, 3)  # killed while step s{at-1} executes, or just after
        wait_for(lambda r=n, k=at: sum(c for line, c in side_counts(side).items()
                                       if line.startswith(f"{r} ")) >= k,
                 f"run {run_id} to reach step {at}")
        worker.kill()
        worker.communicate(timeout=60)
        if status(state, run_id) != "succeeded":  # a slow poll may see it end first
            cut.append(run_id)
    assert len(cut) >= trials // 2, cut  # most runs were killed mid-run
    # The last killed run is free once its process is gone (its pid is checked).
    last = start_worker(state, "--concurrency", "2", **env)
    try:
        wait_for(lambda: all(status(state, r) == "succeeded" for r in runs), "the rest")
    finally:
        last.send_signal(signal.SIGTERM)
        last.communicate(timeout=120)
    found = events(state)
    for n, run_id in enumerate(runs):
        mine = [e for e in found if e.run_id == run_id]
        # Only the step cut short by a kill executed again; a completed one never did.
        check_no_completed_step_again(side, str(n), mine, ["s0", "s1", "s2", "s3"])
        # A cut run was completed by another execution (the killed one may have recorded
        # no run.started at all, when the kill came before its first commit).
        assert sum(e.kind == "run.started" for e in mine) >= 1, run_id


def test_sigterm_drains_finishes_the_step_and_leaves_the_run_queued(
        engine: Engine, state: Path, tmp_path: Path) -> None:
    side = tmp_path / "side.txt"
    run = Steps(n=0, steps=3, pause=1.0, side=str(side)).submit(engine=engine)
    engine.close()
    worker = start_worker(state)
    wait_for(lambda: side_counts(side)["0 s0"] == 1, "the first step")
    worker.send_signal(signal.SIGTERM)
    out, _ = worker.communicate(timeout=120)
    assert worker.returncode == 0, out
    assert "draining" in out
    found = [e for e in events(state) if e.run_id == run.run_id]
    assert [(e.kind, e.step) for e in found if e.step] == [("step.started", "s0"),
                                                            ("step.succeeded", "s0")]
    assert status(state, run.run_id) == "queued"  # not ended: it continues elsewhere
    assert _leases(state) == []
    run_worker(state)
    assert status(state, run.run_id) == "succeeded"
    assert set(side_counts(side).values()) == {1} and len(side_counts(side)) == 3


def test_a_durable_sleep_spans_a_worker_restart(engine: Engine, state: Path,
                                                tmp_path: Path) -> None:
    side = tmp_path / "side.txt"
    run = Sleeper(seconds=3, side=str(side)).submit(queue="timers", engine=engine)
    engine.close()
    out = run_worker(state, "--park-after", "1")
    assert "parked" in out
    store = open_store(state)
    try:
        entry = store.queued(run.run_id)
        assert entry is not None and entry.not_before is not None
        assert store.leases("run") == []  # the slot and the lease are free meanwhile
    finally:
        store.close()
    due = entry.not_before
    wait_for(lambda: __import__("time").time() >= due, "the timer")
    run_worker(state, "--park-after", "1")
    assert status(state, run.run_id) == "succeeded"
    found = [e for e in events(state) if e.run_id == run.run_id]
    after = next(e for e in found if e.kind == "step.started" and e.step == "after")
    assert after.ts >= due
    assert sum(e.kind == "step.started" and e.step == "cool-down" for e in found) == 1
    assert side_counts(side) == Counter({"sleeper before": 1, "sleeper after": 1})


def test_a_short_sleep_in_a_kernel_just_waits(engine: Engine, tmp_path: Path) -> None:
    side = tmp_path / "side.txt"
    run = engine.start(Sleeper(seconds=0.2, side=str(side)))
    assert run.wait(60) == "after"
    # Executing it again replays the finished timer instead of waiting again.
    again = engine.start(Sleeper(seconds=0.2, side=str(side)))
    assert again.wait(60) == "after"
    assert side_counts(side) == Counter({"sleeper before": 1, "sleeper after": 1})


def _request_cancel(state: Path, run_id: str) -> None:
    store = open_store(state)
    try:
        store.write(Batch(events=[Event(run_id, "run.cancel_requested",
                                        data={"by": "test", "via": "store"})]))
    finally:
        store.close()


def test_a_run_cancelled_before_it_began_never_executes(engine: Engine, state: Path,
                                                        tmp_path: Path) -> None:
    side = tmp_path / "side.txt"
    run = Steps(n=0, steps=2, side=str(side)).submit(engine=engine)
    engine.close()
    _request_cancel(state, run.run_id)
    out = run_worker(state)
    assert "cancelled before it began" in out
    assert status(state, run.run_id) == "cancelled"
    assert not side.exists()


def test_a_cancel_from_another_process_reaches_the_worker(engine: Engine, state: Path,
                                                          tmp_path: Path) -> None:
    side = tmp_path / "side.txt"
    run = Steps(n=0, steps=50, pause=0.2, side=str(side)).submit(engine=engine)
    engine.close()
    worker = start_worker(state)
    try:
        wait_for(lambda: side_counts(side)["0 s1"], "the run to execute")
        _request_cancel(state, run.run_id)
        wait_for(lambda: status(state, run.run_id) == "cancelled", "the cancel")
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.communicate(timeout=120)
    assert len(side_counts(side)) < 50


def test_a_main_that_ignores_the_cancel_is_terminated(engine: Engine, state: Path,
                                                      tmp_path: Path) -> None:
    side = tmp_path / "side.txt"
    run = Stubborn(side=str(side)).submit(engine=engine)
    engine.close()
    worker = start_worker(state, "--cancel-grace", "0.5")
    try:
        wait_for(lambda: side_counts(side)["stubborn hold"], "the step to begin")
        _request_cancel(state, run.run_id)
        wait_for(lambda: status(state, run.run_id) == "cancelled", "the cancel")
    finally:
        worker.send_signal(signal.SIGTERM)
        out, _ = worker.communicate(timeout=120)
    state_now = fold(run.run_id, [e for e in events(state) if e.run_id == run.run_id])
    assert state_now.steps["hold"].status == "cancelled", out
    # The run ended at once, its thread abandoned; the process that executed it (and
    # the thread, still in its 120 s main()) is gone, so the work really stopped.
    assert state_now.steps["hold"].abandoned or "terminated" in str(state_now.error)
    pid = state_now.spans[-1].pid
    assert pid is not None and pid != worker.pid
    wait_for(lambda: not _exists(pid), "the child process to end")


def _exists(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie nobody reaped yet does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def test_a_workflow_that_cannot_be_imported_fails_saying_so(engine: Engine, state: Path
                                                            ) -> None:
    store = engine.store
    from orbits_nb.core.rows import QueuedRun

    store.enqueue(QueuedRun("lost", "default"), [Event("lost", "run.created", data={
        "workflow": "no_such_module_here:Gone", "args": {}, "meta": {}})])
    engine.close()
    run_worker(state)
    failed = fold("lost", [e for e in events(state) if e.run_id == "lost"])
    assert failed.status == "failed"
    assert "no_such_module_here" in failed.error["message"]  # type: ignore[index]
    assert failed.spans[-1].worker and failed.spans[-1].worker.startswith("worker-")


def test_submit_is_idempotent_and_a_completed_run_returns_as_start_does(
        engine: Engine, state: Path, tmp_path: Path) -> None:
    side = tmp_path / "side.txt"
    first = Steps(n=1, steps=1, side=str(side)).submit(queue="q", key="k", engine=engine)
    again = Steps(n=1, steps=1, side=str(side)).submit(queue="q", key="k", engine=engine)
    assert first.run_id == again.run_id
    assert [s.depth for s in engine.store.queue_stats()] == [1]
    meta = fold(first.run_id, engine.store.load_run(first.run_id)).meta
    assert (meta["queue"], meta["key"]) == ("q", "k")
    engine.close()
    run_worker(state)
    assert first.wait(60) == ["s0"]
    done = Steps(n=1, steps=1, side=str(side)).submit(queue="q", engine=engine)
    assert done.wait(60) == ["s0"]
    assert engine.store.queue_stats()[0].depth == 0
    assert side_counts(side) == Counter({"1 s0": 1})


def test_submit_rejects_bad_arguments(engine: Engine, tmp_path: Path) -> None:
    flow = Steps(n=1, side=str(tmp_path / "x"))
    with pytest.raises(ob.InvalidArgument, match="queue name"):
        flow.submit(queue="bad name", engine=engine)
    with pytest.raises(ob.InvalidArgument, match="key"):
        flow.submit(key="", engine=engine)
    # Refused where they entered: nothing was recorded.
    assert engine.store.queue_stats() == [] and engine.store.recent_runs() == []
