"""Agents: resources whose install/update/uninstall and commands are durable steps."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from agent_helpers import Deploy, Service, effects

import orbits_nb as ob
from orbits_nb.core.errors import InvalidArgument

WORKER = Path(__file__).with_name("agent_worker.py")


def service_args(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    args = {"name": "api", "image": "v1", "replicas": 2,
            "state": str(tmp_path / "api.json"), "effects": str(tmp_path / "effects")}
    return {**args, **extra}


def test_a_resource_with_async_install_is_an_agent_with_nested_steps(
        engine: ob.Engine, tmp_path: Path) -> None:
    args = service_args(tmp_path)
    run = Deploy(**args).start(engine=engine)
    assert run.wait() == {"url": "https://api.example"}
    assert issubclass(Service, ob.Agent) and Service.is_agent
    child = engine.store.load_run(f"{run.run_id}/service")
    steps = {e.step for e in child if e.step}
    assert steps == {"plan", "provision", "scale"}
    assert json.loads(Path(args["state"]).read_text()) == {"image": "v1", "replicas": 2}
    assert ob.drift(engine=engine).ok
    # Starting it again replays the whole run: no step executes twice.
    assert Deploy(**args).start(engine=engine).wait() == {"url": "https://api.example"}
    assert effects(tmp_path / "effects") == ["provision", "scale"]


def test_drift_on_an_agent_is_reconciled_by_its_update_steps(
        engine: ob.Engine, tmp_path: Path) -> None:
    args = service_args(tmp_path)
    Deploy(**args).run(engine=engine)
    Path(args["state"]).write_text(json.dumps({"image": "v1", "replicas": 9}))
    report = ob.drift(engine=engine)
    assert not report.ok
    assert [d.path for d in report.drifted[0].diffs] == ["replicas"]
    report.reconcile()
    assert effects(tmp_path / "effects") == ["provision", "scale", "patch"]
    assert json.loads(Path(args["state"]).read_text())["replicas"] == 2
    assert ob.drift(engine=engine).ok


def test_custom_command_runs_as_steps_and_unknown_commands_are_refused(
        engine: ob.Engine, tmp_path: Path) -> None:
    args = service_args(tmp_path)
    Deploy(**args).run(engine=engine)
    run = ob.command("Service:api", "rollback", engine=engine)
    assert run.wait() == {"rolled_back": True}
    assert effects(tmp_path / "effects")[-1] == "rollback"
    assert json.loads(Path(args["state"]).read_text())["image"] == "previous"
    with pytest.raises(InvalidArgument, match="no command 'restart'.*rollback"):
        ob.command("Service:api", "restart", engine=engine)
    # The rollback left it drifted from the code's desired image.
    assert [d.path for d in ob.drift(engine=engine).drifted[0].diffs] == ["image"]


def test_uninstall_runs_the_agents_uninstall_steps_unless_still_used(
        engine: ob.Engine, tmp_path: Path) -> None:
    args = service_args(tmp_path)
    Deploy(**args).run(engine=engine)
    with pytest.raises(ob.OrbitsError, match="still used by Deploy"):
        ob.uninstall("Service:api", engine=engine)
    assert Path(args["state"]).exists()
    ob.uninstall("Service:api", release=["Deploy"], engine=engine)
    assert not Path(args["state"]).exists()
    assert effects(tmp_path / "effects")[-1] == "remove"


def _wait_for(path: Path, step: str, proc: subprocess.Popen[bytes]) -> None:
    while step not in effects(path):
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        time.sleep(0.02)


def _worker(state: Path, *argv: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, str(WORKER), str(state), *argv],
                            stderr=subprocess.PIPE, env=env)


def test_sigkill_mid_install_then_resume_does_not_repeat_completed_steps(
        tmp_path: Path) -> None:
    state = tmp_path / "state.duckdb"
    args = service_args(tmp_path)
    Path(args["state"] + ".block").write_text("scale")
    proc = _worker(state, "deploy", json.dumps(args))
    _wait_for(tmp_path / "effects", "scale", proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    Path(args["state"] + ".block").unlink()
    engine = ob.Engine(state)
    try:
        assert Deploy(**args).run(engine=engine, timeout=60) == {"url": "https://api.example"}
    finally:
        engine.close()
    # provision ran once (replayed on resume); scale was interrupted, so ran again.
    assert effects(tmp_path / "effects") == ["provision", "scale", "scale"]


def test_a_command_on_one_identity_excludes_another_process(tmp_path: Path) -> None:
    state = tmp_path / "state.duckdb"
    args = service_args(tmp_path)
    engine = ob.Engine(state)
    try:
        Deploy(**args).run(engine=engine)
    finally:
        engine.close()
    Path(args["state"] + ".block").write_text("rollback")
    proc = _worker(state, "command", "Service:api", "rollback")
    try:
        _wait_for(tmp_path / "effects", "rollback", proc)
        engine = ob.Engine(state)
        try:
            with pytest.raises(ob.OrbitsError, match="is locked: rollback by"):
                ob.command("Service:api", "rollback", on_conflict="fail", engine=engine)
        finally:
            engine.close()
    finally:
        Path(args["state"] + ".block").unlink()
        assert proc.wait(60) == 0
    assert effects(tmp_path / "effects").count("rollback") == 1


def _cli(state: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    tests = str(Path(__file__).parent)
    env = {**os.environ, "ORBITS_NB_STATE": str(state),
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), tests])}
    return subprocess.run([sys.executable, "-m", "orbits_nb.cli", *argv], capture_output=True,
                          text=True, timeout=120, env=env)


def test_cli_command_runs_a_custom_command_and_names_unknown_ones(tmp_path: Path) -> None:
    state = tmp_path / "state.duckdb"
    args = service_args(tmp_path)
    engine = ob.Engine(state)
    try:
        Deploy(**args).run(engine=engine)
    finally:
        engine.close()
    done = _cli(state, "command", "Service:api", "rollback")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[0]) == {"rolled_back": True}
    assert effects(tmp_path / "effects")[-1] == "rollback"
    bad = _cli(state, "command", "Service:api", "restart")
    assert bad.returncode != 0
    assert "no command 'restart'" in bad.stderr and "Traceback" not in bad.stderr
