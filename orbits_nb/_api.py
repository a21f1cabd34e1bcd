"""Module-level conveniences on the default engine: history, sql, get_run, resume."""

from __future__ import annotations

from typing import TYPE_CHECKING

from orbits_nb.core.errors import InvalidArgument
from orbits_nb.engine.engine import Engine, default_engine, engine_for

if TYPE_CHECKING:
    from pathlib import Path

    import duckdb

    from orbits_nb.engine.run import Run


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def history(*, workflow: str | None = None, status: str | None = None,
            since: str | None = None, limit: int | None = 200,
            engine: Engine | None = None) -> duckdb.DuckDBPyRelation:
    """Past runs, newest first, as an in-memory DuckDB relation (``.df()`` for pandas).

    ``workflow`` matches the class name (or ``module:Class``); ``since`` is a date or
    timestamp, e.g. ``"2026-11-01"``.

    >>> ob.history(status="failed").df()          # doctest: +SKIP
    """
    engine = engine or default_engine()
    engine.writer.flush()
    where = ["parent_run_id IS NULL"]
    if workflow:
        where.append(f"(workflow = {_quote(workflow)} OR workflow LIKE "
                     f"{_quote('%:' + workflow)})")
    if status:
        where.append(f"status = {_quote(status)}")
    if since:
        where.append(f"created_at >= CAST({_quote(since)} AS TIMESTAMPTZ)")
    query = ("SELECT run_id, workflow, status, created_at, finished_at, duration_s, "
             "executions, args, result, error FROM runs WHERE " + " AND ".join(where) +
             " ORDER BY created_at DESC")
    if limit:
        query += f" LIMIT {int(limit)}"
    return engine.store.relation(query)


def sql(query: str, *, engine: Engine | None = None) -> duckdb.DuckDBPyRelation:
    """Run a SQL query against the state file; the result is an in-memory relation."""
    engine = engine or default_engine()
    engine.writer.flush()
    return engine.store.relation(query)


def get_run(run_id: str, *, state: str | Path | None = None,
            engine: Engine | None = None) -> Run:
    """The handle of a recorded (or live) run.

    ``state`` opens another state file than the default one, e.g. the one an executed
    runbook's report names: ``ob.get_run("Deploy-1a2b", state="state.duckdb")``.
    """
    if state is not None:
        if engine is not None:
            raise InvalidArgument("get_run() takes state= or engine=, not both")
        engine = engine_for(state)
    return (engine or default_engine()).get_run(run_id)


def resume(run_id: str, *, engine: Engine | None = None) -> Run:
    """Resume a run by importing its workflow class and starting it again."""
    return get_run(run_id, engine=engine).retry()


