"""One meaning of "had failures": a run had failures when it or any run nested in it, at
any depth, had a failed attempt, even if a later one succeeded. The projection keeps it
in ``runs.had_failures``; the dashboard's filter, ``ob.history(had_failures=...)`` and
``orbits-nb runs --had-failures`` all read that column; on every store.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
from stores import Location, any_store, location, pg_server, shared_location  # noqa: F401
from test_history_executions import Flaky, Steady

import orbits_nb as ob
from orbits_nb.core.rows import Batch, RunQuery
from orbits_nb.core.state import Event
from orbits_nb.core.storage import Store
from orbits_nb.store import migrate


class Inner(ob.Workflow):
    async def define(self) -> Any:
        return await self.do("flaky", Flaky()) if self.args["flaky"] else 0


class Middle(ob.Workflow):
    async def define(self) -> Any:
        return await self.do("inner", Inner(flaky=self.args["flaky"]))


class Outer(ob.Workflow):
    async def define(self) -> Any:
        await self.do("steady", Steady())
        return await self.do("middle", Middle(flaky=self.args["flaky"]))


def _flags(store: Store) -> dict[str, tuple[str | None, bool]]:
    rows = store.relation("SELECT run_id, parent_run_id, had_failures FROM runs").fetchall()
    return {run_id: (parent, bool(failed)) for run_id, parent, failed in rows}


def test_a_failure_two_levels_down_marks_every_run_above_it(
        shared_location: Location) -> None:  # noqa: F811
    engine = ob.Engine(shared_location.open())
    try:
        assert engine.start(Outer(flaky=True), run_id="outer").wait(120) == 2
        assert engine.start(Outer(flaky=False), run_id="calm").wait(120) == 0
        flags = _flags(engine.store)
        nested = {k: v for k, v in flags.items() if k.startswith("outer/")}
        assert len(nested) == 2  # the middle and the inner run
        assert all(failed for _, failed in nested.values())
        assert flags["outer"] == (None, True)
        assert not any(failed for k, (_, failed) in flags.items() if k.startswith("calm"))
        assert [r[0] for r in ob.history(had_failures=True, engine=engine).fetchall()] == [
            "outer"]
        assert [r[0] for r in ob.history(had_failures=False, engine=engine).fetchall()] == [
            "calm"]
        page = engine.store.run_page(RunQuery(had_failures=True))
        assert [r.run_id for r in page.rows] == ["outer"] and page.rows[0].had_failures
        assert [r.run_id for r in engine.store.run_page(RunQuery(had_failures=False)).rows
                ] == ["calm"]
    finally:
        engine.close()
    out = subprocess.run([sys.executable, "-m", "orbits_nb.cli", "runs", "--had-failures",
                          "--json"], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "ORBITS_NB_STATE": shared_location.where})
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [(r["run_id"], r["status"], r["had_failures"]) for r in rows] == [
        ("outer", "succeeded", True)]


def _chain(depth: int) -> list[Event]:
    """A run nested ``depth`` deep whose deepest run retried a step, the failure
    recorded in a batch of its own (the runs above record nothing in it)."""
    ids = ["top"] + [f"top/{'c' * n}" for n in range(1, depth + 1)]
    events = []
    for ts, (run_id, parent) in enumerate(zip(ids, [None, *ids], strict=False)):
        events.append(Event(run_id, "run.created", ts=float(ts), data={
            "workflow": "m:W", "args": {}, "parent_run_id": parent}))
        events.append(Event(run_id, "run.started", ts=float(ts), data={}))
    return events


def test_the_flag_climbs_the_chain_when_only_the_nested_run_records(
        any_store: Store) -> None:  # noqa: F811
    events = _chain(3)
    any_store.write(Batch(events=events))
    assert not any(failed for _, failed in _flags(any_store).values())  # folded now
    deepest = events[-1].run_id
    any_store.write(Batch(events=[
        Event(deepest, "step.started", "a", 1, {"action": "m:A"}, ts=10.0),
        Event(deepest, "step.retrying", "a", 1, {"error": {"type": "E"}}, ts=11.0),
        Event(deepest, "step.started", "a", 2, {}, ts=12.0),
        Event(deepest, "step.succeeded", "a", 2, {"result": 1}, ts=13.0)]))
    assert all(failed for _, failed in _flags(any_store).values())
    any_store.rebuild_history()  # a rebuild from events gives the same
    assert all(failed for _, failed in _flags(any_store).values())
    assert [r[0] for r in any_store.history(had_failures=True).fetchall()] == ["top"]


def test_a_version_7_file_carries_its_nested_failures_up(tmp_path: Path) -> None:
    path = tmp_path / "v7.duckdb"
    con = duckdb.connect(str(path))
    for number in range(1, 8):
        migrate._migrate(con, number)
    con.execute("INSERT INTO runs (run_id, parent_run_id, had_failures) VALUES "
                "('a', NULL, false), ('a/b', 'a', false), ('a/b/c', 'a/b', true), "
                "('z', NULL, false)")
    con.close()
    store = ob.DuckDBStore(path)
    try:
        assert {k: v[1] for k, v in _flags(store).items()} == {
            "a": True, "a/b": True, "a/b/c": True, "z": False}
    finally:
        store.close()
