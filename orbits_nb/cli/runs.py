"""``orbits-nb runs``, ``show RUN_ID`` and ``sql QUERY``."""

from __future__ import annotations

import argparse
from typing import Any

from orbits_nb.cli.output import print_relation


def register(commands: Any) -> None:
    runs = commands.add_parser("runs", help="list recent runs")
    runs.add_argument("--workflow", help="only this workflow class")
    runs.add_argument("--status", choices=["pending", "running", "succeeded", "failed",
                                           "cancelled"])
    runs.add_argument("--since", help="only runs created since this date/time")
    runs.add_argument("--limit", type=int, default=50)
    runs.add_argument("--json", action="store_true", help="print JSON lines")
    runs.add_argument("--notebooks", action="store_true",
                      help="list notebook runs (runbooks) instead; --workflow then "
                           "names the runbook")
    runs.set_defaults(handler=cmd_runs)

    show = commands.add_parser("show", help="show a run's steps and status")
    show.add_argument("run_id")
    show.add_argument("--logs", action="store_true", help="also print captured logs")
    show.set_defaults(handler=cmd_show)

    sql = commands.add_parser("sql", help="run a SQL query against the state store")
    sql.add_argument("query")
    sql.add_argument("--json", action="store_true", help="print JSON lines")
    sql.set_defaults(handler=cmd_sql)


def cmd_runs(args: argparse.Namespace) -> int:
    if args.notebooks:
        from orbits_nb.cli.runbooks import print_notebook_runs

        return print_notebook_runs(args)
    from orbits_nb._api import history

    relation = history(workflow=args.workflow, status=args.status, since=args.since,
                       limit=args.limit)
    relation = relation.project(
        "run_id, split_part(workflow, ':', 2) AS workflow, status, "
        "strftime(created_at, '%Y-%m-%d %H:%M:%S') AS created, round(duration_s, 3) AS "
        "duration_s, executions, error->>'message' AS error")
    print_relation(relation, as_json=args.json)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from orbits_nb._api import get_run

    run = get_run(args.run_id)
    print(repr(run))
    error = run.error
    if error and error.get("traceback"):
        print("\n" + str(error["traceback"]).rstrip())
    if args.logs:
        print("\nlogs:\n" + (run.logs() or "(none)"))
    return 1 if run.status == "failed" else 0


def cmd_sql(args: argparse.Namespace) -> int:
    from orbits_nb._api import sql

    print_relation(sql(args.query), as_json=args.json)
    return 0
