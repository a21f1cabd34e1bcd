"""Faults of the state file reach the user as a StoreError naming the file.

Damaged, truncated, empty and foreign files, read-only files and folders, a newer
schema, bad run ids: never a raw DuckDB exception, never a CLI traceback.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest
from store_helpers import (
    Steps,
    assert_clean_error,
    cli,
    digest,
    make_state,
    read_only_file,
    read_only_folder,
    table_blocks,
)

import orbits_nb as ob
from orbits_nb.core.rows import Owner
from orbits_nb.store.integrity import check
from orbits_nb.store.schema import SCHEMA_VERSION


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """One real state file with three finished runs, copied by each test that damages it."""
    path = tmp_path_factory.mktemp("recorded") / "state.duckdb"
    return path, make_state(path)


def _copy(recorded: tuple[Path, list[str]], folder: Path) -> tuple[Path, list[str]]:
    source, ids = recorded
    target = folder / "state.duckdb"
    target.write_bytes(source.read_bytes())
    return target, ids


# -- damaged files ------------------------------------------------------------------

def test_garbage_inside_the_blocks_of_a_real_file(recorded: tuple[Path, list[str]],
                                                  tmp_path: Path) -> None:
    path, ids = _copy(recorded, tmp_path)
    blocks = table_blocks(path)
    with path.open("r+b") as handle:
        for offset in blocks:  # the block checksum stays; the bytes after it change
            handle.seek(offset + 8)
            handle.write(b"\xde\xad\xbe\xef" * 512)
    damaged = digest(path)

    store = ob.DuckDBStore(path)
    with pytest.raises(ob.StoreError) as info:
        store.fetch("SELECT run_id, status FROM runs")
    assert str(path) in str(info.value) and "move it aside" in str(info.value)
    assert info.value.fields["reason"] == "damaged"
    with pytest.raises(ob.StoreError, match="damaged"):
        store.load_run(ids[0])
    store.close()

    engine = ob.Engine(path)
    try:  # resuming a recorded run reads its events from the damaged blocks
        with pytest.raises(ob.StoreError, match="damaged"):
            engine.start(Steps(n=40, k=0)).wait(60)
    finally:
        engine.close()

    for args in (["runs"], ["show", ids[0]],
                 ["sql", "SELECT max(length(CAST(data AS VARCHAR))) FROM events"]):
        assert_clean_error(cli(*args, state=path), str(path), "damaged")
    assert digest(path) == damaged  # left as it is, for the user to move aside


def _truncated(path: Path) -> None:
    # A copy cut short: the file headers survive, every data block is gone. Cutting at half
    # the size would keep or lose the catalog depending on where the last checkpoint put it.
    os.truncate(path, 16 * 1024)


def _emptied(path: Path) -> None:
    path.write_bytes(b"")


def _text(path: Path) -> None:
    path.write_text("id,name\n1,acme\n" * 400)


def _header(path: Path) -> None:
    with path.open("r+b") as handle:
        handle.write(os.urandom(4096))


@pytest.mark.parametrize("damage", [_truncated, _emptied, _text, _header],
                         ids=["truncated", "zero-length", "not-duckdb", "garbage-header"])
def test_damaged_files_are_refused_clearly(damage: Callable[[Path], None],
                                           recorded: tuple[Path, list[str]],
                                           tmp_path: Path) -> None:
    path, ids = _copy(recorded, tmp_path)
    damage(path)
    before = digest(path)
    store = ob.DuckDBStore(path)
    for read in (lambda: store.fetch("SELECT * FROM runs"), lambda: store.load_run(ids[1]),
                 lambda: store.relation("SELECT * FROM steps")):
        with pytest.raises(ob.StoreError) as info:
            read()
        assert str(path) in str(info.value)
    engine = ob.Engine(path)
    try:
        with pytest.raises(ob.StoreError, match="move it aside"):
            engine.start(Steps(n=40, k=1)).wait(60)
    finally:
        engine.close()
    assert_clean_error(cli("runs", state=path), str(path))
    assert_clean_error(cli("show", ids[1], state=path), str(path))
    assert digest(path) == before


READS: list[tuple[str, ...]] = [
    ("runs",), ("runs", "--notebooks"), ("sql", "SELECT * FROM steps"), ("approvals",),
    ("resources",), ("drift-history",), ("schedule", "list"), ("drift",),
]


@pytest.mark.parametrize("args", READS, ids=[" ".join(a) for a in READS])
def test_every_cli_read_of_a_damaged_file_fails_cleanly(args: tuple[str, ...],
                                                        recorded: tuple[Path, list[str]],
                                                        tmp_path: Path) -> None:
    path, _ = _copy(recorded, tmp_path)
    _header(path)
    assert_clean_error(cli(*args, state=path), str(path), "move it aside")


def test_a_folder_or_a_file_in_the_way_of_the_state_path(tmp_path: Path) -> None:
    folder = tmp_path / "folder.duckdb"
    folder.mkdir()
    with pytest.raises(ob.StoreError, match="is a folder"):
        ob.DuckDBStore(folder).fetch("SELECT * FROM runs")
    assert_clean_error(cli("runs", state=folder), "is a folder")
    blocker = tmp_path / "plain-file"
    blocker.write_text("not a folder")
    below = blocker / "state.duckdb"
    assert ob.DuckDBStore(below).fetch("SELECT count(*) FROM runs") == [(0,)]
    engine = ob.Engine(below)
    try:
        with pytest.raises(ob.StoreError, match="cannot create its folder") as info:
            engine.start(Steps(n=1)).wait(60)
    finally:
        engine.close()
    assert str(below) in str(info.value)


def test_statement_errors_inside_a_connection_are_store_errors(tmp_path: Path) -> None:
    store = ob.DuckDBStore(tmp_path / "s.duckdb")
    with pytest.raises(ob.StoreError) as info, store.connection() as con:
        con.execute("SELECT * FROM no_such_table")
    assert str(tmp_path / "s.duckdb") in str(info.value)
    assert "no_such_table" in str(info.value)
    with pytest.raises(ob.StoreError, match="query failed"):
        store.fetch("SELEKT 1")
    # Words in the SQL itself do not make the file look damaged, full or read-only.
    for query in ("SELECT * FROM corrupt_checksum_table",
                  "SELECT 'no space left, read-only'::INTEGER"):
        with pytest.raises(ob.StoreError, match="query failed") as info:
            store.relation(query)
        assert info.value.fields["reason"] == "query"
    store.close()


# -- read-only files and folders ----------------------------------------------------

def test_a_read_only_file_can_be_read_not_written(recorded: tuple[Path, list[str]],
                                                 tmp_path: Path) -> None:
    path, ids = _copy(recorded, tmp_path)
    before = digest(path)
    with read_only_file(path):
        out = cli("runs", state=path)
        assert out.returncode == 0, out.stderr
        assert all(run_id in out.stdout for run_id in ids)
        shown = cli("show", ids[0], state=path)
        assert shown.returncode == 0 and "succeeded" in shown.stdout, shown.stderr
        counted = cli("sql", "SELECT count(*) AS n FROM steps", "--json", state=path)
        assert counted.returncode == 0 and '"n": 120' in counted.stdout, counted.stderr

        store = ob.DuckDBStore(path)
        assert [r[0] for r in store.fetch("SELECT run_id FROM runs ORDER BY 1")] == sorted(ids)
        assert ob.Engine(store).get_run(ids[2]).status == "succeeded"
        engine = ob.Engine(path)
        try:
            with pytest.raises(ob.StoreError, match="read-only") as info:
                engine.start(Steps(n=2, k="new")).wait(60)
        finally:
            engine.close()
        assert str(path) in str(info.value)
        assert info.value.fields["reason"] == "read-only"
        with pytest.raises(ob.StoreError, match="read-only"), store.connection() as con:
            con.execute("DELETE FROM logs")
        store.close()
    assert digest(path) == before
    assert check(ob.DuckDBStore(path)) == []


def test_notebook_runs_of_a_read_only_file_are_listed(recorded: tuple[Path, list[str]],
                                                    tmp_path: Path) -> None:
    """Listing does not need the clean-up it does on a writable file (marking runs
    whose runner died as failed): a read-only file is listed as it is."""
    import subprocess
    import sys

    from orbits_nb.runbooks import records

    path, _ = _copy(recorded, tmp_path)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    store = ob.DuckDBStore(path)
    records.insert(store, records.NotebookRun(
        notebook_run_id="nightly-1", runbook="nightly", notebook=str(tmp_path / "n.ipynb"),
        started_at=1.0, pid=int(gone.stdout)))  # its runner died
    store.close()
    with read_only_file(path):
        out = cli("runs", "--notebooks", state=path)
    assert out.returncode == 0, out.stderr
    assert "nightly-1" in out.stdout and "running" in out.stdout
    reaped = cli("runs", "--notebooks", "--json", state=path)  # writable again: cleaned up
    assert '"status": "failed"' in reaped.stdout, reaped.stdout


def test_a_read_only_folder_can_be_read_not_written(recorded: tuple[Path, list[str]],
                                                   tmp_path: Path) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    path, ids = _copy(recorded, folder)  # without the .lock/.queue sidecars
    before = sorted(p.name for p in folder.iterdir())
    with read_only_folder(folder) as view:
        seen = view / path.name
        out = cli("runs", state=seen)
        assert out.returncode == 0 and ids[0] in out.stdout, out.stderr
        store = ob.DuckDBStore(seen)
        assert store.fetch("SELECT count(*) FROM runs") == [(3,)]
        assert len(store.load_run(ids[0])) > 40
        store.close()
        engine = ob.Engine(seen)
        try:
            with pytest.raises(ob.StoreError, match="read-only") as info:
                engine.start(Steps(n=2, k="new")).wait(60)
        finally:
            engine.close()
        assert str(seen) in str(info.value)

        missing = view / "other" / "state.duckdb"
        assert ob.DuckDBStore(missing).fetch("SELECT count(*) FROM runs") == [(0,)]
        notebook = Path(__file__).parent / "notebooks" / "success.ipynb"
        assert_clean_error(cli("schedule", "add", "@daily", str(notebook), state=missing),
                           str(missing), "read-only")
        engine = ob.Engine(missing)
        try:
            with pytest.raises(ob.StoreError, match="read-only"):
                engine.start(Steps(n=1)).wait(60)
        finally:
            engine.close()
        assert not missing.parent.exists()
    assert sorted(p.name for p in folder.iterdir()) == before


# -- what the file says about itself ------------------------------------------------

def test_a_newer_documented_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "newer.duckdb"
    make_state(path, runs=1, steps=1)
    con = duckdb.connect(str(path))
    con.execute("INSERT INTO schema_version (version) VALUES (?)", [SCHEMA_VERSION + 5])
    con.close()
    before = digest(path)
    with pytest.raises(ob.StoreError, match=f"schema version {SCHEMA_VERSION + 5}, newer"):
        ob.DuckDBStore(path).fetch("SELECT count(*) FROM runs")
    assert_clean_error(cli("runs", state=path), "newer than this orbits_nb")
    assert digest(path) == before


def test_a_foreign_database_with_a_schema_version_table_is_foreign(tmp_path: Path) -> None:
    path = tmp_path / "foreign.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE schema_version (release VARCHAR)")
    con.close()
    with pytest.raises(ob.StoreError, match="did not create"):
        ob.DuckDBStore(path).fetch("SELECT 1")


# -- bad run ids ---------------------------------------------------------------------

@pytest.mark.parametrize("bad", [123, None, 4.5, b"run", ["run"], ""],
                         ids=["int", "None", "float", "bytes", "list", "empty"])
def test_run_ids_of_the_wrong_type_are_rejected_before_any_sql(bad: object,
                                                               state: Path) -> None:
    store = ob.DuckDBStore(state)
    for call in (lambda: store.load_run(bad),  # type: ignore[arg-type]
                 lambda: store.logs(bad),  # type: ignore[arg-type]
                 lambda: store.open_runs([(bad, Owner("t", "here", 1))]),  # type: ignore[list-item]
                 lambda: ob.get_run(bad)):  # type: ignore[arg-type]
        with pytest.raises(ob.InvalidArgument) as info:
            call()
        assert repr(bad) in str(info.value)
    if bad not in ("", None):  # these ask start() for the default run id
        with pytest.raises(ob.InvalidArgument, match=re.escape(repr(bad))):
            ob.Engine(state).start(Steps(n=1), run_id=bad)  # type: ignore[arg-type]
    with pytest.raises(ob.InvalidArgument, match="step key"):
        store.logs("run", step=7)  # type: ignore[arg-type]
    assert not store.is_open
    assert not state.exists() and not state.parent.exists()


@pytest.mark.parametrize("name", ["ORBITS_NB_LOCK_TIMEOUT", "ORBITS_NB_WRITE_RETRY"])
@pytest.mark.parametrize("value", ["soon", "-3", "nan"])
def test_bad_durations_in_the_environment_are_named(name: str, value: str, state: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ob.InvalidArgument, match=f"{name}={value!r}"):
        ob.Engine(state)
    out = cli("runs", state=state, env={name: value})
    assert_clean_error(out, name)
