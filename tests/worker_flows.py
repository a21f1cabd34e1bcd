"""Workflows that worker processes import by module in the worker tests.

Each step appends ``<run> <step>`` to the file ``side`` when it executes, so a test
counts side effects (a completed step must never execute twice), and the same with the
time to ``<side>.at``.
"""

from __future__ import annotations

import time
from typing import Any

import orbits_nb as ob


class Mark(ob.Action):
    """Writes its side effect, then takes ``pause`` seconds."""

    def main(self) -> Any:
        with open(self.args["side"], "a") as f:
            f.write(f"{self.args['run']} {self.args['step']}\n")
        with open(f"{self.args['side']}.at", "a") as f:  # when, for the tests' order checks
            f.write(f"{self.args['run']} {self.args['step']} {time.time():.6f}\n")
        time.sleep(self.args.get("pause", 0.0))
        return self.args["step"]


class Steps(ob.Workflow):
    """``steps`` steps in a row, each a Mark."""

    async def define(self) -> Any:
        done = []
        for i in range(self.args.get("steps", 3)):
            done.append(await self.do(f"s{i}", Mark(
                side=self.args["side"], run=self.args["n"], step=f"s{i}",
                pause=self.args.get("pause", 0.0))))
        return done


class Sleeper(ob.Workflow):
    """A step, a durable sleep, a step."""

    async def define(self) -> Any:
        await self.do("before", Mark(side=self.args["side"], run="sleeper", step="before"))
        await self.sleep("cool-down", self.args["seconds"])
        return await self.do("after", Mark(side=self.args["side"], run="sleeper",
                                           step="after"))


class Stubborn(ob.Workflow):
    """A plain main() that does not stop when the run is cancelled."""

    async def define(self) -> Any:
        return await self.do("hold", Mark(side=self.args["side"], run="stubborn",
                                          step="hold", pause=120.0))


class Noop(ob.Action):
    """Does nothing (for the bench)."""

    def main(self) -> Any:
        return None


class NoopSteps(ob.Workflow):
    """``steps`` no-op steps in a row (default 3)."""

    async def define(self) -> Any:
        for i in range(self.args.get("steps", 3)):
            await self.do(f"s{i}", Noop(i=i))


class Poller(ob.Action):
    """A watcher: main() says IN_PROGRESS, each watch() counts a poll in its bag (and
    writes it to ``side``) until ``polls`` polls were made."""

    poll_interval = 2.0

    def main(self) -> Any:
        with open(self.args["side"], "a") as f:
            f.write("poller main\n")
        self.bag["polls"] = 0
        return ob.IN_PROGRESS

    def watch(self) -> Any:
        self.bag["polls"] += 1
        with open(self.args["side"], "a") as f:
            f.write(f"poller watch {self.bag['polls']}\n")
        return self.bag["polls"] if self.bag["polls"] >= self.args["polls"] else \
            ob.IN_PROGRESS


class Watching(ob.Workflow):
    """One watcher step."""

    async def define(self) -> Any:
        return await self.do("poll", Poller(side=self.args["side"],
                                            polls=self.args.get("polls", 3)))


class Nested(ob.Workflow):
    """Runs the workflow ``inner`` (Watching, Sleeper or Steps, with ``args``) nested."""

    async def define(self) -> Any:
        inner = {"Watching": Watching, "Sleeper": Sleeper, "Steps": Steps}[self.args["inner"]]
        return await self.do("inner", inner(**self.args["args"]))
