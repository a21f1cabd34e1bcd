"""Workflows shared by the view, widget, approval and progress tests (no tests here).

Importable by module path, so subprocesses and ``run.retry()`` can rebuild them.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import orbits_nb as ob


class Quick(ob.Action):
    def main(self) -> Any:
        print(f"working on {self.step}")
        return {"n": self.args.get("n"), "step": self.step}


class Boom(ob.Action):
    def main(self) -> Any:
        self.log.warning("about to fail")
        raise RuntimeError(f"stack {self.args.get('stack', 'main')} failed")


class Sleep(ob.Action):
    def main(self) -> Any:
        time.sleep(float(self.args.get("seconds", 0.2)))
        return "slept"


class Gate(ob.Action):
    """Waits (as a watcher) until the file ``path`` exists."""

    poll_interval = 0.1

    def main(self) -> Any:
        return self.watch()

    def watch(self) -> Any:
        return "open" if Path(self.args["path"]).exists() else ob.IN_PROGRESS


class FlakyOnce(ob.Action):
    """Fails until the file ``path`` exists (a fix the test applies between runs)."""

    def main(self) -> Any:
        if not Path(self.args["path"]).exists():
            raise RuntimeError("the flaky service is down")
        return "up"


class Inner(ob.Workflow):
    async def define(self) -> Any:
        a = await self.do("i1", Quick(n=1))
        return [a, await self.do("i2", Quick(n=2))]


class DeployBackend(ob.Workflow):
    """The seed's flagship: git + aws in parallel, iac, sql, notify on failure."""

    async def define(self) -> Any:
        try:
            await asyncio.gather(
                self.do("git-create", Quick(n=1)),
                self.do("aws-create", Quick(n=2, token=ob.Secret("s3cr3t-token", name="tok"))),
            )
            if self.args.get("nested"):
                await self.do("nested", Inner())
            gate = self.args.get("gate")
            if gate:
                await self.do("wait", Gate(path=gate))
            if self.args.get("fail"):
                await self.do("iac-deploy", Boom(stack=self.args["client"]))
            elif self.args.get("flaky"):
                await self.do("iac-deploy", FlakyOnce(path=self.args["flaky"]))
            else:
                await self.do("iac-deploy", Quick(n=3))
            return await self.do("sql-migrate", Quick(n=4))
        except ob.StepFailed as err:
            await self.do("notify", Quick(n=str(err)[:40]))
            raise


class Release(ob.Workflow):
    async def define(self) -> Any:
        await self.do("build", Quick(n=1))
        ok = await self.do("approve", ob.Approval(prompt=f"Ship {self.args['version']}?"))
        await self.do("ship", Quick(n=2))
        return ok


class Nap(ob.Workflow):
    """One step that sleeps ``seconds``: a run that ends a while after it starts."""

    async def define(self) -> Any:
        return await self.do("nap", Sleep(seconds=self.args["seconds"]))


class Many(ob.Workflow):
    async def define(self) -> Any:
        for i in range(int(self.args["n"])):
            await self.do(f"s{i}", Quick(n=i))
        return int(self.args["n"])


def pid() -> int:
    return os.getpid()
