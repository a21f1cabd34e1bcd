"""``orbits-nb schedule add|list|remove|crontab|run`` (registered by cli.runbooks)."""

from __future__ import annotations

import argparse
import time
from typing import Any

from orbits_nb.cli import arguments
from orbits_nb.cli.output import print_rows
from orbits_nb.cli.runbook_options import given, pairs, parameter_options
from orbits_nb.cli.runbooks import _on_sigterm, _print_record, _shown, _state, _store
from orbits_nb.cli.state import existing_state, missing


def register_schedule(commands: Any) -> None:
    schedule = commands.add_parser("schedule", help="add, list, remove schedules; crontab")
    sub = schedule.add_subparsers(dest="schedule_command", metavar="ACTION")
    sub.required = True
    add = sub.add_parser("add", help="run NOTEBOOK on a cron expression")
    add.add_argument("cron", metavar="CRON",
                     help="5 fields 'minute hour day month weekday', e.g. '0 2 * * *', "
                          "or @hourly, @daily, @weekly, @monthly, @yearly")
    add.add_argument("notebook", metavar="NOTEBOOK")
    parameter_options(add)
    add.add_argument("--name", type=arguments.text,
                     help="schedule name (default: the runbook's name)")
    add.add_argument("--catch-up", choices=["latest", "all", "skip"], default="latest",
                     help="missed occurrences: run the latest once (default), all, or none")
    add.add_argument("--tz", type=arguments.text,
                     help="IANA time zone of the cron expression (default: local)")
    add.add_argument("-k", "--kernel", type=arguments.text,
                     help="kernel name (default: the notebook's)")
    add.add_argument("--cell-timeout", "--execution-timeout", type=arguments.seconds,
                     metavar="SECONDS", dest="cell_timeout",
                     help="fail a cell that runs longer than this")
    add.add_argument("--output-dir", metavar="DIR", type=arguments.text,
                     help="output folder of the runs (default: as orbits-nb run)")
    add.set_defaults(handler=cmd_schedule_add)

    listing = sub.add_parser("list", help="list schedules")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=cmd_schedule_list)

    remove = sub.add_parser("remove", help="remove a schedule")
    remove.add_argument("name", metavar="NAME", type=arguments.text)
    remove.set_defaults(handler=cmd_schedule_remove)

    crontab = sub.add_parser("crontab", help="print equivalent crontab lines")
    crontab.add_argument("--python", type=arguments.executable,
                         help="interpreter for the cron lines (default: this one)")
    crontab.set_defaults(handler=cmd_schedule_crontab)

    now = sub.add_parser("run", help="run one occurrence of a schedule now (cron lines)")
    now.add_argument("name", metavar="NAME", type=arguments.text)
    now.add_argument("--scheduled-for", type=arguments.epoch, help=argparse.SUPPRESS)
    now.add_argument("--notebook-run-id", help=argparse.SUPPRESS)
    now.add_argument("--resume-of", help=argparse.SUPPRESS)
    now.add_argument("--progress", action="store_true", help="show a progress bar")
    now.set_defaults(handler=cmd_schedule_run)


def _schedule_state(name: str) -> None:
    from orbits_nb.runbooks.errors import ScheduleError

    absent = missing(f"schedule named {name!r}", ScheduleError, schedule_id=name)
    if absent is not None:
        raise absent


def cmd_schedule_add(args: argparse.Namespace) -> int:
    from orbits_nb.runbooks import schedules

    options = {k: v for k, v in (("kernel", args.kernel), ("cell_timeout", args.cell_timeout),
                                 ("output_dir", args.output_dir), ("tz", args.tz)) if v}
    store = _store()
    schedule = schedules.add(store, args.cron, args.notebook, parameters=given(args),
                             cli=pairs(args), name=args.name, catch_up=args.catch_up,
                             options=options)
    due = time.strftime("%Y-%m-%d %H:%M %Z", time.localtime(schedule.next_due(time.time())))
    print(f"orbits-nb: schedule {schedule.schedule_id} added: {schedule.cron} "
          f"{_shown(schedule.notebook)} (next: {due}; catch-up: {schedule.catch_up}). "
          "Start `orbits-nb scheduler` to run it, or see `orbits-nb schedule crontab`.")
    return 0


def cmd_schedule_list(args: argparse.Namespace) -> int:
    from orbits_nb.runbooks import schedules
    from orbits_nb.runbooks.scheduler import describe

    if existing_state() is None:
        return 0
    rows = [describe(s, time.time()) for s in schedules.listing(_store())]
    print_rows(list(rows[0]) if rows else [], rows, as_json=args.json, width=60,
               empty="no schedules (add one with `orbits-nb schedule add CRON NOTEBOOK`)")
    return 0


def cmd_schedule_remove(args: argparse.Namespace) -> int:
    from orbits_nb.runbooks import schedules

    _schedule_state(args.name)
    removed = schedules.remove(_store(), args.name)
    print(f"orbits-nb: schedule {removed.schedule_id} removed")
    return 0


def cmd_schedule_crontab(args: argparse.Namespace) -> int:
    from orbits_nb.runbooks import schedules

    # Without a state file there is no schedule, yet the lines still say which file.
    found = schedules.listing(_store()) if existing_state() is not None else []
    state = _state()
    if isinstance(state, str):  # a team store: the password stays in PGPASSWORD/.pgpass
        from orbits_nb.store.location import describe

        state = describe(state)
    print(schedules.crontab(found, state, python=args.python),
          end="")
    return 0


def cmd_schedule_run(args: argparse.Namespace) -> int:
    from orbits_nb.runbooks.scheduler import run_schedule
    from orbits_nb.runbooks.schedules import ScheduleBusy

    _schedule_state(args.name)
    _on_sigterm()
    try:
        record = run_schedule(_state(), args.name, scheduled_for=args.scheduled_for,
                              notebook_run_id=args.notebook_run_id,
                              resume_of=args.resume_of, progress=args.progress)
    except ScheduleBusy as err:
        print(f"orbits-nb: {err}")
        return 0
    return _print_record(record, False)


