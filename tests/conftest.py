from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# The stores of the store contract (a DuckDB file, in memory, a PostgreSQL server).
from stores import any_store, location, pg_location, pg_server, shared_location  # noqa: F401

import orbits_nb as ob


@pytest.fixture(autouse=True)
def _isolated_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own default state file (never the repository's)."""
    path = tmp_path / "state" / "state.duckdb"
    monkeypatch.setenv("ORBITS_NB_STATE", str(path))
    return path


@pytest.fixture(autouse=True)
def _forget_secrets() -> Iterator[None]:
    """Secret values remembered by one test must not mask another test's data."""
    yield
    from orbits_nb.core.masking import forget_all

    forget_all()


@pytest.fixture
def state() -> Path:
    """This test's default state file (set by ``_isolated_state``)."""
    return Path(os.environ["ORBITS_NB_STATE"])


@pytest.fixture(autouse=True)
def output_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where executed runbooks go in this test (never the repository's output/)."""
    out = tmp_path / "output"
    monkeypatch.setenv("ORBITS_NB_OUTPUT", str(out))
    return out


@pytest.fixture
def state_path(tmp_path: Path) -> Path:
    return tmp_path / "engine.duckdb"


@pytest.fixture
def engine(state_path: Path) -> Iterator[ob.Engine]:
    eng = ob.Engine(state_path)
    yield eng
    eng.close()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A folder for the files and directories that resource tests converge."""
    folder = tmp_path / "probes"
    folder.mkdir()
    return folder
