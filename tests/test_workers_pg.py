"""Worker processes on the PostgreSQL team store, as two hosts (``ORBITS_NB_HOST``):
the drain within limits and the takeover of a killed worker's run by the other host."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from stores import Location
from worker_flows import Steps
from worker_helpers import (
    check_no_completed_step_again,
    events,
    execution_intervals,
    max_overlap,
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


def test_a_killed_hosts_runs_are_taken_over_by_the_other_host(
        pg_location: Location, tmp_path: Path) -> None:
    url = pg_location.where
    side = tmp_path / "side.txt"
    engine = Engine(pg_location.open())
    try:
        runs = [Steps(n=n, steps=3, pause=0.5, side=str(side)).submit(
            queue="team", engine=engine).run_id for n in range(3)]
    finally:
        engine.close()
    env = {"ORBITS_NB_LEASE_TIMEOUT": "2"}
    first = start_worker(url, "--concurrency", "3", ORBITS_NB_HOST="host-a", **env)
    wait_for(lambda: all(side_counts(side)[f"{n} s1"] for n in range(3)), "step s1")
    first.kill()
    first.communicate(timeout=60)
    # Host b sees host a's leases by their heartbeat: it takes the runs over once
    # they are older than the lease timeout.
    second = start_worker(url, "--concurrency", "3", ORBITS_NB_HOST="host-b", **env)
    try:
        wait_for(lambda: all(_status(url, r) == "succeeded" for r in runs), "takeover")
    finally:
        second.send_signal(signal.SIGTERM)
        out, _ = second.communicate(timeout=120)
    assert second.returncode == 0, out
    found = events(url)
    for n, run_id in enumerate(runs):
        mine = [e for e in found if e.run_id == run_id]
        hosts = [e.data.get("host") for e in mine if e.kind == "run.started"]
        assert hosts == ["host-a", "host-b"], (run_id, hosts)
        check_no_completed_step_again(side, str(n), mine, ["s0", "s1", "s2"])
