"""Worker processes on the PostgreSQL team store, as two hosts (``ORBITS_NB_HOST``):
the drain within limits and the takeover of a killed worker's run by the other host."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from stores import Location
from worker_flows import Steps
from worker_helpers import (
    events,
    execution_intervals,
    max_overlap,
    run_worker,
    side_counts,
    start_worker,
    wait_for,
)

import orbits_nb as ob
from orbits_nb.core.state import fold
from orbits_nb.engine.engine import Engine

pytestmark = pytest.mark.slow


def _status(url: str, run_id: str) -> str:
    from orbits_nb.store import open_store

    opened = open_store(url)
    try:
        return fold(run_id, opened.load_run(run_id)).status
    finally:
        opened.close()


def test_two_hosts_drain_within_the_limits(pg_location: Location, tmp_path: Path) -> None:
    url = pg_location.where
    side = tmp_path / "side.txt"
    engine = Engine(pg_location.open())
    keys = {}
    try:
        for n in range(20):
            run = Steps(n=n, steps=2, side=str(side)).submit(
                queue=ob.Queue("team", concurrency=2, per_key=1), key=f"k{n % 3}",
                engine=engine)
            keys[run.run_id] = f"k{n % 3}"
    finally:
        engine.close()
    workers = [start_worker(url, "--concurrency", "2", ORBITS_NB_HOST=host)
               for host in ("host-a", "host-b")]
    try:
        wait_for(lambda: all(_status(url, r) == "succeeded" for r in keys), "the drain",
                 limit=600)
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        outputs = [w.communicate(timeout=120)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    found = events(url)
    spans = execution_intervals(found)
    assert max_overlap([s for runs in spans.values() for s in runs]) <= 2
    for key in set(keys.values()):
        assert max_overlap([s for r, runs in spans.items() if keys[r] == key
                            for s in runs]) <= 1
    assert {e.data.get("host") for e in found if e.kind == "run.started"} == {
        "host-a", "host-b"}
    assert set(side_counts(side).values()) == {1} and len(side_counts(side)) == 40


def test_a_killed_hosts_run_is_taken_over_by_the_other_host(
        pg_location: Location, tmp_path: Path) -> None:
    url = pg_location.where
    side = tmp_path / "side.txt"
    engine = Engine(pg_location.open())
    try:
        runs = [Steps(n=n, steps=3, pause=0.3, side=str(side)).submit(
            queue="team", engine=engine).run_id for n in range(3)]
    finally:
        engine.close()
    env = {"ORBITS_NB_LEASE_TIMEOUT": "2"}
    for n in range(len(runs)):
        worker = start_worker(url, "--concurrency", "1", ORBITS_NB_HOST="host-a", **env)
        wait_for(lambda r=n: side_counts(side)[f"{r} s1"] >= 1, "the second step")
        worker.kill()
        worker.communicate(timeout=60)
    out = run_worker(url, ORBITS_NB_HOST="host-b", **env)
    found = events(url)
    counts = side_counts(side)
    for n, run_id in enumerate(runs):
        assert _status(url, run_id) == "succeeded", out
        mine = [e for e in found if e.run_id == run_id]
        hosts = [e.data.get("host") for e in mine if e.kind == "run.started"]
        assert hosts[0] == "host-a" and hosts[-1] == "host-b"
        for step in ("s0", "s1", "s2"):
            started = sum(e.kind == "step.started" and e.step == step for e in mine)
            assert counts[f"{n} {step}"] == started >= 1
            assert sum(e.kind == "step.succeeded" and e.step == step for e in mine) == 1
