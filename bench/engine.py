"""Durable engine figures on a file-backed store. Prints; asserts nothing.

    python bench/engine.py            # all
    python bench/engine.py a c        # some of: a b c d e

a: durable overhead per sequential no-op step (1,000 steps), median and p90
b: re-running a completed 10,000-step run: total time and peak memory
c: 200 concurrent runs of 5 steps in one process: steps per second
d: two processes each running a 200-step workflow on one file: slowdown vs alone
e: `python -c "import orbits_nb"` wall time
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import orbits_nb as ob


class Noop(ob.Action):
    async def main(self) -> Any:
        return None


class Timed(ob.Workflow):
    """Records the wall time of each durable step."""

    async def define(self) -> Any:
        times = []
        for _ in range(self.args["steps"]):
            t = time.perf_counter()
            await self.do("s", Noop())
            times.append(time.perf_counter() - t)
        return times if self.args.get("report") else len(times)


class Five(ob.Workflow):
    async def define(self) -> Any:
        for i in range(5):
            await self.do(f"s{i}", Noop())
        return 5


def bench_a(tmp: Path) -> None:
    engine = ob.Engine(tmp / "a.duckdb")
    engine.start(Timed(steps=50, report=True), run_id="warmup").wait()
    times = engine.start(Timed(steps=1000, report=True)).wait()
    engine.close()
    ms = sorted(t * 1000 for t in times)
    print(f"(a) sequential no-op step, 1,000 steps: median {statistics.median(ms):.3f} ms, "
          f"p90 {ms[900]:.3f} ms, mean {statistics.mean(ms):.3f} ms")


def bench_b(tmp: Path) -> None:
    engine = ob.Engine(tmp / "b.duckdb")
    t = time.perf_counter()
    engine.start(Timed(steps=10_000), run_id="big").wait()
    first = time.perf_counter() - t
    engine.close()
    replays = []
    for _ in range(3):
        engine = ob.Engine(tmp / "b.duckdb")
        t = time.perf_counter()
        engine.start(Timed(steps=10_000), run_id="big").wait()
        replays.append(time.perf_counter() - t)
        engine.close()
    replay = statistics.median(replays)
    # Memory is measured apart: tracing allocations slows Python down several times.
    engine = ob.Engine(tmp / "b.duckdb")
    tracemalloc.start()
    engine.start(Timed(steps=10_000), run_id="big").wait()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    engine.close()
    print(f"(b) 10,000-step run: first execution {first:.2f} s; re-run of the completed run "
          f"(fresh engine, every step replayed) {replay:.3f} s, peak traced memory "
          f"{peak / 2**20:.1f} MiB")


def bench_c(tmp: Path) -> None:
    engine = ob.Engine(tmp / "c.duckdb")
    engine.start(Five(), run_id="warmup").wait()
    commits = engine.writer.commits
    t = time.perf_counter()
    runs = [engine.start(Five(), run_id=f"r{i}") for i in range(200)]
    for run in runs:
        run.wait()
    took = time.perf_counter() - t
    commits = engine.writer.commits - commits
    engine.close()
    print(f"(c) 200 concurrent runs x 5 steps: {1000 / took:,.0f} steps/s "
          f"({took:.2f} s, {commits} group commits)")


CHILD = """
import sys, time
sys.path.insert(0, sys.argv[3])
from engine import Timed
import orbits_nb as ob
engine = ob.Engine(sys.argv[1])
t = time.perf_counter()
engine.start(Timed(steps=200), run_id=sys.argv[2]).wait()
print(time.perf_counter() - t)
engine.close()
"""


def _children(state: Path, ids: list[str]) -> list[float]:
    procs = [subprocess.Popen([sys.executable, "-c", CHILD, str(state), i,
                               str(Path(__file__).parent)], stdout=subprocess.PIPE, text=True)
             for i in ids]
    return [float(p.communicate()[0]) for p in procs]


def bench_d(tmp: Path) -> None:
    alone = _children(tmp / "d1.duckdb", ["alone"])[0]
    both = _children(tmp / "d2.duckdb", ["p1", "p2"])
    print(f"(d) 200-step workflow alone {alone:.2f} s; two processes at once "
          f"{both[0]:.2f} s and {both[1]:.2f} s: slowdown x{max(both) / alone:.2f} "
          f"(x2.0 would be fair sharing of one writer)")


def bench_e(_: Path) -> None:
    runs = []
    for _ in range(7):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import orbits_nb"], check=True)
        runs.append(time.perf_counter() - t)
    base = []
    for _ in range(7):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        base.append(time.perf_counter() - t)
    print(f"(e) python -c 'import orbits_nb': median {statistics.median(runs) * 1000:.0f} ms "
          f"(bare interpreter {statistics.median(base) * 1000:.0f} ms)")


def main() -> None:
    which = sys.argv[1:] or ["a", "b", "c", "d", "e"]
    with tempfile.TemporaryDirectory() as tmp:
        for name in which:
            globals()[f"bench_{name}"](Path(tmp))
            asyncio.set_event_loop(None)


if __name__ == "__main__":
    main()
