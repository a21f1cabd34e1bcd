"""Time for a cancel issued in one process to reach the process executing the run.

    python bench/cancel_latency.py                       # a DuckDB file, 20 rounds
    python bench/cancel_latency.py --rounds 50
    python bench/cancel_latency.py postgresql://u@h/db   # the team store

Each round: an owner process executes a run whose step sleeps (awaiting); this process
asks it to cancel (``run.cancel()``). Two figures, from the store's own timestamps:
request→ended is from the request event (its ``at``) to the owner's ``run.cancelled``
event; call is how long ``run.cancel()`` itself took here. Prints; asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from control_flows import owner

import orbits_nb as ob


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("state", nargs="?", help="a state file or postgresql:// URL")
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        state = args.state or str(Path(folder) / "state.duckdb")
        engine = ob.Engine(state)
        reach, calls = [], []
        for i in range(args.rounds):
            run_id = f"latency-{time.time_ns()}-{i}"
            child = owner(state, run_id, "sleepy", Path(folder) / f"m{i}")
            run = engine.get_run(run_id)
            began = time.perf_counter()
            run.cancel()
            calls.append(time.perf_counter() - began)
            child.communicate(timeout=120)
            events = engine.store.load_run(run_id)
            asked = next(e for e in events if e.kind == "run.cancel_requested")
            done = next(e for e in events if e.kind == "run.cancelled")
            reach.append(done.ts - float(asked.data["at"]))
        engine.close()
    for name, values in (("request→ended", reach), ("cancel() call", calls)):
        ms = sorted(v * 1000 for v in values)
        print(f"{name:14s} p50 {statistics.median(ms):7.1f} ms   p90 "
              f"{ms[int(len(ms) * 0.9) - 1]:7.1f} ms   max {ms[-1]:7.1f} ms   "
              f"({len(ms)} rounds, {'postgres' if args.state else 'duckdb file'})")


if __name__ == "__main__":
    main()
