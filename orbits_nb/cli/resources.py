"""``orbits-nb resources``, ``drift``, ``reconcile``, ``accept``, ``uninstall``,
``drift-history``: resources and drift from a terminal or cron.

``orbits-nb drift`` exits 0 when every resource is in sync and 1 otherwise, so a cron
job or CI step can alert on drift.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from orbits_nb.cli import arguments
from orbits_nb.cli.output import print_relation
from orbits_nb.cli.state import existing_state, missing


def register(commands: Any) -> None:
    listing = commands.add_parser("resources", help="list recorded resources")
    listing.add_argument("--all", action="store_true", help="include uninstalled ones")
    listing.add_argument("--json", action="store_true", help="print JSON lines")
    listing.set_defaults(handler=cmd_resources)

    drift = commands.add_parser("drift", help="check resources for drift (exit 1 on drift)")
    _filters(drift)
    drift.add_argument("--no-record", action="store_true",
                       help="do not append the results to the drift history")
    drift.add_argument("--json", action="store_true", help="print one JSON object per line")
    drift.set_defaults(handler=cmd_drift)

    reconcile = commands.add_parser("reconcile", help="converge drifted/missing resources")
    reconcile.add_argument("select", nargs="*", metavar="KEY", type=arguments.text,
                           help="keys, identities or globs (default: all drifted/missing)")
    reconcile.add_argument("--concurrency", type=arguments.positive_int, default=8,
                           metavar="N", help="resources converged at once (default: 8)")
    reconcile.set_defaults(handler=cmd_reconcile)

    accept = commands.add_parser("accept", help="adopt the observed state as desired")
    accept.add_argument("select", nargs="+", metavar="KEY", type=arguments.text,
                        help="keys, identities or globs of drifted resources")
    accept.set_defaults(handler=cmd_accept)

    uninstall = commands.add_parser("uninstall", help="delete resources no workflow uses")
    uninstall.add_argument("targets", nargs="+", metavar="KEY", type=arguments.text,
                           help="keys or identities")
    uninstall.add_argument("--release", action="append", default=[], metavar="USER",
                           type=arguments.text,
                           help="root run id or workflow on whose behalf to uninstall")
    uninstall.add_argument("--force", action="store_true",
                           help="delete even when other workflows still use it")
    uninstall.add_argument("--confirm", action="append", default=[], metavar="IDENTITY",
                           type=arguments.text,
                           help="repeat the identity of a resource that asks for it "
                                "(AWS accounts and stacks), repeatable")
    uninstall.set_defaults(handler=cmd_uninstall)

    history = commands.add_parser("drift-history", help="recorded drift checks, newest first")
    history.add_argument("key", nargs="?", metavar="KEY", type=arguments.text,
                         help="a resource key (glob allowed)")
    history.add_argument("--limit", type=arguments.positive_int, default=50, metavar="N",
                         help="at most N checks (default: 50)")
    history.add_argument("--json", action="store_true", help="print JSON lines")
    history.set_defaults(handler=cmd_history)


def _filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--type", action="append", metavar="KIND", type=arguments.text,
                        help="resource kind (class name), repeatable")
    parser.add_argument("--identity", type=arguments.text, help="identity, exact or glob")
    parser.add_argument("--workflow", type=arguments.text,
                        help="workflow class or root run id using it")
    parser.add_argument("--key", type=arguments.text,
                        help="resource key (kind:identity), exact or glob")
    parser.add_argument("--concurrency", type=arguments.positive_int, default=32,
                        metavar="N", help="resources observed at once (default: 32)")


def _require(targets: list[str]) -> None:
    from orbits_nb.resources.errors import ResourceNotFound

    absent = missing(f"recorded resource {targets[0]!r}", ResourceNotFound, key=targets[0])
    if absent is not None:
        raise absent


def cmd_resources(args: argparse.Namespace) -> int:
    from orbits_nb.resources.api import list_resources

    if existing_state() is None:
        return 0
    relation = list_resources(include_deleted=args.all).project(
        "resource_key, lifecycle, drift_status, strftime(checked_at, '%Y-%m-%d %H:%M:%S') "
        "AS checked_at, strftime(drift_since, '%Y-%m-%d %H:%M:%S') AS drift_since, users")
    print_relation(relation, as_json=args.json, width=100)
    return 0


def cmd_drift(args: argparse.Namespace) -> int:
    from orbits_nb.resources.api import drift

    if existing_state("no resources recorded") is None:
        return 0
    report = drift(type=args.type, identity=args.identity, workflow=args.workflow,
                   key=args.key, concurrency=args.concurrency, record=not args.no_record)
    if args.json:
        for check in report:
            print(json.dumps(check.to_json(), default=str))
    else:
        print(report.text())
    return 0 if report.ok else 1


def cmd_reconcile(args: argparse.Namespace) -> int:
    from orbits_nb.resources.api import drift

    if existing_state("no resources recorded, nothing to reconcile") is None:
        return 0
    report = drift(concurrency=args.concurrency)
    targets = report.select(args.select or None)
    actionable = [c.key for c in targets if not c.ok]
    if not actionable:
        print("nothing to reconcile: " + report.summary())
        return 0
    run = report.reconcile(actionable, concurrency=args.concurrency)
    assert run is not None
    print(f"reconciled {len(actionable)} resource(s) in run {run.run_id}")
    print(report.text())
    return 0 if report.ok else 1


def cmd_accept(args: argparse.Namespace) -> int:
    from orbits_nb.resources.api import drift

    _require(args.select)
    report = drift()
    keys = report.accept(args.select)
    print(f"accepted the observed state of {len(keys)} resource(s): " + ", ".join(keys))
    return 0


def cmd_uninstall(args: argparse.Namespace) -> int:
    from orbits_nb.resources.api import uninstall

    _require(args.targets)
    run = uninstall(*args.targets, force=args.force, release=args.release,
                    confirm=args.confirm)
    for key, outcome in (run.result or {}).items():
        print(f"{key}: {'deleted' if outcome.get('deleted') else 'kept'}")
    print(f"run {run.run_id}")
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    from orbits_nb.resources.api import drift_history

    if existing_state() is None:
        return 0
    relation = drift_history(args.key, limit=args.limit).project(
        "check_id, resource_key, strftime(checked_at, '%Y-%m-%d %H:%M:%S') AS checked_at, "
        "source, status, CAST(diffs AS VARCHAR) AS diffs, error, run_id")
    print_relation(relation, as_json=args.json, width=100)
    return 0
