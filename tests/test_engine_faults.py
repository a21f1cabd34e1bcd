"""Faults in user code: BaseException in steps, timeouts.

A step that raises SystemExit, KeyboardInterrupt or any other BaseException fails that
step and leaves the engine serving; a blocking step abandoned after its timeout does not
keep the interpreter from exiting.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import orbits_nb as ob
from orbits_nb.store.integrity import check

COUNTS: dict[str, int] = {}
CANCELLED = (asyncio.CancelledError, concurrent.futures.CancelledError)
GATES: dict[str, threading.Event] = {}


def bump(key: str) -> int:
    COUNTS[key] = COUNTS.get(key, 0) + 1
    return COUNTS[key]


def gate(name: str) -> threading.Event:
    return GATES.setdefault(name, threading.Event())


@pytest.fixture(autouse=True)
def _reset() -> None:
    COUNTS.clear()
    GATES.clear()


def nothing_after_the_end(engine: ob.Engine, run_id: str) -> list[Any]:
    """Step events recorded after the run's last end (they would belong to no execution)."""
    engine.writer.flush()
    return engine.store.fetch(
        "SELECT step, kind FROM events WHERE run_id = ? AND step IS NOT NULL AND seq > "
        "(SELECT max(seq) FROM events WHERE run_id = ? AND kind IN "
        "('run.succeeded', 'run.failed', 'run.cancelled'))", [run_id, run_id])


class Halt(BaseException):
    """A BaseException of the user's own."""


def throw(error: BaseException) -> None:
    raise error


RAISERS: dict[str, Callable[[], None]] = {
    "sys.exit": lambda: sys.exit(3),
    "SystemExit": lambda: throw(SystemExit("bye")),
    "KeyboardInterrupt": lambda: throw(KeyboardInterrupt("stop")),
    "GeneratorExit": lambda: throw(GeneratorExit("odd")),
    "Halt": lambda: throw(Halt("custom")),
}
TYPES = {"sys.exit": "SystemExit", "SystemExit": "SystemExit",
         "KeyboardInterrupt": "KeyboardInterrupt", "GeneratorExit": "GeneratorExit",
         "Halt": f"{Halt.__module__}.{Halt.__qualname__}"}


class SyncMain(ob.Action):
    retry = ob.Retry(attempts=3, delay=0.01, on=(BaseException,))

    def main(self) -> Any:
        bump("main")
        RAISERS[self.args["kind"]]()


class AsyncMain(SyncMain):
    async def main(self) -> Any:  # type: ignore[override]
        bump("main")
        await asyncio.sleep(0)
        RAISERS[self.args["kind"]]()


class SyncWatch(SyncMain):
    poll_interval = 0.01

    def main(self) -> Any:
        bump("main")
        return ob.IN_PROGRESS

    def watch(self) -> Any:
        bump("watch")
        RAISERS[self.args["kind"]]()


class AsyncWatch(SyncWatch):
    async def watch(self) -> Any:  # type: ignore[override]
        bump("watch")
        RAISERS[self.args["kind"]]()


class OneStep(ob.Workflow):
    async def define(self) -> Any:
        action = globals()[self.args["action"]](kind=self.args["kind"])
        executor = ob.SubprocessExecutor() if self.args.get("subprocess") else None
        return await self.do("step", action, executor=executor)


class InDefine(ob.Workflow):
    async def define(self) -> Any:
        await self.do("before", Ok(key="before"))
        RAISERS[self.args["kind"]]()


class Ok(ob.Action):
    def main(self) -> Any:
        return bump(self.args["key"])


class Healthy(ob.Workflow):
    async def define(self) -> Any:
        return await self.do("ok", Ok(key="healthy"))


def assert_engine_still_serves(engine: ob.Engine) -> None:
    assert engine.start(Healthy(), fresh=True).wait(30) == 1


@pytest.mark.parametrize("kind", list(RAISERS))
@pytest.mark.parametrize("action", ["SyncMain", "AsyncMain", "SyncWatch", "AsyncWatch"])
def test_a_base_exception_fails_the_step_not_the_engine(
        engine: ob.Engine, action: str, kind: str) -> None:
    run = engine.start(OneStep(action=action, kind=kind))
    with pytest.raises(ob.StepFailed) as info:
        run.wait(60)
    assert run.status == "failed"
    assert TYPES[kind] in run.error["message"]
    step = run.state().steps["step"]
    assert step.status == "failed"
    assert step.error["type"] == TYPES[kind]
    assert step.attempts == 1  # never retried, whatever the policy
    assert "Traceback" in step.error["traceback"]
    assert isinstance(info.value.cause, ob.OrbitsError)
    assert check(engine.store) == []
    assert_engine_still_serves(engine)


@pytest.mark.parametrize("kind", ["sys.exit", "KeyboardInterrupt", "Halt"])
@pytest.mark.parametrize("action", ["SyncMain", "AsyncWatch"])
def test_a_base_exception_in_a_subprocess_step_comes_back_as_a_failure(
        engine: ob.Engine, action: str, kind: str) -> None:
    run = engine.start(OneStep(action=action, kind=kind, subprocess=True))
    with pytest.raises(ob.StepFailed):
        run.wait(120)
    step = run.state().steps["step"]
    assert (step.status, step.attempts) == ("failed", 1)
    assert step.error["type"] == TYPES[kind]
    assert "Traceback" in step.error["traceback"]
    assert_engine_still_serves(engine)


# -- a timed-out blocking step does not keep the process alive ---------------------------

SCRIPT = textwrap.dedent("""
    import sys, threading
    import orbits_nb as ob

    class Hang(ob.Action):
        timeout = 0.3

        def main(self):
            threading.Event().wait()   # never returns

    class Wf(ob.Workflow):
        async def define(self):
            return await self.do("hang", Hang())

    engine = ob.Engine(sys.argv[1])
    try:
        Wf().run(engine=engine)
    except ob.StepFailed as err:
        print("failed with", type(err.cause).__name__, flush=True)
""")


def test_a_script_exits_after_a_blocking_step_timed_out(tmp_path: Path) -> None:
    script = tmp_path / "hang.py"
    script.write_text(SCRIPT)
    # The guard only keeps a regression from hanging the suite; the step never returns.
    proc = subprocess.run([sys.executable, str(script), str(tmp_path / "s.duckdb")],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "failed with StepTimeout" in proc.stdout


def test_blocking_steps_run_in_worker_threads_with_the_step_context(
        engine: ob.Engine) -> None:
    seen: list[tuple[str, bool]] = []

    class Where(ob.Action):
        def main(self) -> Any:
            thread = threading.current_thread()
            seen.append((thread.name, thread.daemon))
            print(f"captured through the context of {self.step}")
            return "ok"

    class W(ob.Workflow):
        async def define(self) -> Any:
            return await asyncio.gather(*(self.do(f"w{i}", Where()) for i in range(8)))

    run = engine.start(W())
    assert run.wait(30) == ["ok"] * 8
    assert all(name.startswith("orbits-nb-step") and daemon for name, daemon in seen)
    assert all(run.logs(f"w{i}") == f"captured through the context of w{i}"
               for i in range(8))
