"""The scheduler: a long-running process that starts due runbooks as child processes.

Each tick it (1) collects finished children, (2) marks notebook runs whose runner died
as failed and resumes scheduled ones whose runner, kernel or scheduler went away (at
most ``max_attempts`` executions per occurrence), and (3) starts what is due,
following each schedule's catch-up policy (see :mod:`orbits_nb.runbooks.schedules`).
A runbook that fails is recorded and the scheduler goes on. Its clock is injectable,
so tests drive it through time without waiting.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orbits_nb.core.serde import dumps
from orbits_nb.runbooks import records, schedules
from orbits_nb.runbooks.errors import ScheduleError
from orbits_nb.runbooks.execute import execute as execute_job
from orbits_nb.runbooks.execute import new_id, prepare
from orbits_nb.runbooks.records import NotebookRun
from orbits_nb.runbooks.schedules import Schedule
from orbits_nb.store import open_store

RESUMABLE = ("RunnerDied", "KernelDied", "Interrupted")


@dataclass(frozen=True)
class Plan:
    """What to do with a schedule now: run ``run_at`` (or nothing), advance, skip."""

    run_at: float | None
    last_due: float
    skipped: int = 0
    reason: str | None = None


def plan(schedule: Schedule, now: float, *, busy: bool, grace: float) -> Plan:
    """Apply the catch-up policy to the occurrences due since the last handled one."""
    due = schedule.occurrences(schedule.last_due, now)
    if not due:
        return Plan(None, schedule.last_due)
    latest = due[-1]
    if busy:
        if schedule.catch_up == "all":
            return Plan(None, schedule.last_due)  # the backlog waits for the active run
        return Plan(None, latest, len(due), "previous run still active")
    if schedule.catch_up == "all":
        return Plan(due[0], due[0])
    missed = "missed while no scheduler was running"
    if schedule.catch_up == "latest" or now - latest <= grace:
        return Plan(latest, latest, len(due) - 1, missed if len(due) > 1 else None)
    return Plan(None, latest, len(due), missed)


@dataclass
class Child:
    schedule_id: str
    notebook_run_id: str
    process: subprocess.Popen[bytes]
    scheduled_for: float


@dataclass
class Tick:
    """What one tick did (for logs and tests)."""

    started: list[tuple[str, str]] = field(default_factory=list)   # (schedule, nb run)
    finished: list[tuple[str, str, int]] = field(default_factory=list)  # + exit code
    skipped: list[tuple[str, int, str]] = field(default_factory=list)
    resumed: list[tuple[str, str]] = field(default_factory=list)   # (schedule, of nb run)
    reaped: list[str] = field(default_factory=list)


class Scheduler:
    """Runs due schedules of one state file; ``clock`` returns epoch seconds."""

    def __init__(self, state: str | Path, *, clock: Callable[[], float] = time.time,
                 max_parallel: int = 4, grace: float = 60.0, max_attempts: int = 3,
                 python: str | None = None, log: Callable[[str], None] | None = None,
                 output: Any = None) -> None:
        if max_parallel < 1:
            raise ValueError("max_parallel must be at least 1")
        self.state = _location(state)
        self.store = open_store(self.state)
        self.clock = clock
        self.max_parallel = max_parallel
        self.grace = grace
        self.max_attempts = max_attempts
        self.python = python or sys.executable
        self.log = log or (lambda text: print(f"orbits-nb scheduler: {text}", flush=True))
        self.output = output  # where children write (default: inherit our stdout)
        self.children: dict[str, Child] = {}

    # -- one pass ---------------------------------------------------------------------
    def tick(self) -> Tick:
        report = Tick()
        with records.held(self.store):
            self._collect(report)
            self._recover(report)
            now = self.clock()
            for schedule in schedules.listing(self.store):
                if schedule.enabled and len(self.children) < self.max_parallel:
                    self._consider(schedule, now, report)
            schedules.heartbeat(self.store,
                                [c.notebook_run_id for c in self.children.values()])
        return report

    def _consider(self, schedule: Schedule, now: float, report: Tick) -> None:
        sid = schedule.schedule_id
        busy = sid in self.children or schedules.holder(self.store, sid) is not None
        step = plan(schedule, now, busy=busy, grace=self.grace)
        if step.last_due == schedule.last_due and step.run_at is None:
            return
        if step.skipped:
            report.skipped.append((sid, step.skipped, step.reason or ""))
            self.log(f"{sid}: skipped {step.skipped} occurrence(s): {step.reason}")
        if step.run_at is not None and not self._launch(schedule, step.run_at, report):
            return
        schedules.advance(self.store, sid, step.last_due, step.skipped, step.reason)

    def _launch(self, schedule: Schedule, due: float, report: Tick,
                resume: NotebookRun | None = None) -> bool:
        notebook_run_id = new_id(Path(schedule.notebook).stem.replace(" ", "-"))
        if not schedules.claim(self.store, schedule.schedule_id, notebook_run_id):
            return False
        # The state goes in the environment: a team store URL may hold a password,
        # which a command line would show to anyone listing processes.
        env = {**os.environ, "ORBITS_NB_STATE": str(self.state)}
        command = [self.python, "-m", "orbits_nb.cli",
                   "schedule", "run", schedule.schedule_id, "--scheduled-for", repr(due),
                   "--notebook-run-id", notebook_run_id]
        if resume is not None:
            command += ["--resume-of", resume.notebook_run_id]
        try:
            process = subprocess.Popen(command, stdout=self.output, stderr=self.output,
                                       stdin=subprocess.DEVNULL, env=env)
        except OSError as err:
            schedules.release(self.store, schedule.schedule_id, notebook_run_id)
            self.log(f"{schedule.schedule_id}: cannot start the runner: {err}")
            return False
        self.children[schedule.schedule_id] = Child(schedule.schedule_id, notebook_run_id,
                                                    process, due)
        report.started.append((schedule.schedule_id, notebook_run_id))
        what = f"resuming {resume.notebook_run_id}" if resume else "started"
        self.log(f"{schedule.schedule_id}: {what} as {notebook_run_id} (pid {process.pid})")
        return True

    def _collect(self, report: Tick) -> None:
        for sid, child in list(self.children.items()):
            code = child.process.poll()
            if code is None:
                continue
            del self.children[sid]
            schedules.release(self.store, sid, child.notebook_run_id)
            report.finished.append((sid, child.notebook_run_id, code))
            self.log(f"{sid}: {child.notebook_run_id} ended with exit code {code}")

    def _recover(self, report: Tick) -> None:
        """Fail orphaned notebook runs; resume scheduled ones whose owner went away."""
        report.reaped += [r.notebook_run_id for r in records.reap_orphans(self.store)]
        for record in self._resumable():
            sid = record.schedule_id
            if sid is None or sid in self.children or len(self.children) >= self.max_parallel:
                continue
            try:
                schedule = schedules.get(self.store, sid)
            except ScheduleError:
                continue
            if self._launch(schedule, record.scheduled_for or self.clock(), report,
                            resume=record):
                report.resumed.append((sid, record.notebook_run_id))

    def _resumable(self) -> list[NotebookRun]:
        return records.resumable(self.store, RESUMABLE, self.max_attempts)

    # -- running ----------------------------------------------------------------------
    def next_wake(self, poll: float) -> float:
        """Seconds until something may be due (at most ``poll``)."""
        now = self.clock()
        wake = now + poll
        with records.held(self.store):
            found = schedules.listing(self.store)
        for schedule in found:
            if schedule.enabled:
                wake = min(wake, schedule.next_due(max(schedule.last_due, now)))
        return max(0.0, wake - now)

    def serve(self, should_stop: Callable[[float], bool], poll: float = 5.0) -> None:
        """Tick until ``should_stop(seconds)`` (which waits that long) returns True."""
        self.log(f"watching {self.store.location} (max {self.max_parallel} at once)")
        while True:
            try:
                self.tick()
                pause = self.next_wake(poll if not self.children else min(poll, 1.0))
            except Exception as err:  # a bad schedule or a busy store: try again later
                self.log(f"tick failed: {type(err).__name__}: {err}")
                pause = poll
            if should_stop(pause):
                return

    def stop(self, timeout: float = 30.0) -> None:
        """Interrupt running children (they record themselves as interrupted)."""
        for child in self.children.values():
            if child.process.poll() is None:
                child.process.terminate()
        deadline = time.monotonic() + timeout
        for child in self.children.values():
            try:
                child.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()
        report = Tick()
        self._collect(report)
        self.store.close()

    def wait_children(self, timeout: float | None = None) -> Tick:
        """Block until every child ended, then collect them (tests, ``--once``)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for child in list(self.children.values()):
            left = None if deadline is None else max(0.1, deadline - time.monotonic())
            child.process.wait(left)
        report = Tick()
        self._collect(report)
        return report


def run_schedule(state: str | Path, schedule_id: str, *, scheduled_for: float | None = None,
                 notebook_run_id: str | None = None, resume_of: str | None = None,
                 progress: bool = False) -> NotebookRun:
    """Run one occurrence of a schedule now, in this process (cron and the scheduler)."""
    store = open_store(_location(state))
    try:
        schedule = schedules.get(store, schedule_id)
        parameters = schedules.parameters_for(schedule)
        attempt = 1
        if resume_of is not None:
            earlier = records.get(store, resume_of)
            if earlier is not None:
                parameters, attempt = dict(earlier.parameters), earlier.attempt + 1
                scheduled_for = scheduled_for or earlier.scheduled_for
        due = scheduled_for if scheduled_for is not None else schedule.previous_due(
            time.time() + 1)
    finally:
        store.close()
    options = schedule.options
    job = prepare(schedule.notebook, parameters, state=state, trigger="schedule",
                  schedule_id=schedule_id, scheduled_for=due, resume_of=resume_of,
                  attempt=attempt, notebook_run_id=notebook_run_id, progress=progress,
                  kernel=options.get("kernel"), cell_timeout=options.get("cell_timeout"),
                  output_dir=options.get("output_dir"))
    record = execute_job(job)
    store = open_store(_location(state))
    try:
        schedules.advance(store, schedule_id, due)
    finally:
        store.close()
    return record


def describe(schedule: Schedule, now: float) -> dict[str, Any]:
    """A row for ``schedule list``."""
    return {
        "schedule": schedule.schedule_id, "cron": schedule.cron,
        "notebook": os.path.relpath(schedule.notebook) if schedule.notebook else "",
        "catch_up": schedule.catch_up, "enabled": schedule.enabled,
        "next_due": time.strftime("%Y-%m-%d %H:%M", time.localtime(
            schedule.next_due(max(schedule.last_due, now)))) if schedule.enabled else "",
        "skipped": schedule.skipped, "parameters": dumps(schedule.parameters),
    }


def _location(state: str | Path) -> Path | str:
    """A state file's absolute path, or a team store URL as it is."""
    text = str(state)
    if text.lower().startswith(("postgresql://", "postgres://")):
        return text
    return Path(state).expanduser().resolve()
