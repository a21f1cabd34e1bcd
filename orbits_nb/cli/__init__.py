"""The ``orbits-nb`` command line.

Each command family lives in its own module with a ``register(subparsers)`` function
that adds its sub-commands; :data:`MODULES` lists them in help order.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from orbits_nb.core.errors import OrbitsError

MODULES = [
    "orbits_nb.cli.runs",
    "orbits_nb.cli.runbooks",
    "orbits_nb.cli.approvals",
    "orbits_nb.cli.demo",
    "orbits_nb.cli.resources",
]


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="orbits-nb",
        description="orbits_nb: durable notebook runbooks. Runs, runbooks and schedules, "
                    "approvals, resources and drift, on one DuckDB state file.",
    )
    root.add_argument("--state", metavar="PATH",
                      help="state file (default: $ORBITS_NB_STATE, else "
                           ".orbits_nb/state.duckdb in the project root)")
    commands = root.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    for name in MODULES:
        importlib.import_module(name).register(commands)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.state:
        import os

        os.environ["ORBITS_NB_STATE"] = args.state
    try:
        code: int = args.handler(args)
    except OrbitsError as err:
        print(f"orbits-nb: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code
