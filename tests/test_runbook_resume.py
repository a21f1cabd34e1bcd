"""Resume by notebook (workflows defined in the notebook) and by import."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import orbits_nb as ob
from orbits_nb import runbooks
from orbits_nb.core.state import fold
from orbits_nb.runbooks import records
from orbits_nb.store.duckdb_store import DuckDBStore

FIXTURES = Path(__file__).parent / "notebooks"
ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "orbits_nb.cli", *args], cwd=ROOT,
                          env={**os.environ, **(env or {})}, capture_output=True, text=True,
                          check=False, timeout=300)


def counts(workdir: Path) -> dict[str, int]:
    return {p.stem: int(p.read_text()) for p in workdir.glob("*.count")}


def test_resume_after_the_kernel_was_killed_mid_run(state: Path,
                                                    tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "kill").touch()
    first = cli("run", str(FIXTURES / "resume_after_kill.ipynb"), "-p", "workdir",
                str(workdir))
    assert first.returncode == 138  # papermill's exit code for a dead kernel
    assert "KernelDied" in first.stdout
    assert counts(workdir) == {"prepare": 1, "build": 1, "explode": 1}
    store = DuckDBStore(state)
    try:
        killed = records.listing(store)[0]
    finally:
        store.close()
    [run_id] = killed.workflow_runs
    forced = cli("resume", run_id, "--by-import")
    assert forced.returncode == 2
    assert "defined in a notebook or script, so it cannot be imported" in forced.stderr

    resumed = cli("resume", run_id)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"run {run_id} is succeeded (resumed by notebook)" in resumed.stdout
    # Completed steps replayed from the store; only the interrupted step and the rest ran.
    assert counts(workdir) == {"prepare": 1, "build": 1, "explode": 2, "finish": 1}
    store = DuckDBStore(state)
    try:
        state = fold(run_id, store.load_run(run_id))
        again = records.listing(store)[0]
    finally:
        store.close()
    assert state.status == "succeeded"
    assert state.executions == 2
    assert state.result == 1
    assert (again.trigger, again.resume_of, again.attempt) == ("resume",
                                                                killed.notebook_run_id, 2)
    assert again.parameters == killed.parameters
    assert again.workflow_runs == [run_id]

    done = cli("resume", run_id)
    assert done.returncode == 0
    assert "already succeeded; nothing to resume" in done.stdout
    assert counts(workdir)["finish"] == 1


def test_resume_a_notebook_run_needs_literal_secrets_again(state: Path) -> None:
    first = runbooks.run(FIXTURES / "success.ipynb", {"api_token": "first-secret-value"})
    assert first.ok
    missing = cli("resume", first.notebook_run_id)
    assert missing.returncode == 2
    assert "'api_token' is secret and its value was not recorded" in missing.stderr
    again = cli("resume", first.notebook_run_id, "-p", "api_token", "env:RESUME_TOKEN",
                env={"RESUME_TOKEN": "second-secret-value"})
    assert again.returncode == 0, again.stderr
    store = DuckDBStore(state)
    try:
        latest = records.listing(store)[0]
    finally:
        store.close()
    assert latest.resume_of == first.notebook_run_id
    assert latest.parameters["api_token"] == {"$secret": "api_token", "env": "RESUME_TOKEN"}
    text = Path(str(latest.output_path)).read_text()
    assert "second-secret-value" not in text
    assert "leaking on purpose: ****" in text


def test_resume_by_import_for_module_workflows(state: Path,
                                               tmp_path: Path) -> None:
    module = tmp_path / "mods" / "resumable_wf.py"
    module.parent.mkdir()
    module.write_text(textwrap.dedent('''
        from pathlib import Path
        import orbits_nb as ob

        class Count(ob.Action):
            def main(self):
                path = Path(self.args["dir"]) / f"{self.step}.count"
                path.write_text(str(int(path.read_text()) + 1 if path.exists() else 1))
                if self.args.get("flaky") and (Path(self.args["dir"]) / "fail").exists():
                    raise RuntimeError("not yet")
                return self.step

        class Pipeline(ob.Workflow):
            async def define(self):
                await self.do("one", Count(dir=self.args["dir"]))
                return await self.do("two", Count(dir=self.args["dir"], flaky=True))
    '''))
    work = tmp_path / "work"
    work.mkdir()
    (work / "fail").touch()
    script = ("import sys; sys.path.insert(0, sys.argv[1]); import resumable_wf as m\n"
              "run = m.Pipeline(dir=sys.argv[2]).start()\n"
              "try:\n    run.wait(60)\nexcept Exception:\n    pass\nprint(run.run_id)")
    made = subprocess.run([sys.executable, "-c", script, str(module.parent), str(work)],
                          capture_output=True, text=True, check=False, timeout=120, cwd=ROOT)
    run_id = made.stdout.strip().splitlines()[-1]
    (work / "fail").unlink()
    resumed = cli("resume", run_id, env={"PYTHONPATH": str(module.parent)})
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed by import" in resumed.stdout
    assert counts(work) == {"one": 1, "two": 2}


def test_resume_errors_name_the_problem(state: Path, tmp_path: Path) -> None:
    unknown = cli("resume", "NoSuchRun-123")
    assert unknown.returncode == 2
    assert "no workflow run or notebook run" in unknown.stderr
    script = ("import orbits_nb as ob\n"
              "class Boom(ob.Action):\n    def main(self):\n        raise ValueError('x')\n"
              "class Adhoc(ob.Workflow):\n    async def define(self):\n"
              "        await self.do('boom', Boom())\n"
              "run = Adhoc().start()\ntry:\n    run.wait(60)\nexcept Exception:\n    pass\n"
              "print(run.run_id)")
    made = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=False, timeout=120, cwd=tmp_path)
    run_id = made.stdout.strip().splitlines()[-1]
    orphan = cli("resume", run_id)
    assert orphan.returncode == 2
    assert "re-run the notebook that defines it" in orphan.stderr


class Block(ob.Action):
    gate = threading.Event()

    def main(self) -> str:
        self.gate.wait(60)
        return "released"


class Holder(ob.Workflow):
    async def define(self) -> str:
        result: str = await self.do("block", Block())
        return result


def test_resume_refuses_a_run_another_process_executes(state: Path) -> None:
    engine = ob.Engine(state)
    try:
        run = engine.start(Holder())
        engine.writer.flush()
        out = cli("resume", run.run_id)
        assert out.returncode == 2
        assert f"pid {os.getpid()}" in out.stderr
        assert "wait for it" in out.stderr
    finally:
        Block.gate.set()
        run.wait(30)
        engine.close()
    rows = [json.loads(line) for line in cli("runs", "--json").stdout.splitlines()]
    assert rows[0]["status"] == "succeeded"
