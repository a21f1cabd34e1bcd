"""Sending whole workflows to Dask (class attribute, start(), nested runs), notebook
classes in a real kernel, the inspector, and a missing dask installation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("distributed")

from dask_cluster import Cluster  # noqa: E402
from test_kernel import Kernel  # noqa: E402
from test_optional import child  # noqa: E402

import orbits_nb as ob  # noqa: E402
from orbits_nb.executors.dask import DaskExecutor  # noqa: E402
from orbits_nb.views.inspector import detail  # noqa: E402
from orbits_nb.views.snapshot import picture_of  # noqa: E402


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("dask"), workers=2, nthreads=2)
    yield c
    c.close()


class Pid(ob.Action):
    def main(self) -> Any:
        return os.getpid()


class Inner(ob.Workflow):
    async def define(self) -> Any:
        return await self.do("inner", Pid())


class Outer(ob.Workflow):
    async def define(self) -> Any:
        remote = await self.do("outer", Pid())
        nested = await self.do("nested", Inner())
        here = await self.do("here", Pid(), executor=ob.LocalExecutor())
        return {"outer": remote, "nested": nested, "here": here}


def test_a_workflow_class_sends_all_its_steps_and_nested_ones(
        cluster: Cluster, engine: ob.Engine) -> None:
    class OnDask(Outer):
        executor = DaskExecutor(cluster.address)

    workers = {info["pid"] for info in cluster.worker_info().values()}
    result = OnDask().start(engine=engine).wait(120)
    assert result["outer"] in workers and result["nested"] in workers
    assert result["here"] == os.getpid()  # a step's own executor still wins
    # start(executor=...) overrides the class attribute for the whole run.
    local = OnDask().start(engine=engine, fresh=True, executor=ob.LocalExecutor()).wait(120)
    assert set(local.values()) == {os.getpid()}
    OnDask.executor.close()


def test_start_executor_reaches_nested_runs_and_retry(cluster: Cluster,
                                                      engine: ob.Engine) -> None:
    executor = DaskExecutor(cluster.address)
    workers = {info["pid"] for info in cluster.worker_info().values()}
    run = Outer().start(engine=engine, executor=executor)
    result = run.wait(120)
    assert result["outer"] in workers and result["nested"] in workers
    nested = engine.get_run(f"{run.run_id}/nested").state().steps["inner"]
    assert nested.executor == f"dask {cluster.address}" and nested.worker
    run.reset("outer")
    again = run.retry().wait(120)  # retry keeps the executor start() was given
    assert again["outer"] in workers and again["nested"] in workers
    executor.close()


def test_the_inspector_names_the_worker_of_each_attempt(cluster: Cluster,
                                                        engine: ob.Engine) -> None:
    executor = DaskExecutor(cluster.address)
    run = Outer().start(engine=engine, executor=executor)
    run.wait(120)
    shown = detail(run, picture_of(run), "outer")
    recorded = run.state().steps["outer"].worker
    assert recorded and recorded.startswith("tcp://127.0.0.1:")
    assert shown["worker"] == recorded
    assert shown["history"][0]["worker"] == recorded
    assert shown["dashboard"].startswith("http://127.0.0.1:")  # the cluster's dashboard
    assert detail(run, picture_of(run), "here")["worker"] == ""
    executor.close()


NOTEBOOK_CELL = '''
import os
import orbits_nb as ob

class Shout(ob.Action):
    def main(self):
        print("shouting", self.args["word"])
        return {"word": self.args["word"].upper(), "pid": os.getpid()}

class Notebook(ob.Workflow):
    async def define(self):
        return await self.do("shout", Shout(word=self.args["word"]))
'''


@pytest.mark.slow
def test_classes_defined_in_a_notebook_run_on_the_workers(cluster: Cluster,
                                                          tmp_path: Path) -> None:
    kernel = Kernel(tmp_path / "state.duckdb", tmp_path)
    try:
        kernel.run(NOTEBOOK_CELL)
        out = kernel.run(f"dask = ob.DaskExecutor({cluster.address!r})\n"
                         "run = Notebook(word='hello').start(executor=dask)\n"
                         "import json; print(json.dumps(await run))")
        result = json.loads(out.strip().splitlines()[-1])
        kernel_pid = int(kernel.run("print(os.getpid())").strip())
        assert "shouting hello" in kernel.run("print(run.logs('shout'))")
        kernel.run("dask.close()")
    finally:
        kernel.shutdown()
    workers = {info["pid"] for info in cluster.worker_info().values()}
    assert result["word"] == "HELLO"
    assert result["pid"] in workers and result["pid"] != kernel_pid


def test_without_dask_the_step_says_what_to_install(tmp_path: Path) -> None:
    out = child("dask,distributed", """
    class Noop(ob.Action):
        def main(self):
            return "ran"

    class Flow(ob.Workflow):
        async def define(self):
            return await self.do("noop", Noop(), executor=ob.DaskExecutor())

    engine = ob.Engine(":memory:")
    print(json.dumps(outcome(Flow(), engine)))
    engine.close()
    """, tmp_path)
    assert out["status"] == "failed" and out["attempts"] == 1
    assert out["type"] == "MissingDependency"
    assert "pip install 'orbits_nb[dask]'" in out["message"]


def test_importing_orbits_nb_and_the_executor_imports_no_dask() -> None:
    code = ("import sys, orbits_nb as ob\n"
            "ob.DaskExecutor('tcp://127.0.0.1:1').describe()\n"
            "print([m for m in ('dask', 'distributed') if m in sys.modules])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, env={**os.environ})
    assert proc.stdout.strip() == "[]"


@pytest.mark.parametrize(("arguments", "message"), [
    ({"address": ""}, "address must be a scheduler address"),
    ({"address": "tcp://x:1", "client": object()}, "not both"),
    ({"client": object()}, "client= must be a distributed.Client"),
    ({"resources": {"aws_api": 0}}, "positive amounts"),
    ({"resources": ["aws_api"]}, "positive amounts"),
    ({"priority": "high"}, "priority must be an integer"),
    ({"address": "tcp://x:1", "cluster": {"n_workers": 2}}, "cluster= configures"),
])
def test_bad_arguments_are_refused_naming_them(arguments: dict[str, Any],
                                               message: str) -> None:
    with pytest.raises(ob.InvalidArgument, match=message):
        DaskExecutor(**arguments)


def test_fleet_takes_an_executor_outside_its_arguments(cluster: Cluster,
                                                       tmp_path: Path) -> None:
    from orbits_nb.engine.engine import run_id_for
    from orbits_nb.flagship import Fleet

    assets = Path(__file__).resolve().parent.parent / "notebooks" / "assets"
    common = {"tenants": ["acme", "globex"], "email_pattern": "{tenant}@example.com",
              "database_pattern": f"duckdb://{tmp_path}/{{tenant}}.duckdb",
              "git_location": str(tmp_path / "git"), "region": "eu-west-1",
              "template_file": str(assets / "backend.yaml"),
              "migrations": str(assets / "migrations")}
    dask = DaskExecutor(cluster.address)
    fanned, plain = Fleet(**common, executor=dask), Fleet(**common)
    assert fanned.executor is dask and plain.executor is None
    # The same fleet run, wherever its steps execute.
    assert fanned.args == plain.args and run_id_for(fanned) == run_id_for(plain)
