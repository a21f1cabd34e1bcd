"""A workflow run in a child process by the crash and multi-process tests.

Usage: python crash_worker.py STATE EFFECTS_FILE STEPS [RUN_ID]

Every step appends "<step> <pid> <phase>" to EFFECTS_FILE (fsynced) before it
returns, so the parent can tell which process executed what.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
from typing import Any

import orbits_nb as ob

EFFECTS = sys.argv[2]


def effect(step: str, phase: str) -> None:
    fd = os.open(EFFECTS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{step} {os.getpid()} {phase}\n".encode())
        os.fsync(fd)
    finally:
        os.close(fd)


class Work(ob.Action):
    def main(self) -> Any:
        effect(self.step, "main")
        # Random short work so kills land before, during and after commits.
        asyncio.run(asyncio.sleep(random.uniform(0, 0.01)))
        return {"i": self.args["i"]}


class Watched(ob.Action):
    poll_interval = 0.005

    def main(self) -> Any:
        effect(self.step, "main")
        self.bag["polls"] = 0
        return ob.IN_PROGRESS

    def watch(self) -> Any:
        self.bag["polls"] += 1
        return self.bag["polls"] if self.bag["polls"] >= 20 else ob.IN_PROGRESS


class Chain(ob.Workflow):
    async def define(self) -> Any:
        total = 0
        for i in range(self.args["steps"]):
            if i % 10 == 5:
                await asyncio.gather(self.do(f"left-{i}", Work(i=i)),
                                     self.do(f"right-{i}", Work(i=i)))
            elif i % 10 == 7:
                await self.do(f"watch-{i}", Watched(i=i))
            else:
                total += (await self.do("step", Work(i=i)))["i"]
        return total


if __name__ == "__main__":
    engine = ob.Engine(sys.argv[1])
    run_id = sys.argv[4] if len(sys.argv) > 4 else None
    result = engine.start(Chain(steps=int(sys.argv[3])), run_id=run_id).wait()
    print("RESULT", result, flush=True)
    engine.close()
