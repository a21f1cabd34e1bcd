"""The report cell of an executed runbook opens its run in a real kernel, wherever the state is.

Each case runs a real runbook (papermill), then executes the report cell of the executed
notebook in a fresh kernel started in that notebook's folder, the way JupyterLab starts
one, with no ``ORBITS_NB_STATE`` in its environment.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

import orbits_nb as ob
from orbits_nb import runbooks
from orbits_nb.engine.engine import engine_for
from orbits_nb.runbooks.report import REPORT_TAG, state_argument

FIXTURE = Path(__file__).resolve().parent / "notebooks" / "success.ipynb"
PARAMS = {"client": "acme", "api_token": "tok-report-cell-9431"}


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder holding the runbook; nothing points at a state file."""
    root = tmp_path / "project"
    (root / "notebooks").mkdir(parents=True)
    (root / ".orbits_nb").mkdir()
    shutil.copy(FIXTURE, root / "notebooks" / "success.ipynb")
    monkeypatch.delenv("ORBITS_NB_STATE", raising=False)
    monkeypatch.delenv("ORBITS_NB_OUTPUT", raising=False)
    monkeypatch.chdir(root)  # the state and the outputs are found from where one works
    return root


def report_cell(output: Path) -> Any:
    notebook = nbformat.read(str(output), as_version=4)
    [cell] = [c for c in notebook.cells if c.cell_type == "code"
              and REPORT_TAG in c.metadata.get("tags", [])]
    return cell


def live_view(output: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Execute the report cell in a new kernel beside ``output``; return what it showed."""
    monkeypatch.delenv("ORBITS_NB_STATE", raising=False)
    cell = report_cell(output)
    cell.outputs = []
    notebook = nbformat.v4.new_notebook(cells=[cell])
    client = NotebookClient(notebook, kernel_name="python3", timeout=120,
                            resources={"metadata": {"path": str(output.parent)}})
    client.execute()
    [shown] = notebook.cells[0].outputs
    assert shown.output_type != "error", shown
    return str(shown["data"]["text/plain"])


def run_success(project: Path, **options: Any) -> runbooks.NotebookRun:
    record = runbooks.run(project / "notebooks" / "success.ipynb", PARAMS, check=True,
                          **options)
    assert record.workflow_runs
    return record


def test_default_state_keeps_the_cell_portable(project: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    record = run_success(project)
    output = Path(str(record.output_path))
    assert output.is_relative_to(project / "output")
    assert (project / ".orbits_nb" / "state.duckdb").is_file()
    [run_id] = record.workflow_runs
    assert report_cell(output).source == f"import orbits_nb as ob\n\nob.get_run({run_id!r})"
    shown = live_view(output, monkeypatch)
    assert run_id in shown and "succeeded" in shown


def test_state_elsewhere_is_named_in_the_cell(project: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    state = tmp_path / "elsewhere" / "team.duckdb"
    record = run_success(project, state=state)
    output = Path(str(record.output_path))
    [run_id] = record.workflow_runs
    assert f"state={str(state)!r}" in report_cell(output).source
    shown = live_view(output, monkeypatch)
    assert run_id in shown and "succeeded" in shown
    assert not (project / ".orbits_nb" / "state.duckdb").exists()


def test_state_from_the_environment_is_named_in_the_cell(
        project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = tmp_path / "from-env" / "state.duckdb"
    monkeypatch.setenv("ORBITS_NB_STATE", str(state))
    record = run_success(project)
    output = Path(str(record.output_path))
    assert f"state={str(state)!r}" in report_cell(output).source
    shown = live_view(output, monkeypatch)
    assert record.workflow_runs[0] in shown


def test_state_beside_the_notebook_is_relative_and_moves_with_it(
        project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "out"
    record = run_success(project, output=folder / "run.ipynb", state=folder / "state.duckdb")
    assert "state='state.duckdb'" in report_cell(folder / "run.ipynb").source
    moved = tmp_path / "moved"
    folder.rename(moved)
    shown = live_view(moved / "run.ipynb", monkeypatch)
    assert record.workflow_runs[0] in shown and "succeeded" in shown


def test_state_argument_cases(tmp_path: Path) -> None:
    root = tmp_path / "p"
    (root / ".git").mkdir(parents=True)
    beside = root / "output" / "x.ipynb"
    assert state_argument(root / ".orbits_nb" / "state.duckdb", beside) is None
    assert state_argument(root / "output" / "s" / "a.duckdb", beside) == "s/a.duckdb"
    other = tmp_path / "q" / "a.duckdb"
    assert state_argument(other, beside) == str(other)
    assert state_argument(other, None) == str(other)


def test_get_run_state_refuses_a_missing_file_and_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "state.duckdb"
    with pytest.raises(ob.StoreError, match="no state file at .*nope"):
        ob.get_run("Hello-1", state=missing)
    assert not missing.parent.exists()
    engine = ob.Engine(":memory:")
    with pytest.raises(ob.InvalidArgument, match="not both"):
        ob.get_run("Hello-1", state=missing, engine=engine)
    engine.close()


def test_engine_for_is_one_engine_per_file(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "s.duckdb"
    store = ob.DuckDBStore(path)
    with store.connection():  # a write session creates the file (reads never do)
        pass
    store.close()
    monkeypatch.chdir(tmp_path)
    assert engine_for("s.duckdb") is engine_for(path)
    with pytest.raises(ob.RunNotFound):
        ob.get_run("Missing-1", state="s.duckdb")
