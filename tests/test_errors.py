"""Bad input gets a clear error and loses nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import pytest

import orbits_nb as ob
from orbits_nb.store.integrity import check

DONE: list[str] = []


class Ok(ob.Action):
    def main(self) -> Any:
        DONE.append(self.step)
        return self.step


class BadResult(ob.Action):
    def main(self) -> Any:
        return {"when": object()}


class ReturnsBad(ob.Workflow):
    async def define(self) -> Any:
        await self.do("first", Ok())
        return await self.do("bad", BadResult())


def test_non_serializable_result_fails_the_step_clearly(engine: ob.Engine) -> None:
    run = engine.start(ReturnsBad())
    with pytest.raises(ob.StepFailed) as info:
        run.wait(30)
    assert isinstance(info.value.cause, ob.InvalidArgument)
    assert "result of step 'bad' (BadResult) at 'when' is not JSON-serializable" in str(
        info.value)
    assert run.state().steps["first"].status == "succeeded"
    assert check(engine.store) == []


class BadName(ob.Workflow):
    async def define(self) -> Any:
        return await self.do("deploy#2", Ok())


def test_reserved_step_name_is_rejected(engine: ob.Engine) -> None:
    with pytest.raises(ob.DuplicateStep, match="reserves for repeated and nested steps"):
        engine.start(BadName()).wait(30)


class NotAnAction(ob.Workflow):
    async def define(self) -> Any:
        return await self.do("x", "not an action")  # type: ignore[arg-type]


def test_non_action_step_is_rejected(engine: ob.Engine) -> None:
    with pytest.raises(ob.InvalidArgument, match="needs an orbits_nb.Action instance, got str"):
        engine.start(NotAnAction()).wait(30)


class Other(ob.Action):
    def main(self) -> Any:
        return "other"


class Versioned(ob.Workflow):
    async def define(self) -> Any:
        await self.do("one", Ok())
        if self.args.get("variant") == "swap-class":
            return await self.do("two", Other())
        if self.args.get("variant") == "rename":
            return await self.do("two-renamed", Ok())
        return await self.do("two", Ok())


def test_nondeterministic_rerun_names_expected_and_actual(engine: ob.Engine) -> None:
    run = engine.start(Versioned(), run_id="v")
    run.wait(30)
    before = engine.store.fetch("SELECT count(*) FROM events")

    # The same key now runs another class.
    swapped = Versioned(variant="swap-class")
    with pytest.raises(ob.NondeterminismError) as info:
        engine.start(swapped, run_id="v").wait(30)
    message = str(info.value)
    assert "step 'two' was recorded as" in message and "Ok" in message
    assert "now runs" in message and "Other" in message
    assert "run.reset('two')" in message

    # A recorded step replaced by another name at the same position.
    with pytest.raises(ob.NondeterminismError) as info:
        engine.start(Versioned(variant="rename"), run_id="v").wait(30)
    assert "step number 2 was recorded as 'two'" in str(info.value)
    assert "'two-renamed'" in str(info.value)

    # Nothing recorded was lost; reset makes the new code acceptable.
    steps = {r[0]: r[1] for r in engine.store.fetch(
        "SELECT step, status FROM steps WHERE run_id = 'v'")}
    assert steps == {"one": "succeeded", "two": "succeeded"}
    assert engine.store.fetch("SELECT count(*) FROM events")[0][0] > before[0][0]
    engine.get_run("v").reset("two")
    assert engine.start(swapped, run_id="v").wait(30) == "other"
    assert check(engine.store) == []


def test_corrupted_state_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.duckdb"
    path.write_bytes(b"this is not a database" * 100)
    store = ob.DuckDBStore(path)
    with pytest.raises(ob.StoreError) as info:
        store.fetch("SELECT 1")
    assert str(path) in str(info.value)
    assert "move it aside" in str(info.value)
    assert path.read_bytes().startswith(b"this is not a database")  # left untouched


def test_foreign_duckdb_file(tmp_path: Path) -> None:
    path = tmp_path / "foreign.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE sales (id INTEGER)")
    con.close()
    with pytest.raises(ob.StoreError, match="did not create"):
        ob.DuckDBStore(path).fetch("SELECT 1")
    con = duckdb.connect(str(path))
    tables = con.execute("SELECT table_name FROM information_schema.tables").fetchall()
    con.close()
    assert tables == [("sales",)]


def test_state_file_from_a_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "newer.duckdb"
    store = ob.DuckDBStore(path)
    with store.connection():
        pass  # opening for a write creates the file (a read would not)
    store.close()
    con = duckdb.connect(str(path))
    con.execute("UPDATE orbits_nb_meta SET value = '999' WHERE key = 'schema_version'")
    con.close()
    with pytest.raises(ob.StoreError, match="schema version 999, newer than"):
        ob.DuckDBStore(path).fetch("SELECT 1")


def test_migrations_are_recorded(tmp_path: Path) -> None:
    from orbits_nb.store.schema import MIGRATIONS

    store = ob.DuckDBStore(tmp_path / "s.duckdb")
    versions = [v for (v,) in store.fetch("SELECT version FROM schema_version ORDER BY 1")]
    assert versions == sorted(MIGRATIONS)
    store.close()


SCRIPT = """
import sys
import orbits_nb as ob
class Ok(ob.Action):
    def main(self):
        return 1
class Gone(ob.Workflow):
    async def define(self):
        return await self.do("ok", Ok())
engine = ob.Engine(sys.argv[1])
print(engine.start(Gone(x=1), run_id="gone").wait())
engine.close()
"""


def test_action_class_not_found_when_resuming(tmp_path: Path) -> None:
    state = tmp_path / "s.duckdb"
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(state)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    engine = ob.Engine(state)
    try:
        with pytest.raises(ob.ActionNotFound) as info:
            ob.resume("gone", engine=engine)
        assert "cannot import __main__:Gone" in str(info.value)
        assert "defined in a notebook or script" in str(info.value)
        assert engine.get_run("gone").status == "succeeded"
        assert check(engine.store) == []
    finally:
        engine.close()


class Unpicklable(Exception):
    def __init__(self, message: str, handle: Any) -> None:
        super().__init__(message)
        self.handle = handle


class RaisesUnpicklable(ob.Action):
    def main(self) -> Any:
        raise Unpicklable("socket went away", lambda: None)


class Remote(ob.Workflow):
    async def define(self) -> Any:
        return await self.do("remote", RaisesUnpicklable(), executor=ob.SubprocessExecutor())


def test_unpicklable_exception_from_subprocess(engine: ob.Engine) -> None:
    run = engine.start(Remote())
    with pytest.raises(ob.StepFailed) as info:
        run.wait(60)
    cause = info.value.cause
    assert isinstance(cause, ob.RemoteError)
    assert cause.type_name.endswith("Unpicklable")
    assert "socket went away" in cause.message
    assert "Traceback" in cause.traceback
    assert "Unpicklable: socket went away" in run.logs("remote")
    assert check(engine.store) == []


class InChild(ob.Action):
    def main(self) -> Any:
        import os

        print("child pid", os.getpid())
        self.bag["seen"] = True
        return os.getpid()


class Sub(ob.Workflow):
    async def define(self) -> Any:
        return await self.do("child", InChild(), executor=ob.SubprocessExecutor())


def test_subprocess_executor_runs_elsewhere(engine: ob.Engine) -> None:
    import os

    pid = engine.start(Sub()).wait(60)
    assert pid != os.getpid()
    assert f"child pid {pid}" in engine.get_run(run_id_of(engine, "Sub")).logs("child")


def run_id_of(engine: ob.Engine, workflow: str) -> str:
    return str(engine.store.fetch("SELECT run_id FROM runs WHERE workflow LIKE ?",
                                  [f"%:{workflow}"])[0][0])


def test_run_id_reused_by_another_workflow(engine: ob.Engine) -> None:
    engine.start(Versioned(), run_id="shared-id").wait(30)
    with pytest.raises(ob.NondeterminismError, match="was recorded for"):
        engine.start(ReturnsBad(), run_id="shared-id").wait(30)
