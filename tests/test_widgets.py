"""The monitor and dashboard widgets, through their comm messages (no kernel, no browser).

As in ipywidgets' own tests, the one function that touches the kernel
(``comm.create_comm``) is replaced by a recording comm; the front end's gestures are
fed in as the comm messages JupyterLab would send.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import comm
import ipywidgets
import pytest
from polling import until
from test_views_flows import DeployBackend, Many, Release

import orbits_nb as ob
from orbits_nb.views.dashboard import Dashboard
from orbits_nb.views.display import WIDGET_MIME, mimebundle
from orbits_nb.views.monitor import Monitor

TESTS = Path(__file__).parent


class RecordingComm:
    """Stands in for a kernel comm: keeps every message the widget sends."""

    kernel = "Truthy"

    def __init__(self, **kwargs: Any) -> None:
        self.comm_id = f"comm-{id(self)}"
        self.opened = kwargs
        self.messages: list[dict[str, Any]] = []
        self.handlers: list[Callable[[dict[str, Any]], None]] = []

    def open(self, *args: Any, **kwargs: Any) -> None:
        pass

    def on_msg(self, callback: Callable[[dict[str, Any]], None]) -> None:
        self.handlers.append(callback)

    def send(self, data: Any = None, metadata: Any = None, buffers: Any = None) -> None:
        self.messages.append(data)

    def close(self, *args: Any, **kwargs: Any) -> None:
        pass

    def updates(self) -> list[dict[str, Any]]:
        return [m["state"] for m in self.messages if m.get("method") == "update"]

    def nbytes(self) -> int:
        return sum(len(json.dumps(m, default=str)) for m in self.messages)


@pytest.fixture
def comms(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[RecordingComm]]:
    made: list[RecordingComm] = []

    def create_comm(**kwargs: Any) -> RecordingComm:
        made.append(RecordingComm(**kwargs))
        return made[-1]

    monkeypatch.setattr(comm, "create_comm", create_comm)
    yield made
    ipywidgets.Widget.close_all()  # stops the monitors' threads, as closing a notebook


def frontend_sets(widget: Any, **state: Any) -> None:
    """What JupyterLab sends when the view changes a synced trait."""
    widget._handle_msg({"content": {"data": {"method": "update", "state": state,
                                             "buffer_paths": []}}, "buffers": []})


def frontend_sends(widget: Any, content: dict[str, Any]) -> None:
    """A custom message from the view (``model.send``), e.g. a button press."""
    widget._handle_msg({"content": {"data": {"method": "custom", "content": content}},
                        "buffers": []})




def statuses(monitor: Monitor) -> dict[str, str]:
    return {row["path"]: row["status"] for row in monitor.rows}


def test_live_monitor_follows_the_run_then_costs_nothing(
        engine: ob.Engine, comms: list[RecordingComm], tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    run = engine.start(DeployBackend(client="acme", gate=str(gate)))
    monitor = Monitor(run, interval=0.05)
    channel = comms[-1]
    assert channel.opened["data"]["state"]["run_id"] == run.run_id
    until(lambda: statuses(monitor).get("wait") == "waiting")
    assert monitor.following
    # The diagram trails the table by at most a refresh (it is redrawn less often).
    until(lambda: "st-waiting" in monitor.svg.replace("&#45;", "-"))
    listeners = len(engine._listeners)
    gate.touch()
    run.wait(30)
    until(lambda: not monitor.following)
    assert monitor.header["status"] == "succeeded"
    assert statuses(monitor)["sql-migrate"] == "succeeded"
    assert "st-waiting" not in monitor.svg.replace("&#45;", "-")
    assert len(engine._listeners) == listeners - 1  # unsubscribed
    # The views received the transitions, batched: one message per refresh.
    sent = [u.get("header", {}).get("status") for u in channel.updates()]
    assert "running" in sent
    assert sent[-1] == "succeeded" or "succeeded" in sent
    quiet = len(channel.messages)
    time.sleep(0.3)
    assert len(channel.messages) == quiet


def test_a_finished_runs_monitor_has_no_thread(engine: ob.Engine,
                                               comms: list[RecordingComm]) -> None:
    run = engine.start(DeployBackend(client="done"))
    run.wait(30)
    listeners = len(engine._listeners)
    monitor = Monitor(run)
    assert not monitor.following
    assert len(engine._listeners) == listeners
    assert monitor.header["terminal"]
    assert len(comms[-1].messages) <= 1  # the opening state, maybe one sync


def test_a_thousand_steps_do_not_flood_the_browser(engine: ob.Engine,
                                                  comms: list[RecordingComm]) -> None:
    changes = []
    engine.subscribe(lambda execution: changes.append(1))
    run = engine.start(Many(n=1000))
    monitor = Monitor(run, interval=0.5)
    run.wait(300)
    until(lambda: not monitor.following, 60)
    channel = comms[-1]
    updates = channel.updates()
    assert monitor.total_rows == 1000
    assert len(changes) >= 2000  # the engine reported every step start and end
    assert len(updates) < len(changes) / 20
    assert max(len(u.get("rows", [])) for u in updates) <= monitor.page_size
    assert "1000 steps succeeded" in monitor.svg or "1000 steps" in monitor.svg


def test_inspector_shows_a_failed_steps_traceback_and_logs(
        engine: ob.Engine, comms: list[RecordingComm]) -> None:
    run = engine.start(DeployBackend(client="acme", fail=True))
    with pytest.raises(ob.StepFailed):
        run.wait(30)
    monitor = Monitor(run)
    frontend_sets(monitor, selected="iac-deploy")
    detail = monitor.detail
    assert detail["status"] == "failed"
    assert detail["error"] == "RuntimeError: stack acme failed"
    assert "Traceback (most recent call last)" in detail["traceback"]
    assert "raise RuntimeError" in detail["traceback"]
    assert "about to fail" in detail["logs"]
    assert detail["reset_from"] == "iac-deploy"
    assert detail["reset_discards"] == ["iac-deploy", "notify"]
    frontend_sets(monitor, selected="aws-create")
    assert '"token": "****"' in monitor.detail["args"]
    assert "s3cr3t" not in json.dumps(monitor.detail)
    assert "working on aws-create" in monitor.detail["logs"]
    sent = comms[-1].updates()
    assert any("Traceback" in u.get("detail", {}).get("traceback", "") for u in sent)


def test_approve_button_resumes_the_run(engine: ob.Engine,
                                        comms: list[RecordingComm]) -> None:
    run = engine.start(Release(version="2.0"))
    monitor = Monitor(run, interval=0.05)
    until(lambda: monitor.approvals)
    assert monitor.approvals[0]["prompt"] == "Ship 2.0?"
    frontend_sends(monitor, {"type": "action", "action": "approve", "step": "approve",
                             "comment": "looks good"})
    assert monitor.notice["level"] == "success"
    result = run.wait(30)
    assert result["approved"] is True
    assert result["comment"] == "looks good"
    until(lambda: monitor.header.get("status") == "succeeded")
    assert monitor.approvals == []
    row = engine.store.fetch("SELECT decision, decided_by, decided_via, comment FROM "
                             "approvals WHERE run_id = ?", [run.run_id])[0]
    assert row[0] == "approved"
    assert row[1]
    assert row[2:] == ("notebook", "looks good")


def test_reject_button_fails_the_step(engine: ob.Engine, comms: list[RecordingComm]) -> None:
    run = engine.start(Release(version="3.0"))
    monitor = Monitor(run, interval=0.05)
    until(lambda: monitor.approvals)
    frontend_sends(monitor, {"type": "action", "action": "reject", "step": "approve",
                             "comment": "not on a friday"})
    with pytest.raises(ob.StepFailed, match="not on a friday"):
        run.wait(30)


def test_retry_reset_and_cancel_buttons(engine: ob.Engine, comms: list[RecordingComm],
                                        tmp_path: Path) -> None:
    fix = tmp_path / "fixed"
    run = engine.start(DeployBackend(client="acme", flaky=str(fix)))
    with pytest.raises(ob.StepFailed):
        run.wait(30)
    monitor = Monitor(run, interval=0.05)
    fix.touch()
    frontend_sends(monitor, {"type": "action", "action": "retry"})
    assert monitor.notice["level"] == "success"
    monitor.run.wait(30)
    until(lambda: monitor.header.get("status") == "succeeded")
    assert statuses(monitor)["git-create"] == "replayed"

    frontend_sends(monitor, {"type": "action", "action": "reset", "step": "iac-deploy"})
    assert monitor.notice["level"] == "success"
    assert "reset from 'iac-deploy'" in monitor.notice["text"]
    assert statuses(monitor)["iac-deploy"] == "pending"  # runs again on the next start
    assert monitor.header["status"] == "reset"
    stored = ob.Run(engine, run.run_id).state()
    assert [s.key for s in stored.ordered_steps()] == ["git-create", "aws-create"]

    gate = tmp_path / "gate"
    slow = engine.start(DeployBackend(client="slow", gate=str(gate)))
    live = Monitor(slow, interval=0.05)
    until(lambda: statuses(live).get("wait") == "waiting")
    frontend_sends(live, {"type": "action", "action": "reset", "step": "wait"})
    assert live.notice["level"] == "error"
    assert "cancel it" in live.notice["text"]
    frontend_sends(live, {"type": "action", "action": "cancel"})
    with pytest.raises(BaseException):  # noqa: B017 - cancelled future
        slow.wait(30)
    until(lambda: live.header.get("status") == "cancelled")
    frontend_sends(live, {"type": "action", "action": "launch-missiles"})
    assert "unknown monitor action" in live.notice["text"]


def test_display_bundle_carries_the_widget_in_a_kernel(engine: ob.Engine,
                                                       comms: list[RecordingComm]) -> None:
    run = engine.start(DeployBackend(client="k"))
    run.wait(30)
    bundle = mimebundle(run, widget=True)
    monitor = Monitor.for_run(run)
    assert bundle[WIDGET_MIME]["model_id"] == monitor.model_id
    assert "text/html" in bundle
    assert "text/plain" in bundle
    assert Monitor.for_run(run) is monitor  # one model per run, shared by displays


def test_dashboard_lists_filters_and_opens_runs(engine: ob.Engine,
                                                comms: list[RecordingComm]) -> None:
    engine.start(DeployBackend(client="a")).wait(30)
    failed = engine.start(DeployBackend(client="b", fail=True))
    with pytest.raises(ob.StepFailed):
        failed.wait(30)
    board = Dashboard(engine, interval=0.2)
    try:
        runs = board.runs()
        assert [r["status"] for r in runs] == ["failed", "succeeded"]
        assert runs[0]["steps_done"] == 3
        assert runs[0]["steps_total"] == 4
        assert "RuntimeError" in runs[0]["error"] or "StepFailed" in runs[0]["error"]
        frontend_sets(board.list, status="failed")
        assert [r["run_id"] for r in board.runs()] == [failed.run_id]
        frontend_sets(board.list, status="", workflow="Nope")
        assert board.runs() == []
        frontend_sets(board.list, workflow="DeployBackend", since="2000-01-01")
        assert len(board.runs()) == 2
        frontend_sets(board.list, since="last tuesday")
        assert board.list.notice["level"] == "error"
        assert "not a date" in board.list.notice["text"]
        frontend_sets(board.list, since="30d")  # an age, as for ob.history and the CLI
        assert len(board.runs()) == 2
        frontend_sets(board.list, since="", selected=failed.run_id)
        assert board.monitor is not None
        assert board.box.children[1] is board.monitor
        assert board.monitor.header["status"] == "failed"
        frontend_sets(board.list, selected="")
        assert len(board.box.children) == 1
        assert "failed" in repr(board)
        static = board._repr_mimebundle_()["text/html"]  # what an executed notebook keeps
        assert "orbits-nb-runs" in static
        for column in ("arguments", "exec.", "started", "executing in / by", "duration"):
            assert f">{column}</th>" in static
        assert failed.run_id in static
        assert "RuntimeError" in static or "StepFailed" in static
        assert static.count("<tr>") == 1 + len(board.runs())
    finally:
        board.close()
    with pytest.raises(ob.InvalidArgument, match="status='bogus'"):
        Dashboard(engine, status="bogus")


@pytest.mark.slow
def test_dashboard_shows_a_run_of_another_process(engine: ob.Engine,
                                                  comms: list[RecordingComm],
                                                  tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    board = Dashboard(engine, interval=0.2)
    code = ("import sys, orbits_nb as ob\n"
            "from test_views_flows import DeployBackend\n"
            f"e = ob.Engine({str(engine.store.path)!r})\n"
            f"e.start(DeployBackend(client='elsewhere', gate={str(gate)!r})).wait(120)\n"
            "e.close()\n")
    env = {**os.environ, "PYTHONPATH": str(TESTS)}
    child = subprocess.Popen([sys.executable, "-c", code], env=env)
    try:
        row = until(lambda: next((r for r in board.runs() if r["status"] == "running"),
                                 None), 120)
        assert row["owner"].startswith(f"pid {child.pid}")
        assert not row["here"]
        frontend_sets(board.list, selected=row["run_id"])
        monitor = board.monitor
        assert monitor is not None
        assert monitor.remote
        until(lambda: statuses(monitor).get("wait") == "waiting", 60)
        gate.touch()
        assert child.wait(120) == 0
        until(lambda: any(r["status"] == "succeeded" for r in board.runs()), 60)
        until(lambda: monitor.header.get("status") == "succeeded", 60)
        until(lambda: not monitor.following)  # the poller stops with the run
    finally:
        gate.touch()
        child.kill()
        board.close()
