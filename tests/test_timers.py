"""Durable timers in an engine of this process (no worker): they record their due time
once, replay it, and refuse bad input."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import orbits_nb as ob
from orbits_nb.core.state import Event, fold
from orbits_nb.engine.engine import Engine

WAKES: list[float] = []


class Until(ob.Workflow):
    async def define(self) -> Any:
        await self.wait_until("window", self.args["at"])
        WAKES.append(time.time())
        return "open"


class Aware(ob.Workflow):
    async def define(self) -> Any:
        await self.wait_until("window", datetime.fromtimestamp(self.args["at"], tz=UTC))
        return "open"


class Naive(ob.Workflow):
    async def define(self) -> Any:
        await self.wait_until("window", datetime(2030, 1, 1))  # noqa: DTZ001


class Negative(ob.Workflow):
    async def define(self) -> Any:
        await self.sleep("nap", -1)


def test_wait_until_records_its_due_time_and_replays_it(state_path: Path) -> None:
    at = time.time() + 0.3
    engine = Engine(state_path)
    try:
        run = engine.start(Until(at=at))
        assert run.wait(60) == "open"
        assert WAKES[-1] >= at
        step = run.state().steps["window"]
        assert step.result == pytest.approx(at)
        # Executing the run again replays the timer: it is over, nothing waits or runs.
        again = engine.start(Until(at=at))
        assert again.wait(60) == "open"
        events = engine.store.load_run(run.run_id)
        assert sum(e.kind == "step.started" and e.step == "window" for e in events) == 1
    finally:
        engine.close()


def test_wait_until_takes_an_aware_datetime(state_path: Path) -> None:
    engine = Engine(state_path)
    try:
        at = time.time() + 0.1
        run = engine.start(Aware(at=at))
        assert run.wait(60) == "open"
        assert run.state().steps["window"].result == pytest.approx(at)
    finally:
        engine.close()


@pytest.mark.parametrize(("flow", "message"), [(Naive, "timezone-aware"),
                                               (Negative, "at least 0")])
def test_bad_timers_fail_the_run_naming_the_value(state_path: Path, flow: type[ob.Workflow],
                                                  message: str) -> None:
    engine = Engine(state_path)
    try:
        run = engine.start(flow())
        with pytest.raises(ob.InvalidArgument, match=message):
            run.wait(60)
    finally:
        engine.close()


def test_sleep_outside_define_is_refused() -> None:
    import asyncio

    with pytest.raises(ob.OrbitsError, match="outside its own define"):
        asyncio.run(Negative().sleep("nap", 1))


def test_the_fold_keeps_the_worker_of_each_execution() -> None:
    state = fold("r", [Event("r", "run.created", data={"workflow": "m:W"}),
                       Event("r", "run.started", data={"host": "h", "pid": 1,
                                                       "worker": "worker-h-1"}),
                       Event("r", "run.started", data={"host": "h", "pid": 2})])
    assert [span.worker for span in state.spans] == ["worker-h-1", None]
