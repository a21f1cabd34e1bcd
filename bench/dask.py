"""Dask executor figures on a file-backed store. Prints; asserts nothing.

    python bench/dask.py               # all
    python bench/dask.py io cpu        # some of: io cpu overhead
    python bench/dask.py --tenants 100 # a smaller fleet

io: a fleet of 500 tenants x 4 steps, each step sleeping 50 ms (I/O-bound), on 1, 2
    and 4 worker processes of 8 threads: wall time, against the ideal
    500 x 4 x 50 ms / concurrency (concurrency = worker threads = tenants in flight)
cpu: the same fleet, each step 20 ms of pure Python, on 1, 2 and 4 worker processes
    of 1 thread: wall time and the speed-up from 1 worker
overhead: 200 sequential no-op steps, in the kernel (LocalExecutor) and on one Dask
    worker: what a Dask step costs more than a local step; and, for scale, plain
    ``client.submit(...).result()`` round trips and 2,000 no-op tasks at once on
    that worker, without orbits_nb

The workers are a LocalCluster's processes (``DaskExecutor(cluster=...)``); the
engine, the scheduler and the workers share this machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# This file's folder comes first on sys.path, where its name would hide the `dask`
# package from distributed (here and in the worker processes, which copy sys.path).
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent]

import orbits_nb as ob  # noqa: E402
from orbits_nb.executors.dask import DaskExecutor  # noqa: E402

STEPS = 4
IO_SECONDS = 0.05
CPU_SECONDS = 0.02
IO_THREADS = 8


class Sleep(ob.Action):
    def main(self) -> Any:
        time.sleep(IO_SECONDS)
        return self.args["n"]


class Spin(ob.Action):
    def main(self) -> Any:
        # Pure Python for CPU_SECONDS of this process's CPU time: holds the GIL.
        end = time.process_time() + CPU_SECONDS
        count = 0
        while time.process_time() < end:
            count += 1
        return count


class Noop(ob.Action):
    def main(self) -> Any:
        return None


class Tenant(ob.Workflow):
    async def define(self) -> Any:
        step = Spin if self.args["kind"] == "cpu" else Sleep
        for n in range(STEPS):
            await self.do(f"step-{n}", step(n=n))
        return self.args["tenant"]


class Fleet(ob.Workflow):
    async def define(self) -> Any:
        limit = asyncio.Semaphore(self.args["concurrency"])

        async def one(tenant: int) -> Any:
            async with limit:
                return await self.do(f"t{tenant}", Tenant(tenant=tenant,
                                                          kind=self.args["kind"]))

        done = await asyncio.gather(*(one(t) for t in range(self.args["tenants"])))
        return len(done)


class Sequence(ob.Workflow):
    async def define(self) -> Any:
        for _ in range(self.args["steps"]):
            await self.do("s", Noop())
        return self.args["steps"]


def warm(engine: ob.Engine, executor: DaskExecutor, kind: str, workers: int) -> None:
    """Start the cluster and import the step code on every worker before timing."""
    engine.start(Fleet(tenants=workers * 2, concurrency=workers * 2, kind=kind),
                 run_id=f"warm-{kind}-{workers}", executor=executor).wait()


def fleet(tmp: Path, kind: str, workers: int, threads: int, tenants: int) -> float:
    engine = ob.Engine(tmp / f"{kind}-{workers}.duckdb")
    executor = DaskExecutor(cluster={"n_workers": workers, "threads_per_worker": threads})
    try:
        warm(engine, executor, kind, workers)
        concurrency = workers * threads
        start = time.perf_counter()
        engine.start(Fleet(tenants=tenants, concurrency=concurrency, kind=kind),
                     executor=executor).wait()
        return time.perf_counter() - start
    finally:
        engine.close()


def bench_io(tmp: Path, tenants: int) -> None:
    for workers in (1, 2, 4):
        concurrency = workers * IO_THREADS
        ideal = tenants * STEPS * IO_SECONDS / concurrency
        wall = fleet(tmp, "io", workers, IO_THREADS, tenants)
        print(f"(io) {tenants} tenants x {STEPS} steps of {IO_SECONDS * 1000:.0f} ms, "
              f"{workers} worker(s) x {IO_THREADS} threads: {wall:.2f} s; ideal "
              f"{ideal:.2f} s; {wall / ideal:.2f}x the ideal; efficiency "
              f"{ideal / wall:.0%}", flush=True)


def bench_cpu(tmp: Path, tenants: int) -> None:
    walls: dict[int, float] = {}
    for workers in (1, 2, 4):
        walls[workers] = wall = fleet(tmp, "cpu", workers, 1, tenants)
        serial = tenants * STEPS * CPU_SECONDS
        print(f"(cpu) {tenants} tenants x {STEPS} steps of {CPU_SECONDS * 1000:.0f} ms "
              f"CPU, {workers} worker(s) x 1 thread: {wall:.2f} s; speed-up from 1 "
              f"worker {walls[1] / wall:.2f}x; efficiency {serial / wall / workers:.0%} "
              f"(serial work {serial:.1f} s)", flush=True)


def bench_overhead(tmp: Path, steps: int = 200) -> None:
    engine = ob.Engine(tmp / "overhead.duckdb")
    executor = DaskExecutor(cluster={"n_workers": 1, "threads_per_worker": 1})
    try:
        timings = {}
        for name, where in (("local", ob.LocalExecutor()), ("dask", executor)):
            engine.start(Sequence(steps=10), run_id=f"warm-{name}", executor=where).wait()
            start = time.perf_counter()
            engine.start(Sequence(steps=steps), run_id=name, executor=where).wait()
            timings[name] = (time.perf_counter() - start) / steps * 1000
    finally:
        engine.close()
    print(f"(overhead) {steps} sequential no-op steps: local {timings['local']:.2f} ms "
          f"per step, Dask {timings['dask']:.2f} ms per step: a Dask step costs "
          f"{timings['dask'] - timings['local']:.2f} ms more", flush=True)
    bare_dask(steps)


def nothing(n: int) -> int:
    return n


def bare_dask(steps: int, parallel: int = 2000) -> None:
    """Dask alone on this machine: the floor under any Dask step."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=8, processes=True,  # type: ignore[no-untyped-call]
                      dashboard_address=":0") as cluster, Client(cluster) as client:  # type: ignore[no-untyped-call]
        for n in range(20):
            client.submit(nothing, n, pure=False).result()
        start = time.perf_counter()
        for n in range(steps):
            client.submit(nothing, n, pure=False).result()
        round_trip = (time.perf_counter() - start) / steps * 1000
        start = time.perf_counter()
        client.gather([client.submit(nothing, n, pure=False) for n in range(parallel)])
        each = (time.perf_counter() - start) / parallel * 1000
    print(f"(overhead) Dask alone: submit + result {round_trip:.2f} ms per sequential task; "
          f"{parallel} no-op tasks at once {each:.2f} ms per task", flush=True)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("which", nargs="*", help="io, cpu, overhead (default: all)")
    parser.add_argument("--tenants", type=int, default=500)
    options = parser.parse_args(argv)
    which = options.which or ["io", "cpu", "overhead"]
    unknown = set(which) - {"io", "cpu", "overhead"}
    if unknown:
        parser.error(f"unknown figures {sorted(unknown)}: choose from io, cpu, overhead")
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        if "overhead" in which:
            bench_overhead(tmp)
        if "io" in which:
            bench_io(tmp, options.tenants)
        if "cpu" in which:
            bench_cpu(tmp, options.tenants)


if __name__ == "__main__":
    main(sys.argv[1:])
