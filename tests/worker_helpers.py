"""Starting ``orbits-nb worker`` processes and reading what they recorded."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from orbits_nb.core.state import Event, fold
from orbits_nb.store import open_store

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent


def environment(state: str | Path, **extra: str) -> dict[str, str]:
    paths = [str(ROOT), str(TESTS), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p),
            "ORBITS_NB_STATE": str(state), "ORBITS_NB_PROGRESS": "0", **extra}


def start_worker(state: str | Path, *args: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "orbits_nb.cli", "worker", *args],
                            env=environment(state, **env), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def run_worker(state: str | Path, *args: str, **env: str) -> str:
    """A worker with --once, to its end; its output (it must exit 0)."""
    process = start_worker(state, "--once", *args, **env)
    out, _ = process.communicate(timeout=600)
    assert process.returncode == 0, out
    return out


def events(state: str | Path) -> list[Event]:
    store = open_store(state)
    try:
        rows = store.relation("SELECT run_id FROM runs").fetchall()
        found = [e for (run_id,) in rows for e in store.load_run(run_id)]
    finally:
        store.close()
    return sorted(found, key=lambda e: e.seq or 0)


def side_counts(path: Path) -> Counter[str]:
    if not path.exists():
        return Counter()
    return Counter(line.strip() for line in path.read_text().splitlines() if line.strip())


def wait_for(check: Any, what: str, limit: float = 120.0) -> Any:
    """Poll ``check()`` until it is truthy (a safety net against a hung test, not a
    timing assertion)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"gave up waiting for {what}")


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    """The most intervals open at one moment (an end before a start at a tie)."""
    points = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals],
                    key=lambda p: (p[0], p[1]))
    most = now = 0
    for _, step in points:
        now += step
        most = max(most, now)
    return most


def execution_intervals(found: list[Event]) -> dict[str, list[tuple[float, float]]]:
    """Per run, each execution from its run.started to the next end or start."""
    spans: dict[str, list[tuple[float, float]]] = {}
    open_at: dict[str, float] = {}
    for event in found:
        if event.step is not None:
            continue
        if event.kind == "run.started":
            open_at[event.run_id] = event.ts
        elif event.kind in ("run.succeeded", "run.failed", "run.cancelled") and \
                event.run_id in open_at:
            spans.setdefault(event.run_id, []).append((open_at.pop(event.run_id), event.ts))
    return spans


def side_order(path: Path, run: str) -> list[str]:
    """The steps of ``run`` in the order their side effects happened."""
    if not path.exists():
        return []
    return [line.split()[1] for line in path.read_text().splitlines()
            if line.split() and line.split()[0] == run]


def check_no_completed_step_again(path: Path, run: str, mine: list[Event],
                                  steps: list[str]) -> None:
    """Each step succeeded once; a step executed again only when the previous
    execution was cut short (right after itself), never after a later step began, and
    never once its success was recorded.

    Executions are not counted from ``run.started``: a process killed before its first
    commit leaves none, though its step may have begun (and must then run again).
    """
    order = side_order(path, run)
    collapsed = [s for i, s in enumerate(order) if i == 0 or order[i - 1] != s]
    assert collapsed == steps, (run, order)
    succeeded = {e.step: e.ts for e in mine if e.kind == "step.succeeded"}
    for step in steps:
        assert sum(e.kind == "step.succeeded" and e.step == step for e in mine) == 1
    at = Path(f"{path}.at")
    times = [line.split() for line in at.read_text().splitlines()] if at.exists() else []
    late = [(s, float(t)) for r, s, t in times if r == run and float(t) > succeeded[s]]
    assert not late, (run, "executed after its success was recorded", late, succeeded)


def status(state: str | Path, run_id: str) -> str:
    """The recorded status of ``run_id`` (read through a store of its own)."""
    store = open_store(state)
    try:
        return fold(run_id, store.load_run(run_id)).status
    finally:
        store.close()


def drain(state: str | Path, runs: Any, workers: list[subprocess.Popen[str]]
          ) -> list[Event]:
    """Wait until every run of ``runs`` succeeded, then stop ``workers`` with SIGTERM
    (each must exit 0); the events recorded."""
    import signal

    try:
        wait_for(lambda: all(status(state, r) == "succeeded" for r in runs), "the drain",
                 limit=600)
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        outputs = [w.communicate(timeout=120)[0] for w in workers]
    assert [w.returncode for w in workers] == [0] * len(workers), outputs
    return events(state)


def check_limits(found: list[Event], keys: dict[str, str], concurrency: int) -> None:
    """At most ``concurrency`` runs executed at a time, and one per key."""
    spans = execution_intervals(found)
    assert max_overlap([s for runs in spans.values() for s in runs]) <= concurrency
    for key in set(keys.values()):
        assert max_overlap([s for r, runs in spans.items() if keys[r] == key
                            for s in runs]) <= 1, key
