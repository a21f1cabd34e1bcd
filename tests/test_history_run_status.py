"""``steps.run_status``: the run's status in its steps' rows, kept current by the
projection as the run's status changes, filled by the migration for existing files,
and durations rounded to microseconds; on every store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
from stores import any_store, location, pg_server  # noqa: F401

import orbits_nb as ob
from orbits_nb.core.rows import Batch
from orbits_nb.core.state import Event
from orbits_nb.core.storage import Store
from orbits_nb.store import migrate

SLOWEST_JOINED = ("SELECT s.run_id, s.step, s.duration_s FROM steps s JOIN runs r "
                  "USING (run_id) WHERE r.status = 'failed' "
                  "ORDER BY s.duration_s DESC, s.run_id, s.step LIMIT 10")
SLOWEST = ("SELECT run_id, step, duration_s FROM steps WHERE run_status = 'failed' "
           "ORDER BY duration_s DESC, run_id, step LIMIT 10")


def _statuses(store: Store) -> list[Any]:
    return store.relation("SELECT run_id, step, run_status FROM steps ORDER BY 1, 2"
                          ).fetchall()


def _run(run_id: str, t: float) -> list[Event]:
    return [Event(run_id, "run.created", data={"workflow": "m:W", "args": {}}, ts=t),
            Event(run_id, "run.started", data={}, ts=t),
            Event(run_id, "step.started", "a", 1, {"action": "m:A"}, ts=t),
            Event(run_id, "step.succeeded", "a", 1, {"result": 1}, ts=t + 0.1 + 1e-9),
            Event(run_id, "step.started", "b", 1, {"action": "m:A"}, ts=t + 0.2)]


def test_the_steps_follow_their_runs_status(any_store: Store) -> None:  # noqa: F811
    any_store.write(Batch(events=_run("r1", 0.0) + _run("r2", 10.0)))
    assert _statuses(any_store) == [("r1", "a", "running"), ("r1", "b", "running"),
                                    ("r2", "a", "running"), ("r2", "b", "running")]
    any_store.write(Batch(events=[
        Event("r1", "step.failed", "b", 1, {"error": {"type": "E"}}, ts=3.2),
        Event("r1", "run.failed", data={"error": {"type": "E"}}, ts=3.2)]))
    assert _statuses(any_store) == [("r1", "a", "failed"), ("r1", "b", "failed"),
                                    ("r2", "a", "running"), ("r2", "b", "running")]
    assert any_store.relation(SLOWEST).fetchall() == any_store.relation(
        SLOWEST_JOINED).fetchall() == [("r1", "b", 3.0), ("r1", "a", 0.1)]
    any_store.write(Batch(events=[Event("r1", "run.reset", data={"steps": ["b"]}, ts=4.0)]))
    assert _statuses(any_store)[:1] == [("r1", "a", "pending")]  # b was discarded
    any_store.write(Batch(events=[
        Event("r1", "run.started", data={}, ts=5.0),
        Event("r1", "step.started", "b", 2, {"action": "m:A"}, ts=5.0),
        Event("r1", "step.succeeded", "b", 2, {"result": 1}, ts=5.5),
        Event("r1", "run.succeeded", data={"result": 1}, ts=5.5)]))
    assert _statuses(any_store)[:2] == [("r1", "a", "succeeded"), ("r1", "b", "succeeded")]
    assert any_store.relation(SLOWEST).fetchall() == []
    before = any_store.relation("SELECT * FROM steps ORDER BY run_id, step").fetchall()
    any_store.rebuild_history()
    assert any_store.relation("SELECT * FROM steps ORDER BY run_id, step").fetchall() \
        == before


def test_durations_are_rounded_to_microseconds(any_store: Store) -> None:  # noqa: F811
    any_store.write(Batch(events=_run("r", 1_700_000_000.0)))
    for table in ("attempts", "steps"):
        (duration,), = any_store.relation(
            f"SELECT duration_s FROM {table} WHERE step = 'a'").fetchall()
        assert duration == round(duration, 6) and abs(duration - 0.1) < 1e-6, table


def test_a_version_7_file_gets_the_status_of_each_run_in_its_steps(
        tmp_path: Path) -> None:
    path = tmp_path / "v7.duckdb"
    con = duckdb.connect(str(path))
    for number in range(1, 8):
        migrate._migrate(con, number)
    con.execute("INSERT INTO runs (run_id, status) VALUES ('a', 'failed'), "
                "('b', 'succeeded')")
    con.execute("INSERT INTO steps (run_id, step) VALUES ('a', 'x'), ('a', 'y'), "
                "('b', 'x')")
    con.close()
    store = ob.DuckDBStore(path)
    try:
        assert _statuses(store) == [("a", "x", "failed"), ("a", "y", "failed"),
                                    ("b", "x", "succeeded")]
    finally:
        store.close()
