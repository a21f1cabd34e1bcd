"""History at analytical speed: queries over 1M step rows, and the durable step cost.

    python bench/store.py                    # 10,000 runs x 100 steps
    python bench/store.py --runs 1000        # a smaller store
    python bench/store.py --dbos-python PY   # DBOS's SQLite schema with that Python
    python bench/store.py --postgres URL     # the team store on that server (else one is
                                             # started with initdb/pg_ctl when installed)

Builds a state file of ``--runs`` runs of 100 steps (one in ten failed at its last
step, after a retry) through the store's own write path, then prints, in one run:

* how long the build and the first fold of the history tables took;
* "the 10 slowest steps of failed runs" (both ways: a join with ``runs``, and
  ``steps.run_status`` alone) and "count steps by status" through ``ob.sql`` (median
  of 7, after a warm-up), and the same queries through the views of the earlier
  schema, which folded ``events`` at every query;
* the durable cost of a sequential no-op step (1,000 steps), on a new file and on
  the big one, with the CPU it costs per step, and the fixed cost of
  ``ob.sql("SELECT 1")``;
* the same two queries on DBOS Transact's SQLite system database, built with the same
  shape by DBOS's own migrations, in a Python where ``dbos`` is installed
  (``--dbos-python``, else a throwaway virtualenv made with ``pip install dbos``; the
  column is skipped with a note when that cannot be installed).

Then, on PostgreSQL (``--postgres URL``, else a server started for the bench, as the
tests start one; ``--no-postgres`` skips it): the durable cost of a sequential no-op
step, one commit of 200 events, 200 concurrent runs of 5 steps (steps/s, beside the
DuckDB file), DBOS Transact on the same server when ``dbos`` is installed, and the
queries over a store of ``--pg-runs`` runs written on the server. Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orbits_nb as ob
from orbits_nb.core.rows import Batch
from orbits_nb.core.state import Event

STEPS = 100
QUERIES = {
    "10 slowest steps of failed runs": (
        "SELECT s.run_id, s.step, s.duration_s FROM steps s JOIN runs r USING (run_id) "
        "WHERE r.status = 'failed' ORDER BY s.duration_s DESC LIMIT 10"),
    "count steps by status": "SELECT status, count(*) FROM steps GROUP BY status",
}
#: The same question asked of the tables alone (the old views have no such column).
SLOWEST_ONE_TABLE = ("10 slowest, via steps.run_status",
                     "SELECT run_id, step, duration_s FROM steps WHERE run_status = "
                     "'failed' ORDER BY duration_s DESC LIMIT 10")
DBOS_QUERIES = {
    "10 slowest steps of failed runs": (
        "SELECT o.workflow_uuid, o.function_name, "
        "o.completed_at_epoch_ms - o.started_at_epoch_ms AS ms FROM operation_outputs o "
        "JOIN workflow_status w ON w.workflow_uuid = o.workflow_uuid "
        "WHERE w.status = 'ERROR' ORDER BY ms DESC LIMIT 10"),
    "count steps by status": (
        "SELECT CASE WHEN error IS NULL THEN 'SUCCESS' ELSE 'ERROR' END, count(*) "
        "FROM operation_outputs GROUP BY 1"),
}


def shape(runs: int, seed: int = 7) -> list[dict[str, Any]]:
    """The runs both stores get: per run, its steps' durations and whether it failed."""
    rng = random.Random(seed)
    return [{"run": f"Deploy-{n:05d}", "failed": n % 10 == 9,
             "durations": [rng.uniform(0.001, 2.0) for _ in range(STEPS)]}
            for n in range(runs)]


def events_of(run: dict[str, Any], start: float) -> list[Event]:
    """The events the engine writes for one such run."""
    run_id, ts = run["run"], start
    out = [Event(run_id, "run.created", ts=ts, data={
               "workflow": "bench:Deploy", "args": {"client": run_id}, "parent_run_id": None,
               "parent_step": None, "meta": {}}),
           Event(run_id, "run.started", ts=ts, data={"host": "bench", "pid": 1})]
    for pos, took in enumerate(run["durations"]):
        key = f"s{pos}"
        out.append(Event(run_id, "step.started", key, 1, ts=ts, data={
            "name": key, "pos": pos, "action": "bench:Noop", "args": {},
            "executor": "local", "parents": [f"s{pos - 1}"] if pos else [],
            "concurrent": False}))
        ts += took
        last = pos == STEPS - 1
        if last and run["failed"]:
            error = {"type": "ValueError", "message": "boom", "traceback": ""}
            out += [Event(run_id, "step.retrying", key, 1, ts=ts, data={"error": error}),
                    Event(run_id, "step.started", key, 2, ts=ts, data={"resumed": False}),
                    Event(run_id, "step.failed", key, 2, ts=ts, data={"error": error}),
                    Event(run_id, "run.failed", ts=ts, data={"error": error})]
        else:
            out.append(Event(run_id, "step.succeeded", key, 1, ts=ts,
                             data={"result": {"pos": pos}}))
    if not run["failed"]:
        out.append(Event(run_id, "run.succeeded", ts=ts, data={"result": STEPS}))
    return out


def build(path: Path | str, runs: list[dict[str, Any]]) -> tuple[int, float, float]:
    """Write the runs through the store's write path; (events, write s, first fold s)."""
    from orbits_nb.store import open_store

    store: Any = open_store(path)
    store.busy = True  # one open file for the whole build, as an engine at work keeps it
    written, started = 0, time.perf_counter()
    for first in range(0, len(runs), 100):
        batch = Batch()
        for n, run in enumerate(runs[first:first + 100]):
            batch.events += events_of(run, 1.7e9 + (first + n) * 300)
        store.write(batch)
        written += len(batch.events)
    wrote = time.perf_counter() - started
    started = time.perf_counter()
    store.fetch("SELECT count(*) FROM steps")  # the first read folds the whole history
    folded = time.perf_counter() - started
    store.busy = False
    store.close()
    return written, wrote, folded


def median_ms(call: Callable[[], Any], repeat: int = 7) -> float:
    call()  # warm-up: the file's pages are in the OS cache for every contender
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def through_sql(path: Path | str) -> dict[str, float]:
    engine = ob.Engine(path)
    try:
        return {name: median_ms(lambda q=query: ob.sql(q, engine=engine).fetchall())
                for name, query in (*QUERIES.items(), SLOWEST_ONE_TABLE)}
    finally:
        engine.close()


def through_old_views(path: Path) -> dict[str, float]:
    """The same queries through the views of the earlier schema (a fold of ``events``
    at each query), on the same file, read-only."""
    import duckdb

    from orbits_nb.store import schema

    con = duckdb.connect(":memory:")
    con.execute(f"ATTACH '{path}' AS state (READ_ONLY)")
    con.execute("CREATE VIEW events AS SELECT * FROM state.events")
    for view in (schema._RUNS, schema._LIVE_STEP_EVENTS, schema._STEPS):
        con.execute(view)
    try:
        return {name: median_ms(lambda q=query: con.execute(q).fetchall(), repeat=3)
                for name, query in QUERIES.items()}
    finally:
        con.close()


def step_cost(path: Path | str) -> tuple[float, float, float]:
    """A sequential no-op step's durable cost: (median wall ms, CPU ms per step of this
    process, all threads), over 1,000 steps; and ``ob.sql("SELECT 1")``'s fixed cost
    (median ms of 50) on the same engine."""
    sys.path.insert(0, str(Path(__file__).parent))
    from engine import Timed

    engine = ob.Engine(path)
    try:
        engine.start(Timed(steps=50, report=True), run_id="warmup").wait()
        cpu = time.process_time()
        times = engine.start(Timed(steps=1000, report=True), run_id="timed").wait()
        cpu = (time.process_time() - cpu) / 1000
        select_one = median_ms(lambda: ob.sql("SELECT 1", engine=engine).fetchall(),
                               repeat=50)
    finally:
        engine.close()
    return statistics.median(times) * 1000, cpu * 1000, select_one


DBOS_SCRIPT = r"""
import json, sqlite3, statistics, sys, time
from dbos._migration import sqlite_migrations

path, queries, shape = sys.argv[1], json.loads(sys.argv[2]), json.load(open(sys.argv[3]))
con = sqlite3.connect(path)
for migration in sqlite_migrations:  # DBOS's own schema, as its system database applies it
    for statement in (s.strip() for s in migration.split(";")):
        if statement:
            con.execute(statement)
started = time.perf_counter()
for n, run in enumerate(shape):
    t = 1_700_000_000_000 + n * 300_000
    con.execute("INSERT INTO workflow_status (workflow_uuid, status, name, created_at, "
                "updated_at) VALUES (?, ?, 'Deploy', ?, ?)",
                [run["run"], "ERROR" if run["failed"] else "SUCCESS", t, t])
    rows = []
    for pos, took in enumerate(run["durations"]):
        end = t + int(took * 1000)
        failed = run["failed"] and pos == len(run["durations"]) - 1
        rows.append((run["run"], pos, "Noop", None if failed else '{"pos": 1}',
                     '{"message": "boom"}' if failed else None, t, end))
        t = end
    con.executemany("INSERT INTO operation_outputs (workflow_uuid, function_id, "
                    "function_name, output, error, started_at_epoch_ms, "
                    "completed_at_epoch_ms) VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
con.commit()
built = time.perf_counter() - started
out = {"build_s": built}
for name, query in queries.items():
    con.execute(query).fetchall()
    times = []
    for _ in range(7):
        t0 = time.perf_counter()
        con.execute(query).fetchall()
        times.append(time.perf_counter() - t0)
    out[name] = statistics.median(times) * 1000
print(json.dumps(out))
"""


def dbos_python(given: str | None, tmp: Path) -> str | None:
    """A Python with ``dbos`` installed: the one given, or a throwaway virtualenv."""
    if given:
        return given
    venv = tmp / "dbos-venv"
    made = subprocess.run([sys.executable, "-m", "venv", str(venv)], capture_output=True)
    python = venv / "bin" / "python"
    if made.returncode != 0:
        return None
    pip = subprocess.run([str(python), "-m", "pip", "install", "-q", "dbos"],
                         capture_output=True, text=True, timeout=900)
    return str(python) if pip.returncode == 0 else None


def through_dbos(python: str, tmp: Path, runs: list[dict[str, Any]]) -> dict[str, float]:
    shape_file = tmp / "shape.json"
    shape_file.write_text(json.dumps(runs))
    out = subprocess.run([python, "-c", DBOS_SCRIPT, str(tmp / "dbos.sqlite"),
                          json.dumps(DBOS_QUERIES), str(shape_file)],
                         capture_output=True, text=True, check=True)
    return dict(json.loads(out.stdout))


def commit_cost(location: Path | str, events: int = 200) -> float:
    """Median ms of one commit of ``events`` step events (30 commits)."""
    from orbits_nb.store import open_store

    store: Any = open_store(location)
    try:
        times = []
        for n in range(31):
            batch = Batch(events=[Event(f"commit-{n}", "step.succeeded", f"s{i}", 1,
                                        {"result": {"pos": i}}, ts=1.7e9 + i)
                                  for i in range(events)])
            started = time.perf_counter()
            store.write(batch)
            times.append(time.perf_counter() - started)
        return statistics.median(times[1:]) * 1000
    finally:
        store.close()


def concurrent(location: Path | str, runs: int = 200) -> float:
    """Steps per second of ``runs`` concurrent runs of 5 no-op steps."""
    sys.path.insert(0, str(Path(__file__).parent))
    from engine import Five

    engine = ob.Engine(location)
    try:
        engine.start(Five(), run_id="warmup").wait()
        started = time.perf_counter()
        handles = [engine.start(Five(), run_id=f"c{i}") for i in range(runs)]
        for handle in handles:
            handle.wait()
        return runs * 5 / (time.perf_counter() - started)
    finally:
        engine.close()


DBOS_PG_SCRIPT = r"""
import json, statistics, sys, time
from dbos import DBOS
url = sys.argv[1]
DBOS(config={"name": "bench", "system_database_url": url})

@DBOS.step()
def noop():
    return 1

@DBOS.workflow()
def timed(n):
    times = []
    for _ in range(n):
        t = time.perf_counter()
        noop()
        times.append(time.perf_counter() - t)
    return times

DBOS.launch()
timed(50)
print(json.dumps(statistics.median(timed(1000)) * 1000))
DBOS.destroy()
"""


def team_store(args: argparse.Namespace, tmp: Path, python: str | None) -> None:
    """The PostgreSQL figures (see the module)."""
    server = None
    if args.postgres:
        def database() -> str:
            return str(args.postgres)
    else:
        sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
        try:
            from pg_server import Server

            server = Server(durable=True)  # fsync on, as a real server
        except BaseException as err:  # a missing server is only reported
            print(f"PostgreSQL: skipped ({type(err).__name__}: {err})")
            return
        database = server.database
    try:
        cost, cpu, select_one = step_cost(database())
        print(f"PostgreSQL durable sequential no-op step (median of 1,000): {cost:.3f} ms "
              f"({cpu:.3f} ms CPU per step); ob.sql('SELECT 1') {select_one:.2f} ms")
        print(f"PostgreSQL commit of 200 events (median of 30): "
              f"{commit_cost(database()):.2f} ms")
        if python:
            dbos = subprocess.run([python, "-c", DBOS_PG_SCRIPT, database()],
                                  capture_output=True, text=True)
            print("DBOS on the same PostgreSQL, same step: " + (
                f"{float(dbos.stdout.split()[-1]):.3f} ms" if dbos.returncode == 0 else
                f"failed ({(dbos.stderr.strip().splitlines() or ['?'])[-1]})"))
        else:
            print("DBOS on PostgreSQL: skipped (dbos could not be installed here)")
        print(f"200 concurrent runs x 5 steps: {concurrent(database()):,.0f} steps/s on "
              f"PostgreSQL, {concurrent(tmp / 'concurrent.duckdb'):,.0f} steps/s on a "
              "DuckDB file")
        url = database()
        count, wrote, folded = build(url, shape(args.pg_runs))
        print(f"PostgreSQL store: {args.pg_runs:,} runs x {STEPS} steps from {count:,} "
              f"events; written in {wrote:.1f} s ({count / wrote:,.0f} events/s), first "
              f"fold {folded:.1f} s")
        for name, ms in through_sql(url).items():
            print(f"  {name:34} {ms:10.1f} ms (ob.sql on PostgreSQL)")
        engine = ob.Engine(url)
        try:  # a query only DuckDB understands: the steps table is copied into DuckDB
            ms = median_ms(lambda: ob.sql("SELECT status, list(step ORDER BY step)[1] "
                                          "FROM steps GROUP BY status",
                                          engine=engine).fetchall(), repeat=1)
        finally:
            engine.close()
        print(f"  {'a DuckDB-only query (copies steps)':34} {ms:10.1f} ms")
    finally:
        if server is not None:
            server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--postgres", help="a postgresql:// URL of a server to use")
    parser.add_argument("--no-postgres", action="store_true", help="skip PostgreSQL")
    parser.add_argument("--pg-runs", type=int, default=None,
                        help="runs of the PostgreSQL store (default: --runs)")
    parser.add_argument("--dbos-python", help="a Python where dbos is installed")
    parser.add_argument("--no-dbos", action="store_true", help="skip the DBOS column")
    args = parser.parse_args()
    runs = shape(args.runs)
    with tempfile.TemporaryDirectory(prefix="orbits-bench-") as folder:
        tmp = Path(folder)
        path = tmp / "big.duckdb"
        count, wrote, folded = build(path, runs)
        print(f"store: {args.runs:,} runs x {STEPS} steps = {args.runs * STEPS:,} step rows "
              f"from {count:,} events; written in {wrote:.1f} s "
              f"({count / wrote:,.0f} events/s), first fold {folded:.1f} s")
        tables = through_sql(path)
        views = through_old_views(path)
        dbos: dict[str, float] | str = "skipped (--no-dbos)"
        python = None
        if not args.no_dbos:
            python = dbos_python(args.dbos_python, tmp)
            dbos = (through_dbos(python, tmp, runs) if python else
                    "skipped: dbos could not be installed here (pip install dbos failed)")
        print(f"{'query (median ms)':34} {'ob.sql, tables':>15} {'old views':>10} "
              f"{'DBOS SQLite':>12}")
        for name in (*QUERIES, SLOWEST_ONE_TABLE[0]):
            key = name if name in QUERIES else "10 slowest steps of failed runs"
            theirs = f"{dbos[key]:12.1f}" if isinstance(dbos, dict) else f"{'-':>12}"
            old = f"{views[name]:10.1f}" if name in views else f"{'-':>10}"
            print(f"{name:34} {tables[name]:15.1f} {old} {theirs}")
        if isinstance(dbos, str):
            print(f"DBOS column: {dbos}")
        fresh, fresh_cpu, select_one = step_cost(tmp / "fresh.duckdb")
        loaded, loaded_cpu, _ = step_cost(path)
        print(f"durable sequential no-op step (median of 1,000): {fresh:.3f} ms on a new "
              f"file, {loaded:.3f} ms on the {args.runs * STEPS:,}-step file; CPU per "
              f"step {fresh_cpu:.3f} ms / {loaded_cpu:.3f} ms")
        print(f"ob.sql('SELECT 1') fixed cost (median of 50, DuckDB file): "
              f"{select_one:.2f} ms")
        if not args.no_postgres:
            args.pg_runs = args.pg_runs or args.runs
            team_store(args, tmp, python)


if __name__ == "__main__":
    main()
