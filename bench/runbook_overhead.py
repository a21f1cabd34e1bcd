"""What `orbits-nb run` costs next to plain papermill, and what the scheduler costs per run.

    .venv/bin/python bench/runbook_overhead.py [--repeat 7]

Prints, for a trivial runbook (a parameters cell and one print), the same command line
run by `orbits-nb run` and by the `papermill` CLI, in turn (A B A B ...) after one
warm-up each, so that load from other processes hits both alike:
* wall and CPU seconds of each whole command (median, min, max; CPU includes the
  kernel, a child process);
* the ratio orbits-nb / papermill of each pair (median, min, max): below 1 is faster;
* the import time of papermill alone (both pay it);
* the scheduler's own time per run when warm: one tick that finds a due schedule,
  claims its lock and starts the runner (the runner's execution is not included),
  and an idle tick over many schedules.

`orbits-nb run` starts the kernel first, so that it boots while the runner opens the
state file and imports papermill; papermill imports first, then starts the kernel.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

PYTHON = sys.executable
BIN = Path(PYTHON).parent

TRIVIAL = {
    "nbformat": 4, "nbformat_minor": 5,
    "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                "language": "python"}, "language_info": {"name": "python"}},
    "cells": [
        {"cell_type": "code", "id": "p", "metadata": {"tags": ["parameters"]},
         "source": "n = 1", "outputs": [], "execution_count": None},
        {"cell_type": "code", "id": "c", "metadata": {}, "source": "print(n * 2)",
         "outputs": [], "execution_count": None},
    ],
}


@dataclass
class Timing:
    wall: float
    cpu: float


def timed(command: list[str], env: dict[str, str]) -> Timing:
    """One whole command: wall seconds, and CPU seconds of it and its children."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True, capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Timing(wall, cpu)


def interleaved(repeat: int, commands: dict[str, list[str]],
                env: dict[str, str]) -> dict[str, list[Timing]]:
    """Alternate the commands so that load from other processes hits them alike."""
    for command in commands.values():
        timed(command, env)  # warm the OS caches once
    times: dict[str, list[Timing]] = {name: [] for name in commands}
    for _ in range(repeat):
        for name, command in commands.items():
            times[name].append(timed(command, env))
    return times


def spread(values: list[float], unit: str = "s") -> str:
    return (f"{statistics.median(values):6.2f} {unit} (min {min(values):.2f}, "
            f"max {max(values):.2f})")


def scheduler_figures(folder: Path, notebook: Path, schedules_count: int) -> None:
    from orbits_nb.runbooks import schedules
    from orbits_nb.runbooks.scheduler import Scheduler
    from orbits_nb.store.duckdb_store import DuckDBStore

    state = folder / "sched.duckdb"
    base = 1_800_000_000.0
    store = DuckDBStore(state)
    for i in range(schedules_count):
        schedules.add(store, "0 * * * *", notebook, name=f"s{i}", now=base)
    store.close()
    clock = [base + 60.0]
    with open(folder / "children.log", "wb") as log:
        scheduler = Scheduler(state, clock=lambda: clock[0], output=log,
                              max_parallel=schedules_count)
        scheduler.tick()  # warm: schema, imports, croniter
        idle = []
        for _ in range(5):
            start = time.perf_counter()
            scheduler.tick()
            idle.append(time.perf_counter() - start)
        clock[0] = base + 3600 + 1  # every schedule comes due at once
        start = time.perf_counter()
        tick = scheduler.tick()
        launching = time.perf_counter() - start
        scheduler.wait_children(timeout=600)
        scheduler.stop()
    launched = len(tick.started)
    print(f"scheduler, idle tick over {schedules_count} schedules: "
          f"{statistics.median(idle) * 1000:.1f} ms")
    print(f"scheduler, tick launching {launched} due runs: {launching * 1000:.1f} ms "
          f"= {launching / max(launched, 1) * 1000:.1f} ms per run (runner time excluded)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--schedules", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="orbits-nb-bench-") as tmp:
        folder = Path(tmp)
        notebook = folder / "trivial.ipynb"
        notebook.write_text(json.dumps(TRIVIAL))
        env = {**os.environ, "ORBITS_NB_STATE": str(folder / "state.duckdb"),
               "ORBITS_NB_OUTPUT": str(folder / "output")}
        ours, theirs = "orbits-nb run", "papermill CLI"
        times = interleaved(args.repeat, {
            ours: [PYTHON, "-m", "orbits_nb.cli", "run", str(notebook),
                   str(folder / "ob.ipynb"), "-p", "n", "2"],
            theirs: [str(BIN / "papermill"), "--no-progress-bar", str(notebook),
                     str(folder / "pm.ipynb"), "-p", "n", "2"],
            "import papermill": [PYTHON, "-c", "import papermill"],
            "python -c pass": [PYTHON, "-c", "pass"],
        }, env)
        print(f"trivial runbook, {args.repeat} interleaved runs of each, whole commands:")
        for name in (ours, theirs):
            print(f"  {name:15} wall {spread([t.wall for t in times[name]])}, "
                  f"cpu {spread([t.cpu for t in times[name]])}")
        ratios = [a.wall / b.wall for a, b in zip(times[ours], times[theirs], strict=True)]
        print(f"  {ours} / {theirs}, pair by pair: wall {spread(ratios, 'x')}")
        imports = statistics.median(t.wall for t in times["import papermill"]) - \
            statistics.median(t.wall for t in times["python -c pass"])
        print(f"  import papermill {imports:6.2f} s (paid by both)")
        scheduler_figures(folder, notebook, args.schedules)


if __name__ == "__main__":
    main()
