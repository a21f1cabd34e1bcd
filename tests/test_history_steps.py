"""``run.steps()`` and ``ob.history()``: DuckDB relations for code, readable tables for
people (durations humanised, local time, JSON shortened)."""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import duckdb
import pytest

import orbits_nb as ob
from orbits_nb.engine.table import STEP_COLUMNS, duration_text, records


class Quick(ob.Action):
    def main(self) -> Any:
        return {"text": "x" * 300, "n": self.args["n"]}


class Held(ob.Action):
    gate = threading.Event()

    def main(self) -> Any:
        Held.gate.wait(60)
        return 1


class Gate(ob.Action):
    closed = True

    def main(self) -> Any:
        if Gate.closed:
            raise RuntimeError("closed")
        return 2


class Flow(ob.Workflow):
    async def define(self) -> Any:
        first = await self.do("first", Quick(n=1))
        if self.args.get("hold"):
            await self.do("held", Held())
        return [first["n"], await self.do("gate", Gate())]


def test_steps_is_a_relation_of_fixed_columns_live_and_recorded(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    engine = ob.Engine(path)
    try:
        Gate.closed = False
        run = engine.start(Flow(hold=True), run_id="live")
        live = None
        for _ in range(3000):  # the live state, while "held" executes
            live = records(run.steps())
            if len(live) == 2:
                break
            threading.Event().wait(0.01)
        assert live is not None and [r["status"] for r in live] == ["succeeded", "running"]
        Held.gate.set()
        run.wait(60)
    finally:
        engine.close()
    reader = ob.Engine(path)
    try:
        steps = reader.get_run("live").steps()
        assert isinstance(steps, duckdb.DuckDBPyRelation)
        assert steps.columns == STEP_COLUMNS
        assert [str(t) for t in steps.types] == ["VARCHAR", "VARCHAR", "INTEGER", "VARCHAR",
                                                 "TIMESTAMP WITH TIME ZONE", "DOUBLE",
                                                 "BOOLEAN", "JSON", "VARCHAR", "VARCHAR"]
        rows = records(steps)
        assert [(r["step"], r["status"], r["replayed"], r["worker"]) for r in rows] == [
            ("first", "succeeded", False, None), ("held", "succeeded", False, None),
            ("gate", "succeeded", False, None)]
        assert isinstance(rows[0]["started_at"], dt.datetime)
        assert rows[0]["result"]["n"] == 1
        # code keeps every DuckDB verb: SQL, filters, conversions
        assert steps.query("s", "SELECT count(*) FROM s WHERE status = 'succeeded'"
                           ).fetchall() == [(3,)]
        assert type(steps.filter("step = 'gate'")) is duckdb.DuckDBPyRelation
        assert list(steps.df()["step"]) == ["first", "held", "gate"]
    finally:
        reader.close()


def test_a_replayed_step_keeps_its_duration_and_says_replayed(tmp_path: Path) -> None:
    engine = ob.Engine(tmp_path / "s.duckdb")
    try:
        Gate.closed = True
        with pytest.raises(ob.StepFailed):
            engine.start(Flow(), run_id="again").wait(60)
        before = records(engine.get_run("again").steps())[0]
        Gate.closed = False
        run = engine.start(Flow(), run_id="again")
        run.wait(60)
        first, gate = records(run.steps())
        assert first["replayed"] and not gate["replayed"]
        assert first["duration_s"] == before["duration_s"] and first["duration_s"] > 0
        text = repr(run)
        assert "2 executions" in text and "replayed" in text
        assert re.search(r"executions: #1 failed [\d.]+ m?s, #2 succeeded [\d.]+ m?s", text), text
    finally:
        engine.close()


def test_a_notebook_shows_readable_tables(tmp_path: Path) -> None:
    engine = ob.Engine(tmp_path / "s.duckdb")
    try:
        Gate.closed = False
        engine.start(Flow(), run_id="shown").wait(60)
        for relation in (engine.get_run("shown").steps(), ob.history(engine=engine)):
            bundle = relation._repr_mimebundle_()
            page = bundle["text/html"]
            assert page.startswith('<table class="orbits-nb-table">')
            assert " ms<" in page or " s<" in page  # a duration for people, not 0.00312
            assert "x" * 300 not in page + bundle["text/plain"]  # JSON shortened
        assert "…" in engine.get_run("shown").steps()._repr_mimebundle_()["text/plain"]
        started = records(engine.get_run("shown").steps())[0]["started_at"]
        local = started.astimezone().strftime("%Y-%m-%d %H:%M:%S")
        assert local in engine.get_run("shown").steps()._repr_mimebundle_()["text/html"]
        assert isinstance(ob.history(engine=engine), duckdb.DuckDBPyRelation)
    finally:
        engine.close()


@pytest.mark.parametrize(("seconds", "text"), [
    (None, ""), (0.0042, "4 ms"), (1.24, "1.2 s"), (59.94, "59.9 s"), (184.0, "3 min 4 s"),
    (7500.0, "2 h 5 min")])
def test_durations_for_people(seconds: float | None, text: str) -> None:
    assert duration_text(seconds) == text


def test_orbits_nb_show_stays_readable(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    engine = ob.Engine(path)
    try:
        Gate.closed = False
        engine.start(Flow(), run_id="cli").wait(60)
    finally:
        engine.close()
    out = subprocess.run([sys.executable, "-m", "orbits_nb.cli", "show", "cli"],
                         capture_output=True, text=True, timeout=120,
                         env={**os.environ, "ORBITS_NB_STATE": str(path)})
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "Run cli [succeeded] 2/2 steps succeeded"
    assert lines[1].split() == [c for c in STEP_COLUMNS if c != "worker"]
    assert lines[3].split()[:4] == ["first", "succeeded", "1", "Quick"]
