"""Terminal progress: step lines and a bar on stderr in a terminal, quiet elsewhere."""

from __future__ import annotations

import io
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest
from test_views_flows import DeployBackend, Many

import orbits_nb as ob
from orbits_nb.engine.progress import (
    ENV_VAR,
    TerminalProgress,
    bar_total,
    shown_while_waiting,
    wanted,
)
from orbits_nb.flagship.progress import watch_fleet

TESTS = Path(__file__).parent
SCRIPT = ("import orbits_nb as ob\n"
          "from test_views_flows import DeployBackend\n"
          "try:\n"
          "    DeployBackend(client='tty', fail=True, nested=True).run()\n"
          "except ob.StepFailed:\n"
          "    pass\n")


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_sees_step_lines_a_bar_and_a_summary(engine: ob.Engine) -> None:
    stream = FakeTTY()
    run = engine.start(DeployBackend(client="acme", fail=True, nested=True))
    progress = TerminalProgress(run, stream).start()
    with pytest.raises(ob.StepFailed):
        run.wait(30)
    progress.close()
    text = stream.getvalue()
    lines = [line.split("\r")[-1].replace("\x1b[2K", "") for line in text.splitlines()]
    assert any(line.startswith("  ✓ git-create") for line in lines)
    assert any(line.startswith("  ✓ nested/i1") for line in lines)
    failed = next(line for line in lines if line.startswith("  ✗ iac-deploy"))
    assert failed.endswith("RuntimeError: stack acme failed")
    assert any(line.startswith("✘ DeployBackend failed in") for line in lines)
    assert "\r" in text  # the bar is redrawn in place
    assert "RuntimeError: stack acme failed" in lines[-1]  # the run's error closes it


def test_when_progress_is_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    assert wanted(FakeTTY())
    assert not wanted(io.StringIO())
    assert wanted(io.StringIO(), force=True)
    monkeypatch.setenv(ENV_VAR, "1")
    assert wanted(io.StringIO())
    monkeypatch.setenv(ENV_VAR, "0")
    assert not wanted(FakeTTY())
    monkeypatch.delenv(ENV_VAR)
    monkeypatch.setitem(sys.modules, "ipykernel", sys)  # in a notebook: the widget shows it
    assert not wanted(FakeTTY())


def test_a_big_run_prints_a_few_lines(engine: ob.Engine) -> None:
    stream = io.StringIO()
    run = engine.start(Many(n=400))
    with shown_while_waiting(run, stream, force=True) as progress:
        run.wait(120)
    assert progress is not None
    lines = stream.getvalue().splitlines()
    assert len(lines) < 100
    assert any("steps done" in line for line in lines)
    assert lines[-1].startswith("✔ Many succeeded in")
    assert "(400 steps)" in lines[-1]


def in_a_terminal(script: str, env: dict[str, str]) -> str:
    """What ``script`` writes to stderr when stderr is a real pseudo-terminal."""
    leader, follower = pty.openpty()
    child = subprocess.Popen([sys.executable, "-c", script], env=env, stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=follower)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    assert child.wait(120) == 0, b"".join(chunks).decode(errors="replace")
    os.close(leader)
    return b"".join(chunks).decode()


def script_env(tmp_path: Path) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS.parent), str(TESTS)]),
           "ORBITS_NB_STATE": str(tmp_path / "state.duckdb")}
    env.pop(ENV_VAR, None)
    return env


@pytest.mark.slow
def test_a_script_in_a_terminal_shows_progress_and_a_pipe_stays_quiet(tmp_path: Path) -> None:
    env = script_env(tmp_path)
    shown = in_a_terminal(SCRIPT, env)
    assert "✗ iac-deploy" in shown
    assert "✘ DeployBackend failed" in shown
    piped = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                           text=True, timeout=120, check=True)
    assert piped.stderr == ""


TWICE = """
import time
import orbits_nb as ob

class Pause(ob.Action):
    def main(self):
        time.sleep(0.25)
        return self.args["i"]

class Slow(ob.Workflow):
    async def define(self):
        for i in range(6):
            await self.do(f"s{i}", Pause(i=i))

Slow().run()
Slow().start(fresh=True).wait()
"""
FRAME = re.compile(r"Slow \|[^|]*\| (\d+)/(\d+) steps \(estimate from the previous run\)")


@pytest.mark.slow
def test_the_bar_never_claims_completion_while_the_run_runs(tmp_path: Path) -> None:
    shown = in_a_terminal(TWICE, script_env(tmp_path))
    first, second, rest = shown.split("✔ Slow succeeded in")
    assert "(6 steps)" in second and "(6 steps)" in rest
    # A first run: the total is unknown, and the bar says so instead of guessing.
    assert "steps done · total unknown (first run)" in first
    assert not FRAME.search(first)
    # The next run: estimated from the first one, labelled so, never full before the end.
    frames = [(int(done), int(total)) for done, total in FRAME.findall(second)]
    assert frames, second
    assert all(done < total for done, total in frames), frames
    assert {total for _, total in frames} <= {6, 7}
    assert max(done for done, _ in frames) >= 1  # it moved
    assert "  ✓ s5" in second


def test_the_total_is_unknown_or_stays_above_what_is_done() -> None:
    assert bar_total(0, 0, None) is None  # a first run
    assert bar_total(2, 3, 6) == 6
    assert bar_total(6, 6, 6) == 7  # the estimate is reached but the run still runs
    assert bar_total(4, 9, 6) == 9  # more steps than last time


def test_a_fleet_watched_in_a_terminal_shows_the_same_progress(
        engine: ob.Engine, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(ENV_VAR, "1")
    run = engine.start(Many(n=3))
    table = watch_fleet(run, refresh=0.05)
    captured = capsys.readouterr()
    assert "  ✓ s2" in captured.err
    assert "✔ Many succeeded in" in captured.err and "(3 steps)" in captured.err
    assert "0 tenants" in captured.out and len(table) == 0
