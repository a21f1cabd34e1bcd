"""What `orbits-nb run` costs over plain papermill, and what the scheduler costs per run.

    .venv/bin/python bench/runbook_overhead.py [--repeat 5]

Prints, for a trivial runbook (a parameters cell and one print):
* wall time of `orbits-nb run` vs the `papermill` CLI on the same notebook (median);
* the import time of papermill alone (both pay it);
* the scheduler's own time per run when warm: one tick that finds a due schedule,
  claims its lock and starts the runner (the runner's execution is not included),
  and an idle tick over many schedules.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
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


def timed(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def interleaved(repeat: int, commands: dict[str, list[str]],
                env: dict[str, str]) -> dict[str, list[float]]:
    """Alternate the commands so that load from other processes hits them alike."""
    for command in commands.values():
        timed(command, env)  # warm the OS caches once
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(repeat):
        for name, command in commands.items():
            times[name].append(timed(command, env))
    return times


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
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--schedules", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="orbits-nb-bench-") as tmp:
        folder = Path(tmp)
        notebook = folder / "trivial.ipynb"
        notebook.write_text(json.dumps(TRIVIAL))
        env = {**os.environ, "ORBITS_NB_STATE": str(folder / "state.duckdb"),
               "ORBITS_NB_OUTPUT": str(folder / "output")}
        times = interleaved(args.repeat, {
            "orbits-nb run": [PYTHON, "-m", "orbits_nb.cli", "run", str(notebook),
                              "-p", "n", "2"],
            "papermill CLI": [str(BIN / "papermill"), "--no-progress-bar", str(notebook),
                              str(folder / "pm.ipynb"), "-p", "n", "2"],
            "import papermill": [PYTHON, "-c", "import papermill"],
            "python -c pass": [PYTHON, "-c", "pass"],
        }, env)
        median = {k: statistics.median(v) for k, v in times.items()}
        best = {k: min(v) for k, v in times.items()}
        print(f"trivial runbook, {args.repeat} interleaved runs (median / best):")
        for name in ("orbits-nb run", "papermill CLI"):
            print(f"  {name:16} {median[name]:6.2f} s / {best[name]:5.2f} s")
        ours, theirs = median["orbits-nb run"], median["papermill CLI"]
        print(f"  overhead         {ours - theirs:+6.2f} s / "
              f"{best['orbits-nb run'] - best['papermill CLI']:+5.2f} s "
              f"({(ours / theirs - 1) * 100:+.0f}% of the median)")
        print(f"  import papermill {median['import papermill'] - median['python -c pass']:6.2f} s"
              " (paid by both)")
        scheduler_figures(folder, notebook, args.schedules)


if __name__ == "__main__":
    main()
