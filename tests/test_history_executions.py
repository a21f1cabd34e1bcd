"""The history tables tell what was executed: every execution, attempts closed as
interrupted when the run executed again, durations of the work done (a replay does not
zero them), runs that had failures, a reset run pending again; on every store.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import duckdb
import pytest
from history_events import HISTORY, KEYS, random_history, same_rows
from polling import until
from stores import Location

import orbits_nb as ob
from orbits_nb.core.rows import Batch
from orbits_nb.core.state import Event, fold
from orbits_nb.core.storage import Store
from orbits_nb.store import migrate
from orbits_nb.store.schema import SCHEMA_VERSION


def _fetch(store: Store, query: str, params: list[Any] | None = None) -> list[Any]:
    return store.relation(query, params).fetchall()


def _events(run_id: str, *specs: tuple[float, str, str | None, int | None, dict[str, Any]]
            ) -> list[Event]:
    return [Event(run_id, kind, step, attempt, data, ts=ts)
            for ts, kind, step, attempt, data in specs]


def _replayed(run_id: str) -> list[Event]:
    """A run that did 3 s of work in one step, then was executed again 100 s later and
    replayed it in 0.25 s."""
    return _events(
        run_id,
        (1000.0, "run.created", None, None, {"workflow": "m:W", "args": {}}),
        (1001.0, "run.started", None, None, {"host": "h", "pid": 1}),
        (1001.0, "step.started", "a", 1, {"action": "m:A", "name": "a", "pos": 0}),
        (1004.0, "step.succeeded", "a", 1, {"result": 1}),
        (1004.5, "run.succeeded", None, None, {"result": 1}),
        (1100.0, "run.started", None, None, {"host": "h", "pid": 2, "worker": "w-1"}),
        (1100.25, "run.succeeded", None, None, {"result": 1}),
    )


def test_a_replay_keeps_the_durations_and_lists_every_execution(any_store: Store) -> None:
    any_store.write(Batch(events=_replayed("r")))
    assert _fetch(any_store, "SELECT status, duration_s, executions, had_failures "
                             "FROM runs") == [("succeeded", 3.75, 2, False)]
    assert _fetch(any_store, "SELECT status, duration_s, execution FROM steps") == [
        ("succeeded", 3.0, 1)]
    assert _fetch(any_store, "SELECT execution, status, duration_s, host, pid, worker "
                             "FROM executions ORDER BY execution") == [
        (1, "succeeded", 3.5, "h", 1, None), (2, "succeeded", 0.25, "h", 2, "w-1")]


def test_an_interrupted_attempt_ends_at_the_last_record(any_store: Store) -> None:
    any_store.write(Batch(events=_events(
        "r",
        (0.0, "run.created", None, None, {"workflow": "m:W"}),
        (1.0, "run.started", None, None, {"host": "h", "pid": 1}),
        (1.0, "step.started", "a", 1, {"action": "m:A"}),
        (2.0, "step.waiting", "a", 1, {"bag": {}}),
    )))
    assert _fetch(any_store, "SELECT status, finished_at, duration_s FROM attempts") == [
        ("waiting", None, None)]
    any_store.write(Batch(events=_events(  # the kernel died at 2.0; taken over at 60.0
        "r",
        (60.0, "run.started", None, None, {"host": "h", "pid": 2}),
        (60.0, "step.started", "a", 2, {"resumed": True}),
        (61.0, "step.succeeded", "a", 2, {"result": 1}),
        (61.0, "run.succeeded", None, None, {"result": 1}),
    )))
    assert _fetch(any_store, "SELECT attempt, execution, status, epoch(finished_at), "
                             "duration_s FROM attempts ORDER BY attempt") == [
        (1, 1, "interrupted", 2.0, 1.0), (2, 2, "succeeded", 61.0, 1.0)]
    assert _fetch(any_store, "SELECT status, duration_s, execution FROM steps") == [
        ("succeeded", 2.0, 2)]
    assert _fetch(any_store, "SELECT status, duration_s FROM executions "
                             "ORDER BY execution") == [("interrupted", 1.0),
                                                       ("succeeded", 1.0)]
    assert _fetch(any_store, "SELECT status, duration_s FROM runs") == [("succeeded", 2.0)]


def test_a_failure_fixed_later_stays_findable(any_store: Store) -> None:
    any_store.write(Batch(events=_events(
        "fixed",
        (0.0, "run.created", None, None, {"workflow": "m:W"}),
        (1.0, "run.started", None, None, {}),
        (1.0, "step.started", "a", 1, {"action": "m:A"}),
        (2.0, "step.retrying", "a", 1, {"error": {"type": "E", "message": "x"}}),
        (3.0, "step.started", "a", 2, {}),
        (4.0, "step.succeeded", "a", 2, {"result": 1}),
        (4.0, "run.succeeded", None, None, {}),
    ) + _replayed("clean")))
    assert _fetch(any_store, "SELECT run_id, status, had_failures FROM runs ORDER BY 1") == [
        ("clean", "succeeded", False), ("fixed", "succeeded", True)]
    assert [r[0] for r in any_store.history(had_failures=True).fetchall()] == ["fixed"]
    assert [r[0] for r in any_store.history(had_failures=False).fetchall()] == ["clean"]
    assert any_store.history(status="failed").fetchall() == []  # its last execution did not


def test_an_abandoned_attempt_says_so(any_store: Store) -> None:
    any_store.write(Batch(events=_events(
        "r",
        (0.0, "run.created", None, None, {"workflow": "m:W"}),
        (1.0, "run.started", None, None, {}),
        (1.0, "step.started", "a", 1, {"action": "m:A"}),
        (3.0, "step.cancelled", "a", 1, {"abandoned": True}),
        (3.0, "run.cancelled", None, None, {"error": {"type": "RunCancelled"}}),
    )))
    assert _fetch(any_store, "SELECT status, duration_s FROM attempts") == [("abandoned", 2.0)]


def test_a_reset_run_is_pending_again(any_store: Store) -> None:
    events = _replayed("r")[:5] + _events(
        "r", (2000.0, "run.reset", None, None, {"steps": ["a"], "from": "a"}))
    any_store.write(Batch(events=events))
    assert _fetch(any_store, "SELECT status, finished_at, result FROM runs") == [
        ("pending", None, None)]
    assert _fetch(any_store, "SELECT count(*) FROM steps") == [(0,)]
    assert _fetch(any_store, "SELECT count(*) FROM executions") == [(1,)]  # it happened


def _rows(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    for table in HISTORY:
        columns = [f"CAST({name} AS VARCHAR)" if kind == "JSON" else name
                   for name, kind, *_ in _fetch(store, f"DESCRIBE {table}")]
        out[table] = _fetch(store, f"SELECT {', '.join(columns)} FROM {table} "
                                   f"ORDER BY {KEYS[table]}")
    return out


def test_folding_in_pieces_equals_a_rebuild(any_store: Store) -> None:
    events = random_history(5, runs=6)
    for first in range(0, len(events), 3):
        any_store.write(Batch(events=events[first:first + 3]))
        if first % 9 == 0:
            _fetch(any_store, "SELECT count(*) FROM runs")  # fold at this cut
    folded = _rows(any_store)
    any_store.rebuild_history()
    rebuilt = _rows(any_store)
    for table in HISTORY:
        assert folded[table] and same_rows(folded[table], rebuilt[table]), table


def _close(got: list[tuple[Any, ...]], want: list[tuple[Any, ...]]) -> bool:
    return len(got) == len(want) and all(
        all(abs(x - y) < 1e-5 if isinstance(x, float) and isinstance(y, float) else x == y
            for x, y in zip(a, b, strict=True)) for a, b in zip(got, want, strict=True))


def _work(spans: list[Any]) -> float | None:
    ended = [s for s in spans if s.finished_at is not None]
    return sum(s.finished_at - s.started_at for s in ended) if ended else None


@pytest.mark.parametrize("seed", range(30))
def test_the_tables_say_what_the_fold_of_each_run_says(seed: int) -> None:
    store = ob.DuckDBStore(":memory:")
    events = random_history(seed, runs=3)
    for first in range(0, len(events), 5):
        store.write(Batch(events=events[first:first + 5]))
        _fetch(store, "SELECT 1 FROM runs LIMIT 1")
    rows = _fetch(store, "SELECT run_id, status, had_failures, duration_s, parent_run_id "
                         "FROM runs")
    own = {run_id: fold(run_id, store.load_run(run_id)).had_failures for run_id, *_ in rows}
    parents = {row[0]: row[4] for row in rows}
    nested_failed = set()  # a run whose nested run (at any depth) had failures
    for run_id, failed in own.items():
        parent = parents[run_id]
        while failed and parent is not None:
            nested_failed.add(parent)
            parent = parents.get(parent)
    for run_id, status, had_failures, duration, _ in rows:
        mine = store.load_run(run_id)
        state = fold(run_id, mine)
        last = [e.kind for e in mine if e.step is None and e.kind != "run.meta"][-1]
        assert status == ("pending" if last == "run.reset" else state.status)
        assert had_failures == (state.had_failures or run_id in nested_failed)
        assert _close([(duration,)], [(_work(state.spans),)])
        assert _close(_fetch(store, "SELECT execution, status, epoch(started_at), "
                                    "epoch(finished_at) FROM executions WHERE run_id = ? "
                                    "ORDER BY 1", [run_id]),
                      [(s.execution, s.status, s.started_at, s.finished_at)
                       for s in state.spans])
        for step in state.steps.values():
            first = step.spans[0].attempt if step.spans else 0
            assert _close(_fetch(store, "SELECT attempt, execution, status, "
                                        "epoch(started_at), epoch(finished_at) FROM attempts "
                                        "WHERE run_id = ? AND step = ? AND attempt >= ? "
                                        "ORDER BY 1", [run_id, step.key, first]),
                          [(s.attempt, s.execution, s.status, s.started_at, s.finished_at)
                           for s in step.spans]), step.key
            assert _close(_fetch(store, "SELECT duration_s, execution FROM steps WHERE "
                                        "run_id = ? AND step = ?", [run_id, step.key]),
                          [(_work(step.spans), step.execution)]), step.key


def test_a_version_5_file_is_upgraded_and_rebuilt(tmp_path: Path) -> None:
    path = tmp_path / "v5.duckdb"
    con = duckdb.connect(str(path))
    for number in range(1, 6):
        migrate._migrate(con, number)
    for e in _replayed("r"):
        con.execute("INSERT INTO events VALUES (nextval('event_seq'), ?, ?, ?, ?, ?, ?)",
                    [e.ts, e.run_id, e.step, e.kind, e.attempt, ob_json(e.data)])
    # a version-5 fold of those events: durations zeroed by the replay
    con.execute("INSERT INTO runs (run_id, workflow, status, duration_s, executions) "
                "VALUES ('r', 'm:W', 'succeeded', 0.25, 2)")
    con.execute("INSERT INTO orbits_nb_meta VALUES ('history_seq', '7')")
    con.close()
    store = ob.DuckDBStore(path)
    try:
        assert _fetch(store, "SELECT max(version) FROM schema_version")[0][0] == SCHEMA_VERSION
        assert _fetch(store, "SELECT status, duration_s, executions, had_failures "
                             "FROM runs") == [("succeeded", 3.75, 2, False)]
        assert _fetch(store, "SELECT count(*) FROM executions") == [(2,)]
    finally:
        store.close()


def ob_json(data: dict[str, Any]) -> str:
    from orbits_nb.core.serde import dumps_record

    return dumps_record(data)


# -- a real process killed in the middle of a step, then taken over ------------------------
_WORKER = '''
import sys, time
from pathlib import Path
import orbits_nb as ob

MARK = Path(sys.argv[2])


class Slow(ob.Action):
    def main(self):
        if MARK.exists():
            return "done"
        MARK.write_text("started")
        time.sleep(3600)


class Flow(ob.Workflow):
    async def define(self):
        first = await self.do("first", Slow())
        return first


engine = ob.Engine(sys.argv[1])
print(engine.start(Flow(), run_id="killed").wait(120), flush=True)
engine.close()
'''


def _worker(tmp_path: Path, where: str) -> subprocess.Popen[str]:
    script = tmp_path / "history_worker.py"
    script.write_text(textwrap.dedent(_WORKER))
    return subprocess.Popen([sys.executable, str(script), where, str(tmp_path / "mark")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=tmp_path)


def _recorded(location: Location, query: str) -> list[Any]:
    store = location.open()
    try:
        return _fetch(store, query)
    finally:
        store.close()


def test_a_killed_process_leaves_an_interrupted_attempt(tmp_path: Path,
                                                        shared_location: Location) -> None:
    proc = _worker(tmp_path, shared_location.where)
    try:
        until(lambda: _recorded(shared_location, "SELECT count(*) FROM events WHERE "
                                "kind = 'step.started'") == [(1,)], timeout=120)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert _recorded(shared_location, "SELECT status FROM attempts") == [("running",)]
    again = _worker(tmp_path, shared_location.where)  # takes the run over
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    assert "done" in out
    store = shared_location.open()
    events = _fetch(store, "SELECT seq, ts, kind FROM events WHERE run_id = 'killed' "
                           "ORDER BY seq")
    second = [seq for seq, _, kind in events if kind == "run.started"][1]
    last_record = max(ts for seq, ts, _ in events if seq < second)
    attempts = _fetch(store, "SELECT attempt, execution, status, epoch(started_at), "
                             "epoch(finished_at), duration_s FROM attempts ORDER BY 1")
    assert [a[:3] for a in attempts] == [(1, 1, "interrupted"), (2, 2, "succeeded")]
    assert attempts[0][4] == pytest.approx(last_record, abs=1e-5)
    second_start = [ts for seq, ts, _ in events if seq == second][0]
    assert attempts[0][4] < second_start  # the time nobody executed it is not counted
    step = _fetch(store, "SELECT status, duration_s FROM steps")
    assert step[0][0] == "succeeded"
    assert step[0][1] == pytest.approx(attempts[0][5] + attempts[1][5], abs=1e-5)
    assert _fetch(store, "SELECT status FROM runs") == [("succeeded",)]
    assert _fetch(store, "SELECT execution, status FROM executions ORDER BY 1") == [
        (1, "interrupted"), (2, "succeeded")]


# -- a real engine: retries, a replay, the CLI ---------------------------------------------
class Flaky(ob.Action):
    retry = ob.Retry(attempts=2, delay=0.01)

    def main(self) -> Any:
        if self.attempt < 2:
            raise ValueError("first try")
        return self.attempt


class Steady(ob.Action):
    def main(self) -> Any:
        return 1


class Gate(ob.Action):
    closed = True

    def main(self) -> Any:
        if Gate.closed:
            raise RuntimeError("closed")
        return 1


class Mixed(ob.Workflow):
    async def define(self) -> Any:
        first = await self.do("flaky", Flaky()) if self.args["flaky"] else 0
        second = await self.do("steady", Steady())
        return first + second + (await self.do("gate", Gate()) if self.args["gate"] else 0)


def test_a_real_replay_and_a_fixed_failure_through_the_api_and_cli(tmp_path: Path) -> None:
    import json

    path = tmp_path / "s.duckdb"
    engine = ob.Engine(path)
    try:
        engine.start(Mixed(flaky=True, gate=False), run_id="fixed").wait(60)
        engine.start(Mixed(flaky=False, gate=False), run_id="clean").wait(60)
        with pytest.raises(ob.StepFailed):
            engine.start(Mixed(flaky=False, gate=True), run_id="replayed").wait(60)
        before = _fetch(engine.store, "SELECT duration_s FROM steps WHERE "
                                      "run_id = 'replayed' AND step = 'steady'")[0][0]
        Gate.closed = False
        engine.start(Mixed(flaky=False, gate=True), run_id="replayed").wait(60)
        assert _fetch(engine.store, "SELECT duration_s, execution FROM steps WHERE "
                                    "run_id = 'replayed' AND step = 'steady'") == [(before, 1)]
        (work, executions, failed), = _fetch(engine.store, "SELECT duration_s, executions, "
                                             "had_failures FROM runs WHERE run_id = "
                                             "'replayed'")
        assert executions == 2 and failed
        assert work >= before  # the replay did not zero it
        assert [r[0] for r in ob.history(had_failures=True, engine=engine).fetchall()] \
            == ["replayed", "fixed"]
        with pytest.raises(ob.InvalidArgument, match="had_failures"):
            ob.history(had_failures="yes", engine=engine)  # type: ignore[arg-type]
    finally:
        engine.close()
    out = subprocess.run([sys.executable, "-m", "orbits_nb.cli", "runs", "--had-failures",
                          "--json"], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "ORBITS_NB_STATE": str(path)})
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [(r["run_id"], r["status"], r["had_failures"]) for r in rows] == [
        ("replayed", "succeeded", True), ("fixed", "succeeded", True)]


def test_log_lines_keep_the_attempt_that_printed_them(any_store: Store) -> None:
    from orbits_nb.core.rows import LogLine

    any_store.write(Batch(events=_replayed("r"), logs=[
        LogLine("r", "a", 1, "stdout", "first try", ts=1001.5),
        LogLine("r", "a", 2, "stdout", "second try", ts=1002.0),
        LogLine("r", "a", 1, "stdout", "late line of the abandoned first", ts=1003.0)]))
    lines = any_store.logs("r", "a")
    assert [(line.attempt, line.message) for line in lines] == [
        (1, "first try"), (2, "second try"), (1, "late line of the abandoned first")]
    assert [line.message for line in any_store.logs("r", "a", attempt=2)] == ["second try"]
    with pytest.raises(ob.InvalidArgument, match="attempt=0"):
        any_store.logs("r", "a", attempt=0)


def test_duckdb_and_postgresql_fold_to_the_same_rows(pg_location: Location) -> None:
    events = random_history(41, runs=5)
    memory = ob.DuckDBStore(":memory:")
    server = pg_location.open()
    for first in range(0, len(events), 11):
        for store in (memory, server):
            store.write(Batch(events=events[first:first + 11]))
            _fetch(store, "SELECT count(*) FROM runs")
    mine, theirs = _rows(memory), _rows(server)
    for table in HISTORY:
        assert mine[table] and same_rows(mine[table], theirs[table]), table


def test_an_attempt_left_open_by_an_ended_run_is_closed_by_the_next_execution(
        any_store: Store) -> None:
    events = _events(
        "r",
        (0.0, "run.created", None, None, {"workflow": "m:W"}),
        (1.0, "run.started", None, None, {}),
        (1.0, "step.started", "a", 1, {"action": "m:A"}),
        (2.0, "run.failed", None, None, {"error": {"type": "E", "message": "x"}}),
        # nobody executes anything until 50.0
        (50.0, "run.started", None, None, {}),
        (51.0, "step.started", "a", 2, {"resumed": False}),
        (52.0, "step.succeeded", "a", 2, {"result": 1}),
        (52.0, "run.succeeded", None, None, {}),
    )
    any_store.write(Batch(events=events))
    spans = fold("r", any_store.load_run("r")).steps["a"].spans
    assert [(s.status, s.finished_at) for s in spans] == [("interrupted", 2.0),
                                                          ("succeeded", 52.0)]
    assert _fetch(any_store, "SELECT attempt, status, epoch(finished_at) FROM attempts "
                             "ORDER BY 1") == [(1, "interrupted", 2.0), (2, "succeeded", 52.0)]
    assert _fetch(any_store, "SELECT duration_s FROM steps") == [(2.0,)]
