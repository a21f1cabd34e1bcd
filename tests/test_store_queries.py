"""Queries in a row: the state file stays open between them, and is let go of when
nobody queries or another process asks for it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from polling import until

import orbits_nb as ob


class One(ob.Action):
    def main(self) -> Any:
        return 1


class Small(ob.Workflow):
    async def define(self) -> Any:
        return [await self.do(f"s{i}", One()) for i in range(3)]


def counted(store: Any, monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    connects: list[bool] = []
    real = store._connect

    def counting(db: Any, read_only: bool) -> Any:
        connects.append(read_only)
        return real(db, read_only)

    monkeypatch.setattr(store, "_connect", counting)
    return connects


@pytest.mark.parametrize("with_engine", [True, False])
def test_queries_in_a_row_open_the_file_once_and_let_it_go_after(
        state_path: Path, monkeypatch: pytest.MonkeyPatch, with_engine: bool) -> None:
    engine = ob.Engine(state_path)
    engine.start(Small(), run_id="small").wait()
    if not with_engine:
        engine.close()
    store: Any = engine.store if with_engine else ob.DuckDBStore(state_path)
    until(lambda: not store.is_open)
    store.query_linger = 60.0  # no timing in the test: only the end is awaited below
    connects = counted(store, monkeypatch)
    for _ in range(5):
        assert store.relation("SELECT count(*) FROM steps").fetchall() == [(3,)]
    assert len(connects) == 1
    assert store.is_open
    store.query_linger = 0.05
    store.relation("SELECT 1").fetchall()
    until(lambda: not store.is_open)
    assert store.relation("SELECT count(*) FROM runs").fetchall() == [(1,)]
    assert len(connects) == 2
    if with_engine:
        engine.close()
    store.close()


READER = textwrap.dedent("""
    import sys
    from orbits_nb.store import open_store
    store = open_store(sys.argv[1], lock_timeout=60)
    print(len(store.load_run("small")))
    store.close()
""")


@pytest.mark.parametrize("with_engine", [True, False])
def test_another_process_gets_a_file_kept_open_for_queries(
        state_path: Path, with_engine: bool) -> None:
    engine = ob.Engine(state_path)
    engine.start(Small(), run_id="small").wait()
    if not with_engine:
        engine.close()
    store: Any = engine.store if with_engine else ob.DuckDBStore(state_path)
    store.query_linger = 600.0  # only a waiting process can make it let go in time
    store.relation("SELECT count(*) FROM steps").fetchall()
    assert store.is_open
    out = subprocess.run([sys.executable, "-c", READER, str(state_path)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) > 0
    assert not store.is_open
    assert store.relation("SELECT count(*) FROM steps").fetchall() == [(3,)]
    if with_engine:
        engine.close()
    store.close()
