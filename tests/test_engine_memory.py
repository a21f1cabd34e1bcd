"""Finished runs let go of their execution state; ``max_active_runs`` queues starts."""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import threading
import weakref
from typing import Any

import pytest
from polling import until

import orbits_nb as ob
from orbits_nb.engine.runner import RunExecution
from orbits_nb.engine.table import records

STATE: dict[str, Any] = {}


class Big(ob.Action):
    def main(self) -> Any:
        return {"blob": "x" * 1000, "n": self.args["n"]}


class Three(ob.Workflow):
    async def define(self) -> Any:
        return [(await self.do(f"s{i}", Big(n=i)))["n"] for i in range(3)]


class Held(ob.Action):
    def main(self) -> Any:
        with STATE["lock"]:
            STATE["inside"] += 1
            STATE["most"] = max(STATE["most"], STATE["inside"])
        STATE["gate"].wait(60)
        with STATE["lock"]:
            STATE["inside"] -= 1
        return self.args["n"]


class Gated(ob.Workflow):
    async def define(self) -> Any:
        return await self.do("held", Held(n=self.args["n"]))


def test_a_finished_run_lets_go_of_its_execution(engine: ob.Engine) -> None:
    seen: list[weakref.ref[RunExecution]] = []

    def listen(execution: RunExecution) -> None:
        if not seen:
            seen.append(weakref.ref(execution))

    engine.subscribe(listen)
    run = engine.start(Three())
    assert run.wait() == [0, 1, 2]
    gc.collect()
    assert seen and seen[0]() is None  # nothing keeps the execution alive
    # The handle still answers everything, from the store.
    assert run.status == "succeeded" and run.result == [0, 1, 2]
    assert [row["step"] for row in records(run.steps())] == ["s0", "s1", "s2"]


def test_a_released_execution_keeps_only_what_the_handle_shows(engine: ob.Engine) -> None:
    engine.start(Three(), run_id="job").wait()
    run = engine.start(Three(), run_id="job")  # returned as recorded
    run.wait()
    execution = run.execution
    assert execution is not None and execution.released
    assert execution.replayed == {"s0", "s1", "s2"}
    assert execution.state.steps == {} and execution.recorded == {}


@pytest.fixture
def gate() -> Any:
    STATE.update(lock=threading.Lock(), inside=0, most=0, gate=threading.Event())
    yield STATE["gate"]
    STATE["gate"].set()


def test_runs_beyond_the_bound_wait_their_turn(state_path: Any, gate: threading.Event
                                               ) -> None:
    engine = ob.Engine(state_path, max_active_runs=2)
    runs = [engine.start(Gated(n=i)) for i in range(5)]
    until(lambda: STATE["inside"] >= 2)
    queued = runs[2:]
    assert not any(run.done for run in queued)
    assert all(run.status == "pending" for run in queued)  # nothing recorded yet
    gate.set()
    assert [run.wait(60) for run in runs] == [0, 1, 2, 3, 4]
    assert STATE["most"] == 2
    engine.close()


def test_a_queued_run_cancelled_never_begins(state_path: Any, gate: threading.Event) -> None:
    engine = ob.Engine(state_path, max_active_runs=1)
    first = engine.start(Gated(n=1))
    second = engine.start(Gated(n=2))
    second.cancel()
    with pytest.raises((asyncio.CancelledError, concurrent.futures.CancelledError)):
        second.wait(60)
    again = engine.start(Gated(n=2))  # its id is free again, and queued behind the first
    assert again is not second
    gate.set()
    assert first.wait(60) == 1 and again.wait(60) == 2
    assert STATE["most"] == 1
    engine.close()


@pytest.mark.parametrize("bad", [0, -3, 1.5, "10", True])
def test_max_active_runs_must_be_a_positive_whole_number(state_path: Any, bad: Any) -> None:
    with pytest.raises(ob.InvalidArgument, match=f"max_active_runs.*{bad!r}"):
        ob.Engine(state_path, max_active_runs=bad)


class Boom(ob.Workflow):
    async def define(self) -> Any:
        raise ValueError("boom")


def test_a_finished_handle_keeps_its_outcome_not_its_future(engine: ob.Engine) -> None:
    run = engine.start(Three())
    assert run.future is not None
    future = weakref.ref(run.future)
    assert run.wait(60) == [0, 1, 2]
    until(lambda: run.future is None)  # let go by the future's own callback
    gc.collect()
    assert future() is None
    assert run.done and run.wait() == [0, 1, 2]

    async def awaited() -> Any:
        return await run

    assert asyncio.run(awaited()) == [0, 1, 2]
    failed = engine.start(Boom())
    for _ in range(2):  # the error is raised again on every wait
        with pytest.raises(ValueError, match="boom"):
            failed.wait(60)


def test_runs_and_commits_allocate_no_lock_each(engine: ob.Engine,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    engine.start(Three(), run_id="warm").wait(60)  # threads and the file are set up
    made: list[Any] = []
    real = threading.Condition

    def counted(*args: Any, **kwargs: Any) -> Any:
        made.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(threading, "Condition", counted)
    runs = [engine.start(Three(), run_id=f"r{i}") for i in range(100)]
    assert [run.wait(60) for run in runs] == [[0, 1, 2]] * 100
    # 100 run futures and 400 commit futures (plus the steps' thread calls) share one
    # lock; a concurrent.futures.Future would have made a condition each.
    assert len(made) < 100 + 400, len(made)
