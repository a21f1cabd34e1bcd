"""The drift widget without a kernel: its state, the messages it sends, its buttons.

As in ipywidgets' own tests, the one function that opens a comm is replaced by one
that records every message, so the state a browser would receive is asserted here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import comm
import pytest
from comm import DummyComm
from test_drift_report import UsesFlaky
from test_resources import Uses, calls

import orbits_nb as ob
from orbits_nb.resources.widget import DriftWidget, widgets_wanted

VIEW_MIME = "application/vnd.jupyter.widget-view+json"


class RecordingComm(DummyComm):
    """A comm that keeps what would go to the frontend."""

    def __init__(self, **kwargs: Any) -> None:
        self.messages: list[tuple[str, dict[str, Any]]] = []
        super().__init__(**kwargs)

    def publish_msg(self, msg_type: str, data: Any = None, metadata: Any = None,
                    buffers: Any = None, **keys: Any) -> None:
        self.messages.append((msg_type, dict(data or {})))


@pytest.fixture(autouse=True)
def recording_comms(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[RecordingComm]]:
    opened: list[RecordingComm] = []

    def create(**kwargs: Any) -> RecordingComm:
        made = RecordingComm(**kwargs)
        opened.append(made)
        return made

    monkeypatch.setattr(comm, "create_comm", create)
    return opened


def sent_values(widget: Any) -> list[Any]:
    """Every ``value`` the widget's model sent (open state, then updates)."""
    values = []
    for kind, data in widget.comm.messages:
        state = data.get("state", {})
        if kind in ("comm_open", "comm_msg") and "value" in state:
            values.append(state["value"])
    return values


def setup_four(engine: ob.Engine, root: Path) -> ob.DriftReport:
    for name in ("a", "b", "c", "d"):
        engine.start(Uses(root=str(root), name=name, value=1)).wait()
    (root / "a.json").write_text(json.dumps({"value": "<i>A</i>"}))
    (root / "b.json").write_text(json.dumps({"value": 2}))
    (root / "c.json").unlink()
    return ob.drift(engine=engine)


def frontend_clicks(button: Any) -> None:
    """What JupyterLab sends when the user clicks ``button``."""
    button._handle_msg({"content": {"data": {"method": "custom",
                                             "content": {"event": "click"}}},
                        "buffers": []})


def frontend_checks(box: Any, value: bool = True) -> None:
    """What JupyterLab sends when the user ticks (or unticks) a checkbox."""
    box._handle_msg({"content": {"data": {"method": "update", "state": {"value": value},
                                          "buffer_paths": []}}, "buffers": []})


def sent_states(widget: Any, name: str) -> list[Any]:
    """Every value of trait ``name`` the widget's model sent (open state, then updates)."""
    return [data["state"][name] for kind, data in widget.comm.messages
            if kind in ("comm_open", "comm_msg") and name in data.get("state", {})]


def desired_of(engine: ob.Engine, key: str) -> Any:
    rows = engine.store.fetch("SELECT desired, status FROM resources WHERE resource_key = ?",
                              [key])
    return (json.loads(rows[0][0]), rows[0][1])


def reconcile_runs(engine: ob.Engine) -> int:
    return len(engine.store.fetch("SELECT run_id FROM runs WHERE workflow LIKE "
                                  "'%:Reconcile'"))


def asked(widget: DriftWidget) -> str:
    """The confirmation question on show ("" when none is)."""
    return widget.question.value if widget.confirm.layout.display != "none" else ""


def test_widget_state_shows_badges_rows_and_side_by_side_diffs(engine: ob.Engine,
                                                               root: Path) -> None:
    widget = setup_four(engine, root).widget()
    assert isinstance(widget, DriftWidget)
    head = sent_values(widget.header)[-1]
    assert "4 resource(s)" in head
    assert "2 drifted" in head
    assert "1 missing" in head
    assert "1 in sync" in head
    assert list(widget.checkboxes) == ["Probe:a", "Probe:b", "Probe:c"]
    cards = [row.children[1].value for row in widget.rows.children]
    assert "od-desired" in cards[0]
    assert "od-actual" in cards[0]
    assert "&lt;i&gt;A&lt;/i&gt;" in cards[0]
    assert "<i>A</i>" not in cards[0]
    assert "absent: reconcile creates it again" in cards[2]
    assert "1 resource(s) in sync" in widget.in_sync.value
    # Nothing selected: Reconcile offers all (and says how many); Accept waits.
    assert not widget.reconcile_button.disabled
    assert widget.accept_button.disabled
    assert "select the drifted" in widget.accept_button.tooltip
    assert sent_states(widget.reconcile_button, "description")[-1] == "Reconcile all (3)…"
    assert sent_states(widget.accept_button, "disabled")[-1] is True
    assert widget.confirm.layout.display == "none"


def test_accept_needs_a_selection_and_a_confirmation(engine: ob.Engine, root: Path) -> None:
    widget = setup_four(engine, root).widget()
    before = desired_of(engine, "Probe:a")
    # A click that arrives with nothing selected (e.g. from a stale page) is refused.
    frontend_clicks(widget.accept_button)
    assert asked(widget) == ""
    assert "select the resources whose actual state to accept first" in widget.status.value
    assert widget.pending is None
    assert desired_of(engine, "Probe:a") == before

    frontend_checks(widget.checkboxes["Probe:a"])
    assert not widget.accept_button.disabled
    assert sent_states(widget.accept_button, "disabled")[-1] is False
    frontend_clicks(widget.accept_button)
    question = asked(widget)
    assert "make the actual state the desired state of <code>a</code> (drifted)" in question
    assert "b</code>" not in question
    assert sent_states(widget.confirm.layout, "display")[-1] == "flex"
    assert any("<code>a</code>" in v for v in sent_states(widget.question, "value"))
    assert widget.pending is None  # asking changes nothing
    assert desired_of(engine, "Probe:a") == before

    # Keep: the question goes, nothing is accepted.
    frontend_clicks(widget.keep_button)
    assert asked(widget) == ""
    assert desired_of(engine, "Probe:a") == before

    # Changing the selection withdraws a question that named other resources.
    frontend_clicks(widget.accept_button)
    frontend_checks(widget.checkboxes["Probe:c"])
    assert asked(widget) == ""
    frontend_clicks(widget.accept_button)
    question = asked(widget)
    assert "<code>a</code> (drifted)" in question
    assert "forget <code>c</code> (missing" in question
    frontend_checks(widget.checkboxes["Probe:c"], False)

    frontend_clicks(widget.accept_button)
    frontend_clicks(widget.confirm_button)
    assert widget.pending is not None
    widget.pending.result(60)
    assert "accepted the actual state of 1 resource(s)" in widget.status.value
    assert desired_of(engine, "Probe:a") == ({"value": "<i>A</i>"}, "present")
    assert desired_of(engine, "Probe:c")[1] == "present"  # not selected at confirm time
    assert list(widget.checkboxes) == ["Probe:b", "Probe:c"]
    assert widget.accept_button.disabled  # the accepted one was the selection

    # Confirm with no question pending does nothing.
    frontend_clicks(widget.confirm_button)
    assert "nothing to confirm" in widget.status.value


def test_accept_refuses_a_selection_it_cannot_accept(engine: ob.Engine, root: Path) -> None:
    engine.start(Uses(root=str(root), name="x", value=1)).wait()
    (root / "x.json").write_text("{not json")  # its state cannot be read
    widget = ob.drift(engine=engine).widget()
    assert [c.status for c in widget.report.checks] == ["error"]
    frontend_checks(widget.checkboxes["Probe:x"])
    assert widget.accept_button.disabled
    frontend_clicks(widget.accept_button)
    assert asked(widget) == ""
    assert "only drifted or missing resources can be accepted" in widget.status.value


def test_reconcile_asks_then_converges_the_selection(engine: ob.Engine, root: Path) -> None:
    widget = setup_four(engine, root).widget()
    frontend_checks(widget.checkboxes["Probe:b"])
    assert widget.reconcile_button.description == "Reconcile selected (1)…"
    frontend_clicks(widget.reconcile_button)
    question = asked(widget)
    assert "Reconcile the 1 selected resource(s): <code>b</code> (drifted)?" in question
    assert widget.confirm_button.description == "Reconcile"
    assert reconcile_runs(engine) == 0
    assert json.loads((root / "b.json").read_text()) == {"value": 2}
    frontend_clicks(widget.confirm_button)
    assert widget.pending is not None
    widget.pending.result(60)
    assert json.loads((root / "b.json").read_text()) == {"value": 1}
    assert calls(root)[-1] == "update value"
    assert not (root / "c.json").exists()  # not selected, not touched
    assert list(widget.checkboxes) == ["Probe:a", "Probe:c"]
    assert "reconciled 1 resource(s) in run Reconcile-" in widget.status.value
    # The header's model sent an update with the new counts.
    assert "1 drifted" in sent_values(widget.header)[-1]
    assert "2 in sync" in sent_values(widget.header)[-1]


def test_reconcile_all_names_the_count_and_waits_for_confirmation(engine: ob.Engine,
                                                                   root: Path) -> None:
    widget = setup_four(engine, root).widget()
    frontend_clicks(widget.reconcile_button)
    question = asked(widget)
    assert "Reconcile all 3 drifted or missing resource(s)" in question
    for name in ("a", "b", "c"):
        assert f"<code>{name}</code>" in question
    frontend_clicks(widget.keep_button)
    assert reconcile_runs(engine) == 0
    assert not (root / "c.json").exists()

    # A check that changes the list while the question shows withdraws it.
    frontend_clicks(widget.reconcile_button)
    (root / "b.json").write_text(json.dumps({"value": 1}))  # fixed out of band
    widget.show(widget.report.refresh())
    assert asked(widget) == ""
    assert "the drift changed since you asked" in widget.status.value
    assert reconcile_runs(engine) == 0

    frontend_clicks(widget.reconcile_button)
    assert "Reconcile all 2 drifted or missing resource(s)" in asked(widget)
    frontend_clicks(widget.confirm_button)
    assert widget.pending is not None
    widget.pending.result(60)
    assert reconcile_runs(engine) == 1
    assert (root / "c.json").exists()
    assert widget.checkboxes == {}
    assert widget.reconcile_button.disabled
    assert widget.accept_button.disabled
    frontend_clicks(widget.reconcile_button)
    assert asked(widget) == ""
    assert "nothing to reconcile" in widget.status.value


def test_refresh_and_select_all(engine: ob.Engine, root: Path) -> None:
    widget = setup_four(engine, root).widget()
    (root / "d.json").write_text(json.dumps({"value": 9}))
    widget.refresh_button.click()
    assert widget.pending is not None
    widget.pending.result(60)
    assert list(widget.checkboxes) == ["Probe:a", "Probe:b", "Probe:c", "Probe:d"]
    widget.select_all.value = True
    assert all(box.value for box in widget.checkboxes.values())
    assert widget.reconcile_button.description == "Reconcile selected (4)…"
    widget.select_all.value = False
    assert widget.reconcile_button.description == "Reconcile all (4)…"


def test_a_failed_command_is_reported_and_buttons_come_back(engine: ob.Engine,
                                                            root: Path) -> None:
    engine.start(UsesFlaky(root=str(root), fails=99)).wait()
    (root / "fl.json").write_text(json.dumps({"value": 5}))
    (root / "broken").write_text("0")
    widget = ob.drift(engine=engine).widget()
    widget.reconcile_button.click()
    widget.confirm_button.click()
    assert widget.reconcile_button.disabled  # while the command runs
    assert widget.refresh_button.disabled
    assert widget.pending is not None
    widget.pending.result(120)
    assert "reconcile failed: ResourceError: 1 of 1 resource(s) failed" in widget.status.value
    assert "od-error" in widget.status.value
    assert not widget.reconcile_button.disabled
    assert not widget.refresh_button.disabled
    assert list(widget.checkboxes) == ["Probe:fl"]


def test_display_bundle_has_html_always_and_widget_in_a_kernel(
        engine: ob.Engine, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    report = setup_four(engine, root)
    monkeypatch.setenv("ORBITS_NB_WIDGETS", "0")
    assert not widgets_wanted()
    plain = report._repr_mimebundle_()
    assert set(plain) == {"text/plain", "text/html"}
    assert "od-badge" in plain["text/html"]
    monkeypatch.setenv("ORBITS_NB_WIDGETS", "1")
    live = report._repr_mimebundle_()
    assert VIEW_MIME in live
    assert "text/html" in live
    assert live[VIEW_MIME]["model_id"]
    assert report._repr_mimebundle_(include=["text/html"]).keys() == {"text/html"}
    monkeypatch.delenv("ORBITS_NB_WIDGETS")
    monkeypatch.setenv("ORBITS_NB_HEADLESS", "1")
    assert not widgets_wanted()
    monkeypatch.delenv("ORBITS_NB_HEADLESS")
    assert not widgets_wanted()  # no kernel in a test process


def test_an_agents_command_runs_from_the_widget_after_asking(engine: ob.Engine,
                                                            tmp_path: Path) -> None:
    from agent_helpers import Deploy, effects

    args = {"name": "api", "image": "v1", "replicas": 2,
            "state": str(tmp_path / "api.json"), "effects": str(tmp_path / "effects")}
    Deploy(**args).run(engine=engine)
    (tmp_path / "api.json").write_text(json.dumps({"image": "v1", "replicas": 5}))
    widget = ob.drift(engine=engine).widget()
    assert widget.command_button.disabled  # nothing selected: no agent to act on
    frontend_checks(widget.checkboxes["Service:api"])
    assert list(widget.command_choice.options) == ["rollback"]
    assert not widget.command_button.disabled
    frontend_clicks(widget.command_button)
    assert "Run rollback on <code>api</code>" in asked(widget)
    assert widget.pending is None and "rollback" not in effects(tmp_path / "effects")
    frontend_clicks(widget.confirm_button)
    assert widget.pending is not None
    widget.pending.result(60)
    assert effects(tmp_path / "effects")[-1] == "rollback"
    assert "ran rollback on Service:api in run Command-" in widget.status.value
