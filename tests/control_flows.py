"""Workflows and an owner process for the control tests (importable by the children).

``python -c "import control_flows; control_flows.main()" STATE RUN_ID FLOW MARKER``
(see :func:`owner`) executes ``FLOW`` as ``RUN_ID`` on ``STATE`` in its own engine,
prints ``READY`` once its long step is executing (it wrote ``MARKER``), then how the
run ended (``END <status>``), and exits 0. The workflows are recorded under this
module's name, so other processes can import them (retry, resume).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orbits_nb as ob
from orbits_nb.executors.subprocess import SubprocessExecutor


class Nap(ob.Action):
    """Sleeps (awaiting) until cancelled; writes a marker file when it starts."""

    def __init__(self, marker: str, seconds: float = 600.0) -> None:
        super().__init__(marker=marker, seconds=seconds)

    async def main(self) -> str:
        Path(self.args["marker"]).write_text(str(os.getpid()))
        await asyncio.sleep(self.args["seconds"])
        return "slept"


class Watcher(ob.Action):
    """Watches for ever (a poll every 50 ms)."""

    poll_interval = 0.05

    def __init__(self, marker: str) -> None:
        super().__init__(marker=marker)

    def main(self) -> Any:
        Path(self.args["marker"]).write_text(str(os.getpid()))
        return ob.IN_PROGRESS

    def watch(self) -> Any:
        return ob.IN_PROGRESS


class ChildPid(ob.Action):
    """Writes its own pid (a subprocess executor's child) and sleeps."""

    def __init__(self, marker: str) -> None:
        super().__init__(marker=marker)

    def main(self) -> str:
        Path(self.args["marker"]).write_text(str(os.getpid()))
        time.sleep(600)
        return "slept"


class Note(ob.Action):
    def __init__(self, text: str) -> None:
        super().__init__(text=text)

    def main(self) -> str:
        return str(self.args["text"])


class Sleepy(ob.Workflow):
    """A step, then a long nap."""

    def __init__(self, marker: str) -> None:
        super().__init__(marker=marker)

    async def define(self) -> str:
        await self.do("first", Note("one"))
        await self.do("nap", Nap(self.args["marker"]))
        return "done"


class Watching(ob.Workflow):
    def __init__(self, marker: str) -> None:
        super().__init__(marker=marker)

    async def define(self) -> str:
        await self.do("first", Note("one"))
        await self.do("watch", Watcher(self.args["marker"]))
        return "done"


class InChild(ob.Workflow):
    def __init__(self, marker: str) -> None:
        super().__init__(marker=marker)

    async def define(self) -> str:
        await self.do("child", ChildPid(self.args["marker"]), executor=SubprocessExecutor())
        return "done"


class Quick(ob.Workflow):
    """Two quick steps; the second fails while ``fail_flag`` exists."""

    def __init__(self, fail_flag: str) -> None:
        super().__init__(fail_flag=fail_flag)

    async def define(self) -> str:
        await self.do("first", Note("one"))
        await self.do("second", Flaky(self.args["fail_flag"]))
        return "done"


class Flaky(ob.Action):
    def __init__(self, fail_flag: str) -> None:
        super().__init__(fail_flag=fail_flag)

    def main(self) -> str:
        if Path(self.args["fail_flag"]).exists():
            raise RuntimeError("flag is up")
        return "ok"


class Nesting(ob.Workflow):
    """Sleepy, nested as a step."""

    def __init__(self, marker: str) -> None:
        super().__init__(marker=marker)

    async def define(self) -> str:
        return str(await self.do("inner", Sleepy(self.args["marker"])))


FLOWS = {"sleepy": Sleepy, "watching": Watching, "inchild": InChild, "nesting": Nesting}


TESTS = Path(__file__).parent


def owner(state: str, run_id: str, flow: str, marker: Path, host: str | None = None
          ) -> subprocess.Popen[str]:
    """A child process executing ``flow``; returns once its long step executes."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(TESTS.parent)])}
    if host is not None:
        env["ORBITS_NB_HOST"] = host
    child = subprocess.Popen(
        [sys.executable, "-c", "import control_flows; control_flows.main()", state, run_id,
         flow, str(marker)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=env)
    assert child.stdout is not None
    line = child.stdout.readline().strip()
    assert line == "READY", line + child.stderr.read() if child.stderr else line
    return child


def main() -> int:
    state, run_id, flow, marker = sys.argv[1:5]
    engine = ob.Engine(state)
    run = engine.start(FLOWS[flow](marker), run_id=run_id)
    while not Path(marker).exists():
        time.sleep(0.01)
    print("READY", flush=True)
    try:
        run.wait(600)
    except BaseException as err:  # the outcome is what the test reads
        print("RAISED", type(err).__name__, flush=True)
    print("END", run.status, flush=True)
    engine.close()
    return 0


