"""The dashboard as a run list, through its comm messages (no kernel, no browser):
paging over many runs, the filters and search, open by id, schedules, quiet polling."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from run_list_data import CLIENTS, events_of, expected, run_id, write_runs
from test_widgets import RecordingComm, comms, frontend_sets  # noqa: F401

import orbits_nb as ob
from orbits_nb.core.rows import Batch
from orbits_nb.runbooks import schedules
from orbits_nb.views.dashboard import Dashboard, args_text

COUNT = 230
FIXTURES_NB = "notebooks/success.ipynb"


@pytest.fixture
def board(engine: ob.Engine, comms: list[RecordingComm]  # noqa: F811
          ) -> Iterator[Dashboard]:
    write_runs(engine.store, COUNT)
    made = Dashboard(engine, interval=60)
    yield made
    made.close()


def message(widget: Any, **content: Any) -> None:
    """A custom message from the front end (``model.send``)."""
    widget._handle_msg({"content": {"data": {"method": "custom", "content": content}},
                        "buffers": []})


def shown(board: Dashboard) -> list[str]:
    return [r["run_id"] for r in board.runs()]


def test_pages_of_fifty_newest_first_with_the_total(board: Dashboard) -> None:
    assert board.list.total == COUNT
    assert shown(board) == [run_id(i) for i in range(COUNT - 1, COUNT - 51, -1)]
    frontend_sets(board.list, offset=200)
    assert shown(board) == [run_id(i) for i in range(29, -1, -1)]
    assert "runs 201-230 of 230" in board.text()
    board.page(2)
    assert shown(board)[0] == run_id(COUNT - 51)


def test_a_row_tells_runs_apart_by_their_arguments(board: Dashboard) -> None:
    newest = board.runs()[0]
    i = COUNT - 1
    env = ("prod", "staging", "dev")[i % 3]
    assert newest["args"] == f"client={CLIENTS[i % 5]}, env={env}, n={i}"
    assert newest["started_by"] == "ana@build-1"
    assert newest["executed_by"] == f"build-1:{4000 + i}"
    assert newest["executions"] == 1 and newest["duration"] == pytest.approx(3.0)
    assert args_text({"token": "****", "items": [1, 2], "long": "x" * 40}) == (
        "token=****, items=[1,2], long=" + "x" * 23 + "…")


def test_filters_search_and_had_failures_reset_the_page(board: Dashboard) -> None:
    counts = expected(COUNT)
    frontend_sets(board.list, offset=100)
    frontend_sets(board.list, status="failed")
    assert board.list.offset == 0
    assert board.list.total == counts["failed"]
    assert {r["status"] for r in board.runs()} == {"failed"}
    frontend_sets(board.list, status="", had_failures="yes")
    assert board.list.total == counts["had_failures"]
    assert all(r["had_failures"] for r in board.runs())
    frontend_sets(board.list, had_failures="", search="client=acme")
    assert board.list.total == counts["acme"]
    frontend_sets(board.list, search=run_id(7))
    assert shown(board) == [run_id(7)]
    frontend_sets(board.list, search="", source="nonsense")
    assert board.list.notice["level"] == "error"
    assert "source='nonsense'" in board.list.notice["text"]


def test_open_a_run_by_id_shows_its_monitor(board: Dashboard) -> None:
    message(board.list, type="open", run_id=f"  {run_id(3)} ")
    assert board.monitor is not None and board.monitor.run_id == run_id(3)
    assert board.box.children[1] is board.monitor
    assert board.list.selected == run_id(3)  # not on this page: nothing else changes
    message(board.list, type="open", run_id="no-such-run")
    assert board.list.notice["level"] == "error"
    assert "no-such-run" in board.list.notice["text"]
    assert board.monitor.run_id == run_id(3)


def test_polling_sends_nothing_while_nothing_changed(board: Dashboard,
                                                     comms: list[RecordingComm]  # noqa: F811
                                                     ) -> None:
    mine = next(c for c in comms if c.comm_id == board.list.comm.comm_id)
    before = len(mine.messages)
    board.refresh(force=True)
    assert len(mine.messages) == before
    board.engine.store.write(Batch(events=events_of(COUNT, 1.7e9)))  # one more run
    board.refresh()
    assert board.list.total == COUNT + 1
    sent = mine.updates()[-1]
    assert len(sent["runs"]) == 50  # only the visible page travels


def test_schedules_are_listed_with_their_next_occurrence(engine: ob.Engine,
                                                         comms: list[RecordingComm]  # noqa: F811
                                                         ) -> None:
    notebook = Path(__file__).parent / FIXTURES_NB
    schedules.add(engine.store, "30 2 * * *", notebook, name="nightly",
                  cli=[("client", "acme"), ("api_token", "env:TOKEN")])
    made = Dashboard(engine, interval=60)
    try:
        (row,) = made.list.schedules
        assert row["schedule_id"] == "nightly" and row["cron"] == "30 2 * * *"
        due = schedules.get(engine.store, "nightly")
        now = made.list.updated
        assert now < row["next_due"] <= now + 86400
        assert due.next_due(row["next_due"] - 1) == row["next_due"]  # an occurrence
    finally:
        made.close()
