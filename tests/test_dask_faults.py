"""DaskExecutor faults on a real cluster: a worker SIGKILLed mid-step, the scheduler
going away and coming back, and cancel."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("distributed")

from dask_cluster import Cluster, wait_exited  # noqa: E402
from polling import until  # noqa: E402

import orbits_nb as ob  # noqa: E402
from orbits_nb.executors.dask import DaskExecutor, SchedulerLost, WorkerLost  # noqa: E402


def starts(path: Path) -> list[int]:
    return [int(line) for line in path.read_text().split()] if path.exists() else []


class DiesOnce(ob.Action):
    """Its first execution blocks until its worker is killed; the next one finishes."""

    def main(self) -> Any:
        log = Path(self.args["log"])
        with log.open("a") as f:
            f.write(f"{os.getpid()}\n")
        if len(starts(log)) == 1:
            time.sleep(600)
        with Path(self.args["done"]).open("a") as f:
            f.write(f"{os.getpid()}\n")
        return {"pid": os.getpid()}


class Survives(ob.Workflow):
    async def define(self) -> Any:
        return await self.do("work", DiesOnce(log=self.args["log"], done=self.args["done"]))


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path, workers=2, nthreads=1)
    yield c
    c.close()


@pytest.mark.slow
def test_worker_killed_mid_step_completes_the_step_once(cluster: Cluster, tmp_path: Path,
                                                        engine: ob.Engine) -> None:
    log, done = tmp_path / "starts", tmp_path / "done"
    executor = DaskExecutor(cluster.address)
    run = Survives(log=str(log), done=str(done)).start(engine=engine, executor=executor)
    first = until(lambda: starts(log), timeout=120)[0]
    os.kill(first, signal.SIGKILL)
    result = run.wait(180)
    assert result["pid"] != first
    assert starts(done) == [result["pid"]]  # finished once, on a living worker
    engine.writer.flush()
    succeeded = [e for e in engine.store.load_run(run.run_id) if e.kind == "step.succeeded"]
    assert len(succeeded) == 1
    # Dask ran the attempt again elsewhere; the attempt names both workers.
    assert len(succeeded[0].data["workers"]) == 2
    assert succeeded[0].data["worker"] == succeeded[0].data["workers"][-1]
    executor.close()


class DiesAlways(ob.Action):
    retry = ob.Retry(attempts=2, delay=0.1, on=ConnectionError)

    def main(self) -> Any:
        log = Path(self.args["log"])
        with log.open("a") as f:
            f.write(f"{os.getpid()}\n")
        if len(starts(log)) == 1:
            os.kill(os.getpid(), signal.SIGKILL)
        return "second attempt"


class Retried(ob.Workflow):
    async def define(self) -> Any:
        return await self.do("work", DiesAlways(log=self.args["log"]))


@pytest.mark.slow
def test_a_worker_dask_gives_up_on_is_an_attempt_retried_by_policy(
        tmp_path: Path, engine: ob.Engine) -> None:
    # With no retry of its own, Dask reports KilledWorker at the first death.
    c = Cluster(tmp_path, workers=2, nthreads=1,
                env={"DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0"})
    try:
        executor = DaskExecutor(c.address)
        run = Retried(log=str(tmp_path / "starts")).start(engine=engine, executor=executor)
        assert run.wait(180) == "second attempt"
        step = run.state().steps["work"]
        assert step.attempts == 2
        engine.writer.flush()
        retrying = [e for e in engine.store.load_run(run.run_id) if e.kind == "step.retrying"]
        assert [e.data["error"]["type"] for e in retrying] == [
            "orbits_nb.executors.dask.WorkerLost"]
        assert issubclass(WorkerLost, ob.OrbitsError)
        executor.close()
    finally:
        c.close()


class Counted(ob.Action):
    def main(self) -> Any:
        with Path(self.args["log"]).open("a") as f:
            f.write(f"{self.args['name']}\n")
        if self.args.get("block"):
            flag = Path(self.args["block"])
            while not flag.exists():
                time.sleep(0.02)
        return self.args["name"]


class TwoSteps(ob.Workflow):
    async def define(self) -> Any:
        log = self.args["log"]
        first = await self.do("first", Counted(name="first", log=log))
        second = await self.do("second", Counted(name="second", log=log,
                                                 block=self.args["block"]))
        return [first, second]


@pytest.mark.slow
def test_scheduler_going_away_fails_the_step_clearly_and_the_run_resumes(
        cluster: Cluster, tmp_path: Path, engine: ob.Engine) -> None:
    log, block = tmp_path / "ran", tmp_path / "block"
    executor = DaskExecutor(cluster.address)
    run = TwoSteps(log=str(log), block=str(block)).start(engine=engine, executor=executor)
    until(lambda: "second" in (log.read_text() if log.exists() else ""), timeout=120)
    cluster.kill_scheduler()
    with pytest.raises(ob.StepFailed) as info:
        run.wait(180)
    assert isinstance(info.value.cause, SchedulerLost)
    assert cluster.address in str(info.value.cause)
    assert "run.retry()" in str(info.value.cause)
    assert run.state().steps["second"].status == "failed"
    # The scheduler comes back with new workers; executing the run again continues it.
    cluster.stop_workers()
    block.touch()
    cluster.start_scheduler()
    for _ in range(2):
        cluster.add_worker()
    cluster.wait_for_workers(2)
    assert run.retry().wait(180) == ["first", "second"]
    assert log.read_text().split().count("first") == 1  # replayed, not run again
    executor.close()


def test_an_unreachable_scheduler_is_a_clear_step_error(engine: ob.Engine,
                                                       tmp_path: Path) -> None:
    from dask_cluster import free_port

    address = f"tcp://127.0.0.1:{free_port()}"
    run = TwoSteps(log=str(tmp_path / "ran"), block="").start(
        engine=engine, executor=DaskExecutor(address))
    with pytest.raises(ob.StepFailed) as info:
        run.wait(180)
    assert isinstance(info.value.cause, SchedulerLost)
    assert f"cannot reach the Dask scheduler at {address}" in str(info.value.cause)
    assert not (tmp_path / "ran").exists()


class Sleeper(ob.Action):
    async def main(self) -> Any:
        with Path(self.args["log"]).open("a") as f:
            f.write(f"start {self.args['n']}\n")
        try:
            await asyncio.sleep(600)
        except asyncio.CancelledError:
            with Path(self.args["log"]).open("a") as f:
                f.write(f"cancelled {self.args['n']}\n")
            raise
        return "slept"


class Blocking(ob.Action):
    def main(self) -> Any:
        with Path(self.args["log"]).open("a") as f:
            f.write(f"start {self.args['n']}\n")
        flag = Path(self.args["flag"])
        while not flag.exists():
            time.sleep(0.02)
        return f"finished {self.args['n']}"


class Many(ob.Workflow):
    async def define(self) -> Any:
        log, kind = self.args["log"], self.args["kind"]

        def action(n: int) -> ob.Action:
            if kind == "async":
                return Sleeper(n=n, log=log)
            return Blocking(n=n, log=log, flag=self.args["flag"])
        return await asyncio.gather(*(self.do(f"s-{n}", action(n)) for n in range(6)))


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


@pytest.mark.slow
def test_cancel_stops_queued_calls_and_coroutines_on_the_workers(
        cluster: Cluster, tmp_path: Path, engine: ob.Engine) -> None:
    log = tmp_path / "log"
    executor = DaskExecutor(cluster.address)
    run = Many(log=str(log), kind="async").start(engine=engine, executor=executor)
    # Two workers of one thread each: two calls run, four wait in Dask's queue.
    until(lambda: len(lines(log)) == 2, timeout=120)
    run.cancel()
    with pytest.raises(BaseException):  # noqa: B017 (the run's cancellation)
        run.wait(120)
    assert run.status == "cancelled"
    until(lambda: sum(line.startswith("cancelled") for line in lines(log)) == 2, timeout=60)
    statuses = {s.key: s.status for s in run.state().ordered_steps()}
    assert set(statuses.values()) == {"cancelled"} and len(statuses) == 6
    time.sleep(0.5)  # let a call that wrongly survived reach a worker thread
    assert sum(line.startswith("start") for line in lines(log)) == 2
    executor.close()


@pytest.mark.slow
@pytest.mark.parametrize("notices", ["arrive", "lost"])
def test_cancel_waits_for_functions_running_on_workers_and_drops_queued_ones(
        cluster: Cluster, tmp_path: Path, engine: ob.Engine, notices: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    if notices == "lost":
        # The start notice is an event that can arrive after the cancel (or never):
        # the engine must still learn that the calls began and wait for them.
        from orbits_nb.executors._dask_client import Route

        deliver = Route.message
        monkeypatch.setattr(Route, "message", lambda self, message: None if message.get(
            "kind") == "start" else deliver(self, message))
    log, flag = tmp_path / "log", tmp_path / "flag"
    executor = DaskExecutor(cluster.address)
    run = Many(log=str(log), kind="sync", flag=str(flag)).start(engine=engine,
                                                                executor=executor)
    until(lambda: len(lines(log)) == 2, timeout=120)
    running = sorted(int(line.split()[1]) for line in lines(log))
    run.cancel()
    # A thread on a worker cannot be stopped: the run waits for it.
    until(lambda: all(
        run.state().steps[f"s-{n}"].status == "cancelled"
        for n in range(6) if n not in running), timeout=60)
    assert not run.done
    flag.touch()
    with pytest.raises(BaseException):  # noqa: B017 (the run's cancellation)
        run.wait(120)
    assert run.status == "cancelled"
    steps = run.state().steps
    assert {n: steps[f"s-{n}"].status for n in running} == dict.fromkeys(running,
                                                                          "succeeded")
    assert steps[f"s-{running[0]}"].result == f"finished {running[0]}"
    assert len(lines(log)) == 2  # the queued calls never started
    executor.close()


def test_engine_close_closes_the_local_cluster_it_started(tmp_path: Path) -> None:
    engine = ob.Engine(tmp_path / "state.duckdb")
    executor = DaskExecutor(cluster={"n_workers": 1, "threads_per_worker": 1})
    (tmp_path / "starts").write_text("1\n")  # so that its first execution finishes
    run = Survives(log=str(tmp_path / "starts"), done=str(tmp_path / "done")).start(
        engine=engine, executor=executor)
    worker_pid = run.wait(180)["pid"]
    assert worker_pid != os.getpid()
    engine.close()
    assert wait_exited(worker_pid)
