"""Time to drift-check 1,000 resources whose observe() waits 10 ms each.

Also a fleet as desired state: ``--tenants`` agents (observe 10 ms), then one tenant
more; only the new one installs, the others (recorded with the same desired state)
are left alone.

Three kinds: a flat state observed in a thread (``sync``) or awaited (``async``), and a
stack-shaped state (``stack``: nested parameters, tags and resources, as
``ob.aws.Stack`` records) awaited like an AWS call.

Checks run concurrently with a bounded limit (``ob.drift(concurrency=N)``: N observers
taking the resources in turn), so the time is about ``1000 * 10 ms / N`` plus the
bookkeeping (one opening of the state file, one read, one batch of 1,000 history rows).
Beside each check the floor: the same number of bare ``time.sleep(10 ms)`` calls spread
over the same concurrency, so the overhead over it is plain.
Run: ``.venv/bin/python bench/drift_check.py [--count 1000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar

import orbits_nb as ob

OBSERVE_SECONDS = 0.010
#: The issue's targets: 1,000 stack-like resources at concurrency 32, and the replay of
#: the tenants left alone when one tenant is added to a fleet of 100.
TARGET_CHECK_S = 0.5
TARGET_FLEET_S = 1.0


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


class Tenant(ob.Agent):
    """A tenant's service as an agent: two install steps, state in memory."""

    deployed: ClassVar[dict[str, Any]] = {}
    installs: ClassVar[int] = 0

    def identity(self) -> str:
        return f"service-{self.args['tenant']}"

    def desired(self) -> dict[str, Any]:
        return {"tenant": self.args["tenant"]}

    async def observe(self) -> Any:  # type: ignore[override]
        await asyncio.sleep(OBSERVE_SECONDS)
        return self.deployed.get(self.args["tenant"])

    async def install(self) -> Any:
        type(self).installs += 1
        await self.do("provision", Noop(tenant=self.args["tenant"]))
        self.deployed[self.args["tenant"]] = {"tenant": self.args["tenant"]}
        return {"tenant": self.args["tenant"]}


class Noop(ob.Action):
    async def main(self) -> Any:  # type: ignore[override]
        return self.args


class Tenants(ob.Workflow):
    """One Tenant agent per name, 32 at a time (a fleet as desired state)."""

    async def define(self) -> int:
        from orbits_nb.resources.planning import unchanged_step

        gate = asyncio.Semaphore(32)
        agents = [Tenant(tenant=n) for n in self.args["tenants"]]
        kept = set(await self.do("unchanged", unchanged_step(agents)))

        async def one(agent: Tenant) -> Any:
            async with gate:
                return await self.do(agent.identity(), agent)

        await asyncio.gather(*(one(a) for a in agents if a.key() not in kept))
        return len(self.args["tenants"])


def fleet(engine: ob.Engine, count: int) -> None:
    """A fleet of ``count`` tenants, then one more: what runs and how long it takes."""
    names = [f"t{i:03d}" for i in range(count)]
    started = time.perf_counter()
    engine.start(Tenants(tenants=names)).wait()
    print(f"[fleet] {count} tenants installed: {time.perf_counter() - started:.2f} s "
          f"({Tenant.installs} installs)")
    before = Tenant.installs
    started = time.perf_counter()
    engine.start(Tenants(tenants=[*names, "new"])).wait()
    took = time.perf_counter() - started
    print(f"[fleet] one tenant added: converged in {took:.2f} s (target < "
          f"{TARGET_FLEET_S} s); installs {Tenant.installs - before} (the {count} others "
          "recorded in sync: left alone)")
    started = time.perf_counter()
    engine.start(Tenants(tenants=[*names, "new"])).wait()
    print(f"[fleet] the same inventory again (a replay): {time.perf_counter() - started:.2f} s")


def floor(count: int, limit: int) -> float:
    """The same number of bare ``time.sleep(latency)`` calls, ``limit`` at a time."""
    with ThreadPoolExecutor(max_workers=limit) as pool:
        started = time.perf_counter()
        list(pool.map(time.sleep, [OBSERVE_SECONDS] * count))
        return time.perf_counter() - started


KINDS: dict[str, type[SlowProbe]] = {"sync": SlowProbe, "async": AsyncProbe,
                                     "stack": StackLike}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--limits", default="8,32,64,128")
    parser.add_argument("--repeat", type=int, default=3, help="best of N checks")
    parser.add_argument("--tenants", type=int, default=100, help="fleet size (0: skip)")
    parser.add_argument("--kinds", default=",".join(KINDS), help="resource kinds to check")
    args = parser.parse_args()
    limits = [int(x) for x in args.limits.split(",")]
    with tempfile.TemporaryDirectory(prefix="orbits-drift-bench-") as tmp:
        engine = ob.Engine(Path(tmp) / "state.duckdb")
        print(f"{args.count} resources, observe() waits {OBSERVE_SECONDS * 1000:.0f} ms; "
              f"serial lower bound {args.count * OBSERVE_SECONDS:.1f} s")
        if args.tenants:
            fleet(engine, args.tenants)
        for kind, probe in KINDS.items():
            if kind not in args.kinds.split(","):
                continue
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
                if len(report) != args.count or not report.ok:
                    raise SystemExit(f"unexpected drift check result: {report.summary()}")
                bare = floor(args.count, limit)
                target = (f"; target < {TARGET_CHECK_S} s"
                          if kind == "stack" and limit == 32 and args.count == 1000 else "")
                print(f"[{kind}] drift check, concurrency {limit:>3}: {took:6.2f} s "
                      f"(floor {bare:.2f} s, overhead {took - bare:+.2f} s; "
                      f"{args.count / took:,.0f} resources/s{target})")
        engine.close()


if __name__ == "__main__":
    main()
