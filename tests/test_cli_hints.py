"""What to do next, in the user's terms: CLI commands on the command line, Python calls in
Python; and never a traceback for a user mistake on the command line."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import nbformat
import pytest

import orbits_nb as ob
from orbits_nb import cli as cli_package
from orbits_nb.cli import runs as cli_runs
from orbits_nb.cli.hints import cli_message, error_line

ROOT = Path(__file__).resolve().parents[1]
PYTHON_HINTS = ("run.reset(", "fresh=True", "ob.list_resources(", "ob.history(", "release=[",
                "force=True", "run.cancel()")

MODULE = '''
from pathlib import Path

import orbits_nb as ob

COUNTER = Path(__file__).with_name("ship.count")


class First(ob.Action):
    def main(self):
        return "first"


class Other(ob.Action):
    def main(self):
        return "other"


class Ship(ob.Action):
    def main(self):
        done = int(COUNTER.read_text()) + 1 if COUNTER.exists() else 1
        COUNTER.write_text(str(done))
        if done == 1:
            raise RuntimeError("ship fails the first time")
        return done


BUILD = First


class Release(ob.Workflow):
    async def define(self):
        await self.do("build", BUILD())
        return await self.do("ship", Ship())


def go():
    run = Release().start()
    try:
        run.wait(60)
    except ob.StepFailed:
        pass
    print(run.run_id)
'''


def cli(*args: str, cwd: Path | None = None,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "orbits_nb.cli", *args], cwd=cwd or ROOT,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


def no_python_hint(text: str) -> None:
    for hint in PYTHON_HINTS:
        assert hint not in text, text


def test_hints_are_fields_that_pickle_and_end_the_message() -> None:
    err = ob.NondeterminismError("run 'r' is not deterministic", run_id="r",
                                 hint="run.reset('a')", cli_hint="orbits-nb reset r a")
    assert str(err) == "run 'r' is not deterministic; run.reset('a')"
    again = pickle.loads(pickle.dumps(err))
    assert type(again) is ob.NondeterminismError
    assert (again.hint, again.cli_hint, again.run_id) == (err.hint, err.cli_hint, "r")
    assert error_line(err) == "run 'r' is not deterministic; orbits-nb reset r a"
    wrapped = ob.StepFailed("r", "a", err, 1)
    assert wrapped.cli_hint == err.cli_hint
    assert str(wrapped).count("run.reset('a')") == 1
    assert "orbits-nb reset r a" in error_line(wrapped)
    assert "run.reset" not in error_line(wrapped)
    plain = ob.OrbitsError("nothing to add")
    assert str(plain) == error_line(plain) == "nothing to add"
    assert cli_message("m", {"cli_hint": "do x"}) == "m; do x"


@pytest.fixture
def release(tmp_path: Path, state: Path) -> tuple[Path, dict[str, str], str]:
    """A failed run of an importable workflow whose code then changed under it."""
    folder = tmp_path / "code"
    folder.mkdir()
    (folder / "wfmod.py").write_text(MODULE)
    env = {"PYTHONPATH": os.pathsep.join([str(folder), str(ROOT)])}
    first = subprocess.run([sys.executable, "-c", "import wfmod; wfmod.go()"], cwd=folder,
                           capture_output=True, text=True, timeout=120,
                           env={**os.environ, **env})
    assert first.returncode == 0, first.stderr
    run_id = first.stdout.strip().splitlines()[-1]
    source = (folder / "wfmod.py").read_text()
    (folder / "wfmod.py").write_text(source.replace("BUILD = First", "BUILD = Other"))
    return folder, env, run_id


def test_nondeterminism_names_cli_commands_and_they_work(
        release: tuple[Path, dict[str, str], str]) -> None:
    folder, env, run_id = release
    resumed = cli("resume", run_id, cwd=folder, env=env)
    assert resumed.returncode == 1, resumed.stderr
    assert f"orbits-nb reset {run_id} build" in resumed.stderr
    no_python_hint(resumed.stdout + resumed.stderr)

    shown = cli("show", run_id, cwd=folder, env=env)
    assert shown.returncode == 1
    assert "NondeterminismError" in shown.stdout
    assert f"orbits-nb reset {run_id} build" in shown.stdout
    no_python_hint(shown.stdout)

    listed = cli("runs", "--json", cwd=folder, env=env)
    row = next(json.loads(line) for line in listed.stdout.splitlines()
               if json.loads(line)["run_id"] == run_id)
    assert "orbits-nb reset" in row["error"]
    no_python_hint(row["error"])

    # In Python, the same recorded error speaks Python.
    assert "run.reset('build')" in (ob.get_run(run_id).error or {})["message"]

    refused = cli("reset", run_id, cwd=folder, env=env)
    assert refused.returncode == 2
    assert "--all" in refused.stderr
    missing_step = cli("reset", run_id, "nope", cwd=folder, env=env)
    assert missing_step.returncode == 2
    assert "no step 'nope'" in missing_step.stderr and "build" in missing_step.stderr

    reset = cli("reset", run_id, "build", cwd=folder, env=env)
    assert reset.returncode == 0, reset.stderr
    assert "2 step(s) discarded" in reset.stdout
    done = cli("resume", run_id, cwd=folder, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "succeeded" in done.stdout
    steps = {s.key: s.result for s in ob.get_run(run_id).state().ordered_steps()}
    assert steps == {"build": "other", "ship": 2}


def test_reset_all_discards_every_step(release: tuple[Path, dict[str, str], str]) -> None:
    folder, env, run_id = release
    reset = cli("reset", run_id, "--all", cwd=folder, env=env)
    assert reset.returncode == 0, reset.stderr
    assert "from step 'build'" in reset.stdout
    assert ob.get_run(run_id).state().ordered_steps() == []


def test_a_runbook_failing_on_nondeterminism_points_at_cli_commands(tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('workdir: str = None  # required')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(textwrap.dedent('''
        from pathlib import Path

        import orbits_nb as ob

        changed = (Path(workdir) / "changed").exists()
        counter = Path(workdir) / "ship.count"


        class First(ob.Action):
            def main(self):
                return "first"


        class Other(ob.Action):
            def main(self):
                return "other"


        class Ship(ob.Action):
            def main(self):
                done = int(counter.read_text()) + 1 if counter.exists() else 1
                counter.write_text(str(done))
                if done == 1:
                    raise RuntimeError("ship fails the first time")
                return done


        class Release(ob.Workflow):
            async def define(self):
                await self.do("build", (Other if changed else First)())
                return await self.do("ship", Ship())


        run = Release(workdir=workdir).start()
        run.wait(60)
        '''))]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    path = tmp_path / "release.ipynb"
    nbformat.write(nb, str(path))
    first = cli("run", str(path), "-p", "workdir", str(workdir))
    assert first.returncode == 1
    assert "ship fails the first time" in first.stderr
    (workdir / "changed").touch()
    second = cli("run", str(path), "-p", "workdir", str(workdir))
    assert second.returncode == 1
    assert "NondeterminismError" in second.stderr
    assert "orbits-nb reset" in second.stderr + second.stdout
    no_python_hint(second.stdout + second.stderr)
    listed = cli("runs", "--notebooks", "--json")
    errors = [json.loads(line)["error"] for line in listed.stdout.splitlines()]
    assert any("orbits-nb reset" in e for e in errors), errors
    no_python_hint("\n".join(errors))


class _Noop(ob.Action):
    def main(self) -> Any:
        return None


class _Once(ob.Workflow):
    async def define(self) -> Any:
        return await self.do("noop", _Noop())


def recorded_state(state: Path) -> None:
    engine = ob.Engine(state)
    engine.start(_Once()).wait(30)
    engine.close()


def test_resource_errors_name_cli_commands(state: Path) -> None:
    recorded_state(state)
    missing = cli("uninstall", "LocalFile:/nowhere")
    assert missing.returncode == 2
    assert "orbits-nb resources" in missing.stderr
    no_python_hint(missing.stderr)


class _Users(ob.Workflow):
    async def define(self) -> Any:
        return await self.do("file", ob.LocalFile(self.args["path"], content="x\n"))


def test_uninstall_of_a_used_resource_names_cli_options(tmp_path: Path,
                                                        state: Path) -> None:
    engine = ob.Engine(state)
    target = str(tmp_path / "shared.txt")
    engine.start(_Users(path=target, who="a")).wait(30)
    engine.start(_Users(path=target, who="b")).wait(30)
    engine.close()
    refused = cli("uninstall", target)
    assert refused.returncode == 2, refused.stdout
    assert "--release" in refused.stderr and "--force" in refused.stderr
    no_python_hint(refused.stderr)
    assert "Traceback" not in refused.stderr


def _raising(error: BaseException) -> Any:
    def handler(args: Any) -> int:
        raise error
    return handler


@pytest.mark.parametrize("error", [
    PermissionError(13, "Permission denied", "/srv/locked/state.duckdb"),
    FileNotFoundError(2, "No such file or directory", "params.yaml"),
    IsADirectoryError(21, "Is a directory", "/tmp"),
    ValueError("a library refused the value 'x'"),
    UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"),
])
def test_os_and_value_errors_are_one_line_and_exit_2(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        error: BaseException) -> None:
    monkeypatch.setattr(cli_runs, "cmd_sql", _raising(error))
    monkeypatch.delenv("ORBITS_NB_DEBUG", raising=False)
    assert cli_package.main(["sql", "SELECT 1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("orbits-nb: error: ")
    assert err.count("\n") == 1
    assert "Traceback" not in err
    filename = getattr(error, "filename", None)
    assert str(filename or error) in err


def test_debug_shows_the_traceback_and_a_real_bug_is_not_hidden(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(cli_runs, "cmd_sql", _raising(ValueError("odd")))
    monkeypatch.setenv("ORBITS_NB_DEBUG", "1")
    assert cli_package.main(["sql", "SELECT 1"]) == 2
    assert "Traceback" in capsys.readouterr().err
    monkeypatch.setattr(cli_runs, "cmd_sql", _raising(AttributeError("a bug")))
    with pytest.raises(AttributeError):
        cli_package.main(["sql", "SELECT 1"])


def test_a_closed_pipe_ends_quietly(state: Path) -> None:
    recorded_state(state)
    proc = subprocess.Popen([sys.executable, "-m", "orbits_nb.cli", "sql",
                             "SELECT * FROM range(200000)"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # before the command prints anything
    err = proc.stderr.read().decode()
    assert proc.wait(60) == 141
    assert "Traceback" not in err
    assert "BrokenPipe" not in err
