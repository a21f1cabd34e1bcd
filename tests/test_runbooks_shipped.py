"""Every runbook in notebooks/ runs headlessly from a clean checkout, without editing.

Each runs in a copy of notebooks/ inside a throw-away project (so files a runbook
writes next to itself stay out of the repository), with its default parameters, and
with AWS pointed at a local emulator (a real moto server on 127.0.0.1). A runbook
that needs other values for the test declares them in its notebook metadata:
``{"orbits_nb": {"test_parameters": {"name": value}}}``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

from orbits_nb.aws.emulator import Emulator

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
# What runbooks leave next to themselves when they run: not part of a checkout.
LEFTOVERS = shutil.ignore_patterns("repos", "kernel-ipc-*", ".ipynb_checkpoints", "output")


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with Emulator(log_path=log) as emu:
        yield emu


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    project = tmp_path / "clone"
    (project / ".git").mkdir(parents=True)
    shutil.copytree(ROOT / "notebooks", project / "notebooks", ignore=LEFTOVERS)
    return project


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_runbook_runs_headless(path: Path, clone: Path, emulator: Emulator) -> None:
    emulator.reset()
    emulator.create_organization()
    meta = json.loads(path.read_text())["metadata"].get("orbits_nb", {})
    params = meta.get("test_parameters", {})
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORBITS_NB_")}
    for key, value in emulator.environ().items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    out = subprocess.run(
        [sys.executable, "-m", "orbits_nb.cli", "run", f"notebooks/{path.name}",
         "--parameters-json", json.dumps(params), "--json"],
        cwd=clone, env=env, capture_output=True, text=True, check=False, timeout=600)
    record = json.loads(out.stdout.splitlines()[-1]) if out.stdout.strip() else {}
    assert out.returncode == 0, f"{path.name}: {record.get('error')}\n{out.stderr[-3000:]}"
    assert record["status"] == "succeeded"
    executed = Path(record["output_path"])
    assert executed.is_relative_to(clone / "output" / path.stem)
    assert (clone / ".orbits_nb" / "state.duckdb").exists()
    cells = nbformat.read(str(executed), as_version=4).cells
    assert "succeeded" in cells[0].source
    assert record["workflow_runs"], "a runbook should run at least one workflow"
    report = [c for c in cells if "orbits-nb-report" in c.metadata.get("tags", [])]
    assert len(report) == 1 + len(record["workflow_runs"])
