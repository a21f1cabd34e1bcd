"""``orbits-nb command KEY NAME``: run a custom command of a recorded agent.

The command runs as a new run holding the agent's lease; another command on the same
identity, in any process, waits for it (``--on-conflict fail``: exits 1 at once).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from orbits_nb.cli import arguments
from orbits_nb.cli.state import missing


def register(commands: Any) -> None:
    command = commands.add_parser("command", help="run a command of an agent (e.g. rollback)")
    command.add_argument("key", metavar="KEY", type=arguments.text,
                         help="the agent's key (kind:identity) or identity")
    command.add_argument("name", metavar="NAME", type=arguments.text,
                         help="the command: a command_<NAME> method, or reconcile")
    command.add_argument("--on-conflict", choices=("wait", "fail"), default="wait",
                         help="when another command holds the agent: wait (default) or fail")
    command.set_defaults(handler=cmd_command)


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
