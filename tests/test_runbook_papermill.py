"""``orbits-nb run`` takes what papermill users type; real papermill, real kernels."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from io_helpers import MemoryHandler, registered

from orbits_nb import runbooks
from orbits_nb.runbooks.report import HEADER_TAG, REPORT_TAG

FIXTURES = Path(__file__).parent / "notebooks"
ECHO = FIXTURES / "echo.ipynb"
ROOT = Path(__file__).resolve().parents[1]
SECRET = "tok-9c1d2e-NEVER-SHOWN"
PAPERMILL_OPTIONS = ("-k", "--kernel", "-y", "--parameters-yaml", "-r", "--parameters-raw",
                     "-f", "--parameters-file", "-b", "--cwd", "OUTPUT_PATH",
                     "--prepare-only", "--report-mode", "--request-save-on-cell-execute",
                     "--no-request-save-on-cell-execute", "--execution-timeout",
                     "--cell-timeout", "--progress-bar", "--no-progress-bar",
                     "--log-output", "--stdout-file", "--stderr-file",
                     "--autosave-cell-every", "--start-timeout", "-p", "--output")


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "orbits_nb.cli", *args], cwd=cwd or ROOT,
                          capture_output=True, text=True, timeout=300)


def printed(nb: Any, prefix: str) -> str:
    """The text after ``prefix`` in the stream outputs of ``nb``."""
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            for line in str(output.get("text", "")).splitlines():
                if line.startswith(prefix):
                    return line[len(prefix):].strip()
    raise AssertionError(f"{prefix!r} not printed")


@pytest.fixture
def memory() -> Iterator[MemoryHandler]:
    with registered() as handler:
        yield handler


def test_run_help_lists_papermill_options() -> None:
    out = cli("run", "--help")
    assert out.returncode == 0
    for option in PAPERMILL_OPTIONS:
        assert option in out.stdout, option


def test_parameters_merge_in_papermill_order(tmp_path: Path, state: Path) -> None:
    (tmp_path / "a.yaml").write_text("client: from-a\nreplicas: 2\nversion: 2026-11-01\n")
    (tmp_path / "b.json").write_text('{"replicas": 3}')
    encoded = base64.b64encode(b"client: from-base64\nreplicas: 1\n").decode()
    out_path = tmp_path / "out" / "echo.ipynb"
    ran = cli("run", str(ECHO), str(out_path), "-b", encoded, "-f", str(tmp_path / "a.yaml"),
              "-f", str(tmp_path / "b.json"), "-y", "replicas: 7", "-p", "client", "typed",
              "-r", "client", "007", "-r", "version", "1.10", "-p", "api_token", SECRET)
    assert ran.returncode == 0, ran.stderr
    nb = nbformat.read(str(out_path), as_version=4)
    assert json.loads(printed(nb, "params:")) == {
        "version": "1.10", "client": "007", "replicas": 7}
    assert SECRET not in out_path.read_text()
    # Dates in YAML stay text, as papermill reads them; OUTPUT_PATH may come last.
    dated = cli("run", str(ECHO), "-f", str(tmp_path / "a.yaml"), "-p", "api_token", SECRET,
                str(tmp_path / "dated.ipynb"))
    assert dated.returncode == 0, dated.stderr
    params = json.loads(printed(nbformat.read(str(tmp_path / "dated.ipynb"), 4), "params:"))
    assert params["version"] == "2026-11-01"


def test_output_to_stdout_keeps_stdout_for_the_notebook(tmp_path: Path) -> None:
    here = tmp_path / "here"
    here.mkdir()
    ran = cli("run", str(ECHO), "-", "-p", "api_token", SECRET, "--log-output", "-k",
              "python3", "--no-progress-bar", cwd=here)
    assert ran.returncode == 0, ran.stderr
    nb = nbformat.reads(ran.stdout, as_version=4)
    tags = [t for c in nb.cells for t in c.get("metadata", {}).get("tags", [])]
    assert HEADER_TAG in tags
    assert printed(nb, "cwd:") == str(ECHO.parent)
    assert "succeeded" in ran.stderr
    assert "params:" in ran.stderr  # --log-output echoes to stderr here
    assert SECRET not in ran.stdout + ran.stderr
    assert list(here.iterdir()) == []  # no file named '-'


def test_remote_output_goes_through_papermill_io_handlers(memory: MemoryHandler,
                                                          state: Path) -> None:
    record = runbooks.run(ECHO, {"client": "globex", "api_token": SECRET},
                          output="mem://bucket/{client}.ipynb", autosave_cell_every=1)
    assert record.status == "succeeded", record.error
    url = "mem://bucket/globex.ipynb"
    assert record.output_path == url
    saves = memory.writes[url]
    assert len(saves) > 1  # saved as cells ran, then completed at the end
    final = nbformat.reads(saves[-1], as_version=4)
    tags = [t for c in final.cells for t in c.get("metadata", {}).get("tags", [])]
    assert HEADER_TAG in tags
    assert final.metadata["orbits_nb"]["status"] == "succeeded"
    assert final.metadata["papermill"]["output_path"] == url
    assert printed(final, "params:") == json.dumps(
        {"version": None, "client": "globex", "replicas": 1})
    assert all(SECRET not in text for text in saves)

    once = runbooks.run(ECHO, {"api_token": SECRET}, output="mem://bucket/once.ipynb",
                        request_save_on_cell_execute=False)
    assert once.status == "succeeded", once.error
    assert len(memory.writes["mem://bucket/once.ipynb"]) == 1


def test_unknown_output_schemes_and_templates_are_refused_before_a_kernel(
        state: Path) -> None:
    with pytest.raises(runbooks.RunbookError, match="no papermill I/O handler writes nope://"):
        runbooks.prepare(ECHO, {"api_token": SECRET}, output="nope://bucket/out.ipynb")
    with pytest.raises(runbooks.RunbookError, match=r"\{region\}"):
        runbooks.prepare(ECHO, {"api_token": SECRET}, output="out/{region}.ipynb")
    out = cli("run", str(ECHO), "nope://bucket/out.ipynb", "-p", "api_token", SECRET)
    assert out.returncode == 2
    assert "nope://" in out.stderr and "Traceback" not in out.stderr
    both = cli("run", str(ECHO), "a.ipynb", "--output", "b.ipynb")
    assert both.returncode == 2
    assert "two outputs" in both.stderr
    assert not state.exists()


def test_prepare_only_writes_the_parameterized_notebook_and_records_nothing(
        tmp_path: Path, state: Path) -> None:
    target = tmp_path / "prepared.ipynb"
    out = cli("run", str(ECHO), str(target), "--prepare-only", "-p", "client", "globex",
              "-p", "api_token", SECRET)
    assert out.returncode == 0, out.stderr
    assert "not executed" in out.stdout
    nb = nbformat.read(str(target), as_version=4)
    injected = [c for c in nb.cells
                if "injected-parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(injected) == 1
    assert 'client = "globex"' in injected[0].source
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")
    assert SECRET not in target.read_text()
    assert not state.exists()


def test_report_mode_hides_every_code_input(tmp_path: Path) -> None:
    target = tmp_path / "report.ipynb"
    ran = cli("run", str(FIXTURES / "success.ipynb"), str(target), "--report-mode",
              "-p", "api_token", SECRET)
    assert ran.returncode == 0, ran.stderr
    nb = nbformat.read(str(target), as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert any(REPORT_TAG in c.metadata.get("tags", []) for c in code)
    assert all(c.metadata.get("jupyter", {}).get("source_hidden") for c in code)


def test_cwd_log_files_and_execution_timeout(tmp_path: Path) -> None:
    target = tmp_path / "timeout.ipynb"
    workdir = tmp_path / "wd"
    workdir.mkdir()
    ran = cli("run", str(ECHO), str(target), "--cwd", str(workdir),
              "--stdout-file", str(tmp_path / "out.txt"),
              "--stderr-file", str(tmp_path / "err.txt"), "--execution-timeout", "2",
              "--autosave-cell-every", "1", "--request-save-on-cell-execute",
              "--start-timeout", "60", "-p", "pause", "60", "-p", "api_token", SECRET)
    assert ran.returncode == 1
    assert "CellTimeout" in ran.stdout + ran.stderr
    nb = nbformat.read(str(target), as_version=4)
    assert printed(nb, "cwd:") == str(workdir)
    stdout_text = (tmp_path / "out.txt").read_text()
    assert f"cwd: {workdir}" in stdout_text
    assert "done" not in stdout_text
    stderr_text = (tmp_path / "err.txt").read_text()
    assert "token on stderr:" in stderr_text
    assert SECRET not in stderr_text + stdout_text + target.read_text()
