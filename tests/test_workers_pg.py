"""Worker processes on the PostgreSQL team store, as two hosts (``ORBITS_NB_HOST``):
the drain within limits and the takeover of a killed worker's run by the other host."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from stores import Location
from worker_flows import Steps
from worker_helpers import (
    check_limits,
    check_no_completed_step_again,
    drain,
    events,
    side_counts,
    start_worker,
    status,
    wait_for,
)

import orbits_nb as ob
from orbits_nb.engine.engine import Engine

pytestmark = pytest.mark.slow


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
    found = drain(url, keys, workers)
    check_limits(found, keys, concurrency=2)
    assert {e.data.get("host") for e in found if e.kind == "run.started"} == {
        "host-a", "host-b"}
    assert set(side_counts(side).values()) == {1} and len(side_counts(side)) == 40


def test_a_killed_hosts_runs_are_taken_over_by_the_other_host(
        pg_location: Location, tmp_path: Path) -> None:
    url = pg_location.where
    side = tmp_path / "side.txt"
    engine = Engine(pg_location.open())
    try:
        runs = [Steps(n=n, steps=3, pause=2.0, side=str(side)).submit(
            queue="team", engine=engine).run_id for n in range(3)]
    finally:
        engine.close()
    env = {"ORBITS_NB_LEASE_TIMEOUT": "2"}
    first = start_worker(url, "--concurrency", "3", ORBITS_NB_HOST="host-a", **env)
    wait_for(lambda: all(side_counts(side)[f"{n} s1"] for n in range(3)), "step s1")
    first.kill()
    first.communicate(timeout=60)
    # A loaded machine may let a run end before the kill lands: only the others are cut.
    cut = [r for r in runs if status(url, r) != "succeeded"]
    assert cut, "the kill came after every run had ended"
    # Host b sees host a's leases by their heartbeat: it takes the runs over once
    # they are older than the lease timeout.
    second = start_worker(url, "--concurrency", "3", ORBITS_NB_HOST="host-b", **env)
    try:
        wait_for(lambda: all(status(url, r) == "succeeded" for r in runs), "takeover")
    finally:
        second.send_signal(signal.SIGTERM)
        out, _ = second.communicate(timeout=120)
    assert second.returncode == 0, out
    found = events(url)
    for n, run_id in enumerate(runs):
        mine = [e for e in found if e.run_id == run_id]
        hosts = [e.data.get("host") for e in mine if e.kind == "run.started"]
        assert hosts == (["host-a", "host-b"] if run_id in cut else ["host-a"]), (run_id, hosts)
        check_no_completed_step_again(side, str(n), mine, ["s0", "s1", "s2"])
