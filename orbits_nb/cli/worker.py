"""``orbits-nb worker``: execute submitted runs until stopped (or drained, ``--once``)."""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Any

from orbits_nb.cli import arguments


def register(commands: Any) -> None:
    worker = commands.add_parser(
        "worker", help="execute runs submitted to queues",
        description="Take runs submitted with Workflow.submit() from the queues and "
                    "execute them, each in a process of its own, within every queue's "
                    "limits; take over runs whose owner died. SIGTERM or ^C drains: no "
                    "new run, running steps finish, the runs stay queued for another "
                    "worker, exit 0; a second signal stops at once.")
    worker.add_argument("--queue", action="append", default=[], metavar="NAME",
                        type=arguments.text,
                        help="take runs of this queue only (repeat for several; "
                             "default: every queue)")
    worker.add_argument("--concurrency", type=arguments.positive_int, default=4,
                        metavar="N", help="runs executing at once here (default: 4)")
    worker.add_argument("--once", action="store_true",
                        help="execute what is runnable now, then exit")
    worker.add_argument("--lease-timeout", type=arguments.seconds, metavar="S",
                        help="seconds without a heartbeat after which a run owned on "
                             "another host is taken over (default: "
                             "$ORBITS_NB_LEASE_TIMEOUT, else 60)")
    worker.add_argument("--park-after", type=arguments.seconds, metavar="S", default=30.0,
                        help="a run that only waits for a durable timer of at least S "
                             "seconds frees its slot until it is due (default: 30)")
    worker.add_argument("--cancel-grace", type=arguments.seconds, metavar="S",
                        default=5.0,
                        help="seconds a cancelled run has to stop before its process "
                             "is terminated (default: 5)")
    worker.add_argument("--poll", type=arguments.seconds, metavar="S", default=1.0,
                        help="seconds between two looks at the queues while nothing "
                             "is submitted, for timers that fell due and runs whose "
                             "owner died (default: 1); a submit is seen at once")
    worker.add_argument("--name", type=arguments.text,
                        help="the worker's name in the records (default: "
                             "worker-HOST-PID)")
    worker.set_defaults(handler=cmd_worker)


def cmd_worker(args: argparse.Namespace) -> int:
    import os

    from orbits_nb.cli.state import state_path
    from orbits_nb.core.queue import check_queue_name
    from orbits_nb.store import open_store
    from orbits_nb.workers.loop import Worker

    for name in args.queue:
        check_queue_name(name)
    if args.lease_timeout is not None:
        # The children read it too: every process of the worker judges leases alike.
        os.environ["ORBITS_NB_LEASE_TIMEOUT"] = str(args.lease_timeout)
    state = state_path()
    store = open_store(state)
    worker = Worker(store, str(state), queues=args.queue, concurrency=args.concurrency,
                    once=args.once, name=args.name, park_after=args.park_after,
                    cancel_grace=args.cancel_grace, poll=args.poll,
                    say=lambda line: print(line, flush=True))
    signal.signal(signal.SIGTERM, worker.on_signal)
    signal.signal(signal.SIGINT, worker.on_signal)
    code = worker.run()
    sys.stdout.flush()
    return code
