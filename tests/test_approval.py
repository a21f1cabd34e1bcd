"""Approval steps: decided from the API or the CLI, recorded, surviving process death."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from polling import until
from test_views_flows import Release

import orbits_nb as ob
from orbits_nb.approval import Approval, ApprovalRejected, decide, pending

TESTS = Path(__file__).parent




def cli(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "orbits_nb.cli", "--state", str(state),
                           *args], capture_output=True, text=True, timeout=120, check=False,
                          env={**os.environ, "PYTHONPATH": str(TESTS),
                               "ORBITS_NB_USER": "alice"})


def test_approve_records_who_when_and_comment(engine: ob.Engine) -> None:
    run = engine.start(Release(version="1.0"))
    waiting = until(lambda: pending(engine.store, run.run_id))
    assert [(p.step, p.prompt) for p in waiting] == [("approve", "Ship 1.0?")]
    before = time.time()
    made = decide(engine.store, run.run_id, "approve", "approved", by="bob", comment="ok")
    result = run.wait(30)
    assert result["approved"] is True
    assert result["by"] == "bob"
    assert result["comment"] == "ok"
    assert made.at >= before
    assert pending(engine.store) == []
    with pytest.raises(ob.OrbitsError, match="already approved by bob"):
        decide(engine.store, run.run_id, "approve", "rejected")


def test_reject_fails_the_step_with_the_reason(engine: ob.Engine) -> None:
    run = engine.start(Release(version="2.0"))
    until(lambda: pending(engine.store, run.run_id))
    decide(engine.store, run.run_id, "approve", "rejected", by="carol", comment="freeze")
    with pytest.raises(ob.StepFailed) as failure:
        run.wait(30)
    assert "rejected by carol" in str(failure.value)
    assert "freeze" in str(failure.value)
    step = run.state().steps["approve"]
    assert step.error is not None
    assert step.error["type"].endswith("ApprovalRejected")
    # Retrying asks again instead of reusing the rejection.
    again = run.retry()
    until(lambda: pending(engine.store, run.run_id))
    decide(engine.store, run.run_id, "approve", "approved", by="carol")
    assert again.wait(30)["approved"] is True
    assert engine.store.fetch("SELECT count(*) FROM approvals")[0][0] == 2


def test_bad_input_is_refused_with_a_clear_message(engine: ob.Engine) -> None:
    with pytest.raises(ob.InvalidArgument, match="non-empty question"):
        Approval(prompt="  ")
    with pytest.raises(ob.InvalidArgument, match="'maybe'"):
        decide(engine.store, "r", "s", "maybe")
    run = engine.start(Release(version="3.0"))
    until(lambda: pending(engine.store, run.run_id))
    with pytest.raises(ob.OrbitsError, match="pending in this run: approve"):
        decide(engine.store, run.run_id, "build", "approved")
    decide(engine.store, run.run_id, "approve", "approved")
    run.wait(30)
    assert issubclass(ApprovalRejected, ob.OrbitsError)


def test_a_reset_asks_again(engine: ob.Engine) -> None:
    run = engine.start(Release(version="4.0"))
    until(lambda: pending(engine.store, run.run_id))
    decide(engine.store, run.run_id, "approve", "approved")
    run.wait(30)
    run.reset("approve")
    again = ob.Run(engine, run.run_id).retry()
    until(lambda: pending(engine.store, run.run_id))
    assert again.status == "running"
    decide(engine.store, run.run_id, "approve", "approved")
    assert again.wait(30)["approved"] is True


def test_cli_lists_approves_and_rejects(engine: ob.Engine) -> None:
    state = Path(engine.store.path)
    run = engine.start(Release(version="5.0"))
    until(lambda: pending(engine.store, run.run_id))
    listed = cli(state, "approvals")
    assert listed.returncode == 0, listed.stderr
    assert run.run_id in listed.stdout
    assert "Ship 5.0?" in listed.stdout
    wrong = cli(state, "approve", run.run_id, "ship")
    assert wrong.returncode == 2
    assert "pending in this run: approve" in wrong.stderr
    done = cli(state, "approve", run.run_id, "approve", "-m", "go ahead")
    assert done.returncode == 0, done.stderr
    assert "approved: step 'approve'" in done.stdout
    assert "by alice" in done.stdout
    assert run.wait(30)["by"] == "alice"
    assert cli(state, "approvals").stdout.strip() == "no approvals pending"
    other = engine.start(Release(version="6.0"))
    until(lambda: pending(engine.store, other.run_id))
    assert cli(state, "reject", other.run_id, "approve", "--by", "dave").returncode == 0
    with pytest.raises(ob.StepFailed, match="rejected by dave"):
        other.wait(30)
    row = engine.store.fetch("SELECT decided_via FROM approvals WHERE run_id = ?",
                             [other.run_id])
    assert row == [("cli",)]


@pytest.mark.slow
@pytest.mark.parametrize("stop", ["kill", "terminate"])
def test_a_pending_approval_survives_the_process(tmp_path: Path, stop: str) -> None:
    state = tmp_path / "state.duckdb"
    starter = ("import orbits_nb as ob, sys\n"
               "from test_views_flows import Release\n"
               f"e = ob.Engine({str(state)!r})\n"
               "run = e.start(Release(version='7.0'))\n"
               "print(run.run_id, flush=True)\n"
               "print(run.wait(300), flush=True)\n")
    env = {**os.environ, "PYTHONPATH": str(TESTS), "ORBITS_NB_USER": "erin"}
    first = subprocess.Popen([sys.executable, "-c", starter], env=env, text=True,
                             stdout=subprocess.PIPE)
    assert first.stdout is not None
    run_id = first.stdout.readline().strip()
    until(lambda: run_id in cli(state, "approvals").stdout, 120)
    # A kernel restart: killed outright, or asked to stop (the run is then cancelled).
    first.send_signal(signal.SIGKILL if stop == "kill" else signal.SIGTERM)
    first.wait(60)
    assert cli(state, "approve", run_id, "approve", "-m", "while down").returncode == 0
    second = subprocess.run([sys.executable, "-c", starter], env=env, text=True,
                            capture_output=True, timeout=300, check=False)
    assert second.returncode == 0, second.stderr
    assert "'comment': 'while down'" in second.stdout
    engine = ob.Engine(state)
    try:
        rows = engine.store.fetch("SELECT count(*), max(decided_by) FROM approvals")
    finally:
        engine.close()
    assert rows == [(1, "alice")]  # the same request, decided once (by the CLI user)
