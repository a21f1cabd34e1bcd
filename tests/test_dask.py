"""DaskExecutor against a real cluster: a `dask scheduler` and two `dask worker`
processes on 127.0.0.1, started by these tests."""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("distributed")

from dask_cluster import Cluster  # noqa: E402
from polling import until  # noqa: E402

import orbits_nb as ob  # noqa: E402
from orbits_nb.engine.table import records  # noqa: E402
from orbits_nb.executors.dask import DaskExecutor  # noqa: E402


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("dask"), workers=2, nthreads=2,
                resources="slot=1", env={"WORKER_ONLY_TOKEN": "tok-worker-only-7731"})
    yield c
    c.close()


@pytest.fixture
def dask(cluster: Cluster) -> Iterator[DaskExecutor]:
    executor = DaskExecutor(cluster.address)
    yield executor
    executor.close()


def where() -> dict[str, Any]:
    from distributed import get_worker

    return {"pid": os.getpid(), "worker": get_worker().address}


class Where(ob.Action):
    def main(self) -> Any:
        return where()


class Fan(ob.Workflow):
    async def define(self) -> Any:
        return await asyncio.gather(*(self.do(f"where-{i}", Where(i=i)) for i in range(6)))


def events(engine: ob.Engine, run_id: str, kind: str) -> list[Any]:
    engine.writer.flush()
    return [e for e in engine.store.load_run(run_id) if e.kind == kind]


def test_steps_run_in_the_worker_processes(cluster: Cluster, dask: DaskExecutor,
                                           engine: ob.Engine) -> None:
    run = Fan().start(engine=engine, executor=dask)
    results = run.wait(120)
    workers = cluster.worker_info()
    pids = {info["pid"] for info in workers.values()}
    assert all(r["pid"] in pids and r["pid"] != os.getpid() for r in results)
    assert all(r["worker"] in workers for r in results)
    # Each attempt records the worker that ran it; run.steps() shows it.
    recorded = {e.step: e.data["worker"] for e in events(engine, run.run_id, "step.succeeded")}
    assert recorded == {f"where-{i}": r["worker"] for i, r in enumerate(results)}
    table = {row["step"]: row for row in records(run.steps())}
    assert table["where-0"]["worker"] == results[0]["worker"]
    assert run.state().steps["where-1"].executor == f"dask {cluster.address}"


class Watcher(ob.Action):
    poll_interval = 0.01

    def main(self) -> Any:
        self.bag["polls"] = 0
        self.bag["started_on"] = os.getpid()
        return ob.IN_PROGRESS

    def watch(self) -> Any:
        self.bag["polls"] += 1
        if self.bag["polls"] < 3:
            return ob.IN_PROGRESS
        return {"polls": self.bag["polls"], "args": self.args, "pid": os.getpid()}


class Watching(ob.Workflow):
    async def define(self) -> Any:
        return await self.do("watch", Watcher(name="acme", sizes=[1, 2.5, None]))


def test_arguments_results_and_bag_travel(dask: DaskExecutor, engine: ob.Engine) -> None:
    run = Watching().start(engine=engine, executor=dask)
    result = run.wait(120)
    assert result["polls"] == 3
    assert result["args"] == {"name": "acme", "sizes": [1, 2.5, None]}
    assert result["pid"] != os.getpid()
    step = run.state().steps["watch"]
    assert step.bag["polls"] == 3 and step.bag["started_on"] != os.getpid()
    assert [e.data["bag"]["polls"] for e in events(engine, run.run_id, "step.bag")] == [1, 2, 3]


class Odd(Exception):
    """Pickles on the worker, but cannot be rebuilt from its pickle (two arguments)."""

    def __init__(self, a: str, b: str) -> None:
        super().__init__(f"{a} and {b}")


class Fails(ob.Action):
    def main(self) -> Any:
        kind = self.args["kind"]
        if kind == "value":
            raise ValueError("bad value 42")
        if kind == "odd":
            raise Odd("left", "right")
        if kind == "exit":
            sys.exit(3)
        raise KeyboardInterrupt


class Failing(ob.Workflow):
    async def define(self) -> Any:
        return await self.do("fails", Fails(kind=self.args["kind"]))


@pytest.mark.parametrize(("kind", "cause", "type_name"), [
    ("value", ValueError, "ValueError"),
    ("odd", ob.RemoteError, "test_dask.Odd"),
    ("exit", ob.Aborted, "SystemExit"),
    ("interrupt", ob.Aborted, "KeyboardInterrupt"),
])
def test_errors_come_back(dask: DaskExecutor, engine: ob.Engine, kind: str,
                          cause: type[BaseException], type_name: str) -> None:
    run = Failing(kind=kind).start(engine=engine, executor=dask)
    with pytest.raises(ob.StepFailed) as info:
        run.wait(120)
    assert isinstance(info.value.cause, cause)
    if isinstance(info.value.cause, ob.RemoteError):
        assert info.value.cause.type_name == type_name
        assert "Traceback" in info.value.cause.traceback
        assert "in main" in info.value.cause.traceback
    error = run.state().steps["fails"].error
    assert error is not None and type_name.rsplit(".", 1)[-1] in error["type"]
    assert "main" in error["traceback"]
    assert run.state().steps["fails"].worker  # the failed attempt names its worker
    pickle.dumps(info.value)  # what the engine raises travels on


class Chatty(ob.Action):
    def main(self) -> Any:
        print("first line")
        logging.getLogger("chatty").warning("a warning, once")
        flag = Path(self.args["flag"])
        while not flag.exists():
            time.sleep(0.02)
        print("last line", end="")
        return "done"


class Chatting(ob.Workflow):
    async def define(self) -> Any:
        return await self.do("chat", Chatty(flag=self.args["flag"]))


def test_output_reaches_the_step_logs_live(dask: DaskExecutor, engine: ob.Engine,
                                           tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    run = Chatting(flag=str(flag)).start(engine=engine, executor=dask)
    # The step is still running on the worker when its first lines are in its logs.
    until(lambda: "a warning, once" in run.logs("chat"), timeout=120)
    assert run.status == "running"
    assert run.logs("chat").splitlines() == ["first line", "WARNING chatty: a warning, once"]
    flag.touch()
    assert run.wait(120) == "done"
    assert run.logs("chat").splitlines() == ["first line", "WARNING chatty: a warning, once",
                                             "last line"]


class Reveals(ob.Action):
    def main(self) -> Any:
        token = ob.Secret.from_env("WORKER_ONLY_TOKEN").reveal()
        given = self.args["given"].reveal()
        print(f"worker token {token}, given {given}")
        return {"seen": f"{token}/{given}"}


class Revealing(ob.Workflow):
    async def define(self) -> Any:
        return await self.do("reveal", Reveals(given=ob.Secret("given-secret-5518",
                                                               name="given")))


def test_secrets_revealed_on_a_worker_are_masked(dask: DaskExecutor,
                                                 engine: ob.Engine) -> None:
    assert "WORKER_ONLY_TOKEN" not in os.environ  # only the workers know this one
    run = Revealing().start(engine=engine, executor=dask)
    run.wait(120)
    engine.writer.flush()
    logs = run.logs("reveal")
    assert logs == "worker token ****, given ****"
    dump = repr([(e.kind, e.data) for e in engine.store.load_run(run.run_id)]) + logs
    assert "tok-worker-only-7731" not in dump and "given-secret-5518" not in dump
    assert ob.sql("SELECT count(*) FROM logs WHERE message LIKE '%tok-worker%'",
                  engine=engine).fetchall() == [(0,)]


class Interval(ob.Action):
    def main(self) -> Any:
        start = time.time()
        time.sleep(0.4)
        return [start, time.time()]


class Crowd(ob.Workflow):
    async def define(self) -> Any:
        executor = self.args.get("resources")
        return await asyncio.gather(*(self.do(f"i-{n}", Interval(n=n), executor=(
            DAsk.options(resources=executor) if executor else DAsk)) for n in range(6)))


DAsk: Any = None  # the test's executor, seen by Crowd.define in this process


def most_at_once(intervals: list[list[float]]) -> int:
    edges = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals],
                   key=lambda edge: (edge[0], edge[1]))
    level = peak = 0
    for _, change in edges:
        level += change
        peak = max(peak, level)
    return peak


def test_worker_resources_bound_concurrent_calls(dask: DaskExecutor, engine: ob.Engine,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # Each of the two workers declares slot=1, and has two threads.
    monkeypatch.setattr(sys.modules[__name__], "DAsk", dask)
    free = Crowd().start(engine=engine, fresh=True).wait(120)
    bounded = Crowd(resources={"slot": 1}).start(engine=engine, fresh=True).wait(120)
    assert most_at_once(free) > 2  # without the resource, the four threads are used
    assert most_at_once(bounded) <= 2
