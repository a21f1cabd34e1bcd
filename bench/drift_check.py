"""Time to drift-check 1,000 resources whose observe() waits 10 ms each.

Three kinds: a flat state observed in a thread (``sync``) or awaited (``async``), and a
stack-shaped state (``stack``: nested parameters, tags and resources, as
``ob.aws.Stack`` records) awaited like an AWS call.

Checks run concurrently with a bounded limit (``ob.drift(concurrency=N)``), so the
time is about ``1000 * 10 ms / N`` plus the bookkeeping (one store read, one batch of
1,000 history rows). Run: ``.venv/bin/python bench/drift_check.py [--count 1000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import orbits_nb as ob

OBSERVE_SECONDS = 0.010


class SlowProbe(ob.Resource):
    """A resource whose observe() blocks for 10 ms (runs in a worker thread)."""

    def identity(self) -> str:
        return str(self.args["name"])

    def desired(self) -> dict[str, Any]:
        return {"value": self.args["name"]}

    def observe(self) -> dict[str, Any]:
        time.sleep(OBSERVE_SECONDS)
        return {"value": self.args["name"]}

    def create(self) -> None:
        return None

    def update(self, diff: list[Any]) -> None:
        return None


class AsyncProbe(SlowProbe):
    """The same with an ``async def observe()`` (awaits on the engine loop)."""

    async def observe(self) -> dict[str, Any]:  # type: ignore[override]
        await asyncio.sleep(OBSERVE_SECONDS)
        return {"value": self.args["name"]}


class StackLike(SlowProbe):
    """A stack-shaped state (template digest, parameters, tags, three resources),
    observed with ``async def`` in 10 ms, as an AWS call would take."""

    def desired(self) -> dict[str, Any]:
        name = self.args["name"]
        return {"template": "sha256:0123456789abcdef", "parameters": {"Client": name},
                "tags": {"client": name},
                "resources": {"Bucket": {"tags": {}},
                              "Queue": {"VisibilityTimeout": "120"},
                              "Parameter": {"value": f"duckdb:///{name}", "type": "String"}}}

    async def observe(self) -> dict[str, Any]:  # type: ignore[override]
        await asyncio.sleep(OBSERVE_SECONDS)
        return self.desired()


class Register(ob.Workflow):
    """Converge ``count`` probes, ``limit`` at a time (records them in the store)."""

    async def define(self) -> int:
        gate = asyncio.Semaphore(self.args["limit"])
        probe = KINDS[self.args["kind"]]

        async def one(i: int) -> Any:
            async with gate:
                return await self.do(f"p{i}", probe(name=f"{self.args['kind']}-{i}"))

        await asyncio.gather(*(one(i) for i in range(self.args["count"])))
        return int(self.args["count"])


KINDS: dict[str, type[SlowProbe]] = {"sync": SlowProbe, "async": AsyncProbe,
                                     "stack": StackLike}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--limits", default="8,32,64,128")
    parser.add_argument("--repeat", type=int, default=3, help="best of N checks")
    args = parser.parse_args()
    limits = [int(x) for x in args.limits.split(",")]
    with tempfile.TemporaryDirectory(prefix="orbits-drift-bench-") as tmp:
        engine = ob.Engine(Path(tmp) / "state.duckdb")
        print(f"{args.count} resources, observe() waits {OBSERVE_SECONDS * 1000:.0f} ms; "
              f"serial lower bound {args.count * OBSERVE_SECONDS:.1f} s")
        for kind, probe in KINDS.items():
            started = time.perf_counter()
            engine.start(Register(count=args.count, limit=64, kind=kind)).wait()
            took = time.perf_counter() - started
            print(f"[{kind}] register (converge {args.count} steps, 64 at a time): "
                  f"{took:.2f} s")
            for limit in limits:
                times = []
                for _ in range(args.repeat):  # the best of a few: the machine is shared
                    started = time.perf_counter()
                    report = ob.drift(type=probe, concurrency=limit, engine=engine)
                    times.append(time.perf_counter() - started)
                took = min(times)
                ideal = args.count * OBSERVE_SECONDS / limit
                if len(report) != args.count or not report.ok:
                    raise SystemExit(f"unexpected drift check result: {report.summary()}")
                print(f"[{kind}] drift check, concurrency {limit:>3}: {took:6.2f} s "
                      f"(ideal {ideal:.2f} s; {args.count / took:,.0f} resources/s)")
        engine.close()


if __name__ == "__main__":
    main()
