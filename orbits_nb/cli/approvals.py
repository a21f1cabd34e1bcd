"""``orbits-nb approvals``, ``approve RUN_ID STEP`` and ``reject RUN_ID STEP``."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from orbits_nb.cli import arguments
from orbits_nb.cli.state import existing_state, missing
from orbits_nb.core.errors import RunNotFound
from orbits_nb.engine.table import Table


def register(commands: Any) -> None:
    listing = commands.add_parser("approvals", help="list approval steps waiting for a "
                                  "decision")
    listing.add_argument("--run", metavar="RUN_ID", type=arguments.text,
                         help="only this run (and nested runs)")
    listing.add_argument("--json", action="store_true", help="print JSON lines")
    listing.set_defaults(handler=cmd_approvals)
    for name, decision in (("approve", "approved"), ("reject", "rejected")):
        sub = commands.add_parser(name, help=f"{name} a pending approval step")
        sub.add_argument("run_id", metavar="RUN_ID", type=arguments.text)
        sub.add_argument("step", metavar="STEP", type=_step,
                         help="the step key (a path like deploy/approve for nested runs)")
        sub.add_argument("-m", "--comment", default="", help="why (recorded with the "
                         "decision)")
        sub.add_argument("--by", type=arguments.text,
                         help="who decides (default: $ORBITS_NB_USER, $JUPYTERHUB_USER, "
                              "else the OS user)")
        sub.set_defaults(handler=cmd_decide, decision=decision)


def _step(text: str) -> str:
    step = text.strip("/")
    if not step.strip():
        raise argparse.ArgumentTypeError(f"{text!r} names no step; give a step key, e.g. "
                                         "approve-prod")
    return step


def _store() -> Any:
    from orbits_nb.engine.engine import default_engine

    return default_engine().store


def cmd_approvals(args: argparse.Namespace) -> int:
    from orbits_nb.approval import check_run, pending

    if args.run is not None:
        absent = missing(f"run {args.run!r}", RunNotFound, run_id=args.run)
        if absent is not None:
            raise absent
        check_run(_store(), args.run)
    elif existing_state() is None:
        return 0
    waiting = pending(_store(), args.run)
    if args.json:
        for item in waiting:
            print(json.dumps({"run_id": item.run_id, "step": item.step,
                              "prompt": item.prompt, "requested_at": item.requested_at,
                              "requested_by": item.requested_by,
                              "step_status": item.step_status}))
        return 0
    if not waiting:
        print("no approvals pending")
        return 0
    rows = [{"run_id": item.run_id, "step": item.step, "prompt": item.prompt,
             "requested": time.strftime("%Y-%m-%d %H:%M:%S",
                                        time.localtime(item.requested_at)),
             "by": item.requested_by} for item in waiting]
    print(Table(["run_id", "step", "prompt", "requested", "by"], rows).text(width=60))
    return 0


def cmd_decide(args: argparse.Namespace) -> int:
    from orbits_nb.approval import decide

    absent = missing(f"run {args.run_id!r}", RunNotFound, run_id=args.run_id)
    if absent is not None:
        raise absent
    result = decide(_store(), args.run_id, args.step, args.decision,
                    by=args.by, comment=args.comment, via="cli")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(result.at))
    print(f"{result.decision}: step {result.step!r} of run {result.run_id!r} by "
          f"{result.by} at {when}" + (f" ({result.comment})" if result.comment else ""))
    print("the run continues within a second if it is executing; otherwise when it "
          "is resumed")
    return 0
