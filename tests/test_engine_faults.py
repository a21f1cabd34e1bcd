"""Faults in user code: BaseException in steps, siblings of a failed branch, timeouts.

A step that raises SystemExit, KeyboardInterrupt or any other BaseException fails that
step and leaves the engine serving; a run never ends while one of its steps still
executes, so nothing runs twice; a blocking step abandoned after its timeout does not
keep the interpreter from exiting.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from polling import until

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
    assert isinstance(info.value.cause, ob.Aborted)
    assert check(engine.store) == []
    assert_engine_still_serves(engine)


@pytest.mark.parametrize("kind", list(RAISERS))
def test_a_base_exception_in_define_fails_the_run(engine: ob.Engine, kind: str) -> None:
    run = engine.start(InDefine(kind=kind))
    with pytest.raises(ob.OrbitsError):
        run.wait(60)
    assert run.status == "failed"
    assert run.error["type"] == TYPES[kind]
    assert "in define" in run.error["traceback"]
    assert run.state().steps["before"].status == "succeeded"
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


# -- a run never ends while one of its steps still executes ----------------------------

class Boom(ob.Action):
    def main(self) -> Any:
        bump("boom")
        gate("boom").set()
        raise RuntimeError("branch failed")


class SlowSync(ob.Action):
    """Runs on past its failing sibling: starts when told, then takes a while."""

    def main(self) -> Any:
        gate(self.args["after"]).wait(30)
        time.sleep(0.5)
        return bump(self.args["key"])


class SlowAsync(ob.Action):
    async def main(self) -> Any:
        while not gate(self.args["after"]).is_set():
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.5)
        return bump(self.args["key"])


class Watcher(ob.Action):
    poll_interval = 0.02

    def main(self) -> Any:
        bump("watcher-main")
        self.bag["polls"] = 0
        return ob.IN_PROGRESS

    def watch(self) -> Any:
        self.bag["polls"] += 1
        if gate("watcher-done").is_set():
            return {"polls": self.bag["polls"]}
        return ob.IN_PROGRESS


class Fragile(ob.Action):
    def main(self) -> Any:
        bump("fragile")
        if not Path(self.args["fixed"]).exists():
            raise RuntimeError("branch failed")
        return "fixed"


class Siblings(ob.Workflow):
    async def define(self) -> Any:
        fixed = self.args["fixed"]
        return await asyncio.gather(
            self.do("sync", SlowSync(key="sync", after="fragile")),
            self.do("async", SlowAsync(key="async", after="fragile")),
            self.do("watch", Watcher()),
            self.do("fragile", FragileGate(fixed=fixed)),
        )


class FragileGate(Fragile):
    def main(self) -> Any:
        try:
            return super().main()
        finally:
            gate("fragile").set()


def test_siblings_of_a_failed_branch_finish_before_the_run_fails(
        engine: ob.Engine, tmp_path: Path) -> None:
    fixed = tmp_path / "fixed"
    run = engine.start(Siblings(fixed=str(fixed)))
    with pytest.raises(ob.StepFailed):
        run.wait(60)
    steps = run.state().steps
    # Steps in main() were waited for and their outcome recorded; the watcher, only
    # sleeping between polls, was cancelled at that safe point.
    assert {k: s.status for k, s in steps.items()} == {
        "sync": "succeeded", "async": "succeeded", "watch": "cancelled",
        "fragile": "failed"}
    assert nothing_after_the_end(engine, run.run_id) == []
    assert run.state().finished_at >= max(steps["sync"].finished_at,
                                           steps["async"].finished_at)

    fixed.write_text("x")
    gate("watcher-done").set()
    again = run.retry()
    assert again.wait(60)[3] == "fixed"
    # Only the failed branch ran again; the watcher resumed without calling main().
    assert COUNTS == {"sync": 1, "async": 1, "watcher-main": 1, "fragile": 2}
    assert check(engine.store) == []


class Forgotten(ob.Workflow):
    async def define(self) -> Any:
        asyncio.create_task(self.do("background", SlowSync(key="bg", after="go")))  # noqa: RUF006
        await asyncio.sleep(0.05)
        gate("go").set()
        return "done"


def test_a_step_never_awaited_finishes_before_the_run_ends(engine: ob.Engine) -> None:
    run = engine.start(Forgotten())
    assert run.wait(60) == "done"
    assert run.state().steps["background"].status == "succeeded"
    assert nothing_after_the_end(engine, run.run_id) == []
    assert engine.start(Forgotten()).wait(60) == "done"
    assert COUNTS == {"bg": 1}


class Child(ob.Workflow):
    async def define(self) -> Any:
        first = await self.do("first", SlowSync(key="child-first", after="fragile"))
        second = await self.do("second", Ok(key="child-second"))
        return [first, second]


class Nested(ob.Workflow):
    async def define(self) -> Any:
        return await asyncio.gather(
            self.do("child", Child()),
            self.do("fragile", FragileGate(fixed=self.args["fixed"])))


def test_a_nested_workflow_stops_at_its_next_step_when_its_parent_fails(
        engine: ob.Engine, tmp_path: Path) -> None:
    fixed = tmp_path / "fixed"
    run = engine.start(Nested(fixed=str(fixed)))
    with pytest.raises(ob.StepFailed):
        run.wait(60)
    child = engine.get_run(f"{run.run_id}/child")
    assert child.status == "cancelled"
    assert {k: s.status for k, s in child.state().steps.items()} == {"first": "succeeded"}
    assert run.state().steps["child"].status == "cancelled"
    assert nothing_after_the_end(engine, child.run_id) == []
    assert nothing_after_the_end(engine, run.run_id) == []

    fixed.write_text("x")
    assert run.retry().wait(60) == [[1, 1], "fixed"]
    assert COUNTS == {"child-first": 1, "child-second": 1, "fragile": 2}
    assert check(engine.store) == []


class LongPoll(Watcher):
    poll_interval = 30.0  # surely pausing when the parent's branch fails

    def main(self) -> Any:
        gate("watching").set()
        return super().main()


class FailsOnceWatching(FragileGate):
    def main(self) -> Any:
        gate("watching").wait(30)
        time.sleep(0.3)  # the watcher is in its pause by then
        return super().main()


class ChildWatching(ob.Workflow):
    async def define(self) -> Any:
        busy = asyncio.create_task(self.do("async", SlowAsync(key="child-async",
                                                              after="fragile")))
        watched = await self.do("watch", LongPoll())  # pausing in this run's own task
        return [await busy, watched["polls"] > 0]


class NestedWatching(ob.Workflow):
    async def define(self) -> Any:
        return await asyncio.gather(
            self.do("child", ChildWatching()),
            self.do("fragile", FailsOnceWatching(fixed=self.args["fixed"])))


def test_stopping_a_nested_watcher_does_not_cancel_its_busy_siblings(
        engine: ob.Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fixed = tmp_path / "fixed"
    run = engine.start(NestedWatching(fixed=str(fixed)))
    with pytest.raises(ob.StepFailed):
        run.wait(60)
    child = engine.get_run(f"{run.run_id}/child")
    assert {k: s.status for k, s in child.state().steps.items()} == {
        "async": "succeeded", "watch": "cancelled"}
    fixed.write_text("x")
    gate("watcher-done").set()
    monkeypatch.setattr(LongPoll, "poll_interval", 0.02)
    assert run.retry().wait(60) == [[1, True], "fixed"]
    assert COUNTS == {"child-async": 1, "watcher-main": 1, "fragile": 2}


class Blocking(ob.Action):
    def main(self) -> Any:
        gate("started").set()
        gate("release").wait(30)
        return bump("blocking")


class Sleepy(ob.Action):
    async def main(self) -> Any:
        bump("sleepy")
        await asyncio.sleep(60)


class Cancellable(ob.Workflow):
    async def define(self) -> Any:
        return await asyncio.gather(self.do("blocking", Blocking()),
                                    self.do("sleepy", Sleepy()))


def test_cancel_abandons_a_blocking_step_and_ends_the_run_at_once(engine: ob.Engine) -> None:
    run = engine.start(Cancellable())
    assert gate("started").wait(30)
    until(lambda: COUNTS.get("sleepy"))
    run.cancel()
    with pytest.raises(CANCELLED):
        run.wait(60)  # the thread is still blocked: the run did not wait for it
    assert run.status == "cancelled"
    steps = run.state().steps
    # A thread cannot be interrupted: its attempt is abandoned; the coroutine was
    # cancelled.
    assert (steps["blocking"].status, steps["blocking"].spans[-1].status) == (
        "cancelled", "abandoned")
    assert steps["sleepy"].status == "cancelled"
    gate("release").set()
    until(lambda: COUNTS.get("blocking") == 1)  # the thread ended on its own...
    engine.writer.flush()
    assert run.state().steps["blocking"].status == "cancelled"  # ...its result discarded
    assert nothing_after_the_end(engine, run.run_id) == []
    again = run.retry()
    until(lambda: COUNTS["sleepy"] == 2)  # the retry ran "blocking" again, then got on
    again.cancel()
    with pytest.raises(CANCELLED):
        again.wait(60)
    assert COUNTS["blocking"] == 2


class FinishesAnyway:
    """An executor that says it can stop its calls but, once a call began, finishes
    it (as a Dask worker does with a function already running in its thread)."""

    def __init__(self) -> None:
        self.cancels: dict[str, int] = {}
        self.release = threading.Event()

    def describe(self) -> str:
        return "finishes anyway"

    def interruptible(self, action: ob.Action, method: str) -> bool:
        return True

    async def call(self, action: ob.Action, method: str) -> Any:
        from orbits_nb.core.ports import Outcome

        key = str(action.step)
        self.cancels[key] = 0
        while not self.release.is_set():
            try:
                await asyncio.sleep(0.01)
            except asyncio.CancelledError:
                self.cancels[key] += 1
        return Outcome(f"finished {key}", dict(action.bag))


class Trio(ob.Workflow):
    async def define(self) -> Any:
        # "c" stops at once: gather() then ends and the run winds down, cancelling
        # the steps still in flight a second time.
        return await asyncio.gather(self.do("a", Noop()), self.do("b", Noop()),
                                    self.do("c", Naps(), executor=ob.LocalExecutor()))


class Noop(ob.Action):
    def main(self) -> Any:
        return None


class Naps(ob.Action):
    async def main(self) -> Any:
        await asyncio.sleep(600)


def test_a_cancel_reaches_a_call_once_and_a_call_that_finishes_is_recorded(
        engine: ob.Engine) -> None:
    # A run's cancel reaches a step through gather() and from the run winding down:
    # the executor must see it once, or it cannot decide to finish the call.
    executor = FinishesAnyway()
    run = Trio().start(engine=engine, executor=executor)
    until(lambda: len(executor.cancels) == 2)
    run.cancel()
    until(lambda: all(count for count in executor.cancels.values()))
    time.sleep(0.3)  # a second cancel, if the engine sent one, has arrived by now
    executor.release.set()
    with pytest.raises(CANCELLED):
        run.wait(60)
    assert executor.cancels == {"a": 1, "b": 1}
    steps = run.state().steps
    assert {key: steps[key].status for key in "ab"} == {"a": "succeeded", "b": "succeeded"}
    assert steps["a"].result == "finished a"
    assert steps["c"].status == "cancelled"
    assert run.status == "cancelled"


class RetryLater(ob.Action):
    retry = ob.Retry(attempts=3, delay=60, on=(ConnectionError,))

    def main(self) -> Any:
        bump("retry-later")
        gate("retry-later").set()
        raise ConnectionError("blip")


class WaitsToRetry(ob.Workflow):
    async def define(self) -> Any:
        return await self.do("flaky", RetryLater())


def test_cancel_during_a_retry_delay_records_the_step_cancelled(engine: ob.Engine) -> None:
    run = engine.start(WaitsToRetry())
    assert gate("retry-later").wait(30)
    until(lambda: run.state().steps["flaky"].status == "retrying")
    run.cancel()
    with pytest.raises(CANCELLED):
        run.wait(60)
    assert run.state().steps["flaky"].status == "cancelled"
    assert check(engine.store) == []


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


ABANDONED = textwrap.dedent("""
    import asyncio, atexit, sys, time
    import orbits_nb as ob

    class Forever(ob.Action):
        async def main(self):
            await asyncio.sleep(600)

    class Wf(ob.Workflow):
        async def define(self):
            return await self.do("forever", Forever())

    engine = ob.Engine(sys.argv[1])
    run = engine.start(Wf())
    while run.status != "running":
        time.sleep(0.05)
    # The loop stops with the run's task still pending, as when close() gives up on a
    # run: its coroutine is only closed while the interpreter tears down, and its
    # cleanup then asks the (stopped) writer to write the lease release.
    atexit.unregister(engine._exit)
    engine.writer.stop()
    engine.loop.call_soon_threadsafe(engine.loop.stop)
    time.sleep(0.5)
    print("leaving", flush=True)
""")


def test_a_run_abandoned_at_exit_does_not_hang_the_interpreter(tmp_path: Path) -> None:
    script = tmp_path / "abandoned.py"
    script.write_text(ABANDONED)
    # The timeout only keeps a regression from hanging the suite.
    proc = subprocess.run([sys.executable, str(script), str(tmp_path / "s.duckdb")],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "leaving" in proc.stdout


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


class OwnTask(ob.Workflow):
    async def define(self) -> Any:
        async def helper() -> None:
            await asyncio.sleep(0)
            RAISERS[self.args["kind"]]()

        await self.do("before", Ok(key="before"))
        # A task of the user's own (not a step): asyncio re-raises SystemExit and
        # KeyboardInterrupt out of the loop that runs it.
        await asyncio.gather(helper())


class ChildAborts(ob.Workflow):
    async def define(self) -> Any:
        return await self.do("inner", InDefine(kind=self.args["kind"]))


@pytest.mark.parametrize("kind", ["sys.exit", "KeyboardInterrupt"])
def test_a_base_exception_in_a_task_of_define_fails_the_run(engine: ob.Engine,
                                                           kind: str) -> None:
    run = engine.start(OwnTask(kind=kind))
    with pytest.raises(ob.OrbitsError):
        run.wait(60)
    assert (run.status, run.error["type"]) == ("failed", TYPES[kind])
    assert_engine_still_serves(engine)


def test_a_base_exception_in_a_nested_define_fails_its_step(engine: ob.Engine) -> None:
    run = engine.start(ChildAborts(kind="Halt"))
    with pytest.raises(ob.StepFailed):
        run.wait(60)
    child = engine.get_run(f"{run.run_id}/inner")
    assert (child.status, child.error["type"]) == ("failed", TYPES["Halt"])
    assert run.state().steps["inner"].error["type"] == TYPES["Halt"]
    assert_engine_still_serves(engine)


def test_a_local_executor_travels_and_subclasses_need_no_init(engine: ob.Engine) -> None:
    import pickle

    class Tagged(ob.LocalExecutor):
        def __init__(self, tag: str) -> None:  # no super().__init__(), as users write it
            self.tag = tag

        async def call(self, action: ob.Action, method: Any) -> Any:
            action.env = {"TAG": self.tag}
            return await super().call(action, method)

    class ReadsTag(ob.Action):
        def main(self) -> Any:
            return self.env["TAG"]

    class W(ob.Workflow):
        async def define(self) -> Any:
            return await self.do("tag", ReadsTag(), executor=Tagged("blue"))

    assert engine.start(W()).wait(30) == "blue"
    used = ob.LocalExecutor(max_threads=3)
    used.threads()
    clone = pickle.loads(pickle.dumps(used))  # e.g. with an action sent to a subprocess
    assert clone.max_threads == 3 and clone._threads is None
