"""Reading creates nothing: a missing state file reads as an empty store.

No file, no folder, no ``.lock``/``.queue`` sidecar appears for a read, from Python
or from the CLI (a mistyped ``--state`` included); the first write creates them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from store_helpers import Steps, cli

import orbits_nb as ob
from orbits_nb.store.schema import MIGRATIONS, USER_TABLES


def _nothing_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.fixture
def typo(tmp_path: Path) -> Path:
    """A state path in folders that do not exist."""
    return tmp_path / "typo" / "deeper" / "state.duckdb"


def test_python_reads_of_a_missing_file_create_nothing(typo: Path, tmp_path: Path) -> None:
    before = _nothing_under(tmp_path)
    store = ob.DuckDBStore(typo)
    assert not store.exists
    for table in USER_TABLES:  # every documented table answers, with no rows
        if table != "schema_version":  # which lists the schema a first write creates
            assert store.fetch(f"SELECT count(*) FROM {table}") == [(0,)], table
    versions = store.fetch("SELECT version FROM schema_version ORDER BY 1")
    assert versions == [(v,) for v in sorted(MIGRATIONS)]
    assert store.load_run("nope") == []
    assert store.logs("nope") == []
    assert store.relation("SELECT * FROM runs").fetchall() == []
    with store.connection(write=False) as con:
        assert con.execute("SELECT count(*) FROM steps").fetchall() == [(0,)]
    engine = ob.Engine(store)
    assert ob.history(engine=engine).fetchall() == []
    assert ob.sql("SELECT * FROM events", engine=engine).fetchall() == []
    with pytest.raises(ob.RunNotFound, match="no run 'nope'"):
        engine.get_run("nope")
    engine.close()
    assert _nothing_under(tmp_path) == before
    assert not store.exists


def test_the_first_write_creates_the_file_and_its_folders(typo: Path) -> None:
    engine = ob.Engine(typo)
    assert engine.store.fetch("SELECT count(*) FROM runs") == [(0,)]
    assert not typo.parent.exists()
    try:
        assert engine.start(Steps(n=2)).wait(60) == 2
    finally:
        engine.close()
    assert typo.is_file() and ob.DuckDBStore(typo).exists
    assert ob.DuckDBStore(typo).fetch("SELECT count(*) FROM runs") == [(1,)]


def test_a_write_through_fetch_creates_the_file(typo: Path) -> None:
    store = ob.DuckDBStore(typo)
    store.fetch("INSERT INTO logs VALUES (1, 'r', NULL, NULL, 'stdout', 'hi')")
    assert typo.is_file()
    assert store.fetch("SELECT message FROM logs") == [("hi",)]
    store.close()


def test_a_read_sees_a_file_created_after_it(typo: Path) -> None:
    reader = ob.DuckDBStore(typo)
    assert reader.fetch("SELECT count(*) FROM runs") == [(0,)]
    engine = ob.Engine(typo)
    try:
        engine.start(Steps(n=1)).wait(60)
    finally:
        engine.close()
    assert reader.fetch("SELECT count(*) FROM runs") == [(1,)]
    reader.close()


READS: list[tuple[str, ...]] = [
    ("runs",), ("runs", "--json"), ("runs", "--notebooks"), ("show", "nope"),
    ("sql", "SELECT count(*) FROM runs"), ("approvals",), ("resources",),
    ("drift-history",), ("schedule", "list"), ("schedule", "crontab"), ("drift",),
    ("drift", "--no-record"), ("reconcile",),
]


@pytest.mark.parametrize("args", READS, ids=[" ".join(a) for a in READS])
def test_cli_reads_of_a_mistyped_state_path_create_nothing(args: tuple[str, ...],
                                                           typo: Path, tmp_path: Path) -> None:
    before = _nothing_under(tmp_path)
    out = cli(*args, state=typo)
    assert "Traceback" not in out.stderr, out.stderr
    if args[0] == "show":
        assert out.returncode == 2 and "no run 'nope'" in out.stderr
    else:
        assert out.returncode == 0, out.stderr
    assert _nothing_under(tmp_path) == before


NOTHING_THERE: list[tuple[str, ...]] = [
    ("approve", "r", "approve-prod"), ("reject", "r", "approve-prod"), ("resume", "r"),
    ("accept", "k"), ("uninstall", "k"), ("schedule", "remove", "x"),
    ("schedule", "run", "x"),
]


@pytest.mark.parametrize("args", NOTHING_THERE, ids=[" ".join(a) for a in NOTHING_THERE])
def test_cli_commands_that_find_nothing_create_nothing(args: tuple[str, ...], typo: Path,
                                                       tmp_path: Path) -> None:
    before = _nothing_under(tmp_path)
    out = cli(*args, state=typo)
    assert out.returncode == 2 and out.stderr.startswith("orbits-nb: error: "), out.stderr
    assert "Traceback" not in out.stderr, out.stderr
    assert _nothing_under(tmp_path) == before


def test_cli_reads_of_the_default_state_create_nothing(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "project"
    (project / "notebooks").mkdir(parents=True)
    (project / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    monkeypatch.delenv("ORBITS_NB_STATE")
    before = _nothing_under(tmp_path)
    for args in (["runs"], ["approvals"], ["resources"], ["schedule", "list"]):
        out = _cli_here(args, project / "notebooks")
        assert out.returncode == 0, out.stderr
    assert _nothing_under(tmp_path) == before


def _cli_here(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "ORBITS_NB_STATE"}
    return subprocess.run([sys.executable, "-m", "orbits_nb.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
