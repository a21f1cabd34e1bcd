"""``orbits-nb migrate --from STATE --to STATE``: move a project to another store."""

from __future__ import annotations

import argparse
from typing import Any

from orbits_nb.cli import arguments
from orbits_nb.core.errors import OrbitsError


def register(commands: Any) -> None:
    migrate = commands.add_parser(
        "migrate", help="copy every record of one store into another",
        description="Copy the whole history (events, logs, resources, drift checks, "
                    "notebook runs, schedules, approvals) from one store into another, "
                    "in one transaction: a DuckDB file to a PostgreSQL team store "
                    "(postgresql://user@host/db), back, or file to file. The target "
                    "must be empty unless --merge. Copied unfinished runs resume there "
                    "(`orbits-nb --state TARGET resume RUN_ID`) from their completed "
                    "steps.")
    migrate.add_argument("--from", dest="source", required=True, type=arguments.text,
                         metavar="STATE", help="the store to copy (a state file or URL)")
    migrate.add_argument("--to", dest="target", required=True, type=arguments.text,
                         metavar="STATE", help="the store to copy into (created if needed)")
    migrate.add_argument("--merge", action="store_true",
                         help="add to a store that already holds records")
    migrate.set_defaults(handler=cmd_migrate)


def cmd_migrate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from orbits_nb.store import copy_store, open_store
    from orbits_nb.store.location import describe, is_url

    def where(text: str) -> str | Path:
        return text if is_url(text) else Path(text).expanduser().resolve()

    source_at, target_at = where(args.source), where(args.target)
    if isinstance(source_at, Path) and not source_at.is_file():
        raise OrbitsError(f"no state file at {source_at} to copy; pass --from the path of "
                          "an existing state file (or a postgresql:// URL)",
                          path=str(source_at))
    if str(source_at) == str(target_at):
        raise OrbitsError("--from and --to name the same store; give another target")
    source, target = open_store(source_at), open_store(target_at)
    try:
        copied = copy_store(source, target, merge=args.merge)
    finally:
        source.close()
        target.close()
    shown = describe(str(target_at)) if isinstance(target_at, str) else str(target_at)
    counts = ", ".join(f"{n} {table}" for table, n in copied.items() if n)
    print(f"copied {counts or 'nothing (the source is empty)'} into {shown}")
    return 0
