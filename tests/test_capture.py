"""Output capture is per step: inside a step, prints and log records land in that
step's logs exactly once; outside steps, streams and logging are the user's own."""

from __future__ import annotations

import asyncio
import io
import logging
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest
from polling import until

import orbits_nb as ob

GATE = threading.Event()


class Talk(ob.Action):
    def main(self) -> Any:
        print(f"print from {self.step}")
        logging.getLogger("thirdparty.lib").warning("warning from %s", self.step)
        logging.getLogger("thirdparty.lib").info("info below the effective level")
        self.log.info("self.log from %s", self.step)
        return self.step


class AsyncTalk(ob.Action):
    async def main(self) -> Any:
        await asyncio.sleep(0)
        print(f"async print from {self.step}")
        logging.warning("root warning from %s", self.step)
        return self.step


class Chatty(ob.Workflow):
    async def define(self) -> Any:
        return await asyncio.gather(
            *(self.do(f"sync{i}", Talk()) for i in range(3)),
            *(self.do(f"async{i}", AsyncTalk()) for i in range(3)))


def test_each_step_gets_its_own_output_once(engine: ob.Engine) -> None:
    run = engine.start(Chatty())
    run.wait(30)
    for i in range(3):
        assert run.logs(f"sync{i}").splitlines() == [
            f"print from sync{i}",
            f"WARNING thirdparty.lib: warning from sync{i}",
            f"INFO orbits_nb.action.Talk: self.log from sync{i}",
        ]
        assert run.logs(f"async{i}").splitlines() == [
            f"async print from async{i}", f"WARNING root: root warning from async{i}"]


def test_streams_and_root_handlers_are_the_users_after_a_run(
        engine: ob.Engine, capsys: pytest.CaptureFixture[str]) -> None:
    stdout, stderr = sys.stdout, sys.stderr
    handlers = list(logging.getLogger().handlers)
    engine.start(Chatty()).wait(30)
    assert sys.stdout is stdout
    assert sys.stderr is stderr
    assert logging.getLogger().handlers == handlers
    out = capsys.readouterr()
    assert "print from" not in out.out + out.err
    assert "warning from" not in out.err


class Held(ob.Action):
    def main(self) -> Any:
        GATE.wait(30)
        print("inside the held step")
        return "held"


class Holding(ob.Workflow):
    async def define(self) -> Any:
        return await self.do("held", Held())


def test_output_outside_steps_passes_through_while_steps_run(
        engine: ob.Engine, capsys: pytest.CaptureFixture[str]) -> None:
    GATE.clear()
    run = engine.start(Holding())
    try:
        until(lambda: run.state().steps.get("held"))
        print("from the notebook meanwhile")
    finally:
        GATE.set()
    run.wait(30)
    assert "from the notebook meanwhile" in capsys.readouterr().out
    assert run.logs("held") == "inside the held step"


class Replaces(ob.Action):
    def main(self) -> Any:
        sys.stdout = io.StringIO()
        return "replaced"


def test_a_stream_the_user_replaced_during_a_run_is_left_alone(engine: ob.Engine) -> None:
    class Swap(ob.Workflow):
        async def define(self) -> Any:
            return await self.do("swap", Replaces())

    before = sys.stdout
    try:
        engine.start(Swap()).wait(30)
        assert isinstance(sys.stdout, io.StringIO)  # theirs, not put back by us
    finally:
        sys.stdout = before


SCRIPT = textwrap.dedent("""
    import logging, sys
    import orbits_nb as ob

    class Talk(ob.Action):
        def main(self):
            print("step print")
            logging.getLogger("lib").warning("step warning")
            return "ok"

    class Wf(ob.Workflow):
        async def define(self):
            return await self.do("talk", Talk())

    engine = ob.Engine(sys.argv[1])
    if sys.argv[2] == "configured-before":
        logging.basicConfig(format="HANDLER %(levelname)s %(message)s")
    run = engine.start(Wf(), fresh=True)
    run.wait()
    if sys.argv[2] == "configured-after":
        logging.basicConfig(format="HANDLER %(levelname)s %(message)s")
    print("after print")
    logging.getLogger("user").warning("after warning")
    again = engine.start(Wf(), fresh=True)
    again.wait()
    print("LOGS", repr(run.logs("talk")), repr(again.logs("talk")))
    print("ROOT", len(logging.getLogger().handlers))
""")


@pytest.mark.parametrize("setup", ["unconfigured", "configured-before", "configured-after"])
def test_a_script_keeps_its_own_logging(tmp_path: Path, setup: str) -> None:
    script = tmp_path / "talk.py"
    script.write_text(SCRIPT)
    proc = subprocess.run([sys.executable, str(script), str(tmp_path / "s.duckdb"), setup],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    # Inside steps: once in the step's logs, nothing on the console.
    logs = repr("step print\nWARNING lib: step warning")
    assert f"LOGS {logs} {logs}" in proc.stdout
    assert "step print" not in proc.stdout.replace(f"LOGS {logs} {logs}", "")
    assert "step warning" not in proc.stderr
    # Outside steps: the user's print and logging, as if orbits_nb were not there.
    assert "after print" in proc.stdout
    if setup == "unconfigured":
        assert "after warning" in proc.stderr  # logging.lastResort
        assert "ROOT 0" in proc.stdout
    else:
        assert "HANDLER WARNING after warning" in proc.stderr
        assert "ROOT 1" in proc.stdout


def test_file_handlers_still_receive_step_records(
        engine: ob.Engine, tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    handler = logging.FileHandler(path)
    lib = logging.getLogger("thirdparty.lib")
    lib.addHandler(handler)
    try:
        run = engine.start(Chatty())
        run.wait(30)
    finally:
        lib.removeHandler(handler)
        handler.close()
    assert sorted(path.read_text().splitlines()) == [
        f"warning from sync{i}" for i in range(3)]
    assert run.logs("sync0").count("warning from sync0") == 1
