"""papermill's command-line options on ``orbits-nb run``, each next to papermill's own.

Remote notebooks, parameter files and outputs go through papermill's I/O handler
registry, with a handler registered in the test (both command lines run in this
process for that); the other options run both CLIs as real subprocesses.
"""

from __future__ import annotations

import base64
import os
import re
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from io_helpers import MemoryHandler, registered

from orbits_nb import runbooks
from orbits_nb.cli import main
from orbits_nb.runbooks.parameters import inspect

FIXTURES = Path(__file__).parent / "notebooks"
ROOT = Path(__file__).resolve().parents[1]
PAPERMILL = Path(sys.executable).parent / "papermill"
PARAMETERIZED = FIXTURES / "parameterized.ipynb"
SECRET = "tok-4b7e1a-NEVER-LOGGED"


@pytest.fixture
def memory() -> Iterator[MemoryHandler]:
    with registered() as handler:
        yield handler


def ours(*args: str, cwd: Path | None = None, umask: int | None = None,
         ) -> subprocess.CompletedProcess[str]:
    return _run([sys.executable, "-m", "orbits_nb.cli", "run", *args], cwd, umask)


def theirs(*args: str, cwd: Path | None = None, umask: int | None = None,
           ) -> subprocess.CompletedProcess[str]:
    return _run([str(PAPERMILL), "--no-progress-bar", *args], cwd, umask)


def _run(command: list[str], cwd: Path | None,
         umask: int | None) -> subprocess.CompletedProcess[str]:
    def child() -> None:
        if umask is not None:
            os.umask(umask)

    return subprocess.run(command, cwd=cwd or ROOT, capture_output=True, text=True,
                          check=False, timeout=300, preexec_fn=child,
                          env={**os.environ, "PYTHONPATH": str(ROOT),
                               "API_TOKEN": SECRET})


def injected(nb: Any) -> str:
    [cell] = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    return str(cell.source)


def printed(nb: Any) -> str:
    return "".join(str(o.get("text", "")) for c in nb.cells for o in c.get("outputs", []))


def read(path: Path) -> Any:
    return nbformat.read(str(path), as_version=4)


def test_remote_notebook_parameter_files_and_output_through_io_handlers(
        memory: MemoryHandler, capsys: pytest.CaptureFixture[str], state: Path) -> None:
    from papermill.cli import papermill

    memory.writes["mem://runbooks/parameterized.ipynb"] = [PARAMETERIZED.read_text()]
    memory.writes["mem://conf/base.yaml"] = ["label: remote\ncount: 2\n"]
    memory.writes["mem://conf/more.yaml"] = ["count: 5\nratio: 0.75\n"]
    args = ["mem://runbooks/parameterized.ipynb", "-f", "mem://conf/base.yaml",
            "-f", "mem://conf/more.yaml", "-p", "anything", "x"]
    code = main(["run", args[0], "mem://out/orbits.ipynb", *args[1:]])
    out = capsys.readouterr()
    assert code == 0, out.err
    papermill.main(args=[args[0], "mem://out/papermill.ipynb", *args[1:],
                         "--no-progress-bar"], standalone_mode=False)
    mine = nbformat.reads(memory.writes["mem://out/orbits.ipynb"][-1], as_version=4)
    theirs_nb = nbformat.reads(memory.writes["mem://out/papermill.ipynb"][-1], as_version=4)
    assert injected(mine) == injected(theirs_nb) == (
        '# Parameters\nlabel = "remote"\ncount = 5\nratio = 0.75\nanything = "x"\n')
    assert "got: 'remote' 5 0.75 'x'" in printed(mine) == printed(theirs_nb)
    assert len(memory.writes["mem://out/orbits.ipynb"]) > 1  # saved as the cells ran
    # Recorded as the URL (so a resume reads it again); the private copy is gone.
    assert mine.metadata.papermill.input_path == "mem://runbooks/parameterized.ipynb"
    assert mine.metadata.orbits_nb["status"] == "succeeded"
    assert "running mem://runbooks/parameterized.ipynb" in out.err
    assert not list(Path(tempfile.gettempdir()).glob("orbits-nb-input-*"))
    assert inspect("mem://runbooks/parameterized.ipynb").parameters["ratio"].type == "float"


def test_remote_notebooks_are_checked_before_a_kernel(memory: MemoryHandler,
                                                      capsys: pytest.CaptureFixture[str],
                                                      state: Path) -> None:
    assert main(["run", "nope://bucket/nb.ipynb"]) == 2
    assert "no papermill I/O handler reads nope:// URLs" in capsys.readouterr().err
    assert main(["run", "mem://missing.ipynb"]) == 2
    assert "cannot read notebook mem://missing.ipynb: KeyError" in capsys.readouterr().err
    memory.writes["mem://bad.ipynb"] = [PARAMETERIZED.read_text()]
    assert main(["run", "mem://bad.ipynb", "-p", "labels", "x"]) == 2
    assert "did you mean 'label'?" in capsys.readouterr().err
    assert not state.exists()
    assert not list(Path(tempfile.gettempdir()).glob("orbits-nb-input-*"))


def test_parameters_merge_and_read_exactly_as_papermill(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("label: from-a\ncount: 2\nwhen: 2026-11-01\n")
    # JSON is read as papermill reads it, as YAML 1.1: 1e3 stays text.
    (tmp_path / "b.json").write_text('{"count": 3, "anything": 1e3}')
    encoded = base64.b64encode(b"label: from-base64\nratio: 0.5\n").decode()
    encoded = encoded[:8] + "\n" + encoded[8:]  # papermill skips what is not base64
    args = ("-b", encoded, "-f", str(tmp_path / "a.yaml"), "-f", str(tmp_path / "b.json"),
            "-y", "ratio: 1.5", "-p", "count", "4", "-r", "label", "007")
    mine, other = tmp_path / "orbits.ipynb", tmp_path / "papermill.ipynb"
    assert ours(str(PARAMETERIZED), str(mine), *args).returncode == 0
    assert theirs(str(PARAMETERIZED), str(other), *args).returncode == 0
    assert injected(read(mine)) == injected(read(other)) == (
        '# Parameters\nlabel = "007"\nratio = 1.5\ncount = 4\nwhen = "2026-11-01"\n'
        'anything = "1e3"\n')


def test_prepare_only_writes_what_papermill_writes(tmp_path: Path, state: Path) -> None:
    mine, other = tmp_path / "orbits.ipynb", tmp_path / "papermill.ipynb"
    args = ("--prepare-only", "-p", "label", "ready", "--report-mode")
    done = ours(str(PARAMETERIZED), str(mine), *args)
    assert done.returncode == 0, done.stderr
    assert theirs(str(PARAMETERIZED), str(other), *args).returncode == 0
    a, b = read(mine), read(other)
    assert [(c.source, c.metadata.get("tags"), c.metadata.get("jupyter")) for c in a.cells] \
        == [(c.source, c.metadata.get("tags"), c.metadata.get("jupyter")) for c in b.cells]
    assert not any(c.get("outputs") for c in a.cells)
    assert a.metadata.papermill.input_path == b.metadata.papermill.input_path
    assert not state.exists()


def test_stdout_and_stderr_files_get_what_papermill_writes(tmp_path: Path) -> None:
    notebook = tmp_path / "streams.ipynb"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        'import sys\nprint("to stdout")\nprint("to stderr", file=sys.stderr)\n'
        'print("more stdout")')])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, str(notebook))
    for name, run in (("orbits", ours), ("papermill", theirs)):
        done = run(str(notebook), str(tmp_path / f"{name}.ipynb"), "--stdout-file",
                   str(tmp_path / f"{name}.out"), "--stderr-file", str(tmp_path / f"{name}.err"))
        assert done.returncode == 0, done.stderr
    assert (tmp_path / "orbits.out").read_text() == (tmp_path / "papermill.out").read_text() \
        == "to stdout\nmore stdout\n"
    assert (tmp_path / "orbits.err").read_text() == (tmp_path / "papermill.err").read_text()


def test_inject_paths_adds_papermill_s_path_parameters(tmp_path: Path) -> None:
    (tmp_path / "nb.ipynb").write_text(PARAMETERIZED.read_text())
    for name, run in (("orbits", ours), ("papermill", theirs)):
        done = run("nb.ipynb", f"{name}.ipynb", "--inject-paths", "-p", "count", "2",
                   cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert injected(read(tmp_path / f"{name}.ipynb")) == (
            f'# Parameters\nPAPERMILL_INPUT_PATH = "nb.ipynb"\n'
            f'PAPERMILL_OUTPUT_PATH = "{name}.ipynb"\ncount = 2\n')
        assert "PAPERMILL_INPUT_PATH' is not declared" not in done.stderr
    only_input = ours("nb.ipynb", "input.ipynb", "--inject-input-path", cwd=tmp_path)
    assert only_input.returncode == 0, only_input.stderr
    assert injected(read(tmp_path / "input.ipynb")) == \
        '# Parameters\nPAPERMILL_INPUT_PATH = "nb.ipynb"\n'


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_output_files_get_the_umask_like_papermill_or_the_mode_asked(tmp_path: Path) -> None:
    for name, run in (("orbits", ours), ("papermill", theirs)):
        done = run(str(PARAMETERIZED), str(tmp_path / f"{name}.ipynb"), "--stdout-file",
                   str(tmp_path / f"{name}.out"), umask=0o027)
        assert done.returncode == 0, done.stderr
        # An existing file keeps its mode, as papermill's open() keeps it.
        kept = tmp_path / f"{name}-kept.ipynb"
        kept.write_text("{}")
        kept.chmod(0o604)
        assert run(str(PARAMETERIZED), str(kept), umask=0o027).returncode == 0
        assert mode_of(kept) == 0o604
    assert mode_of(tmp_path / "orbits.ipynb") == mode_of(tmp_path / "papermill.ipynb") == 0o640
    assert mode_of(tmp_path / "orbits.out") == mode_of(tmp_path / "papermill.out") == 0o640

    private = tmp_path / "private.ipynb"
    done = ours(str(PARAMETERIZED), str(private), "--output-mode", "600", "--stdout-file",
                str(tmp_path / "private.out"), "--autosave-cell-every", "1")
    assert done.returncode == 0, done.stderr
    assert mode_of(private) == mode_of(tmp_path / "private.out") == 0o600
    assert [p.name for p in tmp_path.glob(".orbits-nb-*")] == []  # no temporary left
    bad = ours(str(PARAMETERIZED), "--output-mode", "999")
    assert bad.returncode == 2
    assert "'999' is not an octal mode" in bad.stderr


def test_log_level_says_less_or_more_and_masks_secrets(tmp_path: Path) -> None:
    echo = FIXTURES / "echo.ipynb"
    debug = ours(str(echo), str(tmp_path / "debug.ipynb"), "--log-level", "DEBUG",
                 "-p", "api_token", "env:API_TOKEN")
    assert debug.returncode == 0, debug.stderr
    assert "Executing notebook with kernel: python3" in debug.stderr
    assert "msg_type" in debug.stderr  # nbclient's debug lines, with the kernel's output
    assert "token on stderr: ****" in debug.stderr
    assert SECRET not in debug.stderr + debug.stdout
    assert "orbits-nb: running" in debug.stderr

    quiet = ours(str(echo), str(tmp_path / "quiet.ipynb"), "--log-level", "warning",
                 "-p", "api_token", "env:API_TOKEN", "-p", "replicas", "3", "-p", "extra", "1")
    assert quiet.returncode == 0, quiet.stderr
    assert "orbits-nb: running" not in quiet.stderr
    assert "Executing notebook" not in quiet.stderr
    assert "'extra' is not declared by echo.ipynb" in quiet.stderr
    silent = ours(str(echo), str(tmp_path / "silent.ipynb"), "--log-level", "ERROR",
                  "-p", "api_token", "env:API_TOKEN", "-p", "extra", "1")
    assert silent.returncode == 0, silent.stderr
    assert "warning" not in silent.stderr
    assert "succeeded" in silent.stdout


def test_engine_nbclient_runs_and_other_engines_are_refused(tmp_path: Path,
                                                            state: Path) -> None:
    from papermill.engines import NBClientEngine, papermill_engines

    done = ours(str(PARAMETERIZED), str(tmp_path / "out.ipynb"), "--engine", "nbclient")
    assert done.returncode == 0, done.stderr
    unknown = ours(str(PARAMETERIZED), "--engine", "nope")
    assert unknown.returncode == 2
    assert "papermill has no engine named 'nope'" in unknown.stderr

    class Elsewhere(NBClientEngine):  # type: ignore[misc]
        """An engine some package registered."""

    papermill_engines.register("elsewhere", Elsewhere)
    try:
        with pytest.raises(runbooks.RunbookError, match="not with engine 'elsewhere'"):
            runbooks.prepare(PARAMETERIZED, engine="elsewhere")
    finally:
        papermill_engines._engines.pop("elsewhere", None)


def test_undeclared_names_near_misses_and_allow_undeclared(tmp_path: Path,
                                                           state: Path) -> None:
    near = ours(str(PARAMETERIZED), str(tmp_path / "near.ipynb"), "-p", "counts", "2")
    assert near.returncode == 2
    assert "unknown parameter 'counts' for parameterized.ipynb; did you mean 'count'?" \
        in near.stderr
    assert "--allow-undeclared" in near.stderr
    assert not (tmp_path / "near.ipynb").exists() and not state.exists()
    case = ours(str(PARAMETERIZED), "-p", "Label", "x")
    assert case.returncode == 2 and "did you mean 'label'?" in case.stderr
    allowed = ours(str(PARAMETERIZED), str(tmp_path / "allowed.ipynb"), "-p", "counts", "2",
                   "--allow-undeclared")
    assert allowed.returncode == 0, allowed.stderr
    assert "counts = 2" in injected(read(tmp_path / "allowed.ipynb"))
    assert "'counts' is not declared by parameterized.ipynb" in allowed.stderr
    bad = ours(str(PARAMETERIZED), "-p", "my-name", "1")
    assert bad.returncode == 2
    assert "parameter name 'my-name' is not a Python name" in bad.stderr


def test_help_notebook_lists_the_parameters(state: Path) -> None:
    done = ours(str(PARAMETERIZED), "--help-notebook")
    assert done.returncode == 0, done.stderr
    assert re.search(r"^ratio\s+float\s+0\.5", done.stdout, re.M)
    assert not state.exists()


def test_output_templates_take_parameters_and_papermill_s_pm_values(tmp_path: Path) -> None:
    template = str(tmp_path / "{label}-{pm[run_uuid]}.ipynb")
    done = ours(str(PARAMETERIZED), template, "-p", "label", "acme")
    assert done.returncode == 0, done.stderr
    [written] = tmp_path.glob("acme-*.ipynb")
    assert re.fullmatch(r"acme-[0-9a-f-]{36}\.ipynb", written.name)
    assert read(written).metadata.papermill.output_path == str(written)
