"""``orbits-nb runs``, ``show RUN_ID`` and ``sql QUERY`` (``reset`` is in :mod:`.control`)."""

from __future__ import annotations

import argparse
from typing import Any

from orbits_nb._filters import RUN_STATUSES
from orbits_nb.cli import arguments
from orbits_nb.cli.hints import recorded_fields, swap_hint
from orbits_nb.cli.output import print_relation, print_rows
from orbits_nb.cli.state import existing_state, missing
from orbits_nb.core.errors import RunNotFound

# The error column of `runs`, with the CLI hint of a recorded error in place of its
# Python hint (see orbits_nb.cli.hints).
_ERROR = ("CASE WHEN error->'fields'->>'cli_hint' IS NOT NULL AND error->'fields'->>'hint' "
          "IS NOT NULL THEN replace(error->>'message', error->'fields'->>'hint', "
          "error->'fields'->>'cli_hint') ELSE error->>'message' END")


def register(commands: Any) -> None:
    runs = commands.add_parser("runs", help="list recent runs")
    runs.add_argument("--workflow", type=arguments.text,
                      help="only this workflow class (with --notebooks: this runbook)")
    runs.add_argument("--status", choices=RUN_STATUSES,
                      help="only runs in this status (notebook runs: running, succeeded "
                           "or failed)")
    runs.add_argument("--since", type=arguments.since, metavar="WHEN",
                      help="only runs created since WHEN: an ISO date or date-time "
                           "(2026-11-01, '2026-11-01 14:00') or an age (30m, 12h, 7d, 2w)")
    runs.add_argument("--had-failures", action="store_true",
                      help="only runs in which any attempt or execution failed, even if "
                           "fixed later (--status failed: those whose last execution "
                           "failed)")
    runs.add_argument("--limit", type=arguments.positive_int, default=50, metavar="N",
                      help="at most N runs (default: 50)")
    runs.add_argument("--json", action="store_true", help="print JSON lines")
    runs.add_argument("--notebooks", action="store_true",
                      help="list notebook runs (runbooks) instead; --workflow then "
                           "names the runbook")
    runs.set_defaults(handler=cmd_runs)

    show = commands.add_parser("show", help="show a run's steps and status")
    show.add_argument("run_id", metavar="RUN_ID", type=arguments.text)
    show.add_argument("--logs", action="store_true", help="also print captured logs")
    show.set_defaults(handler=cmd_show)

    sql = commands.add_parser("sql", help="run one read-only SQL query against the store")
    sql.add_argument("query", type=arguments.text)
    sql.add_argument("--json", action="store_true", help="print JSON lines")
    sql.set_defaults(handler=cmd_sql)


def cmd_runs(args: argparse.Namespace) -> int:
    if existing_state() is None:
        return 0
    if args.notebooks:
        from orbits_nb.cli.runbooks import print_notebook_runs

        return print_notebook_runs(args)
    from orbits_nb._api import history

    relation = history(workflow=args.workflow, status=args.status, since=args.since,
                       limit=args.limit, had_failures=True if args.had_failures else None)
    relation = relation.project(
        "run_id, split_part(workflow, ':', 2) AS workflow, status, "
        "strftime(created_at, '%Y-%m-%d %H:%M:%S') AS created, round(duration_s, 3) AS "
        f"duration_s, executions, had_failures, {_ERROR} AS error")
    columns = list(relation.columns)
    rows = [dict(zip(columns, row, strict=True)) for row in relation.fetchall()]
    notes = _executing(rows)
    if notes:
        columns.append("executing_in")
        for row in rows:
            row["executing_in"] = notes.get(row["run_id"], "")
    print_rows(columns, rows, as_json=args.json)
    return 0


def _executing(rows: list[dict[str, Any]]) -> dict[str, str]:
    """For the runs not ended: who executes it (``worker w1, pid 4 on h``), or what
    a queued run waits for (``waiting for a worker``, ``sleeping until 14:05:09``)."""
    from orbits_nb.core.state import fold
    from orbits_nb.engine.engine import default_engine
    from orbits_nb.views.status import waiting_text, where_text

    store = default_engine().store
    notes = {}
    for row in rows:
        if row["status"] not in ("queued", "running"):
            continue
        state = fold(row["run_id"], store.load_run(row["run_id"]))
        if state.status == "queued":
            notes[state.run_id] = waiting_text(state.not_before, state.parked_for)
        elif state.spans:
            notes[state.run_id] = where_text({"owner": state.owner,
                                              "worker": state.spans[-1].worker})
    return notes


def _run(run_id: str) -> Any:
    absent = missing(f"run {run_id!r}", RunNotFound, run_id=run_id)
    if absent is not None:
        raise absent
    from orbits_nb._api import get_run

    return get_run(run_id)


def cmd_show(args: argparse.Namespace) -> int:
    run = _run(args.run_id)
    error = run.error
    fields = recorded_fields(error)
    print(swap_hint(repr(run), fields))
    if error and error.get("traceback"):
        print("\n" + swap_hint(str(error["traceback"]), fields).rstrip())
    if args.logs:
        print("\nlogs:\n" + (run.logs() or "(none)"))
    return 1 if run.status == "failed" else 0


def cmd_sql(args: argparse.Namespace) -> int:
    from orbits_nb._api import sql

    if existing_state() is None:
        from orbits_nb.store import open_store

        # Still check the query (syntax, tables), against an empty store in memory.
        open_store(":memory:").relation(args.query)
        return 0
    print_relation(sql(args.query), as_json=args.json)
    return 0
