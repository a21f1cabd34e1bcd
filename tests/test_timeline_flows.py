"""Workflows for the timeline and log view tests (importable by module path; no tests)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import orbits_nb as ob


class Deploy(ob.Action):
    """Prints and logs a little; fails when ``fail`` is set."""

    def main(self) -> Any:
        print(f"deploying {self.args['n']}")
        time.sleep(float(self.args.get("seconds", 0.0)))
        if self.args.get("fail"):
            self.log.error("deploy %s failed", self.args["n"])
            raise RuntimeError(f"tenant {self.args['n']} is down")
        self.log.info("tenant %s done", self.args["n"])
        return self.args["n"]


class Hold(ob.Action):
    """Waits (as a watcher) until the file ``path`` exists, printing as it goes."""

    poll_interval = 0.1

    def main(self) -> Any:
        print("holding")
        return self.watch()

    def watch(self) -> Any:
        return "open" if Path(self.args["path"]).exists() else ob.IN_PROGRESS


class FanOut(ob.Workflow):
    """prepare, ``n`` deploys at once (every ``fail_every``-th fails), report;
    with ``gate``, a watcher waits for that file before the report."""

    async def define(self) -> Any:
        n, every = int(self.args["n"]), int(self.args.get("fail_every") or 0)
        await self.do("prepare", Deploy(n=-1))
        done = await asyncio.gather(*(
            self.do(f"deploy-{i}", Deploy(n=i, fail=bool(every) and i % every == every - 1,
                                          seconds=self.args.get("seconds", 0.0)))
            for i in range(n)), return_exceptions=True)
        if self.args.get("gate"):
            await self.do("hold", Hold(path=self.args["gate"]))
        return await self.do("report", Deploy(n=sum(1 for d in done if isinstance(d, int))))
