"""In a real Jupyter kernel: after runs, the user's own print and logging still show in
later cells, and a step that calls sys.exit() fails without stopping the engine."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from test_kernel import Kernel

DEFINE = '''
import asyncio, logging, sys
import orbits_nb as ob

class Talk(ob.Action):
    def main(self):
        print("step print")
        logging.getLogger("lib").warning("step warning")
        return "ok"

class Exits(ob.Action):
    def main(self):
        sys.exit(3)

class Interrupts(ob.Action):
    async def main(self):
        await asyncio.sleep(0)
        raise KeyboardInterrupt("stop")

class Talks(ob.Workflow):
    async def define(self):
        return await self.do("talk", Talk())

class Aborts(ob.Workflow):
    async def define(self):
        action = Exits() if self.args["how"] == "exit" else Interrupts()
        return await self.do("abort", action)
'''


@pytest.fixture
def kernel(tmp_path: Path) -> Iterator[Kernel]:
    k = Kernel(tmp_path / "state.duckdb", tmp_path)
    k.run(DEFINE)
    yield k
    k.shutdown()


def test_print_and_logging_show_in_later_cells_after_a_run(kernel: Kernel) -> None:
    out = kernel.run("run = Talks().start(); print(run.wait(60))")
    assert out.strip() == "ok"  # the step's own output went to its logs
    assert "step print" in kernel.run("print(run.logs('talk'))")
    out = kernel.run("print('after print'); logging.getLogger('user').warning('after warning')")
    assert "after print" in out
    assert "after warning" in out
    out = kernel.run("logging.basicConfig(format='CONFIGURED %(message)s')\n"
                     "logging.getLogger('user').warning('now configured')\n"
                     "again = Talks().start(fresh=True); again.wait(60)\n"
                     "print(len(logging.getLogger().handlers), again.logs('talk').count('step'))")
    assert "CONFIGURED now configured" in out
    assert out.strip().endswith("1 2")
    assert "step warning" not in out


@pytest.mark.parametrize("how", ["exit", "interrupt"])
def test_a_step_that_exits_fails_and_the_kernel_keeps_running_runs(
        kernel: Kernel, how: str) -> None:
    out = kernel.run(f"bad = Aborts(how={how!r}).start()\n"
                     "try:\n"
                     "    bad.wait(60)\n"
                     "except ob.OrbitsError as err:\n"
                     "    print('raised', type(err).__name__)\n"
                     "print(bad.status, bad.state().steps['abort'].status, "
                     "bad.state().steps['abort'].error['type'])")
    kind = "SystemExit" if how == "exit" else "KeyboardInterrupt"
    assert f"raised StepFailed\nfailed failed {kind}" in out
    assert kernel.run("print(Talks().start(fresh=True).wait(60))").strip() == "ok"
