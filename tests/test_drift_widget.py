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
    assert not widget.reconcile_button.disabled
    assert not widget.accept_button.disabled
    # The frontend learns each button's label from the open message.
    labels = [d["state"].get("description") for k, d in widget.reconcile_button.comm.messages
              if k == "comm_open"]
    assert labels == ["Reconcile"]


def test_reconcile_button_converges_the_selection_and_redraws(engine: ob.Engine,
                                                              root: Path) -> None:
    widget = setup_four(engine, root).widget()
    widget.checkboxes["Probe:b"].value = True
    widget.reconcile_button.click()
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


def test_accept_and_refresh_buttons(engine: ob.Engine, root: Path) -> None:
    widget = setup_four(engine, root).widget()
    widget.checkboxes["Probe:a"].value = True
    widget.accept_button.click()
    assert widget.pending is not None
    widget.pending.result(60)
    assert "accepted the actual state of 1 resource(s)" in widget.status.value
    accepted = engine.store.fetch("SELECT desired FROM resources WHERE resource_key = "
                                  "'Probe:a'")[0][0]
    assert json.loads(accepted) == {"value": "<i>A</i>"}
    assert list(widget.checkboxes) == ["Probe:b", "Probe:c"]

    (root / "d.json").write_text(json.dumps({"value": 9}))
    widget.refresh_button.click()
    widget.pending.result(60)
    assert list(widget.checkboxes) == ["Probe:b", "Probe:c", "Probe:d"]

    widget.select_all.value = True
    assert all(box.value for box in widget.checkboxes.values())
    widget.select_all.value = False
    # Nothing selected: Reconcile converges every drifted and missing resource.
    widget.reconcile_button.click()
    widget.pending.result(60)
    assert widget.checkboxes == {}
    assert widget.reconcile_button.disabled
    assert widget.accept_button.disabled
    assert (root / "c.json").exists()


def test_a_failed_command_is_reported_and_buttons_come_back(engine: ob.Engine,
                                                            root: Path) -> None:
    engine.start(UsesFlaky(root=str(root), fails=99)).wait()
    (root / "fl.json").write_text(json.dumps({"value": 5}))
    (root / "broken").write_text("0")
    widget = ob.drift(engine=engine).widget()
    widget.reconcile_button.click()
    assert widget.reconcile_button.disabled  # while the command runs
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
