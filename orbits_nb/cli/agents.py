"""``orbits-nb command KEY NAME``: run a custom command of a recorded agent;
``orbits-nb plan``: what reconciling recorded resources would do, without doing it;
``orbits-nb cycles``: a worker running the cycles of resources with ``cycle_every``.

The command runs as a new run holding the agent's lease; another command on the same
identity, in any process, waits for it (``--on-conflict fail``: exits 1 at once).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from orbits_nb.cli import arguments
from orbits_nb.cli.state import existing_state, missing


def register(commands: Any) -> None:
    command = commands.add_parser("command", help="run a command of an agent (e.g. rollback)")
    command.add_argument("key", metavar="KEY", type=arguments.text,
                         help="the agent's key (kind:identity) or identity")
    command.add_argument("name", metavar="NAME", type=arguments.text,
                         help="the command: a command_<NAME> method, or reconcile")
    command.add_argument("--on-conflict", choices=("wait", "fail"), default="wait",
                         help="when another command holds the agent: wait (default) or fail")
    command.set_defaults(handler=cmd_command)

    plan = commands.add_parser("plan", help="what reconcile would do, without doing it "
                                            "(exit 1 when something would change)")
    plan.add_argument("select", nargs="*", metavar="KEY", type=arguments.text,
                      help="resource keys (globs allowed); default: every resource")
    plan.add_argument("--workflow", type=arguments.text,
                      help="only the resources of this workflow (class or root run id)")
    plan.add_argument("--type", action="append", metavar="KIND", type=arguments.text,
                      help="resource kind, repeatable")
    plan.set_defaults(handler=cmd_plan)

    cycles = commands.add_parser("cycles", help="run the cycles of resources that declare "
                                                "cycle_every (a worker; --once for cron)")
    cycles.add_argument("--once", action="store_true", help="one pass, then exit")
    cycles.add_argument("--every", type=arguments.text, default="1m", metavar="DURATION",
                        help="how often to look for due cycles (default: 1m)")
    cycles.set_defaults(handler=cmd_cycles)


def cmd_command(args: argparse.Namespace) -> int:
    from orbits_nb.resources.api import command
    from orbits_nb.resources.errors import ResourceNotFound

    absent = missing(f"recorded resource {args.key!r}", ResourceNotFound, key=args.key)
    if absent is not None:
        raise absent
    run = command(args.key, args.name, on_conflict=args.on_conflict)
    print(json.dumps(run.result, default=str))
    print(f"run {run.run_id}")
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    from orbits_nb.engine.engine import default_engine
    from orbits_nb.resources import records
    from orbits_nb.resources.planning import plan_recorded

    if existing_state("no resources recorded, nothing to plan") is None:
        return 0
    engine = default_engine()
    rows = records.select(engine.store, kinds=args.type or (), workflow=args.workflow,
                          keys=args.select)
    planned = plan_recorded(rows, engine)
    print(planned.text())
    return 1 if planned.changes else 0


def cmd_cycles(args: argparse.Namespace) -> int:
    import time

    from orbits_nb.engine.engine import default_engine
    from orbits_nb.resources import records
    from orbits_nb.resources.cycles import run_due
    from orbits_nb.resources.report import on_engine
    from orbits_nb.resources.watch import parse_every

    interval = parse_every(args.every)
    if existing_state("no resources recorded, no cycles to run") is None:
        return 0
    engine = default_engine()
    last: dict[str, float] = {}
    failed = False
    while True:
        rows = records.select(engine.store)
        for done in on_engine(engine, run_due(engine, rows, last)):
            failed |= done["ran"] == "error"
            print(json.dumps(done, default=str), flush=True)
        if args.once:
            return 1 if failed else 0
        time.sleep(interval)
