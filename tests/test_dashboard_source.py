"""Where a run was started (meta["source"]) and by whom, recorded once at its creation,
from the real places: a script, a Jupyter kernel, a runbook, a scheduled runbook."""

from __future__ import annotations

import getpass
import os
import subprocess
import sys
from pathlib import Path

import pytest

import orbits_nb as ob
from orbits_nb import runbooks
from orbits_nb.core.rows import RunQuery
from orbits_nb.runbooks import schedules
from orbits_nb.runbooks.scheduler import run_schedule
from orbits_nb.store import open_store

FIXTURES = Path(__file__).parent / "notebooks"
ROOT = Path(__file__).resolve().parents[1]

WORKFLOW = """
import orbits_nb as ob

class Echo(ob.Action):
    def main(self):
        return self.args["n"]

class Flow(ob.Workflow):
    async def define(self):
        return await self.do("echo", Echo(n=self.args["n"]))
"""


class Echo(ob.Action):
    def main(self) -> int:
        return int(self.args["n"])


class Flow(ob.Workflow):
    async def define(self) -> int:
        return int(await self.do("echo", Echo(n=self.args["n"])))


def sources(state: Path) -> dict[str, tuple[str | None, str | None]]:
    store = open_store(state)
    try:
        return {r.run_id: (r.source, r.started_by)
                for r in store.run_page(RunQuery(limit=100)).rows}
    finally:
        store.close()


def test_a_script_records_script_and_who_started_it(tmp_path: Path) -> None:
    state = tmp_path / "state.duckdb"
    script = tmp_path / "job.py"
    script.write_text(WORKFLOW + "\nprint(Flow(n=1).run())\n")
    subprocess.run([sys.executable, str(script)], check=True, timeout=300, cwd=tmp_path,
                   env={**os.environ, "ORBITS_NB_STATE": str(state)})
    store = open_store(state)
    try:
        host = store.host
    finally:
        store.close()
    assert list(sources(state).values()) == [("script", f"{getpass.getuser()}@{host}")]


@pytest.mark.slow
def test_a_kernel_records_kernel(tmp_path: Path) -> None:
    from test_kernel import Kernel

    state = tmp_path / "state.duckdb"
    kernel = Kernel(state, tmp_path)
    try:
        kernel.run(WORKFLOW)
        assert "2" in kernel.run("print(Flow(n=2).run())")
    finally:
        kernel.shutdown()
    assert [source for source, _ in sources(state).values()] == ["kernel"]


@pytest.mark.slow
def test_runbooks_record_runbook_or_schedule(state: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_API_TOKEN", "t")
    record = runbooks.run(FIXTURES / "success.ipynb", {"client": "globex",
                                                       "api_token": "t"})
    assert record.status == "succeeded", record.error
    store = open_store(state)
    try:
        schedules.add(store, "*/5 * * * *", FIXTURES / "success.ipynb", name="nightly",
                      cli=[("client", "initech"), ("api_token", "env:TEST_API_TOKEN")])
    finally:
        store.close()
    scheduled = run_schedule(state, "nightly")
    assert scheduled.status == "succeeded", scheduled.error
    found = sources(state)
    assert found[record.workflow_runs[0]][0] == "runbook"
    assert found[scheduled.workflow_runs[0]][0] == "schedule"


def test_an_engine_meta_source_wins_and_is_kept_on_resume(tmp_path: Path) -> None:
    # A worker marks the runs it creates through its engine's meta.
    engine = ob.Engine(tmp_path / "state.duckdb")
    try:
        engine.meta["source"] = "worker"
        run = engine.start(Flow(n=3))
        assert run.wait() == 3
        engine.meta["source"] = "script"
        assert engine.start(Flow(n=3)).wait() == 3
    finally:
        engine.close()
    assert [s for s, _ in sources(tmp_path / "state.duckdb").values()] == ["worker"]


def test_an_orbits_nb_command_records_cli(tmp_path: Path) -> None:
    from agent_helpers import Deploy
    from test_resources_agents import _cli, service_args

    state = tmp_path / "state.duckdb"
    engine = ob.Engine(state)
    try:
        deployed = Deploy(**service_args(tmp_path)).start(engine=engine)
        deployed.wait()
    finally:
        engine.close()
    done = _cli(state, "command", "Service:api", "rollback")  # runs as a new run
    assert done.returncode == 0, done.stderr
    found = sources(state)
    assert found.pop(deployed.run_id)[0] == "script"  # pytest's process: a script
    assert [source for source, _ in found.values()] == ["cli"]
