"""Crash tests: SIGKILL a real process at random points, resume, check the store."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orbits_nb.store import open_store
from orbits_nb.store.integrity import check

WORKER = Path(__file__).with_name("crash_worker.py")
STEPS = 30
TRIALS = 20


def start_worker(state: Path | str, effects: Path, run_id: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(WORKER), str(state), str(effects), str(STEPS), run_id],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(params=["duckdb-file", "postgres"])
def new_state(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[str], str]:
    """Makes a fresh state (a DuckDB file, or a database on the test server) by name."""
    if request.param == "postgres":
        server = request.getfixturevalue("pg_server")
        return lambda name: str(server.database())
    return lambda name: str(tmp_path / f"{name}.duckdb")


def expected_total() -> int:
    return sum(i for i in range(STEPS) if i % 10 not in (5, 7))


def committing_pids(store: Any, run_id: str) -> dict[str, set[int]]:
    """For each step, the pid of the process whose execution recorded its success,
    and for watched steps also the pid that recorded that main() was done."""
    rows = store.fetch("SELECT seq, step, kind, data->>'pid' FROM events WHERE run_id = ? "
                       "ORDER BY seq", [run_id])
    pid = 0
    done: dict[str, set[int]] = defaultdict(set)
    for _, step, kind, started_pid in rows:
        if kind == "run.started":
            pid = int(started_pid)
        elif kind in ("step.succeeded", "step.waiting"):
            done[step].add(pid)
    return done


@pytest.mark.slow
def test_sigkill_at_random_points_then_resume(tmp_path: Path,
                                              new_state: Callable[[str], str]) -> None:
    rng = random.Random(20261126)
    for trial in range(TRIALS):
        state = new_state(f"state-{trial}")
        effects = tmp_path / f"effects-{trial}.txt"
        run_id = f"crash-{trial}"
        pids: list[int] = []
        for _ in range(2):  # kill it twice at random moments
            proc = start_worker(state, effects, run_id)
            pids.append(proc.pid)
            time.sleep(rng.uniform(0.05, 1.2))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        proc = start_worker(state, effects, run_id)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert f"RESULT {expected_total()}" in out

        store = open_store(state)
        assert check(store) == [], f"trial {trial}"
        statuses = store.fetch("SELECT status, count(*) FROM steps WHERE run_id = ? "
                               "GROUP BY status", [run_id])
        assert statuses == [("succeeded", STEPS + STEPS // 10)], f"trial {trial}"

        # No completed step ran again: once a process recorded a step's success (or
        # that a watcher's main() was done), no later process executed main() again.
        order = {pid: n for n, pid in enumerate([*pids, proc.pid])}
        committed = committing_pids(store, run_id)
        executions: dict[str, list[int]] = defaultdict(list)
        for line in effects.read_text().splitlines():
            step, pid, _ = line.split()
            executions[step].append(int(pid))
        for step, by in executions.items():
            first_commit = min(order[p] for p in committed[step])
            later = [p for p in by if order[p] > first_commit]
            assert not later, f"trial {trial}: {step} ran again after it completed"
        store.close()


@pytest.mark.slow
def test_killed_owner_is_taken_over(tmp_path: Path, new_state: Callable[[str], str]) -> None:
    state = new_state("state")
    effects = tmp_path / "effects.txt"
    proc = start_worker(state, effects, "takeover")
    deadline = time.monotonic() + 60
    while (not effects.exists() or len(effects.read_text().splitlines()) < 3) \
            and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    store: Any = open_store(state)
    assert store.fetch("SELECT pid FROM leases WHERE run_id = 'takeover'") == [(proc.pid,)]
    store.close()
    again = start_worker(state, effects, "takeover")
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    assert "RESULT" in out
