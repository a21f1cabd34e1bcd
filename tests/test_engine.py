"""Durable execution in one process: replay, keys, parallel steps, retries, watchers."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import orbits_nb as ob
from orbits_nb.engine.table import records
from orbits_nb.store.integrity import check

COUNTS: dict[str, int] = {}


def bump(key: str) -> int:
    COUNTS[key] = COUNTS.get(key, 0) + 1
    return COUNTS[key]


@pytest.fixture(autouse=True)
def _reset_counts() -> None:
    COUNTS.clear()


class Count(ob.Action):
    def main(self) -> Any:
        bump(self.args["key"])
        return {"key": self.args["key"], "value": self.args.get("value")}


class AsyncCount(ob.Action):
    async def main(self) -> Any:
        await asyncio.sleep(0)
        return bump(self.args["key"])


class Fail(ob.Action):
    def main(self) -> Any:
        bump("fail")
        if Path(self.args["flag"]).exists():
            return "fixed"
        raise ValueError("stack is broken")


class Pipeline(ob.Workflow):
    async def define(self) -> Any:
        a = await self.do("a", Count(key="a"))
        b = await self.do("b", AsyncCount(key="b"))
        fixed = await self.do("fragile", Fail(flag=self.args["flag"]))
        c = await self.do("c", Count(key="c"))
        return [a["key"], b, fixed, c["key"]]


def test_rerun_same_id_replays_completed_steps(engine: ob.Engine, tmp_path: Path) -> None:
    flag = tmp_path / "fixed"
    run = engine.start(Pipeline(flag=str(flag)))
    with pytest.raises(ob.StepFailed) as info:
        run.wait(30)
    assert info.value.step == "fragile"
    assert info.value.run_id == run.run_id
    assert isinstance(info.value.cause, ValueError)
    assert COUNTS == {"a": 1, "b": 1, "fail": 1}
    assert run.status == "failed"
    assert [s["status"] for s in records(run.steps())] == ["succeeded", "succeeded", "failed"]

    flag.write_text("fix the code, re-run the cell")
    again = engine.start(Pipeline(flag=str(flag)))
    assert again.run_id == run.run_id
    assert again.wait(30) == ["a", 1, "fixed", "c"]
    assert COUNTS == {"a": 1, "b": 1, "fail": 2, "c": 1}
    third = engine.start(Pipeline(flag=str(flag)))
    assert third.wait(30) == ["a", 1, "fixed", "c"]
    assert COUNTS == {"a": 1, "b": 1, "fail": 2, "c": 1}
    assert check(engine.store) == []


def test_replay_survives_a_new_engine(state_path: Path, tmp_path: Path) -> None:
    (tmp_path / "fixed").write_text("x")
    first = ob.Engine(state_path)
    assert first.start(Pipeline(flag=str(tmp_path / "fixed"))).wait(30)[0] == "a"
    first.close()
    second = ob.Engine(state_path)
    try:
        assert second.start(Pipeline(flag=str(tmp_path / "fixed"))).wait(30)[0] == "a"
    finally:
        second.close()
    assert COUNTS == {"a": 1, "b": 1, "fail": 1, "c": 1}


def test_fresh_and_explicit_ids_start_distinct_runs(engine: ob.Engine, tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    wf = Pipeline(flag=str(tmp_path / "f"))
    base = engine.start(wf)
    base.wait(30)
    fresh = engine.start(wf, fresh=True)
    fresh.wait(30)
    named = engine.start(wf, run_id="nightly-1")
    named.wait(30)
    assert len({base.run_id, fresh.run_id, named.run_id}) == 3
    assert fresh.run_id.startswith(base.run_id)
    assert COUNTS["a"] == 3


class Loop(ob.Workflow):
    async def define(self) -> Any:
        out = []
        for i in range(3):
            out.append(await self.do("item", Count(key=f"item{i}", value=i)))
        return [o["value"] for o in out]


def test_steps_in_loops_get_distinct_keys(engine: ob.Engine) -> None:
    run = engine.start(Loop())
    assert run.wait(30) == [0, 1, 2]
    assert [s["step"] for s in records(run.steps())] == ["item", "item#2", "item#3"]
    engine.start(Loop()).wait(30)
    assert COUNTS == {"item0": 1, "item1": 1, "item2": 1}


class Slow(ob.Action):
    async def main(self) -> Any:
        await asyncio.sleep(self.args["seconds"])
        return bump(self.args["key"])


class Parallel(ob.Workflow):
    async def define(self) -> Any:
        await self.do("prepare", Count(key="prepare"))
        git, aws = await asyncio.gather(
            self.do("git-create", Slow(key="git", seconds=0.2)),
            self.do("aws-create", Slow(key="aws", seconds=0.2)),
        )
        return await self.do("iac-deploy", Count(key="iac", value=[git, aws]))


def test_parallel_steps_overlap_and_record_parents(engine: ob.Engine) -> None:
    run = engine.start(Parallel())
    assert run.wait(30)["value"] == [1, 1]
    state = run.state()
    git, aws = state.steps["git-create"], state.steps["aws-create"]
    assert git.started_at is not None and aws.started_at is not None
    assert aws.started_at < (git.finished_at or 0)  # they ran at the same time
    assert sorted(state.steps["iac-deploy"].parents) == ["aws-create", "git-create"]
    assert git.parents == aws.parents == ["prepare"]


class SameNameInParallel(ob.Workflow):
    async def define(self) -> Any:
        return await asyncio.gather(self.do("x", Slow(key="1", seconds=0.05)),
                                    self.do("x", Slow(key="2", seconds=0.05)))


def test_same_name_in_parallel_is_rejected(engine: ob.Engine) -> None:
    run = engine.start(SameNameInParallel())
    with pytest.raises(ob.DuplicateStep, match="two steps running at the same time"):
        run.wait(30)
    assert run.status == "failed"
    assert check(engine.store) == []


class Notify(ob.Action):
    def main(self) -> Any:
        bump("notify")
        return self.args["text"]


class Seed(ob.Workflow):
    async def define(self) -> Any:
        try:
            await self.do("iac-deploy", Fail(flag="/nonexistent/flag"))
        except ob.StepFailed as err:
            await self.do("notify", Notify(text=f"{err.step} failed: {err.cause}"))
            raise


def test_failed_step_is_caught_in_define_like_the_seed(engine: ob.Engine) -> None:
    run = engine.start(Seed())
    with pytest.raises(ob.StepFailed):
        run.wait(30)
    steps = {row["step"]: row for row in records(run.steps())}
    assert steps["notify"]["result"] == "iac-deploy failed: stack is broken"
    assert "ValueError: stack is broken" in run.error["message"]
    assert "Traceback" in run.error["traceback"]


class Flaky(ob.Action):
    retry = ob.Retry(attempts=3, delay=0.01, on=(ConnectionError,))

    def main(self) -> Any:
        n = bump("flaky")
        if n < self.args["succeed_on"]:
            raise ConnectionError(f"blip {n}")
        return n


class Retrying(ob.Workflow):
    async def define(self) -> Any:
        return await self.do("flaky", Flaky(succeed_on=self.args["succeed_on"]))


def test_retry_policy(engine: ob.Engine) -> None:
    run = engine.start(Retrying(succeed_on=3))
    assert run.wait(30) == 3
    assert run.state().steps["flaky"].attempts == 3
    attempts = engine.store.fetch(
        "SELECT attempt, status FROM attempts WHERE run_id = ? ORDER BY attempt", [run.run_id])
    assert attempts == [(1, "retrying"), (2, "retrying"), (3, "succeeded")]
    COUNTS.clear()
    failing = engine.start(Retrying(succeed_on=10))
    with pytest.raises(ob.StepFailed) as info:
        failing.wait(30)
    assert info.value.attempts == 3
    assert COUNTS["flaky"] == 3


class WrongError(ob.Action):
    retry = ob.Retry(attempts=5, delay=0.01, on=(ConnectionError,))

    def main(self) -> Any:
        bump("wrong")
        raise KeyError("not retried")


class NoRetry(ob.Workflow):
    async def define(self) -> Any:
        return await self.do("w", WrongError())


def test_only_listed_exceptions_are_retried(engine: ob.Engine) -> None:
    with pytest.raises(ob.StepFailed):
        engine.start(NoRetry()).wait(30)
    assert COUNTS["wrong"] == 1


class Account(ob.Action):
    poll_interval = 0.02

    def main(self) -> Any:
        bump("create")
        self.bag["request"] = "req-1"
        self.bag["polls"] = 0
        return ob.IN_PROGRESS

    def watch(self) -> Any:
        self.bag["polls"] += 1
        bump("poll")
        marker = Path(self.args["ready"])
        if marker.exists():
            return {"account": "123456789012", "request": self.bag["request"]}
        return ob.IN_PROGRESS


class Onboard(ob.Workflow):
    async def define(self) -> Any:
        return await self.do("aws-create", Account(ready=self.args["ready"]))


def test_watcher_resumes_with_its_bag_without_calling_main(
        state_path: Path, tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    eng = ob.Engine(state_path)
    run = eng.start(Onboard(ready=str(ready)))
    deadline = time.monotonic() + 10
    while COUNTS.get("poll", 0) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert run.status == "running"
    assert run.state().steps["aws-create"].status == "waiting"
    eng.close()  # like a kernel restart: the watcher is cancelled
    assert COUNTS["create"] == 1

    ready.write_text("done")
    eng2 = ob.Engine(state_path)
    try:
        resumed = eng2.start(Onboard(ready=str(ready)))
        assert resumed.wait(30) == {"account": "123456789012", "request": "req-1"}
    finally:
        eng2.close()
    assert COUNTS["create"] == 1


class Forever(ob.Action):
    poll_interval = 0.01
    timeout = 0.3

    def main(self) -> Any:
        return ob.IN_PROGRESS

    def watch(self) -> Any:
        return ob.IN_PROGRESS


class Stuck(ob.Workflow):
    async def define(self) -> Any:
        return await self.do("wait-forever", Forever())


def test_watcher_that_never_finishes_times_out(engine: ob.Engine) -> None:
    run = engine.start(Stuck())
    with pytest.raises(ob.StepFailed) as info:
        run.wait(30)
    assert isinstance(info.value.cause, ob.StepTimeout)
    assert "exceeded its timeout of 0.3s" in str(info.value)
    assert run.state().steps["wait-forever"].status == "failed"
    assert check(engine.store) == []


class Inner(ob.Workflow):
    async def define(self) -> Any:
        return (await self.do("leaf", Count(key="leaf")))["key"]


class Outer(ob.Workflow):
    async def define(self) -> Any:
        inner = await self.do("inner", Inner())
        return await self.do("after", Count(key="after", value=inner))


def test_workflows_nest_as_steps(engine: ob.Engine) -> None:
    run = engine.start(Outer())
    assert run.wait(30)["value"] == "leaf"
    child = engine.get_run(f"{run.run_id}/inner")
    assert child.status == "succeeded"
    assert [s["step"] for s in records(child.steps())] == ["leaf"]
    engine.start(Outer()).wait(30)
    assert COUNTS == {"leaf": 1, "after": 1}


class Talker(ob.Action):
    def main(self) -> Any:
        print("hello from the step")
        self.log.info("deploying %s", self.args["what"])
        print("token is", self.args["token"].reveal())
        return "ok"


class Talk(ob.Workflow):
    async def define(self) -> Any:
        return await self.do("talk", Talker(what="stack", token=self.args["token"]))


def test_logs_are_captured_per_step_and_secrets_redacted(
        engine: ob.Engine, state_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = engine.start(Talk(token=ob.Secret("tok-98765-secret", name="token")))
    assert run.wait(30) == "ok"
    logs = run.logs("talk")
    assert "hello from the step" in logs
    assert "INFO orbits_nb.action.Talker: deploying stack" in logs
    assert "token is ****" in logs
    assert "hello from the step" not in capsys.readouterr().out
    engine.close()
    assert b"tok-98765-secret" not in state_path.read_bytes()
    wal = Path(f"{state_path}.wal")
    assert not wal.exists() or b"tok-98765-secret" not in wal.read_bytes()


class Sleeper(ob.Action):
    async def main(self) -> Any:
        bump("sleeper")
        await asyncio.sleep(30)
        return "late"


class Long(ob.Workflow):
    async def define(self) -> Any:
        return await self.do("sleep", Sleeper())


def test_start_returns_at_once_and_cancel_records_it(engine: ob.Engine) -> None:
    run = engine.start(Long())
    assert not run.done
    deadline = time.monotonic() + 10
    while COUNTS.get("sleeper") != 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    run.cancel()
    with pytest.raises(BaseException) as info:
        run.wait(10)
    assert type(info.value).__name__ == "CancelledError"
    assert run.status == "cancelled"
    assert run.state().steps["sleep"].status == "cancelled"


def test_await_run_in_asyncio_code(engine: ob.Engine) -> None:
    async def main() -> Any:
        run = engine.start(Loop())
        return await run

    assert asyncio.run(main()) == [0, 1, 2]


def test_giving_up_on_await_run_leaves_the_run_going(engine: ob.Engine) -> None:
    class Later(ob.Action):
        async def main(self) -> Any:
            await asyncio.sleep(0.5)
            return bump("later")

    class W(ob.Workflow):
        async def define(self) -> Any:
            return await self.do("later", Later())

    async def cell() -> ob.Run:
        run = engine.start(W())
        with pytest.raises(TimeoutError):  # like an interrupted cell: the wait is cancelled
            await asyncio.wait_for(run, 0.05)
        return run

    run = asyncio.run(cell())
    assert run.wait(30) == 1
    assert run.status == "succeeded"


def test_sync_steps_run_off_the_event_loop(engine: ob.Engine) -> None:
    threads: list[str] = []

    class Where(ob.Action):
        def main(self) -> Any:
            threads.append(threading.current_thread().name)
            return "ok"

    class W(ob.Workflow):
        async def define(self) -> Any:
            return await self.do("where", Where())

    engine.start(W()).wait(30)
    assert threads[0].startswith("orbits-nb-step")


def test_reset_discards_the_step_and_what_followed(engine: ob.Engine, tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    wf = Pipeline(flag=str(tmp_path / "f"))
    run = engine.start(wf)
    run.wait(30)
    run.reset("fragile")
    assert [s["step"] for s in records(run.steps())] == ["a", "b"]
    engine.start(wf).wait(30)
    assert COUNTS == {"a": 1, "b": 1, "fail": 2, "c": 2}
    with pytest.raises(ob.OrbitsError, match="has no step 'nope'"):
        run.reset("nope")
    assert check(engine.store) == []


def test_history_lists_runs(engine: ob.Engine, tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    engine.start(Pipeline(flag=str(tmp_path / "f"))).wait(30)
    with pytest.raises(ob.StepFailed):
        engine.start(Seed()).wait(30)
    rel = ob.history(engine=engine)
    rows = {r[1].split(":")[-1]: r[2] for r in rel.fetchall()}
    assert rows == {"Pipeline": "succeeded", "Seed": "failed"}
    failed = ob.history(status="failed", engine=engine).df()
    assert [w.split(":")[-1] for w in failed["workflow"]] == ["Seed"]
    assert len(ob.history(workflow="Pipeline", engine=engine).fetchall()) == 1


def test_default_engine_uses_the_state_env(_isolated_state: Path) -> None:  # noqa: PT019
    assert ob.default_engine().store.path == _isolated_state
    run = Loop().start()
    assert run.wait(30) == [0, 1, 2]
    assert ob.get_run(run.run_id).status == "succeeded"
    assert _isolated_state.exists()


def test_redefined_class_while_the_old_run_executes(engine: ob.Engine) -> None:
    def define_long() -> type[ob.Workflow]:
        class Long(ob.Workflow):  # the same qualified name each time, like a notebook cell
            async def define(self) -> Any:
                return await self.do("sleep", Sleeper())
        return Long

    first = engine.start(define_long()())
    with pytest.raises(ob.OrbitsError, match="still executing here with an earlier definition"):
        engine.start(define_long()())
    first.cancel()
    with pytest.raises(BaseException):
        first.wait(10)
    COUNTS.clear()
    again = engine.start(define_long()())
    assert again.run_id == first.run_id
    again.cancel()
