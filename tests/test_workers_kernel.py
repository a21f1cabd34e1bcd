"""A real Jupyter kernel submits a run and shuts down; a worker executes it; a new
kernel sees the result."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from test_kernel import Kernel
from worker_helpers import ROOT, TESTS, run_worker, side_counts


@pytest.mark.slow
def test_a_kernel_submits_shuts_down_and_a_new_kernel_sees_the_result(
        tmp_path: Path, state: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), str(TESTS)]))
    side = tmp_path / "side.txt"
    make = f"Steps(n=7, steps=2, side={str(side)!r})"
    first = Kernel(state, tmp_path)
    try:
        first.run("from worker_flows import Steps")
        out = first.run(f"run = {make}.submit(queue='nb'); print(run.run_id, run.status)")
        run_id, status = out.split()
        assert status == "queued"
    finally:
        first.shutdown()
    assert not side.exists()  # nothing executed in the kernel
    out = run_worker(state)
    assert f"took {run_id}" in out
    second = Kernel(state, tmp_path)
    try:
        second.run("import orbits_nb as ob\nfrom worker_flows import Steps")
        assert "['s0', 's1']" in second.run(f"print(await ob.get_run({run_id!r}))")
        assert "succeeded" in second.run(f"print(ob.get_run({run_id!r}).status)")
        # Submitting it again returns the recorded result, as start() would.
        assert "['s0', 's1']" in second.run(f"print({make}.submit(queue='nb').wait(60))")
        workers = second.run(f"print(ob.get_run({run_id!r}).state().spans[-1].worker)")
        assert workers.strip().startswith("worker-")
    finally:
        second.shutdown()
    assert side_counts(side) == {"7 s0": 1, "7 s1": 1}
