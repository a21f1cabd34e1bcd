"""Cycles: watch_drift runs each resource's cycle every cycle_every, recorded as history."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agent_helpers import Config, DeployCycled, Notes, effects

import orbits_nb as ob


class Files(ob.Workflow):
    async def define(self) -> Any:
        await self.do("config", Config(self.args["config"], content="on\n"))
        return await self.do("notes", Notes(self.args["notes"], content="a\n"))


def sources(key: str, engine: ob.Engine) -> list[tuple[str, str]]:
    return ob.drift_history(key, engine=engine).project("source, status").fetchall()


def test_an_agents_cycle_runs_as_a_recorded_command(engine: ob.Engine, tmp_path: Path) -> None:
    args = {"name": "api", "image": "v1", "replicas": 2,
            "state": str(tmp_path / "api.json"), "effects": str(tmp_path / "effects")}
    DeployCycled(**args).run(engine=engine)
    Path(args["state"]).write_text(json.dumps({"image": "v1", "replicas": 7}))
    watch = ob.watch_drift(every=0.1, engine=engine)
    try:
        watch.wait_for_check(2, timeout=60)
    finally:
        watch.stop()
    assert "heal" in effects(tmp_path / "effects")
    assert json.loads(Path(args["state"]).read_text())["replicas"] == 2
    assert ("cycle", "in_sync") in sources("CycledService:api", engine)
    runs = [r.run_id for r in engine.store.recent_runs(limit=50)]
    assert any(r.startswith("Command-") for r in runs)


def test_a_leaf_cycle_observes_and_reconciles_only_when_told(engine: ob.Engine,
                                                            root: Path) -> None:
    config, notes = root / "app.cfg", root / "notes.txt"
    Files(config=str(config), notes=str(notes)).run(engine=engine)
    config.write_text("off\n")
    notes.write_text("b\n")
    watch = ob.watch_drift(every=0.1, engine=engine)
    try:
        watch.wait_for_check(2, timeout=60)
    finally:
        watch.stop()
    assert config.read_text() == "on\n"          # reconcile_on_cycle
    assert notes.read_text() == "b\n"            # observed only
    assert ("cycle", "drifted") in sources(f"Notes:{notes}", engine)
    assert ("cycle", "drifted") in sources(f"Config:{config}", engine)


def test_cli_cycles_once_runs_the_due_cycles(root: Path, state: Path) -> None:
    import os
    import subprocess
    import sys

    config = root / "app.cfg"
    engine = ob.Engine(state)
    try:
        Files(config=str(config), notes=str(root / "notes.txt")).run(engine=engine)
    finally:
        engine.close()
    config.write_text("off\n")
    tests = str(Path(__file__).parent)
    env = {**os.environ, "ORBITS_NB_STATE": str(state),
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), tests])}
    done = subprocess.run([sys.executable, "-m", "orbits_nb.cli", "cycles", "--once"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert {(d["key"].split(":")[0], d["ran"]) for d in lines} == {
        ("Config", "reconcile"), ("Notes", "observe")}
    assert config.read_text() == "on\n"
