"""A completed run is returned as recorded: no step, not even ``define()``, runs again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import orbits_nb as ob
from orbits_nb.engine.table import records

CALLS: dict[str, int] = {}


def bump(key: str) -> None:
    CALLS[key] = CALLS.get(key, 0) + 1


@pytest.fixture(autouse=True)
def _reset_calls() -> None:
    CALLS.clear()


class Step(ob.Action):
    def main(self) -> Any:
        bump(self.args["key"])
        return self.args["key"]


class Counted(ob.Workflow):
    async def define(self) -> Any:
        bump("define")
        done = [await self.do(f"s{i}", Step(key=f"s{i}")) for i in range(self.args["n"])]
        if Path(self.args.get("flag", "/nonexistent")).exists():
            raise ValueError("asked to fail")
        return {"steps": done}


class Other(ob.Workflow):
    async def define(self) -> Any:
        bump("other")
        return "other"


def executions(engine: ob.Engine, run_id: str) -> int:
    return engine.get_run(run_id).state().executions


def test_completed_run_returns_its_result_without_executing(state_path: Path) -> None:
    engine = ob.Engine(state_path)
    first = engine.start(Counted(n=3))
    assert first.wait() == {"steps": ["s0", "s1", "s2"]}
    assert CALLS == {"define": 1, "s0": 1, "s1": 1, "s2": 1}
    again = engine.start(Counted(n=3))  # same engine: from memory
    assert again.run_id == first.run_id
    assert again.wait() == {"steps": ["s0", "s1", "s2"]}
    assert again.done and again.status == "succeeded"
    assert again.execution is not None and again.execution.replayed == {"s0", "s1", "s2"}
    engine.close()
    fresh = ob.Engine(state_path)  # a new engine reads the run from the store
    third = fresh.start(Counted(n=3))
    assert third.wait() == {"steps": ["s0", "s1", "s2"]}
    assert third.execution is not None and third.execution.replayed == {"s0", "s1", "s2"}
    assert CALLS == {"define": 1, "s0": 1, "s1": 1, "s2": 1}
    assert executions(fresh, first.run_id) == 1  # nothing recorded a new execution
    assert [s["status"] for s in records(third.steps())] == ["succeeded"] * 3
    fresh.close()


def test_another_class_under_a_completed_run_id_is_refused(engine: ob.Engine) -> None:
    engine.start(Counted(n=1), run_id="job").wait()
    with pytest.raises(ob.NondeterminismError, match="recorded for"):
        engine.start(Other(), run_id="job").wait()
    assert "other" not in CALLS
    assert engine.get_run("job").result == {"steps": ["s0"]}


def test_other_arguments_under_a_completed_run_id_execute(engine: ob.Engine) -> None:
    engine.start(Counted(n=1), run_id="job").wait()
    assert engine.start(Counted(n=2), run_id="job").wait() == {"steps": ["s0", "s1"]}
    assert CALLS == {"define": 2, "s0": 1, "s1": 1}  # s0 replayed, s1 ran


def test_failed_run_continues_and_then_is_returned(engine: ob.Engine, tmp_path: Path) -> None:
    flag = tmp_path / "fail"
    flag.touch()
    with pytest.raises(ValueError, match="asked to fail"):
        engine.start(Counted(n=2, flag=str(flag)), run_id="job").wait()
    flag.unlink()
    assert engine.start(Counted(n=2, flag=str(flag)), run_id="job").wait() == {
        "steps": ["s0", "s1"]}
    assert CALLS == {"define": 2, "s0": 1, "s1": 1}
    engine.start(Counted(n=2, flag=str(flag)), run_id="job").wait()
    assert CALLS["define"] == 2


def test_reset_here_executes_again_from_the_step(engine: ob.Engine) -> None:
    run = engine.start(Counted(n=3), run_id="job")
    run.wait()
    run.reset("s1")
    assert engine.start(Counted(n=3), run_id="job").wait() == {"steps": ["s0", "s1", "s2"]}
    assert CALLS == {"define": 2, "s0": 1, "s1": 2, "s2": 2}


def test_reset_by_another_store_is_seen_by_an_engine_that_remembers(state_path: Path
                                                                    ) -> None:
    engine = ob.Engine(state_path)
    engine.start(Counted(n=2), run_id="job").wait()
    other = ob.Engine(state_path)  # another store object on the file, as another process
    other.get_run("job").reset("s1")
    other.close()
    assert engine.start(Counted(n=2), run_id="job").wait() == {"steps": ["s0", "s1"]}
    assert CALLS == {"define": 2, "s0": 1, "s1": 2}
    engine.close()


def test_fresh_start_executes_a_new_run(engine: ob.Engine) -> None:
    first = engine.start(Counted(n=1))
    first.wait()
    second = engine.start(Counted(n=1), fresh=True)
    assert second.run_id != first.run_id
    second.wait()
    assert CALLS == {"define": 2, "s0": 2}


def test_the_returned_result_reads_back_as_recorded(engine: ob.Engine) -> None:
    first = engine.start(Counted(n=1), run_id="job").wait()
    first["steps"].append("changed by the caller")
    again = engine.start(Counted(n=1), run_id="job").wait()
    assert again == {"steps": ["s0"]} and again is not first
    assert CALLS["define"] == 1


def test_a_notebook_run_kernel_records_the_runs_it_got_back(
        engine: ob.Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import time

    engine.start(Counted(n=2), run_id="job").wait()
    since = time.time()
    monkeypatch.setenv("ORBITS_NB_NOTEBOOK_RUN", "nb-1")
    assert engine.start(Counted(n=2), run_id="job").wait() == {"steps": ["s0", "s1"]}
    assert CALLS["define"] == 1  # returned, not executed
    engine.writer.flush()
    # The notebook run's report and resume find the runs its kernel started this way.
    assert engine.store.started_runs("nb-1", engine.owner.host, os.getpid(), since) == ["job"]
    again = engine.start(Counted(n=2), run_id="job")
    assert again.wait() == {"steps": ["s0", "s1"]} and CALLS["define"] == 1
    assert engine.get_run("job").status == "succeeded"
