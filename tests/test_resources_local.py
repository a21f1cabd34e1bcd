"""The shipped resources against the real things: files, directories, git, DuckDB.

Each test converges a resource in a workflow, introduces drift out of band, and checks
detection (with the recorded diff), reconcile and accept-actual.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import duckdb
import pytest

import orbits_nb as ob
from orbits_nb.core.errors import InvalidArgument, StepFailed
from orbits_nb.resources.commands import rebuild


class Apply(ob.Workflow):
    """Converge the listed resources (``[[type_name, args], ...]``) as steps r0, r1..."""

    async def define(self) -> Any:
        return [await self.do(f"r{i}", rebuild(t, a)) for i, (t, a) in
                enumerate(self.args["items"])]


def apply(engine: ob.Engine, *resources: ob.Resource) -> Any:
    items = [[r.type_name(), r.args] for r in resources]
    return engine.start(Apply(items=items), fresh=True).wait(60)


def only(report: ob.DriftReport) -> Any:
    assert len(report) == 1, report.text()
    return report.checks[0]


# -- LocalFile --------------------------------------------------------------------------
def test_local_file_drift_reconcile_accept(engine: ob.Engine, tmp_path: Path) -> None:
    path = tmp_path / "etc" / "app.cfg"
    out = apply(engine, ob.LocalFile(path, content="debug=false\n", mode=0o640))
    assert out == [{"path": str(path), "url": path.as_uri()}]
    assert path.read_text() == "debug=false\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert only(ob.drift(engine=engine)).status == "in_sync"

    path.write_text("debug=true\n")
    os.chmod(path, 0o644)
    check = only(ob.drift(engine=engine))
    assert check.status == "drifted"
    assert [(d.path, d.desired, d.actual) for d in check.diffs] == [
        ("content", "debug=false\n", "debug=true\n"), ("mode", "0640", "0644")]
    recorded = engine.store.fetch("SELECT diffs FROM drift_checks WHERE status = 'drifted'")
    assert json.loads(recorded[0][0])[0] == {"path": "content", "change": "changed",
                                             "desired": "debug=false\n",
                                             "actual": "debug=true\n"}

    report = ob.drift(engine=engine)
    run = report.reconcile()
    assert run is not None
    assert run.status == "succeeded"
    assert path.read_text() == "debug=false\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert report.ok

    path.write_text("debug=maybe\n")
    assert ob.drift(engine=engine).accept() == [f"LocalFile:{path}"]
    assert only(ob.drift(engine=engine)).status == "in_sync"
    desired = engine.store.fetch("SELECT desired, accepted_by FROM resources")[0]
    assert json.loads(desired[0]) == {"content": "debug=maybe\n", "mode": "0640"}
    assert desired[1]

    # Reconcile after new drift restores the accepted state, not the original one.
    path.write_text("other\n")
    ob.drift(engine=engine).reconcile()
    assert path.read_text() == "debug=maybe\n"


def test_local_file_mode_is_not_drift_unless_managed(engine: ob.Engine,
                                                     tmp_path: Path) -> None:
    path = tmp_path / "free.txt"
    apply(engine, ob.LocalFile(path, content="x"))
    os.chmod(path, 0o600)
    assert ob.drift(engine=engine).ok


def test_local_file_missing_is_recreated(engine: ob.Engine, tmp_path: Path) -> None:
    path = tmp_path / "gone.txt"
    apply(engine, ob.LocalFile(path, content="hello"))
    path.unlink()
    report = ob.drift(engine=engine)
    assert only(report).status == "missing"
    assert not only(report).diffs
    report.reconcile()
    assert path.read_text() == "hello"


def test_local_file_rejects_bad_input() -> None:
    with pytest.raises(InvalidArgument, match="content must be a str, got int"):
        ob.LocalFile("/tmp/x", content=5)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="mode must be octal.*'999'"):
        ob.LocalFile("/tmp/x", content="", mode="999")
    with pytest.raises(InvalidArgument, match="needs a path"):
        ob.LocalFile("", content="")


# -- LocalDirectory ---------------------------------------------------------------------
def test_local_directory_exclusive_extra_files_are_drift(engine: ob.Engine,
                                                         tmp_path: Path) -> None:
    folder = tmp_path / "conf"
    apply(engine, ob.LocalDirectory(folder, {"a.txt": "A", "sub/b.txt": "B"}, exclusive=True))
    assert (folder / "sub" / "b.txt").read_text() == "B"
    (folder / "extra.txt").write_text("?")
    (folder / "a.txt").write_text("changed")
    check = only(ob.drift(engine=engine))
    assert [(d.path, d.change) for d in check.diffs] == [
        ('files["a.txt"]', "changed"), ('files["extra.txt"]', "added")]
    ob.drift(engine=engine).reconcile()
    assert sorted(p.name for p in folder.iterdir()) == ["a.txt", "sub"]
    assert (folder / "a.txt").read_text() == "A"


def test_local_directory_shared_folder_leaves_foreign_files(engine: ob.Engine,
                                                            tmp_path: Path) -> None:
    folder = tmp_path / "shared"
    apply(engine, ob.LocalDirectory(folder, {"mine.txt": "1"}))
    (folder / "theirs.txt").write_text("2")
    assert ob.drift(engine=engine).ok
    run = ob.uninstall(str(folder), release=["Apply"], engine=engine, wait=False)
    with pytest.raises(Exception, match="still holds files it does not manage"):
        run.wait(60)
    assert (folder / "theirs.txt").exists()


def test_local_directory_rejects_escaping_paths() -> None:
    with pytest.raises(InvalidArgument, match=r"no '\.\.'\), got '\.\./x'"):
        ob.LocalDirectory("/tmp/d", {"../x": "no"})


# -- LocalGitRepo -----------------------------------------------------------------------
def git(path: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(path), *args], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_local_git_repo_remotes_branch_and_head(engine: ob.Engine, tmp_path: Path) -> None:
    path = tmp_path / "repo"
    repo = ob.LocalGitRepo(path, branch="trunk", remotes={
        "origin": "https://git.example/acme.git", "mirror": "file:///srv/mirror.git"},
        config={"user.name": "Orbits Bot"}, description="acme backend")
    out = apply(engine, repo)
    assert out == [{"path": str(path), "url": path.as_uri(), "bare": False}]
    assert git(path, "symbolic-ref", "--short", "HEAD") == "trunk"
    assert git(path, "config", "--get", "user.name") == "Orbits Bot"

    # A commit moves HEAD (server-managed); re-adding remotes in another order is no drift.
    git(path, "-c", "user.email=a@b", "commit", "--allow-empty", "-q", "-m", "first")
    git(path, "remote", "remove", "origin")
    git(path, "remote", "add", "origin", "https://git.example/acme.git")
    assert ob.drift(engine=engine).ok

    git(path, "remote", "set-url", "origin", "https://evil.example/acme.git")
    git(path, "remote", "add", "extra", "https://x.example/y.git")
    git(path, "config", "user.name", "Someone")
    check = only(ob.drift(engine=engine))
    assert [(d.path, d.change) for d in check.diffs] == [
        ('config["user.name"]', "changed"), ("remotes[name=extra]", "added"),
        ("remotes[name=origin].url", "changed")]
    assert (check.diffs[0].desired, check.diffs[0].actual) == ("Orbits Bot", "Someone")
    assert check.diffs[1].actual == {"name": "extra", "url": "https://x.example/y.git"}
    assert check.diffs[2].actual == "https://evil.example/acme.git"

    ob.drift(engine=engine).reconcile()
    assert git(path, "remote", "get-url", "origin") == "https://git.example/acme.git"
    assert "extra" not in git(path, "remote").split()
    assert git(path, "config", "--get", "user.name") == "Orbits Bot"
    assert git(path, "log", "--format=%s") == "first"  # history untouched


def test_local_git_repo_bare_and_missing(engine: ob.Engine, tmp_path: Path) -> None:
    path = tmp_path / "acme.git"
    apply(engine, ob.LocalGitRepo(path, bare=True))
    assert git(path, "rev-parse", "--is-bare-repository") == "true"
    subprocess.run(["rm", "-rf", str(path)], check=True)
    report = ob.drift(engine=engine)
    assert only(report).status == "missing"
    report.reconcile()
    assert git(path, "rev-parse", "--is-bare-repository") == "true"


def test_local_git_repo_rejects_bad_config_key() -> None:
    with pytest.raises(InvalidArgument, match="'section.name', got 'nodot'"):
        ob.LocalGitRepo("/tmp/r", config={"nodot": "x"})


# -- LocalTable -------------------------------------------------------------------------
def test_local_table_types_and_order_are_not_drift(engine: ob.Engine, tmp_path: Path) -> None:
    db = tmp_path / "wh.duckdb"
    table = ob.LocalTable(db, "events", {"id": "int4", "at": "timestamptz", "body": "text"},
                          primary_key="id")
    assert table.desired()["columns"] == [
        {"name": "id", "type": "INTEGER", "nullable": False},
        {"name": "at", "type": "TIMESTAMP WITH TIME ZONE", "nullable": True},
        {"name": "body", "type": "VARCHAR", "nullable": True}]
    apply(engine, table)
    with duckdb.connect(str(db)) as con:
        con.execute("INSERT INTO events VALUES (1, now(), 'x')")
    # Same table declared with other spellings and another column order: in sync.
    same = ob.LocalTable(db, "events", [("body", "varchar"), ("id", "integer"),
                                        ("at", "timestamp with time zone")], primary_key="id")
    assert same.key() == table.key()
    apply(engine, same)
    assert ob.drift(engine=engine).ok  # the row count is server-managed


def test_local_table_altered_out_of_band_is_reconciled(engine: ob.Engine,
                                                       tmp_path: Path) -> None:
    db = tmp_path / "wh.duckdb"
    apply(engine, ob.LocalTable(db, "users", {"id": "bigint", "email": "varchar"},
                                primary_key="id"))
    with duckdb.connect(str(db)) as con:
        con.execute("INSERT INTO users VALUES (1, 'a@b')")
        con.execute("ALTER TABLE users ADD COLUMN nickname VARCHAR")
        con.execute("ALTER TABLE users ALTER email TYPE TEXT")  # same type: no drift
        con.execute("ALTER TABLE users ALTER email SET NOT NULL")
    check = only(ob.drift(engine=engine))
    assert [(d.path, d.change) for d in check.diffs] == [
        ("columns[name=email].nullable", "changed"), ("columns[name=nickname]", "added")]
    assert (check.diffs[0].desired, check.diffs[0].actual) == (True, False)
    assert check.diffs[1].actual == {"name": "nickname", "type": "VARCHAR", "nullable": True}

    ob.drift(engine=engine).reconcile()
    assert ob.drift(engine=engine).ok
    with duckdb.connect(str(db)) as con:
        assert con.execute("SELECT * FROM users").fetchall() == [(1, "a@b")]


def test_local_table_dropped_is_missing_then_recreated(engine: ob.Engine,
                                                       tmp_path: Path) -> None:
    db = tmp_path / "wh.duckdb"
    apply(engine, ob.LocalTable(db, "t", {"id": "int"}, schema="raw"))
    with duckdb.connect(str(db)) as con:
        con.execute("DROP TABLE raw.t")
    report = ob.drift(engine=engine)
    assert only(report).status == "missing"
    report.reconcile()
    with duckdb.connect(str(db)) as con:
        assert con.execute("SELECT count(*) FROM raw.t").fetchone() == (0,)


def test_local_table_primary_key_change_is_refused_clearly(engine: ob.Engine,
                                                           tmp_path: Path) -> None:
    db = tmp_path / "wh.duckdb"
    apply(engine, ob.LocalTable(db, "k", {"a": "int", "b": "int"}, primary_key="a"))
    with pytest.raises(StepFailed, match="cannot change an existing primary key"):
        apply(engine, ob.LocalTable(db, "k", {"a": "int", "b": "int"}, primary_key="b"))


def test_local_table_rejects_bad_input() -> None:
    with pytest.raises(InvalidArgument, match="'nonsense' is not a DuckDB type"):
        ob.LocalTable("/tmp/x.duckdb", "t", {"id": "nonsense"})
    with pytest.raises(InvalidArgument, match="'int; drop' is not a DuckDB type name"):
        ob.LocalTable("/tmp/x.duckdb", "t", {"id": "int; drop"})
    with pytest.raises(InvalidArgument, match="primary key names unknown columns"):
        ob.LocalTable("/tmp/x.duckdb", "t", {"id": "int"}, primary_key="nope")
    with pytest.raises(InvalidArgument, match="table must be an identifier"):
        ob.LocalTable("/tmp/x.duckdb", "bad name", {"id": "int"})
