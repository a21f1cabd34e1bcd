"""In a real Jupyter kernel: start returns at once, cells keep running, await works,
re-running the cell replays, and a restarted kernel resumes the same run."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.manager import KernelManager

DEFINE = '''
import asyncio, time
import orbits_nb as ob
COUNT = {"slow": 0}

class Slow(ob.Action):
    async def main(self):
        COUNT["slow"] += 1
        with open(self.args["log"], "a") as f:
            f.write("slow ran\\n")
        await asyncio.sleep(self.args["seconds"])
        return "slow done"

class Wf(ob.Workflow):
    async def define(self):
        return await self.do("slow", Slow(seconds=self.args["seconds"], log=self.args["log"]))
'''


class Kernel:
    def __init__(self, state: Path, cwd: Path) -> None:
        self.manager = KernelManager(kernel_name="python3")
        env = {**os.environ, "ORBITS_NB_STATE": str(state)}
        self.manager.start_kernel(cwd=str(cwd), env=env)
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=120)

    def run(self, code: str, timeout: float = 120) -> str:
        """Execute a cell; return its text output (stream + results)."""
        outputs: list[str] = []

        def collect(msg: dict[str, Any]) -> None:
            content = msg["content"]
            if msg["msg_type"] == "stream":
                outputs.append(content["text"])
            elif msg["msg_type"] in ("execute_result", "display_data"):
                outputs.append(content["data"].get("text/plain", ""))
            elif msg["msg_type"] == "error":
                outputs.append("ERROR " + content["ename"] + ": " + content["evalue"])

        reply = self.client.execute_interactive(code, timeout=timeout, output_hook=collect)
        text = "".join(outputs)
        assert reply["content"]["status"] == "ok", text
        return text

    def shutdown(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)


@pytest.fixture
def kernel(tmp_path: Path) -> Iterator[Kernel]:
    k = Kernel(tmp_path / "state.duckdb", tmp_path)
    yield k
    k.shutdown()


def test_notebook_loop_in_a_real_kernel(kernel: Kernel, tmp_path: Path) -> None:
    log = tmp_path / "side-effects.log"
    kernel.run(DEFINE)
    kernel.run(f"run = Wf(seconds=1.5, log={str(log)!r}).start()")
    # The cell returned while the step still sleeps: other cells run meanwhile.
    assert kernel.run("print(run.status)").strip() in ("pending", "running")
    kernel.run("while run.status == 'pending': time.sleep(0.01)")
    assert "running" in kernel.run("print(run.status, run.done)")
    assert "2" in kernel.run("print(1 + 1)")
    assert "slow done" in kernel.run("print(await run)")
    # Re-running the cell replays: the step does not run again.
    assert "slow done" in kernel.run(
        f"again = Wf(seconds=1.5, log={str(log)!r}).start(); print(await again)")
    assert "True" in kernel.run("print(again.run_id == run.run_id)")
    assert log.read_text().count("slow ran") == 1


def test_restarted_kernel_resumes_the_same_run(tmp_path: Path) -> None:
    log = tmp_path / "side-effects.log"
    first = Kernel(tmp_path / "state.duckdb", tmp_path)
    try:
        first.run(DEFINE)
        first.run(f"print(Wf(seconds=0.1, log={str(log)!r}).run())")
    finally:
        first.shutdown()
    second = Kernel(tmp_path / "state.duckdb", tmp_path)
    try:
        second.run(DEFINE)
        out = second.run(f"r = Wf(seconds=0.1, log={str(log)!r}).start(); print(r.wait())")
        assert "slow done" in out
        assert "0" in second.run('print(COUNT["slow"])')
    finally:
        second.shutdown()
    assert log.read_text().count("slow ran") == 1
