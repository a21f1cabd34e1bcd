"""Module-level conveniences on the default engine: history, sql, get_run, resume."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, cast

from orbits_nb._filters import check_limit, check_status, check_text, since_epoch
from orbits_nb.core.errors import InvalidArgument
from orbits_nb.engine.engine import Engine, default_engine, engine_for

if TYPE_CHECKING:
    from pathlib import Path

    import duckdb

    from orbits_nb.engine.run import Run


def history(*, workflow: str | None = None, status: str | None = None,
            since: str | dt.date | dt.timedelta | None = None, limit: int | None = 200,
            had_failures: bool | None = None,
            engine: Engine | None = None) -> duckdb.DuckDBPyRelation:
    """Past runs, newest first, as an in-memory DuckDB relation (``.df()`` for pandas).

    ``workflow`` matches the class name (or ``module:Class``); ``status`` is one of
    ``pending``, ``running``, ``succeeded``, ``failed``, ``cancelled``; ``since`` is a
    ``datetime``/``date``, an ISO string (``"2026-11-01"``, ``"2026-11-01 14:00"``) or an
    age (``timedelta(days=7)``, ``"7d"``, ``"12h"``); ``limit`` a positive int or None.
    ``had_failures=True`` keeps the runs in which any attempt or execution failed (theirs
    or that of a run nested in them, at any depth), even if a later one succeeded
    (``status="failed"`` keeps those whose latest execution failed); ``False`` the runs
    that never failed. A bad value raises
    :class:`~orbits_nb.InvalidArgument` naming it.

    >>> ob.history(status="failed", since="7d").df()          # doctest: +SKIP
    >>> ob.history(had_failures=True).df()                    # doctest: +SKIP
    """
    workflow = check_text(workflow, "workflow")
    status = check_status(status)
    after = None if since is None else since_epoch(since)
    limit = check_limit(limit)
    if had_failures is not None and not isinstance(had_failures, bool):
        raise InvalidArgument(f"history(had_failures=...) must be True, False or None, "
                              f"got {had_failures!r}")
    engine = engine or default_engine()
    engine.writer.flush_for_read()
    from orbits_nb.engine.table import shown

    return shown(cast("duckdb.DuckDBPyRelation", engine.store.history(
        workflow=workflow, status=status, since=after, limit=limit,
        had_failures=had_failures)))


def sql(query: str, *, engine: Engine | None = None) -> duckdb.DuckDBPyRelation:
    """Run one read-only SQL query against the state file; the result is an in-memory
    relation. Several statements, or a statement that would write, are refused."""
    check_text(query, "query")
    engine = engine or default_engine()
    engine.writer.flush_for_read()
    return cast("duckdb.DuckDBPyRelation", engine.store.relation(query))


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


