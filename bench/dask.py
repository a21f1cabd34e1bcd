"""Dask executor figures on a file-backed store. Prints; asserts nothing.

    python bench/dask.py               # all
    python bench/dask.py io cpu        # some of: io cpu overhead
    python bench/dask.py --tenants 100 # a smaller fleet

io: a fleet of 500 tenants x 4 steps, each step sleeping 50 ms (I/O-bound), on 1, 2
    and 4 worker processes of 8 threads: wall time, against the ideal
    500 x 4 x 50 ms / concurrency (concurrency = the workers' threads)
cpu: the same fleet, each step 20 ms of pure Python, on 1, 2 and 4 worker processes
    of 1 thread: wall time and the speed-up from 1 worker
overhead: 200 sequential no-op steps, in the kernel (LocalExecutor) and on one Dask
    worker: what a Dask step costs more than a local step; and, for scale, plain
    ``client.submit(...).result()`` round trips and 2,000 no-op tasks at once on
    that worker, without orbits_nb

The cluster is deployed as it is in production: a ``dask scheduler`` process and
``dask worker`` processes on 127.0.0.1 (a LocalCluster would run the scheduler inside
the engine's process, sharing its interpreter lock). The fleet keeps ``--inflight``
(default 2) tenants per worker thread in flight, so a thread never waits for the
scheduler to hand it the next call. Each figure is printed next to "Dask alone": the
same calls (same function, count and calls in flight) submitted with a bare
``distributed.Client``, the floor this machine allows under any Dask step. The engine,
the scheduler and the workers share this machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def cluster(tmp: Path, workers: int, threads: int) -> Iterator[str]:
    """A ``dask scheduler`` and ``workers`` ``dask worker`` processes; yields the address."""
    from distributed import Client

    dask = [str(Path(sys.executable).with_name("dask"))]
    address = f"tcp://127.0.0.1:{_free_port()}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    log = open(tmp / f"cluster-{workers}x{threads}.log", "ab")  # noqa: SIM115

    def spawn(args: list[str]) -> subprocess.Popen[bytes]:
        return subprocess.Popen([*dask, *args], stdout=log, stderr=subprocess.STDOUT,
                                env=env, cwd=tmp, start_new_session=True)

    procs = [spawn(["scheduler", "--host", "127.0.0.1", "--port", address.rsplit(":", 1)[1],
                    "--no-dashboard"])]
    procs += [spawn(["worker", address, "--nthreads", str(threads), "--host", "127.0.0.1",
                     "--no-dashboard"]) for _ in range(workers)]
    try:
        with Client(address, timeout=60) as client:  # type: ignore[no-untyped-call]
            client.wait_for_workers(workers, timeout=120)
        yield address
    finally:
        for proc in reversed(procs):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)
        log.close()


def sleep_call(n: int) -> int:
    time.sleep(IO_SECONDS)
    return n


def spin_call(n: int) -> int:
    end = time.process_time() + CPU_SECONDS
    while time.process_time() < end:
        pass
    return n


def alone(address: str, kind: str, calls: int, inflight: int) -> float:
    """Wall time of ``calls`` bare Dask calls of the same work, ``inflight`` at a time."""
    from distributed import Client

    work = spin_call if kind == "cpu" else sleep_call

    async def main() -> float:
        async with Client(address, asynchronous=True) as client:  # type: ignore[no-untyped-call]
            await asyncio.gather(*(client.submit(work, n, pure=False) for n in range(16)))
            limit = asyncio.Semaphore(inflight)

            async def one(n: int) -> Any:
                async with limit:
                    return await client.submit(work, n, pure=False)

            start = time.perf_counter()
            await asyncio.gather(*(one(n) for n in range(calls)))
            return time.perf_counter() - start

    return asyncio.run(main())


def fleet(tmp: Path, kind: str, workers: int, threads: int, tenants: int,
          inflight: int) -> tuple[float, float]:
    """(orbits_nb's wall time, Dask alone's wall time) for one fleet shape."""
    with cluster(tmp, workers, threads) as address:
        engine = ob.Engine(tmp / f"{kind}-{workers}.duckdb")
        executor = DaskExecutor(address)
        try:
            # Import the step code on every worker before timing.
            engine.start(Fleet(tenants=workers * 2, concurrency=workers * 2, kind=kind),
                         run_id=f"warm-{kind}-{workers}", executor=executor).wait()
            start = time.perf_counter()
            engine.start(Fleet(tenants=tenants, concurrency=workers * threads * inflight,
                               kind=kind), executor=executor).wait()
            wall = time.perf_counter() - start
        finally:
            engine.close()
        return wall, alone(address, kind, tenants * STEPS, workers * threads * inflight)


def bench_io(tmp: Path, tenants: int, inflight: int) -> None:
    for workers in (1, 2, 4):
        concurrency = workers * IO_THREADS
        ideal = tenants * STEPS * IO_SECONDS / concurrency
        wall, bare = fleet(tmp, "io", workers, IO_THREADS, tenants, inflight)
        print(f"(io) {tenants} tenants x {STEPS} steps of {IO_SECONDS * 1000:.0f} ms, "
              f"{workers} worker(s) x {IO_THREADS} threads: {wall:.2f} s; ideal "
              f"{ideal:.2f} s; {wall / ideal:.2f}x the ideal (Dask alone {bare:.2f} s, "
              f"{bare / ideal:.2f}x)", flush=True)


def bench_cpu(tmp: Path, tenants: int, inflight: int) -> None:
    walls: dict[int, float] = {}
    bares: dict[int, float] = {}
    for workers in (1, 2, 4):
        walls[workers], bares[workers] = fleet(tmp, "cpu", workers, 1, tenants, inflight)
        wall = walls[workers]
        serial = tenants * STEPS * CPU_SECONDS
        print(f"(cpu) {tenants} tenants x {STEPS} steps of {CPU_SECONDS * 1000:.0f} ms "
              f"CPU, {workers} worker(s) x 1 thread: {wall:.2f} s; speed-up from 1 "
              f"worker {walls[1] / wall:.2f}x (Dask alone {bares[workers]:.2f} s, "
              f"{bares[1] / bares[workers]:.2f}x); serial work {serial:.1f} s",
              flush=True)


def bench_overhead(tmp: Path, steps: int = 200) -> None:
    with cluster(tmp, 1, 1) as address:
        _overhead(tmp, address, steps)


def _overhead(tmp: Path, address: str, steps: int) -> None:
    engine = ob.Engine(tmp / "overhead.duckdb")
    executor = DaskExecutor(address)
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
    bare_dask(address, steps)


def nothing(n: int) -> int:
    return n


def bare_dask(address: str, steps: int, parallel: int = 2000) -> None:
    """Dask alone on this machine: the floor under any Dask step."""
    from distributed import Client

    with Client(address) as client:  # type: ignore[no-untyped-call]
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
    parser.add_argument("--inflight", type=int, default=2,
                        help="tenants in flight per worker thread (default 2)")
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
            bench_io(tmp, options.tenants, options.inflight)
        if "cpu" in which:
            bench_cpu(tmp, options.tenants, options.inflight)


if __name__ == "__main__":
    main(sys.argv[1:])
