"""Headless runs with real papermill and real kernels on purpose-built notebooks."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import nbformat
import pytest

from orbits_nb import runbooks
from orbits_nb.core.state import fold
from orbits_nb.runbooks import records
from orbits_nb.store.duckdb_store import DuckDBStore

FIXTURES = Path(__file__).parent / "notebooks"
ROOT = Path(__file__).resolve().parents[1]
SECRET = "tok-5f1e9c-DO-NOT-LEAK"


def cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "orbits_nb.cli", *args], cwd=cwd or ROOT,
                          env={**os.environ, **(env or {})}, capture_output=True, text=True,
                          check=False, timeout=300)


def store_for(state: Path) -> DuckDBStore:
    return DuckDBStore(state)


def cells(path: str | Path) -> list[Any]:
    return list(nbformat.read(str(path), as_version=4).cells)


def tagged(nb_cells: list[Any], tag: str) -> list[Any]:
    return [c for c in nb_cells if tag in c.get("metadata", {}).get("tags", [])]


def outputs_text(cell: Any) -> str:
    parts = []
    for output in cell.get("outputs", []):
        parts.append(str(output.get("text", "")))
        parts.append(json.dumps(output.get("data", {})))
        parts.append(str(output.get("evalue", "")))
    return "\n".join(parts)


def all_text_in_store(state: Path) -> str:
    """Every string of every table and view, as SQL sees it (files may be compressed)."""
    store = store_for(state)
    try:
        tables = [r[0] for r in store.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'")]
        return "\n".join(str(row) for table in tables
                         for row in store.fetch(f'SELECT * FROM "{table}"'))
    finally:
        store.close()


def test_success_records_reports_and_never_leaks_the_secret(state: Path,
                                                            output_dir: Path) -> None:
    record = runbooks.run(FIXTURES / "success.ipynb",
                          {"client": "globex", "api_token": SECRET})
    assert record.status == "succeeded", record.error
    assert record.duration_s is not None
    assert record.duration_s > 0
    assert record.kernel_pid
    assert record.kernel_pid != os.getpid()
    # Predictable place: <output>/<runbook>/<date>/<notebook run id>.ipynb
    out = Path(str(record.output_path))
    assert out.parent.parent == output_dir / "success"
    assert out.parent.name == time.strftime("%Y-%m-%d", time.localtime(record.started_at))
    assert out.name == f"{record.notebook_run_id}.ipynb"
    assert record.parameters["api_token"] == {"$secret": "api_token"}
    assert record.masked_parameters()["api_token"] == "****"
    assert len(record.workflow_runs) == 1

    nb = cells(out)
    head = nb[0]
    assert "orbits-nb-header" in head.metadata["tags"]
    assert "succeeded" in head.source
    assert "globex" in head.source
    assert "****" in head.source
    injected = tagged(nb, "injected-parameters")[0]
    assert "globex" in injected.source
    assert "api_token" not in injected.source
    assert tagged(nb, "orbits-nb-bootstrap")[0].metadata["jupyter"]["source_hidden"]
    printed = "\n".join(outputs_text(c) for c in nb)
    assert "headless: True True" in printed
    assert f"context: {record.notebook_run_id}" in printed
    assert "leaking on purpose: ****" in printed
    report = tagged(nb, "orbits-nb-report")
    assert record.workflow_runs[0] in "\n".join(outputs_text(c) for c in report)
    assert "succeeded" in outputs_text(report[-1])

    # The secret is nowhere: not in the executed notebook, the state file (and its
    # sidecars and WAL), nor any table as SQL sees it; the step's print was masked.
    assert SECRET.encode() not in out.read_bytes()
    for path in state.parent.iterdir():
        assert SECRET.encode() not in path.read_bytes(), path
    assert SECRET not in all_text_in_store(state)
    store = store_for(state)
    try:
        run = fold(record.workflow_runs[0], store.load_run(record.workflow_runs[0]))
        logs = store.logs(record.workflow_runs[0])
        stored = records.get(store, record.notebook_run_id)
    finally:
        store.close()
    assert run.status == "succeeded"
    assert run.meta["notebook"] == str(FIXTURES / "success.ipynb")
    assert run.meta["notebook_run_id"] == record.notebook_run_id
    assert run.meta["parameters"] == {"api_token": "****", "client": "globex",
                                      "headless": True}
    assert any("calling the API with ****" in line.message for line in logs)
    assert stored is not None
    assert stored.status == "succeeded"
    assert stored.workflow_runs == record.workflow_runs


def test_failing_cell_exit_code_cell_and_error(state: Path) -> None:
    out = cli("run", str(FIXTURES / "broken.ipynb"), "-p", "client", "initech")
    assert out.returncode == 1
    assert "at cell 3: ValueError: boom: broken cell for initech" in out.stdout
    assert "failed in cell 3 (In [" in out.stderr
    assert '| raise ValueError(f"boom: broken cell for {client}")' in out.stderr
    store = store_for(state)
    try:
        record = records.listing(store)[0]
    finally:
        store.close()
    assert (record.status, record.failed_cell) == ("failed", 3)
    assert record.error is not None
    assert record.error["type"] == "ValueError"
    assert "Traceback" in record.error["traceback"] or "ValueError" in record.error["traceback"]
    nb = cells(str(record.output_path))
    assert "failed" in nb[0].source
    assert "cell 3" in nb[0].source
    assert "never printed" not in "\n".join(outputs_text(c) for c in nb)
    with pytest.raises(runbooks.RunbookFailed, match="ValueError: boom"):
        record.raise_for_status()


def test_sys_exit_zero_stops_successfully_and_nonzero_fails() -> None:
    ok = runbooks.run(FIXTURES / "sysexit.ipynb")
    assert ok.status == "succeeded"
    text = "\n".join(outputs_text(c) for c in cells(str(ok.output_path)))
    assert "before exit" in text
    assert "after exit" not in text
    bad = runbooks.run(FIXTURES / "sysexit.ipynb", {"code": 3})
    assert (bad.status, bad.failed_cell) == ("failed", 3)
    assert bad.error is not None
    assert bad.error["type"] == "SystemExit"
    with pytest.raises(runbooks.RunbookFailed):
        runbooks.run(FIXTURES / "sysexit.ipynb", {"code": 3}, check=True)


def test_killed_kernel_is_recorded_failed_and_nothing_stays_running(
        state: Path, tmp_path: Path) -> None:
    record = runbooks.run(FIXTURES / "kill_kernel.ipynb")
    assert record.status == "failed"
    assert record.error is not None
    assert record.error["type"] == "KernelDied"
    assert record.failed_cell == 2
    assert "failed" in cells(str(record.output_path))[0].source

    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "kill").touch()
    killed = runbooks.run(FIXTURES / "resume_after_kill.ipynb", {"workdir": str(workdir)})
    assert killed.error is not None
    assert killed.error["type"] == "KernelDied"
    store = store_for(state)
    try:
        running = store.fetch("SELECT count(*) FROM notebook_runs WHERE status = 'running'")
        statuses = store.fetch("SELECT status, count(*) FROM runs GROUP BY ALL")
        steps = dict(store.fetch("SELECT step, status FROM steps"))
        leases = store.fetch("SELECT count(*) FROM leases")
    finally:
        store.close()
    assert running == [(0,)]
    assert statuses == [("failed", 1)]
    assert steps["prepare"] == steps["build"] == "succeeded"
    assert steps["explode"] == "failed"  # caught running when the kernel died
    assert leases == [(0,)]


def test_runs_notebooks_lists_notebook_runs(state: Path) -> None:
    ok = runbooks.run(FIXTURES / "sysexit.ipynb")
    bad = runbooks.run(FIXTURES / "broken.ipynb")
    listed = cli("runs", "--notebooks")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split()[:4] == ["notebook_run_id", "runbook", "status", "started"]
    assert lines[2].startswith(bad.notebook_run_id)
    assert lines[3].startswith(ok.notebook_run_id)
    assert "ValueError" in lines[2]
    rows = [json.loads(line) for line in
            cli("runs", "--notebooks", "--json", "--status", "failed").stdout.splitlines()]
    assert [r["notebook_run_id"] for r in rows] == [bad.notebook_run_id]
    assert rows[0]["error"].startswith("cell 3: ValueError")
    assert cli("runs", "--notebooks", "--status", "pending").returncode == 2


def test_cwd_anywhere_in_a_fresh_clone(tmp_path: Path) -> None:
    """No ORBITS_NB_* variables: state and output go to the project root of the cwd."""
    project = tmp_path / "clone"
    (project / ".git").mkdir(parents=True)
    (project / "notebooks").mkdir()
    (project / "docs" / "deep").mkdir(parents=True)
    shutil.copy(FIXTURES / "sysexit.ipynb", project / "notebooks" / "sysexit.ipynb")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORBITS_NB_")}
    out = subprocess.run([sys.executable, "-m", "orbits_nb.cli", "run",
                          "../../notebooks/sysexit.ipynb"], cwd=project / "docs" / "deep",
                         env=env, capture_output=True, text=True, check=False, timeout=300)
    assert out.returncode == 0, out.stderr
    executed = list((project / "output" / "sysexit").glob("*/*.ipynb"))
    assert len(executed) == 1
    assert (project / ".orbits_nb" / "state.duckdb").exists()
    listed = subprocess.run([sys.executable, "-m", "orbits_nb.cli", "runs", "--notebooks"],
                            cwd=project / "notebooks", env=env, capture_output=True,
                            text=True, check=False, timeout=120)
    assert executed[0].stem in listed.stdout


def test_sigterm_interrupts_records_and_stops_the_kernel(state: Path,
                                                         tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "orbits_nb.cli", "run", str(FIXTURES / "rendezvous.ipynb"),
         "-p", "workdir", str(tmp_path), "-p", "wait_for", "never"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "a.started").exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the runbook never started"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    store = store_for(state)
    try:
        record = records.listing(store)[0]
    finally:
        store.close()
    assert record.status == "failed", err
    assert record.error is not None
    assert record.error["type"] == "Interrupted"
    assert record.kernel_pid is not None
    with pytest.raises(ProcessLookupError):
        os.kill(record.kernel_pid, 0)


def test_dead_runner_is_reaped_as_runner_died(state: Path, tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "orbits_nb.cli", "run", str(FIXTURES / "rendezvous.ipynb"),
         "-p", "workdir", str(tmp_path), "-p", "wait_for", "never"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (tmp_path / "a.started").exists():
        assert proc.poll() is None
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    # The orphaned kernel notices its parent is gone and exits; then the next
    # command that looks at notebook runs records the run as failed.
    deadline = time.monotonic() + 60
    while True:
        listed = cli("runs", "--notebooks", "--json")
        row = json.loads(listed.stdout.splitlines()[0])
        if row["status"] != "running" or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert row["status"] == "failed"
    assert row["error"].startswith("RunnerDied")
