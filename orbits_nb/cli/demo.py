"""``orbits-nb demo``: the flagship runbook against a local AWS emulator, twice."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from orbits_nb.cli.arguments import seconds_or_zero

_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")


def _client(text: str) -> str:
    """A client name the flagship accepts (checked before any server starts)."""
    from orbits_nb.core.errors import InvalidArgument
    from orbits_nb.flagship.backend import check_client

    try:
        return check_client(text)
    except InvalidArgument as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _region(text: str) -> str:
    if not _REGION.match(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not an AWS region name (e.g. "
                                         "eu-west-1, us-east-1)")
    return text


def register(commands: Any) -> None:
    demo = commands.add_parser(
        "demo", help="run the DeployBackend runbook on a local AWS emulator (twice)",
        description="Start moto's AWS emulator and a webhook receiver on 127.0.0.1, run "
                    "notebooks/deploy_backend.ipynb headlessly twice (the second run "
                    "replays and creates nothing), stop them, and print where the "
                    "executed notebooks and the state are (output/demo/<timestamp> in the "
                    "project root unless --out is given).")
    demo.add_argument("--client", default="acme", type=_client,
                      help="client to deploy (default: acme)")
    demo.add_argument("--region", default="eu-west-1", type=_region,
                      help="AWS region (default: eu-west-1)")
    demo.add_argument("--out", type=Path, help="output folder (default: "
                      "output/demo/<timestamp> in the project root)")
    demo.add_argument("--notebook", type=Path, help="runbook to run (default: "
                      "notebooks/deploy_backend.ipynb)")
    demo.add_argument("--fail", action="store_true",
                      help="use an e-mail AWS refuses, to show the failure alert")
    demo.add_argument("--account-delay", type=seconds_or_zero, default=0.0, metavar="SECONDS",
                      help="keep new accounts IN_PROGRESS this long, as AWS does")
    demo.add_argument("--drift", action="store_true",
                      help="then change the stack's SSM parameter by hand and show "
                           "`orbits-nb drift` (exit 1, the diff) and `orbits-nb reconcile`")
    demo.set_defaults(handler=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    from orbits_nb.demo import run_demo

    runs = run_demo(client=args.client, region=args.region, notebook=args.notebook,
                    out=args.out, fail=args.fail, account_delay=args.account_delay,
                    drift=args.drift)
    if args.fail:
        return 0 if runs and not runs[0].ok else 1
    return 0 if all(run.ok for run in runs) else 1
