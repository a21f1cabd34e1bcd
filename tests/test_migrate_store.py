"""``orbits-nb migrate``: a project's whole history moved between stores, both ways."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pg_server import PASSWORD, Server

import orbits_nb as ob
from orbits_nb.core.rows import (
    ApprovalRequest,
    CheckRecord,
    NotebookRunRow,
    ResourceChange,
    ResourceRow,
    ScheduleRow,
    UserRow,
)
from orbits_nb.store import open_store

COPIED = ("events", "logs", "resources", "resource_users", "drift_checks",
          "notebook_runs", "schedules", "approvals")


class Mark(ob.Action):
    def main(self) -> Any:
        with open(self.args["effects"], "a") as out:
            out.write(f"{self.step}\n")
        print(f"{self.step} ran")
        if self.args.get("gate") and not Path(self.args["gate"]).exists():
            raise RuntimeError("the gate is closed")
        return self.args["i"]


class Five(ob.Workflow):
    async def define(self) -> Any:
        total = 0
        for i in range(5):
            gate = self.args["gate"] if i == 3 else None
            total += await self.do(f"s{i}", Mark(i=i, effects=self.args["effects"],
                                                 gate=gate))
        return total


def cli(state: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "orbits_nb.cli", "--state", state, *args],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).parent) +
                               os.pathsep + os.environ.get("PYTHONPATH", "")})


def migrate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "orbits_nb.cli", "migrate", *args],
                          capture_output=True, text=True, timeout=300)


def make_project(state: str, tmp: Path) -> dict[str, Any]:
    """A store with a finished run, an unfinished one, resources, drift, a schedule, a
    notebook run and an approval."""
    effects, gate = tmp / "effects.txt", tmp / "gate"
    (tmp / "open").touch()
    engine = ob.Engine(state)
    try:
        assert engine.start(Five(effects=str(effects), gate=str(tmp / "open")),
                            run_id="done").wait(60) == 10
        with pytest.raises(ob.StepFailed):
            engine.start(Five(effects=str(effects), gate=str(gate)), run_id="half").wait(60)
        store = engine.store
        store.change_resource(ResourceChange(
            "file:/etc/app", by="me", converged=ResourceRow(
                "file:/etc/app", "file", "/etc/app", "m:File", {}, {"mode": "644"}, "v1",
                {"size": 3}, "present"),
            users=[UserRow("file:/etc/app", "done", "s1", "done", "test:Five", "user")],
            checks=[CheckRecord("file:/etc/app", "drifted", "check", checked_at=5.0)]))
        store.add_schedule(ScheduleRow("nightly", "0 2 * * *", "n.ipynb", created_at=1.0,
                                       last_due=1.0))
        store.add_notebook_run(NotebookRunRow("nb-1", "n", "n.ipynb", started_at=2.0))
        store.add_approval(ApprovalRequest("req-1", "done", "s1", "ok?", None, 3.0, "me"))
    finally:
        engine.close()
    return {"effects": effects, "gate": gate}


def counts(state: str) -> dict[str, int]:
    store = open_store(state)
    try:
        return {t: store.relation(f"SELECT count(*) FROM {t}").fetchall()[0][0]
                for t in COPIED}
    finally:
        store.close()


def runs_of(state: str) -> list[tuple[str, str]]:
    done = cli(state, "runs", "--json")
    assert done.returncode == 0, done.stderr
    return sorted((r["run_id"], r["status"]) for r in map(json.loads,
                                                           done.stdout.splitlines()))


@pytest.mark.slow
def test_a_project_moves_to_the_team_store_and_back(tmp_path: Path,
                                                    pg_server: Server) -> None:
    source = str(tmp_path / "project" / "state.duckdb")
    project = make_project(source, tmp_path)
    before = counts(source)
    assert all(before.values()), before
    url = pg_server.database()

    moved = migrate("--from", source, "--to", url)
    assert moved.returncode == 0, moved.stderr
    assert PASSWORD not in moved.stdout + moved.stderr and "copied" in moved.stdout
    assert counts(url) == before
    assert runs_of(url) == runs_of(source) == [("done", "succeeded"), ("half", "failed")]
    store = open_store(url)
    assert [s.schedule_id for s in store.schedules()] == ["nightly"]
    assert store.drift_since(["file:/etc/app"]) == {"file:/etc/app": 5.0}
    store.close()

    again = migrate("--from", source, "--to", url)
    assert again.returncode == 2 and "--merge" in again.stderr
    assert PASSWORD not in again.stderr
    assert counts(url) == before

    # The copied unfinished run resumes on the team store: its completed steps replay.
    project["gate"].touch()
    ran_before = project["effects"].read_text().splitlines()
    engine = ob.Engine(url)
    try:
        result = engine.start(Five(effects=str(project["effects"]),
                                   gate=str(project["gate"])), run_id="half").wait(60)
    finally:
        engine.close()
    assert result == 10
    ran_after = project["effects"].read_text().splitlines()[len(ran_before):]
    assert ran_after == ["s3", "s4"]

    back = str(tmp_path / "back" / "state.duckdb")
    returned = migrate("--from", url, "--to", back)
    assert returned.returncode == 0, returned.stderr
    assert runs_of(back) == [("done", "succeeded"), ("half", "succeeded")]
    assert counts(back) == counts(url)


def test_file_to_file_and_a_merge(tmp_path: Path) -> None:
    first = str(tmp_path / "a.duckdb")
    make_project(first, tmp_path)
    second = str(tmp_path / "b.duckdb")
    engine = ob.Engine(second)
    try:
        engine.start(Five(effects=str(tmp_path / "fx2"), gate=str(tmp_path / "g2")),
                     run_id="other").wait(60)
    except ob.StepFailed:
        pass
    finally:
        engine.close()
    target = str(tmp_path / "c.duckdb")
    assert migrate("--from", first, "--to", target).returncode == 0
    refused = migrate("--from", second, "--to", target)
    assert refused.returncode == 2 and "already holds records" in refused.stderr
    merged = migrate("--from", second, "--to", target, "--merge")
    assert merged.returncode == 0, merged.stderr
    assert [r[0] for r in runs_of(target)] == ["done", "half", "other"]
    want = {t: counts(first)[t] + counts(second)[t] for t in ("events", "logs")}
    assert {t: counts(target)[t] for t in want} == want
    store = open_store(target)
    try:
        seqs = store.relation("SELECT count(DISTINCT seq), count(*) FROM events").fetchall()
        assert seqs[0][0] == seqs[0][1]
        store.write(ob.core.rows.Batch(events=[ob.core.state.Event("new", "run.created")]))
        assert store.relation("SELECT count(DISTINCT seq) = count(*) FROM events"
                              ).fetchall() == [(True,)]
    finally:
        store.close()
