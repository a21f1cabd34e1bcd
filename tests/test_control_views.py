"""The monitor's Cancel on a run that another process executes, through the store."""

from __future__ import annotations

from pathlib import Path

from control_flows import owner
from polling import until
from test_views_controls import enabled, press
from test_widgets import RecordingComm, comms

import orbits_nb as ob
from orbits_nb.views.monitor import Monitor

__all__ = ["comms"]  # the fixture, shared with test_widgets


def test_the_monitor_cancels_a_run_executing_in_another_process(
        engine: ob.Engine, comms: list[RecordingComm], tmp_path: Path) -> None:
    child = owner(str(engine.store.location), "far", "sleepy", tmp_path / "nap")
    try:
        monitor = Monitor(engine.get_run("far"), interval=0.05, poll=0.1)
        until(lambda: monitor.header.get("where") == "elsewhere", 60)
        assert enabled(monitor) == {"cancel"}
        assert "asked through the store" in monitor.controls["cancel"]["title"]
        notice = press(monitor, "cancel")
        assert notice["level"] == "success", notice
        assert f"asked pid {child.pid}" in notice["text"]
        out, err = child.communicate(timeout=120)
        assert "END cancelled" in out, err
        until(lambda: monitor.header.get("status") == "cancelled", 60)
        assert "retry" in enabled(monitor) and "cancel" not in enabled(monitor)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_the_status_line_says_an_abandoned_thread_may_still_run() -> None:
    from orbits_nb.views.status import status_line

    head = {"status": "cancelled", "where": "", "abandoned": ["busy"]}
    assert status_line(head) == ("cancelled; the thread of busy may still run (its "
                                 "outcome is discarded, its output kept with its attempt)")
    assert status_line({"status": "cancelled", "where": ""}) == ""
    elsewhere = {"status": "running", "where": "elsewhere", "cancel_requested": True,
                 "owner": {"pid": 42, "host": "h"}}
    assert status_line(elsewhere) == "cancelling in pid 42 on h…"
