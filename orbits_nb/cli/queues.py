"""``orbits-nb queue add|list|remove``: the queues submitted runs wait in."""

from __future__ import annotations

import argparse
import time
from typing import Any

from orbits_nb.cli import arguments


def register(commands: Any) -> None:
    queue = commands.add_parser("queue", help="declare, list and remove queues")
    verbs = queue.add_subparsers(dest="verb", metavar="VERB")
    verbs.required = True
    add = verbs.add_parser("add", help="declare a queue (or change its limits)")
    add.add_argument("name", metavar="NAME", type=arguments.text)
    add.add_argument("--concurrency", type=arguments.positive_int, metavar="N",
                     help="at most N of its runs execute at once, on all workers")
    add.add_argument("--per-key", type=arguments.positive_int, metavar="K",
                     help="at most K of its runs with the same key execute at once")
    add.set_defaults(handler=cmd_add)
    listing = verbs.add_parser("list", help="queues with depth, running runs, oldest "
                                            "waiting age and limits")
    listing.add_argument("--json", action="store_true", help="print JSON lines")
    listing.set_defaults(handler=cmd_list)
    remove = verbs.add_parser("remove", help="forget a queue")
    remove.add_argument("name", metavar="NAME", type=arguments.text)
    remove.add_argument("--force", action="store_true",
                        help="also drop the runs still waiting in it from the queue")
    remove.set_defaults(handler=cmd_remove)


def _store() -> Any:
    from orbits_nb.cli.state import state_path
    from orbits_nb.store import open_store

    return open_store(state_path())


def cmd_add(args: argparse.Namespace) -> int:
    from orbits_nb.core.queue import Queue

    queue = Queue(args.name, concurrency=args.concurrency, per_key=args.per_key)
    store = _store()
    try:
        store.declare_queue(queue.row())
    finally:
        store.close()
    limits = ", ".join(f"{k} {v}" for k, v in (("concurrency", args.concurrency),
                                               ("per key", args.per_key)) if v) or "no limits"
    print(f"orbits-nb: queue {args.name} ({limits})")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from orbits_nb.cli.output import print_rows
    from orbits_nb.cli.state import existing_state

    if existing_state() is None:
        return 0
    store = _store()
    try:
        stats = store.queue_stats()
    finally:
        store.close()
    now = time.time()
    rows = [{"queue": s.queue.name, "depth": s.depth, "running": s.running,
             "oldest_waiting_s": None if s.oldest_submitted_at is None
             else round(now - s.oldest_submitted_at, 1),
             "concurrency": s.queue.concurrency, "per_key": s.queue.per_key}
            for s in stats]
    print_rows(["queue", "depth", "running", "oldest_waiting_s", "concurrency", "per_key"],
               rows, as_json=args.json, empty="orbits-nb: no queues")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    from orbits_nb.core.queue import check_queue_name

    check_queue_name(args.name)
    store = _store()
    try:
        dropped = store.remove_queue(args.name, force=args.force)
    finally:
        store.close()
    extra = f"; {dropped} queued run(s) dropped from it" if dropped else ""
    print(f"orbits-nb: queue {args.name} removed{extra}")
    return 0
