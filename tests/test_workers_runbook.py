"""A run a runbook submitted executes on a worker: the worker re-executes the runbook
headlessly, where the runbook's own ``submit()`` of that run executes it in place
instead of queueing it again (which would wait for the worker forever). A real worker
process, a real runbook (``notebooks/submits.ipynb``) executed by ``orbits-nb run``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from worker_helpers import ROOT, environment, events, start_worker

from orbits_nb.core.state import fold

FIXTURES = Path(__file__).parent / "notebooks"


def test_a_runbook_s_submitted_run_executes_on_a_worker(state: Path, tmp_path: Path
                                                        ) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    worker = start_worker(state, "--queue", "nb")
    try:
        # The runbook submits and waits: the worker must execute the run meanwhile.
        first = subprocess.run(
            [sys.executable, "-m", "orbits_nb.cli", "run", str(FIXTURES / "submits.ipynb"),
             "-p", "workdir", str(workdir)], cwd=ROOT, env=environment(state),
            capture_output=True, text=True, check=False, timeout=600)
    finally:
        worker.terminate()
        out, _ = worker.communicate(timeout=120)
    assert first.returncode == 0, first.stdout + first.stderr + out
    assert "took" in out
    counts = {p.stem: int(p.read_text()) for p in workdir.glob("*.count")}
    assert counts == {"hello": 1, "bye": 1}
    found = events(state)
    [run_id] = {e.run_id for e in found if e.kind == "run.queued"}
    mine = [e for e in found if e.run_id == run_id]
    assert [e.kind for e in mine if e.kind in ("run.queued", "run.started")] == [
        "run.queued", "run.started"]  # queued once, executed once (by the worker's runbook)
    run = fold(run_id, mine)
    assert run.status == "succeeded"
    # Executed in the kernel of the worker's re-execution, not in the submitting one.
    assert run.spans[0].pid not in (None, os.getpid(), worker.pid)
    assert run.steps["hello"].result == run.spans[0].pid
