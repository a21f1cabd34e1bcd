"""Event logs shaped like the engine's, for the history tables: generated and compared.

``random_history`` follows the engine's grammar: runs (top-level ones maybe queued first)
created then started (again after a failure, a cancel, a crash, parking or a reset),
steps whose incarnations start with their static data and go through retries, waiting
watchers with bags, success, failure or cancellation (or stay running: a crash), nested
runs under workflow steps, and resets that discard a step and what followed it. ``ts``
grows with every event.

``old_views`` are the views of migrations 1 to 4 (the history before it was kept as
tables), evaluated over the same events: the reference the tables must equal.
"""

from __future__ import annotations

import random
from typing import Any

import duckdb

from orbits_nb.core.state import Event
from orbits_nb.store import schema

HISTORY = ("runs", "steps", "attempts", "executions")
KEYS = {"runs": "run_id", "steps": "run_id, step", "attempts": "run_id, step, attempt",
        "executions": "run_id, execution"}
#: Columns of the earlier views whose meaning stayed: durations are now the work as
#: executed, an attempt's status may be ``interrupted``, a reset run is ``pending``.
OLD_COLUMNS = {
    "runs": "run_id, workflow, args, created_at, started_at, parent_run_id, meta, "
            "executions, updated_at",
    "steps": "run_id, step, name, pos, status, attempts, action, args, executor, "
             "started_at, finished_at, result, error, bag, parents, child_run_id",
    "attempts": "run_id, step, attempt, started_at, last_event_at, error",
}


class _Log:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.events: list[Event] = []
        self.children: set[str] = set()
        self.kinds: dict[str, bool] = {}
        self.ts = 1_700_000_000.0

    def add(self, run_id: str, kind: str, step: str | None = None,
            attempt: int | None = None, **data: Any) -> None:
        self.ts += self.rng.choice((0.001, 0.25, 1.5, 7.0))
        self.events.append(Event(run_id, kind, step, attempt, data, ts=self.ts))


def random_history(seed: int, runs: int = 4) -> list[Event]:
    """A plausible event log of ``runs`` top-level runs (see the module)."""
    rng = random.Random(seed)
    log = _Log(rng)
    for number in range(runs):
        _run(log, f"R{seed}-{number}", parent=None, depth=0)
    return log.events


def _run(log: _Log, run_id: str, parent: str | None, depth: int) -> None:
    rng = log.rng
    log.add(run_id, "run.created", workflow=f"flows:Flow{depth}", args={"n": len(run_id)},
            parent_run_id=parent, parent_step=run_id.rsplit("/", 1)[-1] if parent else None,
            meta={"notebook": "nb.ipynb"} if rng.random() < 0.3 else {})
    if parent is None and rng.random() < 0.3:
        log.add(run_id, "run.queued", queue="q", key=None)
    steps = [f"s{i}" for i in range(rng.randint(1, 5))]
    state: dict[str, dict[str, Any]] = {}
    for execution in range(rng.randint(1, 3)):
        log.add(run_id, "run.started", host="h", pid=100 + execution)
        if rng.random() < 0.2:
            log.add(run_id, "run.meta", meta={"tag": execution})
        outcome = "succeeded"
        for pos, key in enumerate(steps):
            done = state.get(key, {}).get("status") == "succeeded"
            if done:
                continue
            status = _step(log, run_id, key, pos, state, depth)
            if status != "succeeded":
                outcome = "failed" if status == "failed" else rng.choice(("cancelled", "crash"))
                break
        if outcome == "succeeded":
            log.add(run_id, "run.succeeded", result={"steps": len(steps)})
            if rng.random() < 0.7:
                break
        elif outcome == "failed":
            log.add(run_id, "run.failed", error={"type": "StepFailed", "message": "boom"})
        elif outcome == "crash" and rng.random() < 0.5:
            # It gave up its slot (a timer, a watcher's pause, a draining worker).
            reason = rng.choice(("timer", "watcher", "drain"))
            log.add(run_id, "run.parked", until=log.ts + 60, reason=reason,
                    watcher=None if reason == "drain" else key)
        elif outcome == "cancelled":
            log.add(run_id, "run.cancelled", error={"type": "RunCancelled",
                                                    "message": "the run was cancelled"})
        if state and rng.random() < 0.5:
            start = rng.randrange(len(steps))
            dropped = [k for k in steps[start:] if k in state]
            if dropped:
                log.add(run_id, "run.reset", steps=dropped, **{"from": steps[start]})
                for key in dropped:
                    state.pop(key)


def _step(log: _Log, run_id: str, key: str, pos: int, state: dict[str, dict[str, Any]],
          depth: int) -> str:
    rng = log.rng
    record = state.setdefault(key, {"attempts": 0, "status": None, "watching": False})
    # A step key keeps its action: whether it is a nested workflow is decided once.
    kinds = log.kinds.setdefault(f"{run_id}/{key}", depth < 2 and pos == 0 and
                                 rng.random() < 0.3)
    child = f"{run_id}/{key}" if kinds else None
    static = {"name": key, "pos": pos, "action": f"acts:{'Flow' if child else 'Act'}{pos}",
              "args": {"pos": pos}, "executor": "local", "parents": [f"s{pos - 1}"] if pos
              else [], "concurrent": False, **({"child_run_id": child} if child else {})}
    fresh = record["status"] in (None, "failed", "cancelled") and not record["watching"]
    while True:
        record["attempts"] += 1
        attempt = record["attempts"]
        log.add(run_id, "step.started", key, attempt,
                **(static if fresh else {"resumed": record["watching"]}))
        fresh = False
        if child and child not in log.children:  # later incarnations resume the child run
            log.children.add(child)
            _run(log, child, parent=run_id, depth=depth + 1)
        roll = rng.random()
        if roll < 0.15:
            log.add(run_id, "step.retrying", key, attempt,
                    error={"type": "ValueError", "message": f"try {attempt}"}, delay=0.1)
            continue
        if roll < 0.35 and not record["watching"]:
            record["watching"] = True
            log.add(run_id, "step.waiting", key, attempt, bag={"polls": 0})
            for poll in range(rng.randint(0, 2)):
                log.add(run_id, "step.bag", key, attempt, bag={"polls": poll + 1})
        status = rng.choices(("succeeded", "failed", "cancelled", "running"),
                             (6, 2, 1, 1))[0]
        if status == "succeeded":
            log.add(run_id, "step.succeeded", key, attempt, result={"key": key})
        elif status == "failed":
            log.add(run_id, "step.failed", key, attempt,
                    error={"type": "ValueError", "message": "failed"})
        elif status == "cancelled":
            log.add(run_id, "step.cancelled", key, attempt)
        if status in ("succeeded", "failed"):
            record["watching"] = False
        record["status"] = status
        return status


def old_views(events_of: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """An in-memory database with the events of ``events_of`` and the views of the
    history before it was kept as tables."""
    con = duckdb.connect(":memory:")
    con.execute("CREATE TABLE events (seq BIGINT, ts DOUBLE, run_id VARCHAR, step VARCHAR, "
                "kind VARCHAR, attempt INTEGER, data JSON)")
    rows = events_of.execute("SELECT seq, ts, run_id, step, kind, attempt, "
                             "CAST(data AS VARCHAR) FROM events").fetchall()
    if rows:
        con.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    for view in (schema._RUNS, schema._LIVE_STEP_EVENTS, schema._STEPS, schema._ATTEMPTS):
        con.execute(view)
    return con


def table_rows(con: duckdb.DuckDBPyConnection, table: str,
               only: str | None = None) -> list[tuple[Any, ...]]:
    """Every row of a history table (JSON as text), in key order (``only`` those
    columns, comma-separated)."""
    columns = ([c.strip() for c in only.split(",")] if only else
               [row[0] for row in con.execute(f"DESCRIBE {table}").fetchall()])
    shown = ", ".join(f"CAST({c} AS VARCHAR)" if c in ("args", "result", "error", "bag",
                                                       "parents", "meta") else c
                      for c in columns)
    return con.execute(f"SELECT {shown} FROM {table} ORDER BY {KEYS[table]}").fetchall()


def same_rows(got: list[tuple[Any, ...]], want: list[tuple[Any, ...]]) -> bool:
    """Equal rows, durations within the microsecond that timestamps keep."""
    if len(got) != len(want):
        return False
    for a, b in zip(got, want, strict=True):
        for x, y in zip(a, b, strict=True):
            if isinstance(x, float) and isinstance(y, float):
                if abs(x - y) > 2e-6:
                    return False
            elif x != y:
                return False
    return True
