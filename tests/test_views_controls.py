"""The monitor's buttons through their comm messages, in every state a run goes through.

A real engine on a DuckDB file, real runs (one in a process killed mid-run); the front
end's gestures are fed in as the comm messages JupyterLab sends, and what the monitor
sends back (header, controls, notice) is checked for agreement after each of them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from polling import until
from test_views_flows import DeployBackend, Release
from test_widgets import TESTS, RecordingComm, comms, frontend_sends, frontend_sets, statuses

import orbits_nb as ob
from orbits_nb.store import HOST
from orbits_nb.views.monitor import Monitor

__all__ = ["comms"]  # the fixture, shared with test_widgets


def enabled(monitor: Monitor) -> set[str]:
    return {name for name, control in monitor.controls.items()
            if isinstance(control, dict) and control["enabled"]}


def press(monitor: Monitor, action: str, step: str = "") -> dict[str, Any]:
    frontend_sends(monitor, {"type": "action", "action": action, "step": step})
    return dict(monitor.notice)


def last_sent(channel: RecordingComm, trait: str) -> Any:
    return [u[trait] for u in channel.updates() if trait in u][-1]


def test_reset_shows_the_run_will_run_again_and_retry_executes_it(
        engine: ob.Engine, comms: list[RecordingComm]) -> None:
    run = engine.start(DeployBackend(client="acme"))
    run.wait(30)
    monitor = Monitor(run, interval=0.05)
    channel = comms[-1]
    assert monitor.header["status"] == "succeeded"
    assert enabled(monitor) == set()  # nothing selected, nothing to retry
    frontend_sets(monitor, selected="iac-deploy")
    assert enabled(monitor) == {"reset"}
    assert monitor.controls["reset"]["label"] == "⟲ Reset from iac-deploy…"

    notice = press(monitor, "reset", "iac-deploy")
    assert notice["level"] == "success"
    assert notice["text"] == ("reset from 'iac-deploy': 2 recorded steps discarded "
                              "(iac-deploy, sql-migrate)")
    head = monitor.header
    assert head["status"] == "reset"
    assert head["note"] == ("will re-run from iac-deploy: press Retry, or re-run the cell "
                            "that starts it")
    assert statuses(monitor) == {"git-create": "succeeded", "aws-create": "succeeded",
                                 "iac-deploy": "pending", "sql-migrate": "pending"}
    assert (head["done"], head["total"], head["counts"]["pending"]) == (2, 4, 2)
    assert enabled(monitor) == {"retry"}  # the selected step was just discarded
    # What the browser received says the same.
    assert last_sent(channel, "header")["status"] == "reset"
    assert last_sent(channel, "controls")["retry"]["enabled"] is True
    assert "Discarded by the reset from iac-deploy" in monitor.detail["discarded"]
    # A discarded step has nothing left to discard.
    assert "no record to discard" in press(monitor, "reset", "sql-migrate")["text"]
    frontend_sets(monitor, selected="aws-create")
    assert enabled(monitor) == {"retry", "reset"}

    notice = press(monitor, "retry")
    assert notice["level"] == "success"
    assert notice["text"].startswith("running again from iac-deploy")
    assert monitor.run is not run
    monitor.run.wait(30)
    until(lambda: not monitor.following)
    assert monitor.header["status"] == "succeeded"
    assert statuses(monitor) == {"git-create": "replayed", "aws-create": "replayed",
                                 "iac-deploy": "succeeded", "sql-migrate": "succeeded"}
    assert monitor.header["executions"] == 2
    assert monitor.notice == {}  # it spoke of the retry in progress
    stored = ob.Run(engine, run.run_id).state()
    assert [s.attempts for s in stored.ordered_steps()] == [1, 1, 1, 1]
    # The inspector of a step run again shows its new attempt, not the discarded one.
    frontend_sets(monitor, selected="iac-deploy")
    assert monitor.detail["logs"].count("working on iac-deploy") == 1
    assert [a["status"] for a in monitor.detail["history"]] == ["succeeded"]
    assert "discarded" not in monitor.detail


def test_cancel_then_retry(engine: ob.Engine, comms: list[RecordingComm],
                           tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    run = engine.start(DeployBackend(client="slow", gate=str(gate)))
    monitor = Monitor(run, interval=0.05)
    until(lambda: statuses(monitor).get("wait") == "waiting")
    assert monitor.header["where"] == "here"
    assert enabled(monitor) == {"cancel"}
    assert "cancel it or wait" in press(monitor, "retry")["text"]
    assert "cancel it or wait" in press(monitor, "reset", "wait")["text"]

    assert press(monitor, "cancel")["level"] == "success"
    with pytest.raises(BaseException):  # noqa: B017 - the cancelled run's future
        run.wait(30)
    until(lambda: monitor.header.get("status") == "cancelled")
    until(lambda: not monitor.following)
    assert monitor.notice == {}  # "cancelling" no longer holds
    assert statuses(monitor)["wait"] == "cancelled"
    assert enabled(monitor) == {"retry"}
    assert "is not executing (cancelled)" in press(monitor, "cancel")["text"]
    frontend_sets(monitor, selected="wait")
    assert enabled(monitor) == {"retry", "reset"}

    gate.touch()
    press(monitor, "retry")
    assert monitor.run.wait(30) == {"n": 4, "step": "sql-migrate"}
    until(lambda: monitor.header.get("status") == "succeeded")
    until(lambda: not monitor.following)
    assert statuses(monitor)["wait"] == "succeeded"
    assert enabled(monitor) == {"reset"}


def test_a_retry_that_fails_again_and_one_that_cannot_start(
        engine: ob.Engine, comms: list[RecordingComm], tmp_path: Path) -> None:
    run = engine.start(DeployBackend(client="acme", flaky=str(tmp_path / "never")))
    with pytest.raises(ob.StepFailed):
        run.wait(30)
    monitor = Monitor(run, interval=0.05)
    assert monitor.header["status"] == "failed"
    assert enabled(monitor) == {"retry"}
    assert monitor.controls["retry"]["label"] == "↻ Retry failed"

    press(monitor, "retry")
    with pytest.raises(ob.StepFailed):
        monitor.run.wait(30)
    until(lambda: not monitor.following)
    head = monitor.header
    assert (head["status"], head["executions"]) == ("failed", 2)
    assert "the flaky service is down" in head["error"]
    assert enabled(monitor) == {"retry"}
    assert monitor.notice == {}

    # Another live process holds the run: the retry cannot start, and says so.
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        now = time.time()
        engine.store.fetch("INSERT INTO leases VALUES (?, ?, ?, 'elsewhere', ?, ?)",
                           [run.run_id, HOST, other.pid, now, now])
        press(monitor, "retry")
        until(lambda: monitor.notice.get("level") == "error", 30)
        assert f"could not retry run {run.run_id!r}" in monitor.notice["text"]
        assert f"pid {other.pid}" in monitor.notice["text"]
        assert monitor.header["status"] == "failed"
        assert monitor.header["executions"] == 2  # it did not run
        assert enabled(monitor) == {"retry"}
    finally:
        other.kill()
        other.wait()


def test_buttons_while_an_approval_waits_and_after_it(engine: ob.Engine,
                                                      comms: list[RecordingComm]) -> None:
    run = engine.start(Release(version="4.0"))
    monitor = Monitor(run, interval=0.05)
    until(lambda: monitor.approvals)
    assert monitor.header["status"] == "running"
    assert enabled(monitor) == {"cancel"}
    notice = press(monitor, "approve", "approve")
    assert notice["level"] == "success"
    assert notice["text"].startswith("'approve' approved by ")
    run.wait(30)
    until(lambda: not monitor.following)
    assert monitor.header["status"] == "succeeded"
    assert monitor.approvals == []
    assert "approved by" in monitor.notice["text"]  # a fact that stays true
    assert enabled(monitor) == set()
    assert "nothing to retry" in press(monitor, "retry")["text"]


def test_a_run_of_another_process_then_of_a_dead_one(engine: ob.Engine,
                                                      comms: list[RecordingComm],
                                                      tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    code = ("import orbits_nb as ob\nfrom test_views_flows import DeployBackend\n"
            f"e = ob.Engine({str(engine.store.path)!r})\n"
            f"e.start(DeployBackend(client='far', gate={str(gate)!r})).wait(120)\n")
    child = subprocess.Popen([sys.executable, "-c", code],
                             env={**os.environ, "PYTHONPATH": str(TESTS)})
    try:
        run_id = until(lambda: [r[0] for r in engine.store.fetch(
            "SELECT run_id FROM runs WHERE status = 'running'")], 120)[0]
        monitor = Monitor(engine.get_run(run_id), interval=0.05, poll=0.1)
        until(lambda: statuses(monitor).get("wait") == "waiting", 60)
        head = monitor.header
        assert (head["status"], head["where"]) == ("running", "elsewhere")
        assert head["note"] == f"executing in pid {child.pid} on {HOST}"
        assert monitor.remote
        assert enabled(monitor) == {"cancel"}  # through the store (not pressed here)
        text = press(monitor, "retry")["text"]
        assert f"is executing in pid {child.pid} on {HOST}; retry it there" in text

        child.send_signal(signal.SIGKILL)
        child.wait(30)
        until(lambda: monitor.header.get("status") == "interrupted", 30)
        head = monitor.header
        assert head["note"].startswith(f"its process (pid {child.pid} on {HOST}) is gone")
        assert statuses(monitor)["wait"] == "pending"  # nothing executes it now
        assert "running" not in head["counts"] and "waiting" not in head["counts"]
        assert enabled(monitor) == {"retry"}
        assert "its process" in press(monitor, "cancel")["text"]

        gate.touch()
        assert press(monitor, "retry")["text"].startswith("resuming here")
        assert monitor.run.wait(30) == {"n": 4, "step": "sql-migrate"}
        until(lambda: not monitor.following)
        assert monitor.header["status"] == "succeeded"
        assert statuses(monitor)["git-create"] == "replayed"
        assert statuses(monitor)["wait"] == "succeeded"
        assert not monitor.remote
    finally:
        gate.touch()
        child.kill()
        child.wait()


def test_displayed_again_after_a_reset_in_code_the_monitor_shows_it(
        engine: ob.Engine, comms: list[RecordingComm]) -> None:
    run = engine.start(DeployBackend(client="code"))
    run.wait(30)
    monitor = Monitor.for_run(run)
    assert monitor.header["status"] == "succeeded"
    run.reset("sql-migrate")  # in a cell, not through the monitor
    assert Monitor.for_run(run) is monitor
    assert monitor.header["status"] == "reset"
    assert statuses(monitor)["sql-migrate"] == "pending"
    assert enabled(monitor) == {"retry"}
    run.retry().wait(30)
    Monitor.for_run(run)
    until(lambda: monitor.header.get("status") == "succeeded")
    assert statuses(monitor)["sql-migrate"] == "succeeded"


def test_the_dashboard_and_the_monitor_agree_on_a_reset_run(
        engine: ob.Engine, comms: list[RecordingComm]) -> None:
    from orbits_nb.views.dashboard import Dashboard

    run = engine.start(DeployBackend(client="agree"))
    run.wait(30)
    run.reset("iac-deploy")
    board = Dashboard(engine, interval=0.2)
    try:
        row = board.runs()[0]
        monitor = board.open(run.run_id)
        head = monitor.header
        assert row["status"] == head["status"] == "reset"
        assert (row["steps_done"], row["steps_total"]) == (head["done"], head["total"])
        assert (row["steps_done"], row["steps_total"]) == (2, 4)
        run.retry().wait(30)
        board.refresh(force=True)
        row = board.runs()[0]
        assert (row["status"], row["steps_done"], row["steps_total"]) == ("succeeded", 4, 4)
    finally:
        board.close()
