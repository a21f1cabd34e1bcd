"""``runs``, ``steps`` and ``attempts`` are tables kept from ``events`` incrementally.

Folding the events in any number of pieces gives what one fold of all of them gives
(``rebuild_history``), and what the views of the earlier schema gave; only events past
the watermark are read; files of the earlier schema are converted; a file at rest has
current tables, and events a dead process left unfolded are caught up.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest
from history_events import HISTORY, OLD_COLUMNS, old_views, random_history, same_rows, table_rows
from polling import until

import orbits_nb as ob
from orbits_nb.core.rows import Batch
from orbits_nb.core.serde import dumps_record
from orbits_nb.core.state import Event, fold
from orbits_nb.store import migrate
from orbits_nb.store.schema import SCHEMA_VERSION


def _tables(store: ob.DuckDBStore) -> dict[str, list[tuple[Any, ...]]]:
    store.fetch("SELECT 1 FROM runs LIMIT 1")  # a read brings the tables up to date
    with store.connection(write=False) as con:
        return {table: table_rows(con, table) for table in HISTORY}


def _watermark(store: ob.DuckDBStore) -> int:
    with store.connection(write=False) as con:  # a raw look: it folds nothing
        row = con.execute("SELECT value FROM orbits_nb_meta WHERE key = 'history_seq'"
                          ).fetchone()
    return int(row[0]) if row else 0


def _old_columns(store: ob.DuckDBStore) -> dict[str, list[tuple[Any, ...]]]:
    with store.connection(write=False) as con:
        return {table: table_rows(con, table, only) for table, only in OLD_COLUMNS.items()}


def _assert_matches_rebuild_and_old_views(store: ob.DuckDBStore) -> None:
    folded = _tables(store)
    kept = _old_columns(store)
    with store.connection(write=False) as con:
        reference = old_views(con)
    old = {table: table_rows(reference, table, only) for table, only in OLD_COLUMNS.items()}
    store.rebuild_history()
    rebuilt = _tables(store)
    for table in HISTORY:
        assert same_rows(folded[table], rebuilt[table]), table
    for table in OLD_COLUMNS:
        assert same_rows(kept[table], old[table]), table
    assert folded["steps"], "the history holds steps"


@pytest.mark.parametrize("seed", range(40))
def test_folding_in_pieces_equals_one_fold_and_the_old_views(seed: int) -> None:
    events = random_history(seed)
    rng = random.Random(seed)
    store = ob.DuckDBStore(":memory:")
    written = 0
    while written < len(events):
        size = rng.choice((1, 2, 3, 7, 40))
        store.write(Batch(events=events[written:written + size]))
        written += size
        if rng.random() < 0.4:
            _tables(store)  # fold what is pending at this cut
    _assert_matches_rebuild_and_old_views(store)


def test_the_tables_agree_with_the_fold_of_each_run() -> None:
    store = ob.DuckDBStore(":memory:")
    for seed in range(100, 110):
        store.write(Batch(events=random_history(seed, runs=2)))
    tables = _tables(store)
    steps = {(r[0], r[1]): r for r in tables["steps"]}
    for run in tables["runs"]:
        events = store.load_run(run[0])
        state = fold(run[0], events)
        last = [e.kind for e in events if e.step is None and e.kind != "run.meta"][-1]
        assert run[2] == ("pending" if last == "run.reset" else state.status)
        assert run[12] == state.executions
        for step in state.steps.values():
            row = steps[(run[0], step.key)]
            assert (row[4], row[5], row[6]) == (step.status, step.attempts, step.action)
    assert len(steps) == sum(len(fold(r[0], store.load_run(r[0])).steps)
                             for r in tables["runs"])


class Poll(ob.Action):
    poll_interval = 0.01

    def main(self) -> Any:
        self.bag["n"] = 0
        return ob.IN_PROGRESS

    def watch(self) -> Any:
        self.bag["n"] += 1
        return {"polls": self.bag["n"]} if self.bag["n"] >= 3 else ob.IN_PROGRESS


class Flaky(ob.Action):
    retry = ob.Retry(attempts=3, delay=0.01)

    def main(self) -> Any:
        if self.attempt < 3:
            raise ValueError(f"attempt {self.attempt}")
        return self.attempt


class Fails(ob.Action):
    def main(self) -> Any:
        if self.args["fail"]:
            raise RuntimeError("no")
        return "fine"


class Inner(ob.Workflow):
    async def define(self) -> Any:
        return [await self.do("poll", Poll()), await self.do("flaky", Flaky())]


class Outer(ob.Workflow):
    async def define(self) -> Any:
        inner = await self.do("inner", Inner())
        await self.do("last", Fails(fail=self.args["fail"]))
        return inner


def test_a_real_engine_history_matches_its_rebuild(tmp_path: Path) -> None:
    engine = ob.Engine(tmp_path / "s.duckdb")
    try:
        with pytest.raises(ob.StepFailed):
            engine.start(Outer(fail=True), run_id="outer").wait(60)
        run = engine.get_run("outer")
        run.reset("last")
        with pytest.raises(ob.StepFailed):
            run.retry().wait(60)
        engine.start(Outer(fail=False), run_id="fine").wait(60)
        engine.writer.flush()
        _assert_matches_rebuild_and_old_views(engine.store)  # type: ignore[arg-type]
        steps = engine.store.fetch(  # type: ignore[attr-defined]
            "SELECT step, status, attempts FROM steps WHERE run_id = 'outer/inner' "
            "ORDER BY pos")
        assert steps == [("poll", "succeeded", 1), ("flaky", "succeeded", 3)]
        assert engine.store.fetch(  # type: ignore[attr-defined]
            "SELECT status, executions FROM runs WHERE run_id = 'outer'") == [("failed", 2)]
    finally:
        engine.close()


def test_only_events_past_the_watermark_are_read() -> None:
    store = ob.DuckDBStore(":memory:")
    store.write(Batch(events=random_history(7, runs=1)))
    before = _tables(store)
    with store.connection() as con:  # an old event changes behind the store's back
        con.execute("UPDATE events SET data = '{\"workflow\": \"x:Changed\"}' "
                    "WHERE kind = 'run.created'")
    store.write(Batch(events=[Event("another", "run.created", data={"workflow": "m:W"})]))
    after = _tables(store)
    assert after["runs"][0] == before["runs"][0]  # the earlier run was not folded again
    assert [r[0] for r in after["runs"] if "/" not in r[0]] == [before["runs"][0][0],
                                                               "another"]
    store.rebuild_history()
    assert _tables(store)["runs"][0][1] == "x:Changed"


def test_a_commit_does_not_fold_a_read_or_letting_go_of_the_file_does(tmp_path: Path) -> None:
    store = ob.DuckDBStore(tmp_path / "s.duckdb")
    store.busy = True  # like an engine with runs in flight: the file stays open
    store.write(Batch(events=random_history(3, runs=1)))
    assert _watermark(store) == 0
    runs = _tables(store)["runs"]
    assert runs and _watermark(store) > 0
    store.write(Batch(events=[Event("late", "run.created", data={"workflow": "m:W"})]))
    store.busy = False
    store.close()  # letting go of the file (nobody waits) brings the tables up to date
    con = duckdb.connect(str(tmp_path / "s.duckdb"), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM runs WHERE run_id = 'late'").fetchone() \
            == (1,)
    finally:
        con.close()


def test_an_idle_engine_leaves_current_tables_for_other_programs(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    engine = ob.Engine(path)
    try:
        engine.start(Outer(fail=False), run_id="r").wait(60)
        until(lambda: not engine.store.is_open)
        con = duckdb.connect(str(path), read_only=True)
        try:
            rows = con.execute("SELECT run_id, status FROM runs ORDER BY 1").fetchall()
        finally:
            con.close()
        assert rows == [("r", "succeeded"), ("r/inner", "succeeded")]
    finally:
        engine.close()


def _raw_events(path: Path, events: list[Event]) -> None:
    """Append ``events`` the way a process that died before folding them left them."""
    con = duckdb.connect(str(path))
    try:
        for e in events:
            con.execute("INSERT INTO events VALUES (nextval('event_seq'), ?, ?, ?, ?, ?, ?)",
                        [e.ts, e.run_id, e.step, e.kind, e.attempt, dumps_record(e.data)])
    finally:
        con.close()


def test_events_a_dead_process_left_unfolded_are_caught_up(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    store = ob.DuckDBStore(path)
    store.write(Batch(events=random_history(11, runs=1)))
    store.close()
    _raw_events(path, random_history(12, runs=1))
    store = ob.DuckDBStore(path)
    try:
        _assert_matches_rebuild_and_old_views(store)
        assert len({r[0] for r in _tables(store)["runs"]}) >= 2
    finally:
        store.close()


def test_a_file_of_the_earlier_schema_gets_its_tables_built(tmp_path: Path) -> None:
    path = tmp_path / "v4.duckdb"
    con = duckdb.connect(str(path))
    for number in range(1, 5):
        migrate._migrate(con, number)
    con.close()
    events = random_history(21) + random_history(22)
    _raw_events(path, events)
    con = duckdb.connect(str(path))
    old = {table: table_rows(con, table, only)  # the views, still there
           for table, only in OLD_COLUMNS.items()}
    con.close()

    store = ob.DuckDBStore(path)
    try:
        assert store.fetch("SELECT max(version) FROM schema_version") == [(SCHEMA_VERSION,)]
        assert store.fetch("SELECT table_type FROM information_schema.tables WHERE "
                           "table_name = 'steps'") == [("BASE TABLE",)]
        _tables(store)
        new = _old_columns(store)
        for table in OLD_COLUMNS:
            assert same_rows(new[table], old[table]), table
        assert _watermark(store) == len(events)
    finally:
        store.close()


def test_a_read_only_file_with_unfolded_events_is_still_read(tmp_path: Path) -> None:
    from store_helpers import read_only_file

    path = tmp_path / "s.duckdb"
    store = ob.DuckDBStore(path)
    store.write(Batch(events=random_history(31, runs=1)))
    store.close()
    _raw_events(path, [Event("tail", "run.created", ts=time.time(),
                             data={"workflow": "m:W"})])
    with read_only_file(path):
        reader = ob.DuckDBStore(path)
        try:
            runs = reader.fetch("SELECT run_id FROM runs ORDER BY 1")
            assert runs and ("tail",) not in runs  # as folded when it was last written
            assert reader.load_run("tail")  # the event itself is there
        finally:
            reader.close()
