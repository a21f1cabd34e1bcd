"""The state file while runs are in flight: kept open between writes, handed over on demand."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

import orbits_nb as ob
from orbits_nb.store import open_store

GATE: dict[str, threading.Event] = {}


class Pause(ob.Action):
    async def main(self) -> Any:
        await asyncio.sleep(self.args["seconds"])
        return self.args["seconds"]


class Gate(ob.Action):
    def main(self) -> Any:
        GATE["entered"].set()
        GATE["open"].wait(60)
        return "through"


class Paced(ob.Workflow):
    async def define(self) -> Any:
        return [await self.do(f"p{i}", Pause(seconds=0.15)) for i in range(3)]


class Gated(ob.Workflow):
    async def define(self) -> Any:
        await self.do("before", Pause(seconds=0))
        return await self.do("gate", Gate())


def test_file_is_not_reopened_between_the_writes_of_a_run(engine: ob.Engine,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    store: Any = engine.store
    connects = []
    real = store._connect

    def counting(db: Any, read_only: bool) -> Any:
        connects.append(read_only)
        return real(db, read_only)

    monkeypatch.setattr(store, "_connect", counting)
    assert engine.start(Paced()).wait() == [0.15, 0.15, 0.15]
    assert len(connects) == 1  # pauses longer than a look at the idle store


def test_another_store_gets_the_file_while_a_run_waits(state_path: Path) -> None:
    GATE.update(entered=threading.Event(), open=threading.Event())
    engine = ob.Engine(state_path)
    run = engine.start(Gated(), run_id="gated")
    assert GATE["entered"].wait(60)
    other = open_store(state_path, lock_timeout=30)
    try:
        events = other.load_run("gated")  # waits its turn: the holder hands over
        assert [e.kind for e in events][:2] == ["run.created", "run.started"]
        assert not run.done
    finally:
        other.close()
        GATE["open"].set()
    assert run.wait(60) == "through"
    engine.close()
