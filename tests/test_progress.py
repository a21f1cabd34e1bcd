"""Terminal progress: step lines and a bar on stderr in a terminal, quiet elsewhere."""

from __future__ import annotations

import io
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest
from test_views_flows import DeployBackend, Many

import orbits_nb as ob
from orbits_nb.engine.progress import ENV_VAR, TerminalProgress, shown_while_waiting, wanted

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


@pytest.mark.slow
def test_a_script_in_a_terminal_shows_progress_and_a_pipe_stays_quiet(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(TESTS),
           "ORBITS_NB_STATE": str(tmp_path / "state.duckdb")}
    env.pop(ENV_VAR, None)
    leader, follower = pty.openpty()
    child = subprocess.Popen([sys.executable, "-c", SCRIPT], env=env, stdin=subprocess.DEVNULL,
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
    assert child.wait(120) == 0
    os.close(leader)
    shown = b"".join(chunks).decode()
    assert "✗ iac-deploy" in shown
    assert "✘ DeployBackend failed" in shown
    piped = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                           text=True, timeout=120, check=True)
    assert piped.stderr == ""
