"""Schedules: validation, storage, catch-up policy, crontab export (no kernels)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from orbits_nb.runbooks import ParameterError, ScheduleError
from orbits_nb.runbooks import schedules as sched
from orbits_nb.runbooks.scheduler import plan
from orbits_nb.runbooks.schedules import Schedule
from orbits_nb.store.duckdb_store import DuckDBStore

FIXTURES = Path(__file__).parent / "notebooks"
ROOT = Path(__file__).resolve().parents[1]
UTC = ZoneInfo("UTC")


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def hourly(policy: str, last: str) -> Schedule:
    return Schedule("s", "0 * * * *", "nb.ipynb", catch_up=policy,
                    options={"tz": "UTC"}, last_due=at(last))


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "orbits_nb.cli", *args], cwd=ROOT,
                          env=dict(os.environ), capture_output=True, text=True,
                          check=False, timeout=120)


def test_nothing_due_before_the_next_occurrence() -> None:
    step = plan(hourly("latest", "2026-01-01 10:00"), at("2026-01-01 10:59:59"),
                busy=False, grace=60)
    assert step.run_at is None
    assert step.last_due == at("2026-01-01 10:00")


def test_on_time_occurrence_runs_under_every_policy() -> None:
    for policy in ("latest", "all", "skip"):
        step = plan(hourly(policy, "2026-01-01 10:00"), at("2026-01-01 11:00:05"),
                    busy=False, grace=60)
        assert (step.run_at, step.skipped) == (at("2026-01-01 11:00"), 0), policy


def test_missed_occurrences_follow_the_policy() -> None:
    now = at("2026-01-01 15:30")  # 11:00 .. 15:00 were missed while nothing ran
    latest = plan(hourly("latest", "2026-01-01 10:00"), now, busy=False, grace=60)
    assert (latest.run_at, latest.skipped) == (at("2026-01-01 15:00"), 4)
    every = plan(hourly("all", "2026-01-01 10:00"), now, busy=False, grace=60)
    assert (every.run_at, every.last_due, every.skipped) == (at("2026-01-01 11:00"),
                                                             at("2026-01-01 11:00"), 0)
    skip = plan(hourly("skip", "2026-01-01 10:00"), now, busy=False, grace=60)
    assert skip.run_at is None
    assert skip.skipped == 5
    assert skip.last_due == at("2026-01-01 15:00")


def test_busy_schedule_skips_or_keeps_its_backlog() -> None:
    now = at("2026-01-01 12:00:01")
    latest = plan(hourly("latest", "2026-01-01 10:00"), now, busy=True, grace=60)
    assert latest.run_at is None
    assert latest.skipped == 2
    assert latest.reason == "previous run still active"
    assert latest.last_due == at("2026-01-01 12:00")
    every = plan(hourly("all", "2026-01-01 10:00"), now, busy=True, grace=60)
    assert every.run_at is None
    assert every.last_due == at("2026-01-01 10:00")


def test_cron_is_read_in_the_schedule_time_zone() -> None:
    paris = Schedule("p", "0 2 * * *", "nb.ipynb", options={"tz": "Europe/Paris"})
    # 02:00 in Paris is 00:00 UTC in summer (CEST) and 01:00 UTC in winter (CET).
    assert paris.next_due(at("2026-06-30 12:00")) == at("2026-07-01 00:00")
    assert paris.next_due(at("2026-01-10 12:00")) == at("2026-01-11 01:00")
    assert paris.occurrences(at("2026-06-30 12:00"), at("2026-07-02 00:00")) == [
        at("2026-07-01 00:00"), at("2026-07-02 00:00")]


def test_add_list_remove_and_validation(state: Path) -> None:
    store = DuckDBStore(state)
    try:
        with pytest.raises(ScheduleError, match="not a valid cron expression"):
            sched.add(store, "61 * * * *", FIXTURES / "bad_params.ipynb")
        with pytest.raises(ParameterError, match="required parameter"):
            sched.add(store, "@daily", FIXTURES / "bad_params.ipynb")
        with pytest.raises(ParameterError, match="cannot store the value of secret"):
            sched.add(store, "@daily", FIXTURES / "success.ipynb",
                      cli=[("api_token", "literal-secret")])
        with pytest.raises(ScheduleError, match="unknown time zone"):
            sched.add(store, "@daily", FIXTURES / "sysexit.ipynb", options={"tz": "Mars/Base"})
        with pytest.raises(ScheduleError, match="unknown catch-up policy"):
            sched.add(store, "@daily", FIXTURES / "sysexit.ipynb", catch_up="sometimes")
        added = sched.add(store, "0   2 * * *", FIXTURES / "success.ipynb",
                          cli=[("client", "acme"), ("api_token", "env:API_TOKEN")],
                          name="nightly", catch_up="all", now=at("2026-01-01 00:00"))
        assert added.cron == "0 2 * * *"
        with pytest.raises(ScheduleError, match="exists already"):
            sched.add(store, "@daily", FIXTURES / "success.ipynb", name="nightly")
        [stored] = sched.listing(store)
        assert stored.parameters == {"client": "acme",
                                     "api_token": {"$secret": "api_token", "env": "API_TOKEN"}}
        assert (stored.catch_up, stored.last_due) == ("all", at("2026-01-01 00:00"))
        sched.advance(store, "nightly", at("2026-01-01 02:00"), 2, "why")
        again = sched.get(store, "nightly")
        assert (again.last_due, again.skipped, again.last_skip) == (at("2026-01-01 02:00"),
                                                                    2, "why")
        sched.remove(store, "nightly")
        with pytest.raises(ScheduleError, match="no schedule named 'nightly'"):
            sched.remove(store, "nightly")
    finally:
        store.close()


def test_schedule_locks_allow_one_live_holder(state: Path) -> None:
    store = DuckDBStore(state)
    try:
        assert sched.claim(store, "s", "run-1")
        assert not sched.claim(store, "s", "run-2")  # we are alive: still held
        assert sched.holder(store, "s") is not None
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)
        assert sched.claim(store, "s", "run-1", pid=int(dead.stdout))  # handed to a pid
        assert sched.holder(store, "s") is None  # ... which is gone: the lock is free
        assert sched.claim(store, "s", "run-3")
        sched.release(store, "s", "run-1")  # not the holder: no effect
        assert sched.holder(store, "s") is not None
        sched.release(store, "s", "run-3")
        assert sched.holder(store, "s") is None
    finally:
        store.close()


def test_cli_schedule_add_list_crontab_remove(state: Path) -> None:
    added = cli("schedule", "add", "*/15 * * * *", str(FIXTURES / "sysexit.ipynb"),
                "-p", "code", "0", "--catch-up", "skip", "--tz", "UTC")
    assert added.returncode == 0, added.stderr
    assert "schedule sysexit added" in added.stdout
    bad = cli("schedule", "add", "every day", str(FIXTURES / "sysexit.ipynb"))
    assert bad.returncode == 2
    assert "not a valid cron expression" in bad.stderr
    listed = cli("schedule", "list")
    assert "sysexit" in listed.stdout
    assert "*/15 * * * *" in listed.stdout
    assert "skip" in listed.stdout
    tab = cli("schedule", "crontab").stdout
    line = next(x for x in tab.splitlines() if x.startswith("*/15"))
    assert "CRON_TZ=UTC" in tab
    assert f"ORBITS_NB_STATE={state}" in line
    assert "-m orbits_nb.cli schedule run sysexit" in line
    assert sys.executable in line
    removed = cli("schedule", "remove", "sysexit")
    assert removed.returncode == 0
    assert "no schedules" in cli("schedule", "list").stdout
    assert cli("schedule", "remove", "sysexit").returncode == 2


def test_crontab_escapes_percent_signs(tmp_path: Path) -> None:
    text = sched.crontab([Schedule("a%b", "@daily", str(tmp_path / "x.ipynb"))],
                         tmp_path / "s.duckdb", python="/usr/bin/python3")
    line = text.splitlines()[-1]
    assert line.startswith("@daily ")
    assert "a\\%b" in line
    assert "a%b" not in line
