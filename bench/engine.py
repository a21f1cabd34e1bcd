"""Durable engine figures on a file-backed store, beside the floor. Prints; asserts nothing.

    python bench/engine.py            # all
    python bench/engine.py a c        # some of: a b c d e f g
    python bench/engine.py --rounds 5 a

a: sequential durable no-op step: slope over N=200..1000 steps, beside the floor (one
   DuckDB autocommit insert on a file), measured in turn, medians of the rounds; wall
   time and the process's CPU time (all threads) per step
b: re-running a completed 1,000-step run: same engine, and from a fresh process
c: 200 concurrent runs of 5 steps in one process, `async def main` and `def main`
d: two processes each running a 200-step workflow on one file: slowdown vs alone,
   and the p99 of a step's duration while they share the file
e: `python -c "import orbits_nb"` wall time
f: 10,000 concurrent 3-step runs in a fresh process: time, peak RSS, RSS after (with
   no bound, and with Engine(max_active_runs=1000))
g: recovery: a process killed mid-run, a fresh one resumes the 1,000-step run
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orbits_nb as ob

ROUNDS = 3


class Noop(ob.Action):
    async def main(self) -> Any:
        return None


class SyncNoop(ob.Action):
    def main(self) -> Any:
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
        action = SyncNoop if self.args.get("sync") else Noop
        for i in range(self.args.get("steps", 5)):
            await self.do(f"s{i}", action())
        return 5


def median(values: list[float]) -> float:
    return statistics.median(values)


# -- a: sequential step and the floor -------------------------------------------------
def _clocks() -> tuple[float, float]:
    """Wall time and this process's CPU time (every thread), in seconds."""
    return time.perf_counter(), time.process_time()


def _since(start: tuple[float, float]) -> tuple[float, float]:
    wall, cpu = _clocks()
    return wall - start[0], cpu - start[1]


def _floor(path: Path, n: int) -> tuple[float, float]:
    """Wall and CPU seconds for ``n`` autocommit single-row inserts on a DuckDB file."""
    import duckdb

    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE IF NOT EXISTS t (x INTEGER)")
    start = _clocks()
    for _ in range(n):
        con.execute("INSERT INTO t VALUES (?)", [1])
    took = _since(start)
    con.close()
    return took


def _store_writes(path: Path, n: int) -> float:
    """Seconds for ``n`` store writes of what one sequential step commits (its two
    events), straight on the store: the floor of the engine's own schema."""
    from orbits_nb.core.rows import Batch
    from orbits_nb.core.state import Event
    from orbits_nb.store import open_store

    store = open_store(path)
    store.busy = True
    t = time.perf_counter()
    for _ in range(n):
        store.write(Batch(events=[Event("run", "step.started", "s", 1, {"name": "s"}),
                                  Event("run", "step.succeeded", "s", 1, {"result": None})]))
    took = time.perf_counter() - t
    store.close()
    return took


def _steps(engine: ob.Engine, n: int, run_id: str) -> tuple[float, float]:
    start = _clocks()
    engine.start(Timed(steps=n), run_id=run_id).wait()
    return _since(start)


def _slope(big: tuple[float, float], small: tuple[float, float]) -> tuple[float, float]:
    """Wall and CPU seconds per item between 200 and 1,000 items."""
    return (big[0] - small[0]) / 800, (big[1] - small[1]) / 800


def bench_a(tmp: Path) -> None:
    floors, writes, steps = [], [], []
    for r in range(ROUNDS):
        floors.append(_slope(_floor(tmp / f"floor{r}.duckdb", 1000),
                             _floor(tmp / f"floor{r}b.duckdb", 200)))
        writes.append((_store_writes(tmp / f"w{r}.duckdb", 1000)
                       - _store_writes(tmp / f"w{r}b.duckdb", 200)) / 800)
        engine = ob.Engine(tmp / f"a{r}.duckdb")
        engine.start(Timed(steps=20), run_id="warmup").wait()
        steps.append(_slope(_steps(engine, 1000, "n1000"), _steps(engine, 200, "n200")))
        engine.close()
    floor, step = median([f[0] for f in floors]) * 1000, median([s[0] for s in steps]) * 1000
    floor_cpu = median([f[1] for f in floors]) * 1000
    step_cpu = median([s[1] for s in steps]) * 1000
    write = median(writes) * 1000
    print(f"(a) sequential durable step (slope N=200..1000, median of {ROUNDS}): "
          f"{step:.3f} ms (CPU {step_cpu:.3f} ms); floor (one DuckDB autocommit insert on "
          f"a file) {floor:.3f} ms (CPU {floor_cpu:.3f} ms), ratio x{step / floor:.2f} "
          f"(CPU x{step_cpu / floor_cpu:.2f}); the store writing one step's two events "
          f"{write:.3f} ms, ratio x{step / write:.2f}")


# -- b: completed runs ------------------------------------------------------------------
FRESH = """
import sys, time
sys.path.insert(0, sys.argv[2])
from engine import Timed
import orbits_nb as ob
t = time.perf_counter()
engine = ob.Engine(sys.argv[1])
engine.start(Timed(steps=1000), run_id="big").wait()
print(time.perf_counter() - t)
engine.close()
"""


def bench_b(tmp: Path) -> None:
    # The class as the fresh process names it (engine:Timed, not __main__:Timed).
    from engine import Timed as Recorded  # type: ignore[import-not-found]

    path = tmp / "b.duckdb"
    engine = ob.Engine(path)
    engine.start(Recorded(steps=1000), run_id="big").wait()
    same = []
    for _ in range(5):
        t = time.perf_counter()
        engine.start(Recorded(steps=1000), run_id="big").wait()
        same.append(time.perf_counter() - t)
    engine.close()
    fresh = []
    for _ in range(ROUNDS):
        fresh.append(float(_python(FRESH, str(path), str(Path(__file__).parent))))
    print(f"(b) re-running a completed 1,000-step run: same process {median(same) * 1000:.2f} ms; "
          f"fresh process (in-process time, engine included) {median(fresh) * 1000:.1f} ms")


# -- c: fan-out ---------------------------------------------------------------------------
def _fan_out(path: Path, sync: bool) -> tuple[float, int]:
    engine = ob.Engine(path)
    engine.start(Five(sync=sync), run_id="warmup").wait()
    commits = engine.writer.commits
    t = time.perf_counter()
    runs = [engine.start(Five(sync=sync), run_id=f"r{i}") for i in range(200)]
    for run in runs:
        run.wait()
    took = time.perf_counter() - t
    commits = engine.writer.commits - commits
    engine.close()
    return 1000 / took, commits


def bench_c(tmp: Path) -> None:
    rates: dict[bool, list[float]] = {False: [], True: []}
    for r in range(ROUNDS):
        for sync in (False, True):
            rates[sync].append(_fan_out(tmp / f"c{r}{sync}.duckdb", sync)[0])
    a, s = median(rates[False]), median(rates[True])
    print(f"(c) 200 concurrent runs x 5 steps: async def main {a:,.0f} steps/s; def main "
          f"{s:,.0f} steps/s (async/sync x{a / s:.2f})")


# -- d: two processes -------------------------------------------------------------------
CHILD = """
import sys, time, json
sys.path.insert(0, sys.argv[3])
from engine import Timed
import orbits_nb as ob
engine = ob.Engine(sys.argv[1])
t = time.perf_counter()
times = engine.start(Timed(steps=200, report=True), run_id=sys.argv[2]).wait()
print(json.dumps([time.perf_counter() - t, times]))
engine.close()
"""


def _python(code: str, *args: str, env: dict[str, str] | None = None) -> str:
    """stdout of ``python -c code args`` (its stderr is shown when it fails)."""
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env=env)
    if done.returncode:
        raise SystemExit(f"bench child failed:\n{done.stderr}")
    return done.stdout


def _children(state: Path, ids: list[str]) -> list[tuple[float, list[float]]]:
    import json

    procs = [subprocess.Popen([sys.executable, "-c", CHILD, str(state), i,
                               str(Path(__file__).parent)], stdout=subprocess.PIPE, text=True)
             for i in ids]
    return [tuple(json.loads(p.communicate()[0])) for p in procs]  # type: ignore[misc]


def bench_d(tmp: Path) -> None:
    slowdowns, p99s, alones = [], [], []
    for r in range(ROUNDS):
        alone = _children(tmp / f"d1{r}.duckdb", ["alone"])[0][0]
        both = _children(tmp / f"d2{r}.duckdb", ["p1", "p2"])
        alones.append(alone)
        slowdowns.append(max(b[0] for b in both) / alone)
        waits = sorted(t for b in both for t in b[1])
        p99s.append(waits[int(len(waits) * 0.99)])
    print(f"(d) 200-step workflow alone {median(alones):.2f} s; two processes at once: "
          f"slowdown x{median(slowdowns):.2f} (x2.0 is fair sharing of one writer), p99 "
          f"step {median(p99s) * 1000:.0f} ms")


# -- e: import time ------------------------------------------------------------------------
def bench_e(_: Path) -> None:
    runs, base = [], []
    for _ in range(7):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import orbits_nb"], check=True)
        runs.append(time.perf_counter() - t)
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        base.append(time.perf_counter() - t)
    print(f"(e) python -c 'import orbits_nb': median {median(runs) * 1000:.0f} ms "
          f"(bare interpreter {median(base) * 1000:.0f} ms)")


# -- f: 10,000 runs -------------------------------------------------------------------------
SCALE = """
import gc, resource, sys, time
sys.path.insert(0, sys.argv[2])
from engine import Five
import orbits_nb as ob

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20

bound = int(sys.argv[3])
engine = ob.Engine(sys.argv[1], **({"max_active_runs": bound} if bound else {}))
engine.start(Five(steps=3), run_id="warmup").wait()
t = time.perf_counter()
runs = [engine.start(Five(steps=3), run_id=f"r{i}") for i in range(10_000)]
for run in runs:
    run.wait()
took = time.perf_counter() - t
gc.collect()
after = rss()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(took, peak, after)
engine.close()
"""


def bench_f(tmp: Path) -> None:
    for bound in (0, 1000):
        label = f"max_active_runs={bound}" if bound else "no bound"
        try:
            out = _python(SCALE, str(tmp / f"f{bound}.duckdb"), str(Path(__file__).parent),
                          str(bound)).split()
        except SystemExit:
            print(f"(f) 10,000 concurrent 3-step runs ({label}): not offered by this version")
            continue
        # The last line: anything the child printed before it is not a figure.
        took, peak, after = (float(x) for x in out[-3:])
        print(f"(f) 10,000 concurrent 3-step runs (fresh process, {label}): {took:.1f} s, "
              f"peak RSS {peak:.0f} MiB, RSS after they finished {after:.0f} MiB "
              "(all 10,000 handles kept)")


# -- g: recovery ----------------------------------------------------------------------------
class Hang(ob.Action):
    async def main(self) -> Any:
        if os.environ.get("BENCH_HANG"):
            print("ready", file=sys.__stdout__, flush=True)
            await asyncio.sleep(600)
        return None


class Crashing(ob.Workflow):
    """1,000 durable steps, then one that hangs in the process that gets killed."""

    async def define(self) -> Any:
        for _ in range(1000):
            await self.do("s", Noop())
        await self.do("last", Hang())
        return 1001


RECOVER = """
import sys, time
sys.path.insert(0, sys.argv[2])
t = time.perf_counter()
from engine import Crashing
import orbits_nb as ob
engine = ob.Engine(sys.argv[1])
engine.start(Crashing(), run_id="big").wait()
print(time.perf_counter() - t)
engine.close()
"""


def bench_g(tmp: Path) -> None:
    takes = []
    here = str(Path(__file__).parent)
    for r in range(ROUNDS):
        path = tmp / f"g{r}.duckdb"
        victim = subprocess.Popen([sys.executable, "-c", RECOVER, str(path), here],
                                  stdout=subprocess.PIPE, text=True,
                                  env={**os.environ, "BENCH_HANG": "1"})
        assert victim.stdout is not None
        victim.stdout.readline()
        victim.kill()
        victim.wait()
        takes.append(float(_python(RECOVER, str(path), here)))
    print(f"(g) recovery after a kill (fresh process: import, take the dead owner's run "
          f"over, replay its 1,000 steps, finish): median {median(takes) * 1000:.0f} ms")


def main() -> None:
    global ROUNDS
    args = sys.argv[1:]
    if "--help" in args or "-h" in args:
        print(__doc__)
        return
    if "--rounds" in args:
        at = args.index("--rounds")
        ROUNDS = int(args[at + 1])
        del args[at:at + 2]
    which = args or ["a", "b", "c", "d", "e", "f", "g"]
    print(f"bench/engine.py on {os.cpu_count()} cores, {ROUNDS} rounds, "
          f"{time.strftime('%Y-%m-%d %H:%M')}, load average "
          + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    with tempfile.TemporaryDirectory() as tmp:
        for name in which:
            globals()[f"bench_{name}"](Path(tmp))
            asyncio.set_event_loop(None)
    print("load average at the end " + " ".join(f"{x:.2f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()
