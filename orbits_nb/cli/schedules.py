"""``orbits-nb schedule add|list|remove|crontab|run`` (registered by cli.runbooks)."""

from __future__ import annotations

import argparse
import time
from typing import Any

from orbits_nb.cli.output import print_rows
from orbits_nb.cli.runbooks import (
    _given,
    _on_sigterm,
    _pairs,
    _parameter_options,
    _print_record,
    _shown,
    _state,
    _store,
)


def register_schedule(commands: Any) -> None:
    schedule = commands.add_parser("schedule", help="add, list, remove schedules; crontab")
    sub = schedule.add_subparsers(dest="schedule_command", metavar="ACTION")
    sub.required = True
    add = sub.add_parser("add", help="run NOTEBOOK on a cron expression")
    add.add_argument("cron", help="5-field cron expression, e.g. '0 2 * * *', or @daily")
    add.add_argument("notebook")
    _parameter_options(add)
    add.add_argument("--name", help="schedule name (default: the runbook's name)")
    add.add_argument("--catch-up", choices=["latest", "all", "skip"], default="latest",
                     help="missed occurrences: run the latest once (default), all, or none")
    add.add_argument("--tz", help="IANA time zone of the cron expression (default: local)")
    add.add_argument("--kernel")
    add.add_argument("--cell-timeout", type=float, metavar="SECONDS")
    add.add_argument("--output-dir", metavar="DIR")
    add.set_defaults(handler=cmd_schedule_add)

    listing = sub.add_parser("list", help="list schedules")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=cmd_schedule_list)

    remove = sub.add_parser("remove", help="remove a schedule")
    remove.add_argument("name")
    remove.set_defaults(handler=cmd_schedule_remove)

    crontab = sub.add_parser("crontab", help="print equivalent crontab lines")
    crontab.add_argument("--python", help="interpreter for the cron lines "
                                          "(default: this one)")
    crontab.set_defaults(handler=cmd_schedule_crontab)

    now = sub.add_parser("run", help="run one occurrence of a schedule now (cron lines)")
    now.add_argument("name")
    now.add_argument("--scheduled-for", type=float, help=argparse.SUPPRESS)
    now.add_argument("--notebook-run-id", help=argparse.SUPPRESS)
    now.add_argument("--resume-of", help=argparse.SUPPRESS)
    now.add_argument("--progress", action="store_true", help="show a progress bar")
    now.set_defaults(handler=cmd_schedule_run)


def cmd_schedule_add(args: argparse.Namespace) -> int:
    from orbits_nb.runbooks import schedules

    options = {k: v for k, v in (("kernel", args.kernel), ("cell_timeout", args.cell_timeout),
                                 ("output_dir", args.output_dir), ("tz", args.tz)) if v}
    store = _store()
    schedule = schedules.add(store, args.cron, args.notebook, parameters=_given(args),
                             cli=_pairs(args), name=args.name, catch_up=args.catch_up,
                             options=options)
    due = time.strftime("%Y-%m-%d %H:%M %Z", time.localtime(schedule.next_due(time.time())))
    print(f"orbits-nb: schedule {schedule.schedule_id} added: {schedule.cron} "
          f"{_shown(schedule.notebook)} (next: {due}; catch-up: {schedule.catch_up}). "
          "Start `orbits-nb scheduler` to run it, or see `orbits-nb schedule crontab`.")
    return 0


def cmd_schedule_list(args: argparse.Namespace) -> int:
    from orbits_nb.runbooks import schedules
    from orbits_nb.runbooks.scheduler import describe

    rows = [describe(s, time.time()) for s in schedules.listing(_store())]
    print_rows(list(rows[0]) if rows else [], rows, as_json=args.json, width=60,
               empty="no schedules (add one with `orbits-nb schedule add CRON NOTEBOOK`)")
    return 0


def cmd_schedule_remove(args: argparse.Namespace) -> int:
    from orbits_nb.runbooks import schedules

    removed = schedules.remove(_store(), args.name)
    print(f"orbits-nb: schedule {removed.schedule_id} removed")
    return 0


def cmd_schedule_crontab(args: argparse.Namespace) -> int:
    from orbits_nb.runbooks import schedules

    print(schedules.crontab(schedules.listing(_store()), _state(), python=args.python),
          end="")
    return 0


def cmd_schedule_run(args: argparse.Namespace) -> int:
    from orbits_nb.runbooks.scheduler import run_schedule
    from orbits_nb.runbooks.schedules import ScheduleBusy

    _on_sigterm()
    try:
        record = run_schedule(_state(), args.name, scheduled_for=args.scheduled_for,
                              notebook_run_id=args.notebook_run_id,
                              resume_of=args.resume_of, progress=args.progress)
    except ScheduleBusy as err:
        print(f"orbits-nb: {err}")
        return 0
    return _print_record(record, False)


