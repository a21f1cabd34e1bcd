"""One state location for every command, and reading commands that create nothing.

Real subprocesses in a temporary folder with no project marker above it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from orbits_nb.store.location import project_root

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "notebooks"
READ_ONLY = [
    ["runs"], ["runs", "--json"], ["runs", "--notebooks"], ["runs", "--status", "failed"],
    ["sql", "SELECT * FROM runs"], ["approvals"], ["resources"], ["drift-history"],
    ["drift"], ["reconcile"], ["schedule", "list"], ["schedule", "crontab"],
    ["scheduler", "--once"],
]
MISSING_THING = [
    (["show", "some-run"], "no run 'some-run'"),
    (["approve", "some-run", "approve"], "no run 'some-run'"),
    (["reject", "some-run", "approve"], "no run 'some-run'"),
    (["approvals", "--run", "some-run"], "no run 'some-run'"),
    (["reset", "some-run", "--all"], "no run 'some-run'"),
    (["resume", "some-run"], "'some-run'"),
    (["schedule", "remove", "nightly"], "no schedule named 'nightly'"),
    (["schedule", "run", "nightly"], "no schedule named 'nightly'"),
    (["accept", "LocalFile:/x"], "'LocalFile:/x'"),
    (["uninstall", "LocalFile:/x"], "'LocalFile:/x'"),
]


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder outside any project, with a runbook in notebooks/; no $ORBITS_NB_STATE."""
    folder = tmp_path / "work"
    (folder / "notebooks").mkdir(parents=True)
    shutil.copy(FIXTURES / "success.ipynb", folder / "notebooks" / "success.ipynb")
    if project_root(folder) != folder:
        pytest.skip(f"{folder} is inside a project ({project_root(folder)})")
    monkeypatch.delenv("ORBITS_NB_STATE")
    return folder


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "ORBITS_NB_STATE"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return subprocess.run([sys.executable, "-m", "orbits_nb.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_run_then_runs_and_resume_from_the_same_folder_see_the_run(work: Path) -> None:
    ran = cli("run", "notebooks/success.ipynb", "-p", "api_token", "tok-123456", cwd=work)
    assert ran.returncode == 0, ran.stderr
    assert (work / ".orbits_nb" / "state.duckdb").exists()
    assert not (work / "notebooks" / ".orbits_nb").exists()

    listed = cli("runs", "--notebooks", "--json", cwd=work)
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [r["runbook"] for r in rows] == ["success"]
    workflow_run = rows[0]["workflow_runs"]
    assert workflow_run

    runs = cli("runs", "--json", cwd=work)
    assert [json.loads(line)["run_id"] for line in runs.stdout.splitlines()] == [workflow_run]
    resumed = cli("resume", workflow_run, cwd=work)
    assert resumed.returncode == 0, resumed.stderr
    assert "already succeeded" in resumed.stdout
    again = cli("resume", rows[0]["notebook_run_id"], "-p", "api_token", "tok-123456",
                cwd=work)
    assert again.returncode == 0, again.stderr
    assert len(cli("runs", "--notebooks", "--json", cwd=work).stdout.splitlines()) == 2


def test_runbooks_run_from_python_uses_the_working_directory(
        work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from orbits_nb import runbooks

    monkeypatch.chdir(work)
    record = runbooks.run("notebooks/success.ipynb", {"api_token": "tok-123456"})
    assert record.status == "succeeded", record.error
    assert (work / ".orbits_nb" / "state.duckdb").exists()
    assert not (work / "notebooks" / ".orbits_nb").exists()


@pytest.mark.parametrize("args", READ_ONLY, ids=" ".join)
def test_reading_commands_without_a_state_file_create_nothing(work: Path,
                                                              args: list[str]) -> None:
    before = tree(work)
    out = cli(*args, cwd=work)
    assert out.returncode == 0, out.stderr
    state = work / ".orbits_nb" / "state.duckdb"
    if args == ["schedule", "crontab"]:  # no schedule lines, only which file they are for
        assert [line for line in out.stdout.splitlines() if not line.startswith("#")] == []
        assert str(state) in out.stdout
    else:
        assert out.stdout == ""
    assert out.stderr.startswith(f"orbits-nb: no state file at {state} yet (")
    assert out.stderr.count("\n") == 1
    assert tree(work) == before


@pytest.mark.parametrize(("args", "words"), MISSING_THING,
                         ids=[" ".join(args) for args, _ in MISSING_THING])
def test_commands_about_one_thing_name_it_missing(work: Path, args: list[str],
                                                  words: str) -> None:
    before = tree(work)
    out = cli(*args, cwd=work)
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert words in out.stderr
    assert str(work / ".orbits_nb" / "state.duckdb") in out.stderr
    assert "Traceback" not in out.stderr
    assert tree(work) == before


def test_a_mistyped_state_path_creates_no_folder(work: Path) -> None:
    typo = work / "typo" / "state.duckdb"
    for args in (["runs"], ["sql", "SELECT 1"], ["show", "x"], ["approvals"]):
        out = cli("--state", str(typo), *args, cwd=work)
        assert str(typo) in out.stderr
        assert out.returncode in (0, 2)
    assert not (work / "typo").exists()
    bad_sql = cli("--state", str(typo), "sql", "SELEC 1", cwd=work)
    assert bad_sql.returncode == 2
    assert "syntax error" in bad_sql.stderr.lower()
    folder = cli("--state", str(work), "runs", cwd=work)
    assert folder.returncode == 2
    assert "is a folder" in folder.stderr
