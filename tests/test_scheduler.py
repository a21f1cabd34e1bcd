"""The scheduler with real runner processes and kernels, driven by an injected clock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

import pytest

from orbits_nb.runbooks import records
from orbits_nb.runbooks import schedules as sched
from orbits_nb.runbooks.scheduler import Scheduler
from orbits_nb.store.duckdb_store import DuckDBStore

FIXTURES = Path(__file__).parent / "notebooks"
ROOT = Path(__file__).resolve().parents[1]
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=ZoneInfo("UTC")).timestamp()  # a Monday, 09:00 UTC
FIVE_MIN = 300.0

pytestmark = pytest.mark.slow


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def log(tmp_path: Path) -> Iterator[IO[bytes]]:
    with open(tmp_path / "children.log", "wb") as handle:
        yield handle


@pytest.fixture
def store(state: Path) -> Iterator[DuckDBStore]:
    s = DuckDBStore(state)
    yield s
    s.close()


def add(store: DuckDBStore, schedule: str, notebook: str, **params: str) -> None:
    sched.add(store, "*/5 * * * *", FIXTURES / notebook, name=schedule,
              cli=list(params.items()), options={"tz": "UTC"}, now=T0)


def wait_for(path: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.05)


def by_schedule(store: DuckDBStore) -> dict[str, list[records.NotebookRun]]:
    found: dict[str, list[records.NotebookRun]] = {}
    for record in reversed(records.listing(store, limit=None)):
        found.setdefault(str(record.schedule_id), []).append(record)
    return found


def counts(workdir: Path) -> dict[str, int]:
    return {p.stem: int(p.read_text()) for p in workdir.glob("*.count")}


def test_two_schedules_due_at_once_run_together(state: Path, store: DuckDBStore,
                                                tmp_path: Path, log: IO[bytes]) -> None:
    # Each waits until the other has started: sequential runs would time out and fail.
    add(store, "left", "rendezvous.ipynb", workdir=str(tmp_path), name="a", wait_for="b.started")
    add(store, "right", "rendezvous.ipynb", workdir=str(tmp_path), name="b",
        wait_for="a.started")
    clock = Clock(T0 + FIVE_MIN + 1)
    scheduler = Scheduler(state, clock=clock, output=log)
    tick = scheduler.tick()
    assert sorted(s for s, _ in tick.started) == ["left", "right"]
    done = scheduler.wait_children(timeout=240)
    assert sorted((s, code) for s, _, code in done.finished) == [("left", 0), ("right", 0)]
    runs = by_schedule(store)
    for name in ("left", "right"):
        [record] = runs[name]
        assert (record.status, record.trigger) == ("succeeded", "schedule")
        assert record.scheduled_for == T0 + FIVE_MIN
    assert (tmp_path / "a.done").exists()
    assert (tmp_path / "b.done").exists()
    assert scheduler.tick().started == []  # nothing more is due at this time
    scheduler.stop()


def test_occurrence_skipped_while_the_previous_run_is_active(
        state: Path, store: DuckDBStore, tmp_path: Path, log: IO[bytes]) -> None:
    add(store, "slow", "rendezvous.ipynb", workdir=str(tmp_path), name="c",
        wait_for="release")
    clock = Clock(T0 + FIVE_MIN + 1)
    scheduler = Scheduler(state, clock=clock, output=log)
    assert [s for s, _ in scheduler.tick().started] == ["slow"]
    wait_for(tmp_path / "c.started")
    clock.now += FIVE_MIN  # the next occurrence comes due while the first still runs
    tick = scheduler.tick()
    assert tick.started == []
    assert tick.skipped == [("slow", 1, "previous run still active")]
    # A cron-started instance is refused too, and says so without failing.
    other = subprocess.run([sys.executable, "-m", "orbits_nb.cli", "schedule", "run", "slow"],
                           cwd=ROOT, capture_output=True, text=True, check=False, timeout=120)
    assert other.returncode == 0
    assert "is already running" in other.stdout
    (tmp_path / "release").touch()
    scheduler.wait_children(timeout=240)
    assert (tmp_path / "c.log").read_text().splitlines() == ["started"]
    stored = sched.get(store, "slow")
    assert stored.skipped == 1
    assert stored.last_due == T0 + 2 * FIVE_MIN
    assert [r.status for r in by_schedule(store)["slow"]] == ["succeeded"]
    scheduler.stop()


def test_failures_do_not_stop_it_and_dead_kernels_are_resumed(
        state: Path, store: DuckDBStore, tmp_path: Path, log: IO[bytes]) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "kill").touch()
    add(store, "boom", "broken.ipynb")
    add(store, "deploy", "resume_after_kill.ipynb", workdir=str(work))
    clock = Clock(T0 + FIVE_MIN + 1)
    scheduler = Scheduler(state, clock=clock, output=log)
    assert len(scheduler.tick().started) == 2
    scheduler.wait_children(timeout=240)
    runs = by_schedule(store)
    assert runs["boom"][0].error["type"] == "ValueError"  # type: ignore[index]
    assert runs["deploy"][0].error["type"] == "KernelDied"  # type: ignore[index]

    tick = scheduler.tick()  # same time: nothing due, but the dead kernel's run resumes
    assert tick.resumed == [("deploy", runs["deploy"][0].notebook_run_id)]
    scheduler.wait_children(timeout=240)
    resumed = by_schedule(store)["deploy"][-1]
    assert (resumed.status, resumed.attempt) == ("succeeded", 2)
    assert resumed.scheduled_for == T0 + FIVE_MIN
    assert counts(work) == {"prepare": 1, "build": 1, "explode": 2, "finish": 1}
    assert scheduler.tick().resumed == []  # a failing cell is not retried

    clock.now += FIVE_MIN  # and the next occurrences still run
    assert sorted(s for s, _ in scheduler.tick().started) == ["boom", "deploy"]
    scheduler.wait_children(timeout=240)
    assert [r.status for r in by_schedule(store)["boom"]] == ["failed", "failed"]
    scheduler.stop()


def test_scheduler_process_stops_cleanly_and_resumes_on_restart(
        state: Path, store: DuckDBStore, tmp_path: Path) -> None:
    sched.add(store, "*/5 * * * *", FIXTURES / "rendezvous.ipynb", name="nightly",
              cli=[("workdir", str(tmp_path)), ("name", "n"), ("wait_for", "release")],
              now=time.time() - 3600)  # an occurrence is overdue: catch-up runs it now
    store.close()
    command = [sys.executable, "-m", "orbits_nb.cli", "scheduler", "--poll", "0.5"]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(tmp_path / "n.started")
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert "stopping" in out
    [interrupted] = by_schedule(store)["nightly"]
    assert interrupted.status == "failed", out
    assert interrupted.error is not None
    assert interrupted.error["type"] == "Interrupted"
    store.close()
    (tmp_path / "release").touch()
    again = subprocess.run([*command[:-2], "--once"], cwd=ROOT, capture_output=True,
                           text=True, check=False, timeout=240)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"resuming {interrupted.notebook_run_id}" in again.stdout
    history: list[Any] = by_schedule(store)["nightly"]
    assert [r.status for r in history] == ["failed", "succeeded"]
    assert history[1].resume_of == interrupted.notebook_run_id
    store.close()
    assert os.environ.get("ORBITS_NB_STATE") == str(state)
