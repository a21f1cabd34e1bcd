"""Where the state lives: from the working directory upwards, never from a notebook."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from orbits_nb.store.location import MARKERS, default_state_path, project_root

NO_STATE_ENV = {k: v for k, v in os.environ.items() if k != "ORBITS_NB_STATE"}


@pytest.fixture
def bare(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with no project marker in it or above it, as the working directory."""
    monkeypatch.delenv("ORBITS_NB_STATE")
    above = [f for f in tmp_path.resolve().parents if any((f / m).exists() for m in MARKERS)]
    if above:
        pytest.skip(f"{above[0]} holds a project marker above the test folders")
    monkeypatch.chdir(tmp_path)
    return tmp_path.resolve()


def test_without_a_marker_the_working_directory_holds_the_state(bare: Path) -> None:
    (bare / "notebooks").mkdir()
    assert default_state_path() == bare / ".orbits_nb" / "state.duckdb"
    os.chdir(bare / "notebooks")
    assert default_state_path() == bare / "notebooks" / ".orbits_nb" / "state.duckdb"
    assert not (bare / ".orbits_nb").exists()  # resolving creates nothing


@pytest.mark.parametrize("marker", MARKERS)
def test_the_nearest_marker_upwards_is_the_project_root(marker: str, bare: Path) -> None:
    root = bare / "repo"
    deep = root / "notebooks" / "team"
    deep.mkdir(parents=True)
    if marker == "pyproject.toml":
        (root / marker).write_text("[project]\nname = 'x'\n")
    else:
        (root / marker).mkdir()
    os.chdir(deep)
    assert project_root() == root
    assert default_state_path() == root / ".orbits_nb" / "state.duckdb"
    nested = root / "notebooks" / ".git"
    nested.mkdir(exist_ok=True)
    assert default_state_path() == root / "notebooks" / ".orbits_nb" / "state.duckdb"


def test_the_environment_variable_wins(bare: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (bare / ".git").mkdir()
    monkeypatch.setenv("ORBITS_NB_STATE", "relative/state.duckdb")
    assert default_state_path() == bare / "relative" / "state.duckdb"
    monkeypatch.setenv("ORBITS_NB_STATE", "~/elsewhere.duckdb")
    assert default_state_path() == Path.home().resolve() / "elsewhere.duckdb"


PRINT_STATE = ("from orbits_nb.engine.engine import default_engine; "
               "print(default_engine().store.path)")


def test_python_and_the_cli_resolve_one_file_from_one_directory(bare: Path) -> None:
    (bare / "notebooks").mkdir()
    python = subprocess.run([sys.executable, "-c", PRINT_STATE], cwd=bare, env=NO_STATE_ENV,
                            capture_output=True, text=True, check=True, timeout=120)
    assert Path(python.stdout.strip()) == bare / ".orbits_nb" / "state.duckdb"
    crontab = subprocess.run([sys.executable, "-m", "orbits_nb.cli", "schedule", "crontab"],
                             cwd=bare, env=NO_STATE_ENV, capture_output=True, text=True,
                             check=True, timeout=120)
    assert f"schedules of {bare / '.orbits_nb' / 'state.duckdb'}" in crontab.stdout
    assert not (bare / ".orbits_nb").exists()
