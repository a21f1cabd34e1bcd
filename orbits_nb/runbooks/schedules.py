"""Schedules: cron expressions that run a runbook, stored in the state file.

Missed occurrences (the scheduler was down, or the previous run was still active)
follow the schedule's ``catch_up`` policy:

* ``latest`` (default): run once for the most recent missed occurrence, skip the rest;
* ``all``: run every missed occurrence, oldest first, one at a time;
* ``skip``: run only an occurrence noticed within ``grace`` seconds of its time.

An occurrence that comes due while the schedule's previous run is still active is
skipped (``latest``/``skip``) or waits its turn (``all``): two instances of one
schedule never run at once. Times are evaluated in the schedule's time zone
(``tz`` option, default the machine's).
"""

from __future__ import annotations

import os
import re
import shlex
import sys
import time
from dataclasses import dataclass, fields
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orbits_nb.core.rows import Owner, ScheduleRow
from orbits_nb.runbooks import notebook as nbfile
from orbits_nb.runbooks.errors import ParameterError, ScheduleError
from orbits_nb.runbooks.parameters import signature_of
from orbits_nb.runbooks.values import from_cli, validate

if TYPE_CHECKING:
    from orbits_nb.core.storage import Store

POLICIES = ("latest", "all", "skip")
MAX_BACKLOG = 1000
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


class ScheduleBusy(ScheduleError):
    """The schedule's previous run is still active (field ``holder``)."""


@dataclass
class Schedule(ScheduleRow):
    """A runbook to run on a cron expression (``options``: kernel, cell_timeout, tz...)."""

    @classmethod
    def of(cls, row: ScheduleRow) -> Schedule:
        """The schedule recorded as ``row``."""
        return cls(**{f.name: getattr(row, f.name) for f in fields(ScheduleRow)})

    def zone(self) -> tzinfo:
        return zone(self.options.get("tz"))

    def occurrences(self, after: float, until: float, limit: int = MAX_BACKLOG) -> list[float]:
        """Due times in ``(after, until]``, oldest first (at most ``limit``)."""
        from croniter import croniter

        it = croniter(self.cron, datetime.fromtimestamp(after, self.zone()))
        found: list[float] = []
        while len(found) < limit:
            due = float(it.get_next(float))
            if due > until:
                break
            found.append(due)
        return found

    def next_due(self, after: float) -> float:
        from croniter import croniter

        return float(croniter(self.cron, datetime.fromtimestamp(after, self.zone()))
                     .get_next(float))

    def previous_due(self, now: float) -> float:
        from croniter import croniter

        return float(croniter(self.cron, datetime.fromtimestamp(now, self.zone()))
                     .get_prev(float))


def zone(name: str | None) -> tzinfo:
    """The named IANA zone, else $TZ, else the machine's zone, else UTC."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    candidate = name or os.environ.get("TZ")
    if candidate:
        try:
            return ZoneInfo(candidate.lstrip(":"))
        except (ZoneInfoNotFoundError, ValueError):
            if name:
                raise ScheduleError(f"unknown time zone {name!r}; use an IANA name such "
                                    "as 'Europe/Paris' or 'UTC'", tz=name) from None
    try:
        with open("/etc/localtime", "rb") as handle:
            return ZoneInfo.from_file(handle)
    except (OSError, ValueError):
        return UTC


SHORTCUTS = ("@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly",
             "@annually")
_CRON_HELP = ("5 fields: minute hour day month weekday, e.g. '0 2 * * *' (every day at "
              "02:00) or '*/15 * * * 1-5', or one of @hourly, @daily, @weekly, @monthly, "
              "@yearly")


def check_cron(cron: Any) -> str:
    """A 5-field cron expression (or an @shortcut), normalised; ScheduleError otherwise.

    Six fields are refused: croniter would read the sixth as seconds, which system
    cron (``schedule crontab``) does not have.
    """
    from croniter import CroniterError, croniter

    if not isinstance(cron, str):
        raise ScheduleError(f"{cron!r} is not a valid cron expression: give a string of "
                            f"{_CRON_HELP}", cron=cron)
    text = " ".join(cron.split())
    if text.startswith("@"):
        if text.lower() not in SHORTCUTS:
            raise ScheduleError(f"{cron!r} is not a valid cron expression (unknown "
                                f"shortcut); give {_CRON_HELP}", cron=cron)
        return text.lower()
    parts = text.split(" ") if text else []
    if len(parts) != 5:
        extra = (" (a sixth field would be seconds, which schedules do not take)"
                 if len(parts) == 6 else "")
        raise ScheduleError(f"{cron!r} is not a valid cron expression: it has {len(parts)} "
                            f"field(s){extra}; give {_CRON_HELP}", cron=cron)
    if not croniter.is_valid(text):
        raise ScheduleError(f"{cron!r} is not a valid cron expression; give {_CRON_HELP}",
                            cron=cron)
    try:
        croniter(text, datetime.now(UTC)).get_next(float)
    except (CroniterError, ValueError):
        raise ScheduleError(f"{cron!r} is not a valid cron expression: it never comes due "
                            f"(no such date, e.g. 30 February); give {_CRON_HELP}",
                            cron=cron) from None
    return text


# -- the table --------------------------------------------------------------------------

def listing(store: Store) -> list[Schedule]:
    return [Schedule.of(row) for row in store.schedules()]


def get(store: Store, schedule_id: str) -> Schedule:
    row = store.schedule(schedule_id)
    if row is None:
        known = ", ".join(s.schedule_id for s in listing(store)) or "none"
        raise ScheduleError(f"no schedule named {schedule_id!r} (schedules: {known}); see "
                            "`orbits-nb schedule list`", schedule_id=schedule_id)
    return Schedule.of(row)


def add(store: Store, cron: str, notebook: str | Path, *,
        parameters: dict[str, Any] | None = None, cli: list[tuple[str, str]] | None = None,
        name: str | None = None, catch_up: str = "latest",
        options: dict[str, Any] | None = None, now: float | None = None) -> Schedule:
    """Validate and store a schedule; bad cron, notebook or parameters are rejected."""
    cron = check_cron(cron)
    if catch_up not in POLICIES:
        raise ScheduleError(f"unknown catch-up policy {catch_up!r}; use one of "
                            f"{', '.join(POLICIES)}", catch_up=catch_up)
    path = nbfile.resolve(notebook)
    sig = signature_of(path, nbfile.load(path))
    given = dict(parameters or {})
    given.update(from_cli(sig, cli or []))
    values = validate(sig, given, check_env=False, allow_literal_secrets=False)
    values.public.pop("headless", None)  # the runner sets it at each run
    schedule_id = name or nbfile.runbook_name(path)
    if not _NAME.match(schedule_id):
        raise ScheduleError(f"schedule name {schedule_id!r} must be letters, digits, '.', "
                            "'_' or '-' (at most 100)", schedule_id=schedule_id)
    created = time.time() if now is None else now
    schedule = Schedule(schedule_id, cron, str(path), values.recorded(), catch_up,
                        dict(options or {}), True, created, created)
    schedule.zone()  # an unknown tz option fails here, not in the scheduler
    _check_options(schedule.options)
    if not store.add_schedule(schedule):
        raise ScheduleError(f"a schedule named {schedule_id!r} exists already; remove it "
                            "first or pass --name", schedule_id=schedule_id)
    return schedule


def _check_options(options: dict[str, Any]) -> None:
    """What each run would refuse (kernel, timeout, output folder), refused now."""
    from orbits_nb.runbooks.execute import check_kernel, check_seconds

    if options.get("kernel") is not None:
        check_kernel(str(options["kernel"]))
    check_seconds("cell timeout", options.get("cell_timeout"), allow_none=True)
    folder = options.get("output_dir")
    if folder is not None and Path(str(folder)).expanduser().exists() and \
            not Path(str(folder)).expanduser().is_dir():
        raise ScheduleError(f"output folder {folder!r} is a file; give a folder",
                            output_dir=folder)


def remove(store: Store, schedule_id: str) -> Schedule:
    schedule = get(store, schedule_id)
    store.remove_schedule(schedule_id)
    return schedule


def advance(store: Store, schedule_id: str, last_due: float, skipped: int = 0,
            reason: str | None = None) -> None:
    """Record that occurrences up to ``last_due`` are handled (run or skipped)."""
    store.advance_schedule(schedule_id, last_due, skipped, reason)


# -- one live instance per schedule: the store's schedule lease, held by a notebook run ---

def holder(store: Store, schedule_id: str) -> tuple[str, int, str] | None:
    """``(host, pid, notebook_run_id)`` of the live instance of the schedule, if any."""
    for lease in store.leases("schedule", [schedule_id]):
        if store.alive(lease.host, lease.pid, lease.heartbeat):
            return lease.host, lease.pid, lease.token
    return None


def claim(store: Store, schedule_id: str, notebook_run_id: str,
          pid: int | None = None) -> bool:
    """Take the schedule's lock for ``notebook_run_id``; False if a live holder has it.

    A lock already held for the same notebook run (the scheduler claims before it
    starts the runner) passes to ``pid``.
    """
    owner = Owner(notebook_run_id, store.host, pid or os.getpid())
    return store.take_lease("schedule", schedule_id, owner) is None


def claim_for_run(store: Store, record: Any) -> None:
    """The runner's claim; raise ScheduleBusy when another instance is active."""
    assert record.schedule_id
    if not claim(store, record.schedule_id, record.notebook_run_id):
        live = holder(store, record.schedule_id)
        who = f"{live[2]} ({live[0]} pid {live[1]})" if live else "another run"
        raise ScheduleBusy(f"schedule {record.schedule_id!r} is already running: {who}; "
                           "this occurrence is skipped", schedule_id=record.schedule_id,
                           holder=who)


def release(store: Store, schedule_id: str, notebook_run_id: str) -> None:
    store.release_lease("schedule", schedule_id, notebook_run_id)


def heartbeat(store: Store, notebook_run_ids: list[str]) -> None:
    """Renew the locks held by these notebook runs (instances still running)."""
    if notebook_run_ids:
        wanted = set(notebook_run_ids)
        store.renew_leases("schedule", [(lease.key, lease.token) for lease in
                                        store.leases("schedule") if lease.token in wanted])


# -- crontab --------------------------------------------------------------------------

def crontab(schedules: list[Schedule], state: Path | str, *, python: str | None = None,
            log_dir: Path | None = None) -> str:
    """Crontab lines equivalent to the schedules (run ``orbits-nb schedule run ID``)."""
    python = python or sys.executable
    lines = [f"# orbits-nb schedules of {state}",
             "# Under cron, missed occurrences are skipped whatever the catch-up policy;",
             "# `orbits-nb schedule run` still refuses to start a second instance."]
    for schedule in schedules:
        root = Path(schedule.notebook).parent
        log = (log_dir or root) / f"{schedule.schedule_id}.cron.log"
        command = (f"cd {shlex.quote(str(root))} && ORBITS_NB_STATE={shlex.quote(str(state))}"
                   f" {shlex.quote(python)} -m orbits_nb.cli schedule run "
                   f"{shlex.quote(schedule.schedule_id)} >> {shlex.quote(str(log))} 2>&1")
        lines.append(f"# {schedule.schedule_id}: {schedule.notebook}"
                     + ("" if schedule.enabled else " (disabled)"))
        if schedule.options.get("tz"):
            lines.append(f"CRON_TZ={schedule.options['tz']}")
        prefix = "" if schedule.enabled else "# "
        lines.append(f"{prefix}{schedule.cron} {command.replace('%', chr(92) + '%')}")
    return "\n".join(lines) + "\n"


def parameters_for(schedule: Schedule) -> dict[str, Any]:
    """The stored parameters, checked again against the notebook as it is now."""
    path = nbfile.resolve(schedule.notebook)
    sig = signature_of(path, nbfile.load(path))
    try:
        validate(sig, schedule.parameters, check_env=False)
    except ParameterError as err:
        raise ScheduleError(f"schedule {schedule.schedule_id!r} no longer fits its notebook: "
                            f"{err}", schedule_id=schedule.schedule_id) from None
    return dict(schedule.parameters)
