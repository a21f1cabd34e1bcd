"""Queues and workers: throughput, submit-to-first-step latency, cancel delivery.

    python bench/workers.py                  # 1,000 runs x 3 no-op steps
    python bench/workers.py --runs 200       # smaller
    python bench/workers.py --no-postgres    # the DuckDB file only

Prints, on a DuckDB file and on PostgreSQL (``--postgres URL``, else a server started
as the tests start one; ``--no-postgres`` skips it):

* throughput: ``--runs`` runs of 3 no-op steps submitted, then drained by 1, 2 and 4
  ``orbits-nb worker`` processes (``--concurrency 4`` each), in runs/s from the first
  ``run.started`` to the last ``run.succeeded`` recorded;
* latency from ``submit()`` returning to the first ``step.started`` recorded, with one
  idle worker already running (``--latency`` runs, one at a time): p50 and p95;
* cancel delivery: a ``run.cancel_requested`` event written from another process while
  the run executes, from its recorded time until the run is recorded cancelled: p50
  and p95.

Figures come from the recorded timestamps (one host, one clock). Asserts nothing.
"""

from __future__ import annotations

import argparse
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]

# Workers import the workflow classes by module: they live beside the tests.
from worker_flows import NoopSteps  # noqa: E402

import orbits_nb as ob  # noqa: E402
from orbits_nb.store import open_store  # noqa: E402

#: Where worker output goes (the bench's temporary folder).
OUT: Path | None = None


def _workers(state: str, n: int, *args: str) -> list[subprocess.Popen[str]]:
    """``n`` workers whose output goes to files beside the state (a pipe nobody reads
    while they work would block them once full)."""
    from worker_helpers import environment

    where = OUT or Path(tempfile.gettempdir())
    procs = []
    for _ in range(n):
        with tempfile.NamedTemporaryFile("w", dir=where, prefix="worker-", suffix=".out",
                                         delete=False) as out:
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "orbits_nb.cli", "worker", "--concurrency", "4",
                 *args], env=environment(state), stdout=out, stderr=subprocess.STDOUT,
                text=True))
    return procs


def _stop(workers: list[subprocess.Popen[str]]) -> None:
    for worker in workers:
        worker.send_signal(signal.SIGTERM)
    for worker in workers:
        worker.wait(timeout=300)


def _first(store: Any, run_id: str, kind: str) -> float | None:
    for event in store.load_run(run_id):
        if event.kind == kind:
            return float(event.ts)
    return None


def _poll(check: Callable[[], Any], limit: float = 900.0) -> Any:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        value = check()
        if value is not None:
            return value
        time.sleep(0.01)
    raise TimeoutError("the bench gave up waiting")


def throughput(state: str, runs: int, workers: int) -> float:
    engine = ob.Engine(state)
    with engine.store.keep_open():  # one opening of the file for all the submits
        ids = [NoopSteps(batch=workers, n=n).submit(queue="bench", engine=engine).run_id
               for n in range(runs)]
    engine.close()
    procs = _workers(state, workers)
    store = open_store(state)
    try:
        _poll(lambda: True if not any(s.depth + s.running for s in store.queue_stats()
                                      if s.queue.name == "bench") else None)
        starts = [_first(store, r, "run.started") for r in ids]
        ends = [_first(store, r, "run.succeeded") for r in ids]
    finally:
        store.close()
        _stop(procs)
    return runs / (max(e or 0 for e in ends) - min(s or 0 for s in starts))


def latency(state: str, count: int) -> tuple[float, float]:
    procs = _workers(state, 1)
    engine = ob.Engine(state)
    found = []
    try:
        time.sleep(3)  # the worker and its spare child are up and idle
        for n in range(count):
            run = NoopSteps(latency=n).submit(queue="lat", engine=engine)
            submitted = time.time()
            first = _poll(lambda r=run.run_id: _first(engine.store, r, "step.started"))
            found.append((first - submitted) * 1000)
            _poll(lambda r=run.run_id: _first(engine.store, r, "run.succeeded"))
            time.sleep(1.0)  # idle again: its ready process waits for a run
    finally:
        engine.close()
        _stop(procs)
    return statistics.median(found), _p95(found)


def cancel_delivery(state: str, count: int) -> tuple[float, float]:
    procs = _workers(state, 1)
    engine = ob.Engine(state)
    found = []
    try:
        for n in range(count):
            run = NoopSteps(cancel=n, steps=100_000).submit(queue="cancel", engine=engine)
            _poll(lambda r=run.run_id: _first(engine.store, r, "step.started"))
            subprocess.run([sys.executable, "-c", _CANCEL, state, run.run_id], check=True)
            ended = _poll(lambda r=run.run_id: _first(engine.store, r, "run.cancelled"))
            asked = _first(engine.store, run.run_id, "run.cancel_requested")
            found.append((ended - (asked or ended)) * 1000)
    finally:
        engine.close()
        _stop(procs)
    return statistics.median(found), _p95(found)


_CANCEL = """
import sys
from orbits_nb.core.rows import Batch
from orbits_nb.core.state import Event
from orbits_nb.store import open_store
store = open_store(sys.argv[1])
store.write(Batch(events=[Event(sys.argv[2], "run.cancel_requested",
                                data={"by": "bench", "via": "store"})]))
store.close()
"""


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def figures(name: str, fresh: Callable[[], str], args: argparse.Namespace) -> None:
    for n in (1, 2, 4):
        rate = throughput(fresh(), args.runs, n)
        print(f"{name}: {args.runs} runs x 3 no-op steps, {n} worker(s): {rate:,.1f} runs/s",
              flush=True)
    p50, p95 = latency(fresh(), args.latency)
    print(f"{name}: submit() -> first step start, idle worker: p50 {p50:.1f} ms, "
          f"p95 {p95:.1f} ms ({args.latency} runs)", flush=True)
    p50, p95 = cancel_delivery(fresh(), args.cancels)
    print(f"{name}: cancel requested in another process -> run recorded cancelled: "
          f"p50 {p50:.1f} ms, p95 {p95:.1f} ms ({args.cancels} runs)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--latency", type=int, default=30)
    parser.add_argument("--cancels", type=int, default=10)
    parser.add_argument("--postgres", help="a postgresql:// URL of a server to use")
    parser.add_argument("--no-postgres", action="store_true", help="skip PostgreSQL")
    parser.add_argument("--no-duckdb", action="store_true", help="skip the DuckDB file")
    args = parser.parse_args()
    global OUT
    with tempfile.TemporaryDirectory(prefix="orbits_nb_bench_") as tmp:
        OUT = Path(tmp)
        made = iter(range(1_000_000))
        if not args.no_duckdb:
            figures("DuckDB file", lambda: str(Path(tmp) / f"w{next(made)}.duckdb"), args)
        if args.no_postgres:
            return
        server = None
        if args.postgres:
            url = str(args.postgres)
            figures("PostgreSQL", lambda: url, args)
            return
        try:
            from pg_server import Server

            server = Server(durable=True)
        except BaseException as err:  # a missing server is only reported
            print(f"PostgreSQL: skipped ({type(err).__name__}: {err})")
            return
        try:
            figures("PostgreSQL", server.database, args)
        finally:
            server.close()


if __name__ == "__main__":
    main()
