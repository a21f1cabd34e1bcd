"""``orbits-nb run`` next to ``papermill`` on the same notebooks and command lines.

Each test runs both command lines (real subprocesses, real kernels) and compares the
exit code, whether an output notebook was written, the injected cell, every cell's
outputs and how errors are reported. What may differ is what the README's "Coming from
papermill" lists: orbits-nb's own cells (header, bootstrap, report), a cell's stream
outputs coalesced per stream, values read by their declared type (said on stderr),
checks before a kernel starts (exit code 2 instead of papermill's traceback), and the
kernel's default working directory.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import pytest

from orbits_nb.runbooks.report import BOOTSTRAP_TAG, HEADER_TAG, REPORT_TAG

FIXTURES = Path(__file__).parent / "notebooks"
ROOT = Path(__file__).resolve().parents[1]
PAPERMILL = Path(sys.executable).parent / "papermill"
ORBITS_TAGS = {HEADER_TAG, BOOTSTRAP_TAG, REPORT_TAG}
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@dataclass
class Ran:
    """One command line's result: exit code, output notebook (None if none), stderr."""

    code: int
    nb: Any
    stderr: str
    stdout: str

    @property
    def cells(self) -> list[tuple[Any, ...]]:
        """The notebook's own cells (orbits-nb's left out), as comparable tuples."""
        assert self.nb is not None, self.stderr
        return [shape(c) for c in self.nb.cells if not set(tags(c)) & ORBITS_TAGS]

    @property
    def injected(self) -> str | None:
        found = [c.source for c in self.nb.cells if "injected-parameters" in tags(c)]
        return found[0] if found else None

    def printed(self) -> str:
        return "".join(str(o.get("text", "")) for c in self.nb.cells
                       for o in c.get("outputs", []))


def tags(cell: Any) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def shape(cell: Any) -> tuple[Any, ...]:
    """What a reader sees of a cell. Streams are compared as the text of each stream
    (orbits-nb writes one output per stream and cell, papermill one per message)."""
    streams: dict[str, str] = {}
    others = []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream":
            streams[output["name"]] = streams.get(output["name"], "") + output["text"]
        else:
            others.append((output.get("output_type"),
                           (output.get("data") or {}).get("text/plain"),
                           output.get("ename"), output.get("evalue")))
    hidden = cell.get("metadata", {}).get("jupyter", {}).get("source_hidden", False)
    return (cell.cell_type, cell.source, sorted(tags(cell)), cell.get("execution_count"),
            sorted(streams.items()), others, hidden)


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def run(command: list[str], out: Path, cwd: Path | None) -> Ran:
    done = subprocess.run(command, cwd=cwd or ROOT, env=env(), capture_output=True,
                          text=True, check=False, timeout=300)
    nb = nbformat.read(str(out), as_version=4) if out.exists() else None
    return Ran(done.returncode, nb, _ANSI.sub("", done.stderr), done.stdout)


def both(notebook: Path | str, *options: str, tmp: Path,
         cwd: Path | None = None) -> tuple[Ran, Ran]:
    """The same command line through orbits-nb and through papermill's CLI."""
    theirs = tmp / "papermill" / "out.ipynb"
    theirs.parent.mkdir(parents=True, exist_ok=True)
    return (orbits(notebook, *options, tmp=tmp, cwd=cwd),
            run([str(PAPERMILL), str(notebook), str(theirs), *options], theirs, cwd))


def orbits(notebook: Path | str, *options: str, tmp: Path, cwd: Path | None = None) -> Ran:
    ours = tmp / "orbits" / "out.ipynb"
    ours.parent.mkdir(parents=True, exist_ok=True)
    return run([sys.executable, "-m", "orbits_nb.cli", "run", str(notebook), str(ours),
                *options], ours, cwd)


def assert_same(ours: Ran, theirs: Ran) -> None:
    assert ours.code == theirs.code, (ours.stderr, theirs.stderr)
    assert (ours.nb is None) == (theirs.nb is None)
    if ours.nb is not None:
        assert ours.injected == theirs.injected
        assert ours.cells == theirs.cells


def test_a_parameterized_notebook_runs_the_same(tmp_path: Path) -> None:
    ours, theirs = both(FIXTURES / "parameterized.ipynb", "-p", "label", "hi", "-p",
                        "count", "3", "-p", "ratio", "0.25", "-p", "anything", "[1, 2]",
                        "-y", "extra: 7", tmp=tmp_path)
    assert_same(ours, theirs)
    assert ours.code == 0
    assert "got: 'hi' 3 0.25 '[1, 2]'" in ours.printed()
    # -y before -p, as papermill merges them.
    assert ours.injected == ('# Parameters\nextra = 7\nlabel = "hi"\ncount = 3\n'
                             'ratio = 0.25\nanything = "[1, 2]"\n')
    # The undeclared name is injected with a warning, by both.
    assert "'extra' is not declared by parameterized.ipynb" in ours.stderr
    assert "Passed unknown parameter: extra" in theirs.stderr


def test_typed_values_differ_only_with_a_warning_and_raw_types_reads_as_papermill(
        tmp_path: Path) -> None:
    args = ("-p", "label", "10", "-p", "ratio", "2", "-p", "count", "3")
    ours, theirs = both(FIXTURES / "parameterized.ipynb", *args, tmp=tmp_path)
    assert (ours.code, theirs.code) == (0, 0)
    assert theirs.injected == '# Parameters\nlabel = 10\nratio = 2\ncount = 3\n'
    assert ours.injected == '# Parameters\nlabel = "10"\nratio = 2.0\ncount = 3\n'
    assert "-p label '10' is read as '10' ('label' is declared str) where papermill " \
           "injects 10" in ours.stderr
    assert "-p ratio '2' is read as 2.0" in ours.stderr
    assert "-p count" not in ours.stderr  # read alike: nothing to say

    # With --raw-types, as papermill's same line (its CLI has no such option).
    raw = orbits(FIXTURES / "parameterized.ipynb", *args, "--raw-types",
                 tmp=tmp_path / "raw")
    assert_same(raw, theirs)
    assert "is declared str, but the value is 10 (int): injected as it is" in raw.stderr
    assert "is read as" not in raw.stderr


def test_a_failing_cell_fails_alike_with_the_error_banner(tmp_path: Path) -> None:
    ours, theirs = both(FIXTURES / "raises.ipynb", "-p", "label", "now", tmp=tmp_path)
    assert_same(ours, theirs)
    assert ours.code == 1
    banners = [c for c in ours.nb.cells if "papermill-error-cell-tag" in tags(c)]
    assert len(banners) == 2
    for ran in (ours, theirs):
        assert "RuntimeError: broken on purpose: now" in ran.stderr
        assert "In [4]" in ran.stderr  # parameters, injected, print, raise
    assert "never printed" not in ours.printed()


@pytest.mark.parametrize(("code", "status"), [("0", 0), ("3", 1)])
def test_sys_exit_ends_alike(tmp_path: Path, code: str, status: int) -> None:
    ours, theirs = both(FIXTURES / "exits.ipynb", "-p", "code", code, tmp=tmp_path)
    assert_same(ours, theirs)
    assert ours.code == status
    assert "exiting with" in ours.printed()
    assert "never printed" not in ours.printed()


def test_without_a_parameters_cell_parameters_go_on_top(tmp_path: Path) -> None:
    ours, theirs = both(FIXTURES / "no_parameters_cell.ipynb", "-p", "greeting", "hi",
                        tmp=tmp_path)
    assert_same(ours, theirs)
    assert ours.code == 0
    assert "injected-parameters" in ours.cells[0][2]  # first of the notebook's cells
    assert "greeting: hi" in ours.printed()
    assert "has no cell tagged 'parameters', so the parameters are injected at the top" \
        in ours.stderr
    assert "Input notebook does not contain a cell with tag 'parameters'" in theirs.stderr


def test_report_mode_hides_the_same_inputs(tmp_path: Path) -> None:
    ours, theirs = both(FIXTURES / "report_mode.ipynb", "--report-mode", "-p", "title",
                        "t", tmp=tmp_path)
    assert_same(ours, theirs)
    hidden = [cell[-1] for cell in ours.cells if cell[0] == "code"]
    assert hidden and all(hidden)


def test_working_directory(tmp_path: Path) -> None:
    folder = tmp_path / "wd"
    folder.mkdir()
    (folder / "data.txt").write_text("from wd\n")
    ours, theirs = both(FIXTURES / "reads_cwd.ipynb", "--cwd", str(folder), tmp=tmp_path)
    assert_same(ours, theirs)
    assert "in: wd\nread: from wd" in ours.printed()

    # Run from the notebook's folder, both read beside it.
    beside = tmp_path / "beside"
    beside.mkdir()
    notebook = beside / "reads_cwd.ipynb"
    notebook.write_text((FIXTURES / "reads_cwd.ipynb").read_text())
    (beside / "data.txt").write_text("from beside\n")
    ours, theirs = both("reads_cwd.ipynb", tmp=tmp_path, cwd=beside)
    assert_same(ours, theirs)

    # The documented difference: from elsewhere, without --cwd, papermill runs in its
    # own working directory, orbits-nb in the notebook's folder (as JupyterLab does).
    ours, theirs = both(notebook, tmp=tmp_path, cwd=folder)
    assert "read: from beside" in ours.printed()
    assert "read: from wd" in theirs.printed()
    assert "working directory ../beside" in ours.stderr


def test_old_nbformat_notebooks_are_upgraded_alike(tmp_path: Path) -> None:
    ours, theirs = both(FIXTURES / "nbformat4_0.ipynb", "-p", "value", "2",
                        tmp=tmp_path)
    assert_same(ours, theirs)
    assert ours.code == 0
    assert ours.nb.nbformat_minor == theirs.nb.nbformat_minor
    # nbformat 3 names no kernel and no language: both need -k and -l.
    ours, theirs = both(FIXTURES / "nbformat3.ipynb", "-p", "value", "2", "-k", "python3",
                        tmp=tmp_path / "v3")
    assert (ours.nb, theirs.nb) == (None, None)
    assert (ours.code, theirs.code) == (2, 1)
    assert "names no language" in ours.stderr and "pass -l python" in ours.stderr
    assert "No language found in notebook" in theirs.stderr
    ours, theirs = both(FIXTURES / "nbformat3.ipynb", "-p", "value", "2", "-k", "python3",
                        "-l", "python", tmp=tmp_path / "v3")
    assert_same(ours, theirs)
    assert "value: 2" in ours.printed()


def test_a_vs_code_blank_notebook_needs_a_kernel_name(tmp_path: Path) -> None:
    ours, theirs = both(FIXTURES / "vscode_blank.ipynb", tmp=tmp_path)
    assert (ours.nb, theirs.nb) == (None, None)
    assert (ours.code, theirs.code) == (2, 1)
    assert "names no kernel (its metadata has no kernelspec)" in ours.stderr
    assert "pass -k NAME" in ours.stderr and "Traceback" not in ours.stderr
    assert "No kernel name found in notebook" in theirs.stderr
    ours, theirs = both(FIXTURES / "vscode_blank.ipynb", "-k", "python3",
                        tmp=tmp_path / "vscode")
    assert_same(ours, theirs)
    assert ours.code == 0
    assert "ran without a kernelspec" in ours.printed()


def test_kernel_name_python_is_python3(tmp_path: Path) -> None:
    ours, theirs = both(FIXTURES / "python_kernel.ipynb", "-p", "value", "4", tmp=tmp_path)
    assert_same(ours, theirs)
    assert ours.code == 0
    assert "value: 4 on 3" in ours.printed()


def test_autosave_during_a_long_cell(tmp_path: Path) -> None:
    ours, theirs = both(FIXTURES / "autosaves.ipynb", "--autosave-cell-every", "1",
                        "--inject-output-path", tmp=tmp_path)
    assert (ours.code, theirs.code) == (0, 0)
    for ran, name in ((ours, "orbits"), (theirs, "papermill")):
        assert ran.injected == (f'# Parameters\nPAPERMILL_OUTPUT_PATH = '
                                f'"{tmp_path / name / "out.ipynb"}"\n')
        assert "saved while running: True" in ran.printed()


def test_a_dead_kernel_exits_138(tmp_path: Path) -> None:
    ours, theirs = both(FIXTURES / "kill_kernel.ipynb", tmp=tmp_path)
    assert (ours.code, theirs.code) == (138, 138)
    assert ours.nb is not None and theirs.nb is not None
    assert "KernelDied" in ours.stdout + ours.stderr
