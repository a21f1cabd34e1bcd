"""What a run that waits for a worker says, in the monitor, the dashboard and
``orbits-nb runs``: "waiting for a worker" while queued, "sleeping until HH:MM:SS" while
parked until then, and the worker that executes it once one does ("executing in").
A real engine on a DuckDB file; the worker's records are written as a worker writes
them (tests/test_workers_parking.py has real workers park runs)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from polling import until
from test_widgets import RecordingComm, comms
from worker_flows import Steps

import orbits_nb as ob
from orbits_nb.cli import main
from orbits_nb.core.rows import Batch
from orbits_nb.core.state import Event
from orbits_nb.views import status
from orbits_nb.views.dashboard import query_runs
from orbits_nb.views.monitor import Monitor

__all__ = ["comms"]  # the fixture, shared with test_widgets


def _at(epoch: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(epoch))


def test_the_waiting_texts() -> None:
    now = 1_800_000_000.0
    assert status.waiting_text(None, now=now) == "waiting for a worker"
    assert status.waiting_text(now - 1, {"reason": "timer"}, now=now) == \
        "waiting for a worker"  # due: any worker may take it now
    assert status.waiting_text(now + 60, {"reason": "timer", "watcher": "nap"},
                               now=now) == f"sleeping until {_at(now + 60)} (nap)"
    assert status.waiting_text(now + 60, {"reason": "watcher", "watcher": "a/poll"},
                               now=now) == f"sleeping until {_at(now + 60)} (then polls a/poll)"
    head = {"status": "running", "where": status.ELSEWHERE, "worker": "w1",
            "owner": {"pid": 7, "host": "h"}}
    assert status.status_line(head) == "executing in worker w1, pid 7 on h"


def test_a_queued_then_parked_run_says_what_it_waits_for(
        engine: ob.Engine, comms: list[RecordingComm], tmp_path: Path, state_path: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    run = Steps(n=0, steps=1, side=str(tmp_path / "side.txt")).submit(engine=engine)
    monitor = Monitor(run, interval=0.05, poll=0.1)
    until(lambda: monitor.header.get("status") == "queued", 30)
    assert monitor.header["note"] == "waiting for a worker"
    assert monitor.controls["cancel"]["enabled"]
    rows, _ = query_runs(engine)
    assert [(r["status"], r["executing"]) for r in rows] == [
        ("queued", "waiting for a worker")]

    due = time.time() + 600
    engine.store.park_run(run.run_id, due)
    engine.store.write(Batch(events=[
        Event(run.run_id, "run.started", data={"host": "elsewhere", "pid": 7,
                                                "worker": "w1"}),
        Event(run.run_id, "run.parked", data={"until": due, "reason": "timer",
                                               "watcher": "nap"})]))
    until(lambda: monitor.header.get("note", "").startswith("sleeping"), 30)
    assert monitor.header["status"] == "queued"  # not interrupted: nothing lost
    assert monitor.header["note"] == f"sleeping until {_at(due)} (nap)"
    rows, _ = query_runs(engine)
    assert [r["executing"] for r in rows] == [f"sleeping until {_at(due)}"]
    engine.writer.flush()
    monkeypatch.setenv("ORBITS_NB_STATE", str(state_path))
    main(["runs", "--json"])
    listed: list[dict[str, Any]] = [json.loads(line) for line in
                                    capsys.readouterr().out.splitlines()]
    assert [(r["status"], r["executing_in"]) for r in listed] == [
        ("queued", f"sleeping until {_at(due)} (nap)")]
