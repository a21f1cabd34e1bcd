"""The orbits-nb CLI on a real state file."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orbits_nb as ob


class Hello(ob.Action):
    def main(self) -> Any:
        return f"hello {self.args['who']}"


class Greet(ob.Workflow):
    async def define(self) -> Any:
        return await self.do("greet", Hello(who=self.args["who"]))


class Broken(ob.Action):
    def main(self) -> Any:
        raise RuntimeError("nope")


class Fails(ob.Workflow):
    async def define(self) -> Any:
        return await self.do("broken", Broken())


def cli(*args: str, state: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "orbits_nb.cli", *args], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "ORBITS_NB_STATE": str(state)})


def test_runs_show_and_sql(state_path: Path) -> None:
    engine = ob.Engine(state_path)
    ok = engine.start(Greet(who="acme"))
    ok.wait(30)
    bad = engine.start(Fails())
    with contextlib.suppress(ob.StepFailed):
        bad.wait(30)
    engine.close()

    out = cli("runs", state=state_path)
    assert out.returncode == 0, out.stderr
    assert ok.run_id in out.stdout and bad.run_id in out.stdout
    assert "RuntimeError: nope" in out.stdout

    out = cli("runs", "--status", "failed", "--json", state=state_path)
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["run_id"] for r in rows] == [bad.run_id]

    out = cli("show", ok.run_id, state=state_path)
    assert out.returncode == 0
    assert "greet" in out.stdout and "hello acme" in out.stdout

    out = cli("show", bad.run_id, state=state_path)
    assert out.returncode == 1
    assert "Traceback" in out.stdout and "RuntimeError: nope" in out.stdout

    out = cli("sql", "SELECT step, status FROM steps ORDER BY step", "--json", state=state_path)
    assert [json.loads(line) for line in out.stdout.splitlines()] == [
        {"step": "broken", "status": "failed"}, {"step": "greet", "status": "succeeded"}]


def test_unknown_run_and_bad_sql_are_clear_errors(state_path: Path) -> None:
    out = cli("show", "does-not-exist", state=state_path)
    assert out.returncode == 2
    assert "no run 'does-not-exist'" in out.stderr
    out = cli("sql", "SELEC nonsense", state=state_path)
    assert out.returncode == 2
    assert "syntax error" in out.stderr.lower()
    assert "Traceback" not in out.stderr


def test_missing_runs_and_steps_are_named_in_approvals(state_path: Path) -> None:
    engine = ob.Engine(state_path)
    ok = engine.start(Greet(who="acme"))
    ok.wait(30)
    engine.close()
    for args in (["approvals", "--run", "nope"], ["approve", "nope", "approve"],
                 ["reject", "nope", "approve", "-m", "no"]):
        out = cli(*args, state=state_path)
        assert out.returncode == 2, out.stdout
        assert f"no run 'nope' in {state_path}" in out.stderr
        assert "orbits-nb runs" in out.stderr
        assert "Traceback" not in out.stderr
    nested = cli("approve", ok.run_id, "deploy/approve", state=state_path)
    assert nested.returncode == 2
    assert f"run {ok.run_id!r} has no nested run 'deploy'" in nested.stderr
    step = cli("approve", ok.run_id, "approve", state=state_path)
    assert step.returncode == 2
    assert "has no step 'approve' (steps: greet)" in step.stderr
    listed = cli("approvals", "--run", ok.run_id, state=state_path)
    assert listed.returncode == 0
    assert "no approvals pending" in listed.stdout
    assert cli("approve", ok.run_id, "approve", "--by", "", state=state_path).returncode == 2
