"""The store contract: every verb of the store port, on every store.

Each test runs on a DuckDB file, DuckDB in memory and a real PostgreSQL server (see
``stores.py``); tests that reopen a store, as another process or host would, run on
the two stores that can be shared.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from typing import Any

import pytest
from stores import Location

import orbits_nb as ob
from orbits_nb.core.errors import RunOwned
from orbits_nb.core.rows import (
    ApprovalRequest,
    Batch,
    CheckRecord,
    LogLine,
    NotebookRunRow,
    Owner,
    ResourceChange,
    ResourceRow,
    ScheduleRow,
    UserRow,
)
from orbits_nb.core.state import Event
from orbits_nb.core.storage import Store
from orbits_nb.store.schema import SCHEMA_VERSION

HERE = os.uname().nodename


def owner(host: str | None = None, pid: int | None = None) -> Owner:
    return Owner(uuid.uuid4().hex, host or HERE, pid or os.getpid())


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def fetch(store: Store, query: str, params: list[Any] | None = None) -> list[Any]:
    return store.fetch(query, params)  # type: ignore[attr-defined,no-any-return]


def table(store: Store, name: str, order: str) -> list[tuple[Any, ...]]:
    return store.relation(f"SELECT * FROM {name} ORDER BY {order}").fetchall()


# -- runs: leases, events, replay -----------------------------------------------------------
def test_a_run_has_one_owner_until_it_is_released(any_store: Store) -> None:
    store = any_store
    here = Owner("a", store.host, os.getpid())
    assert store.open_runs([("r1", here)]) == {"r1": []}
    store.write(Batch(events=[Event("r1", "run.created", data={"workflow": "m:W"}),
                              Event("r1", "run.started", data={"host": store.host})]))
    other = store.open_runs([("r1", Owner("b", store.host, os.getpid()))])
    assert isinstance(other["r1"], RunOwned)
    assert other["r1"].fields["owner"] == f"{store.host}:{os.getpid()}"
    # The same token renews its lease and replays the recorded events, in order.
    mine = store.open_runs([("r1", here)])["r1"]
    assert isinstance(mine, list)
    assert [e.kind for e in mine] == ["run.created", "run.started"]
    assert mine[0].seq is not None and mine[1].seq is not None and mine[0].seq < mine[1].seq
    assert [lease.token for lease in store.leases("run", ["r1"])] == ["a"]
    store.write(Batch(release_leases=[("r1", "a")]))
    assert store.leases("run", ["r1"]) == []
    assert isinstance(store.open_runs([("r1", Owner("b", store.host, 1))])["r1"], list)


def test_a_dead_holder_on_this_host_is_taken_over(any_store: Store) -> None:
    store = any_store
    ghost = Owner("ghost", store.host, dead_pid())
    assert store.open_runs([("r", ghost)]) == {"r": []}
    assert not store.alive(ghost.host, ghost.pid)
    taken = store.open_runs([("r", owner(store.host))])
    assert taken == {"r": []}
    assert store.leases("run", ["r"])[0].pid == os.getpid()


def test_a_holder_on_another_host_lives_while_it_heartbeats(location: Location) -> None:
    store = location.open(lease_timeout=1.0)
    remote = Owner("remote", "another-host", 999_999)  # its pid means nothing here
    assert store.open_runs([("r", remote)]) == {"r": []}
    time.sleep(0.6)
    store.write(Batch(heartbeats=[("r", "remote")]))
    time.sleep(0.6)  # 1.2 s since it was taken, 0.6 s since its heartbeat
    assert isinstance(store.open_runs([("r", owner(store.host))])["r"], RunOwned)
    time.sleep(1.1)  # no heartbeat for longer than the lease timeout
    assert store.open_runs([("r", owner(store.host))]) == {"r": []}


def test_events_are_replayed_in_order_and_the_run_is_described(any_store: Store) -> None:
    store = any_store
    root = [Event("w-1", "run.created", data={"workflow": "m:W", "args": {"n": 1},
                                              "meta": {"notebook_run_id": "nb-1"}},
                  ts=100.0),
            Event("w-1", "run.started", data={"host": "h", "pid": 7}, ts=101.0),
            Event("w-1/child", "run.created", data={"workflow": "m:C",
                                                    "parent_run_id": "w-1"}, ts=102.0),
            Event("w-1", "run.failed", data={"error": {"type": "E", "message": "m"}},
                  ts=103.0),
            Event("w-0", "run.created", data={"workflow": "m:W"}, ts=50.0)]
    store.write(Batch(events=root))
    assert [e.kind for e in store.load_run("w-1")] == ["run.created", "run.started",
                                                        "run.failed"]
    assert store.load_run("nope") == []
    assert store.run_exists("w-1") and not store.run_exists("w-2")
    assert store.run_tree("w-1") == ["w-1", "w-1/child"]
    assert store.run_workflow("w-1/child") == "m:C"
    assert store.previous_run("m:W", "w-1", 101.0) == "w-0"
    assert store.started_runs("nb-1", "h", 7, 0.0) == ["w-1"]
    assert store.failed_errors(["w-1"]) == [{"type": "E", "message": "m"}]
    assert store.workflows() == ["m:W"]
    recent = store.recent_runs()
    assert [(r.run_id, r.status) for r in recent] == [("w-1", "failed"), ("w-0", "pending")]
    assert store.recent_runs(status="failed", limit=5)[0].error_type == "E"
    assert [r[0] for r in store.history(workflow="W").fetchall()] == ["w-1", "w-0"]
    with pytest.raises(ob.InvalidArgument):
        store.load_run("")


def test_events_mark_moves_with_every_event(any_store: Store) -> None:
    store = any_store
    before = store.events_mark()
    store.write(Batch(events=[Event("m", "run.created")]))
    after = store.events_mark()
    assert after != before
    assert store.events_mark() == after


def test_logs_are_kept_per_run_and_step(any_store: Store) -> None:
    store = any_store
    store.write(Batch(logs=[LogLine("r", "a", 1, "stdout", "one", ts=1.0),
                            LogLine("r", "b", 1, "stderr", "two", ts=2.0),
                            LogLine("r", None, None, "stdout", "three", ts=3.0),
                            LogLine("q", "a", 1, "stdout", "other", ts=4.0)]))
    assert [line.message for line in store.logs("r")] == ["one", "two", "three"]
    assert store.logs("r", "b") == [LogLine("r", "b", 1, "stderr", "two", ts=2.0)]


def test_secrets_never_reach_the_store(any_store: Store) -> None:
    ob.Secret("hunter2-contract")  # a literal value is known (and masked) from now on
    store = any_store
    store.write(Batch(events=[Event("s", "run.created", data={"args": {"t": "hunter2-contract"}})],
                      logs=[LogLine("s", None, None, "stdout", "pw hunter2-contract")]))
    rows = fetch(store, "SELECT CAST(data AS VARCHAR) FROM events") + \
        fetch(store, "SELECT message FROM logs")
    assert rows and not any("hunter2-contract" in str(row) for row in rows)


# -- the history tables -----------------------------------------------------------------------
class Poll(ob.Action):
    poll_interval = 0.01

    def main(self) -> Any:
        self.bag["n"] = 0
        return ob.IN_PROGRESS

    def watch(self) -> Any:
        self.bag["n"] += 1
        return {"polls": self.bag["n"]} if self.bag["n"] >= 3 else ob.IN_PROGRESS


class Flaky(ob.Action):
    retry = ob.Retry(attempts=3, delay=0.01)

    def main(self) -> Any:
        if self.attempt < 3:
            raise ValueError(f"attempt {self.attempt}")
        return self.attempt


class Fails(ob.Action):
    def main(self) -> Any:
        print("last says hi")
        if self.args["fail"]:
            raise RuntimeError("no")
        return "fine"


class Inner(ob.Workflow):
    async def define(self) -> Any:
        return [await self.do("poll", Poll()), await self.do("flaky", Flaky())]


class Outer(ob.Workflow):
    async def define(self) -> Any:
        inner = await self.do("inner", Inner())
        await self.do("last", Fails(fail=self.args["fail"]))
        return inner


def test_a_real_engine_history_matches_its_rebuild(any_store: Store) -> None:
    engine = ob.Engine(any_store)
    with pytest.raises(ob.StepFailed):
        engine.start(Outer(fail=True), run_id="outer").wait(60)
    run = engine.get_run("outer")
    run.reset("last")
    with pytest.raises(ob.StepFailed):
        run.retry().wait(60)
    engine.start(Outer(fail=False), run_id="fine").wait(60)
    engine.writer.flush()
    store = engine.store
    steps = store.relation("SELECT step, status, attempts FROM steps WHERE run_id = "
                           "'outer/inner' ORDER BY pos").fetchall()
    assert steps == [("poll", "succeeded", 1), ("flaky", "succeeded", 3)]
    assert store.relation("SELECT status, executions FROM runs WHERE run_id = 'outer'"
                          ).fetchall() == [("failed", 2)]
    assert [line.message for line in store.logs("fine", "last")] == ["last says hi"]
    folded = {name: table(store, name, "ALL") for name in ("runs", "steps", "attempts")}
    store.rebuild_history()
    assert {name: table(store, name, "ALL") for name in folded} == folded
    assert len(folded["attempts"]) >= 6


def test_queries_are_read_only_and_single(any_store: Store) -> None:
    store = any_store
    store.write(Batch(events=[Event("q", "run.created")]))
    for query in ("DELETE FROM events", "SELECT 1; SELECT 2",
                  "SELECT nextval('event_seq')"):
        with pytest.raises(ob.StoreError):
            store.relation(query)
    assert store.relation("SELECT count(*) FROM events").fetchall() == [(1,)]
    # DuckDB's own dialect works on every store, bound parameters too.
    assert store.relation("SELECT list(run_id) FROM events WHERE kind = ?",
                          ["run.created"]).fetchall() == [(["q"],)]


# -- resources and drift ----------------------------------------------------------------------
def _resource(key: str = "file:/a", version: str = "v1") -> ResourceRow:
    kind, identity = key.split(":", 1)
    return ResourceRow(key, kind, identity, "m:File", {"path": identity},
                       {"mode": "644"}, version, {"size": 1}, "present")


def test_resources_users_and_drift(any_store: Store) -> None:
    store = any_store
    user = UserRow("file:/a", "run-1/x", "make", "run-1", "m:W", "user")
    store.change_resource(ResourceChange(
        "file:/a", by="tester", converged=_resource(), users=[user],
        checks=[CheckRecord("file:/a", "in_sync", "converge", checked_at=10.0)]))
    row = store.resource("file:/a")
    assert row is not None and (row.desired, row.version, row.status) == (
        {"mode": "644"}, "v1", "present")
    assert [r.key for r in store.resources(kinds=["file"])] == ["file:/a"]
    assert [r.key for r in store.resources(workflow="W")] == ["file:/a"]
    assert store.resource_keys("/a") == ["file:/a"]
    assert [u.root_run_id for u in store.resource_users(["file:/a"])] == ["run-1"]
    store.record_checks([CheckRecord("file:/a", "drifted", "check", diffs=[{"path": "mode"}],
                                     checked_at=20.0),
                         CheckRecord("file:/a", "drifted", "check", checked_at=30.0)])
    assert store.drift_since(["file:/a"]) == {"file:/a": 20.0}
    assert store.drifted_steps("run-1/x") == {"make"}
    listing = store.resource_listing().fetchall()
    assert [(r[0], r[4], r[7]) for r in listing] == [("file:/a", "drifted", 1)]
    history = store.drift_history(["file:*"], limit=2).fetchall()
    assert [h[4] for h in history] == ["drifted", "drifted"]
    store.change_resource(ResourceChange("file:/a", by="tester", accepted=({"mode": "600"},
                                                                            "v2"),
                                         released=["run-1"]))
    assert store.resource_users(["file:/a"]) == []
    store.change_resource(ResourceChange("file:/a", by="tester", deleted=True))
    assert store.resources() == []
    gone = store.resources(include_deleted=True)
    assert [(r.status, r.desired) for r in gone] == [("deleted", {"mode": "600"})]


def test_resource_leases_are_one_command_at_a_time(any_store: Store) -> None:
    store = any_store
    first = owner(store.host)
    assert store.take_lease("resource", "file:/a", first, {"command": "apply"}) is None
    held = store.take_lease("resource", "file:/a", owner(store.host))
    assert held is not None and held.detail["command"] == "apply"
    store.change_resource(ResourceChange("file:/a", by="t", converged=_resource(),
                                         lease_token=first.token))
    assert store.leases("resource") == []
    ghost = Owner("ghost", store.host, dead_pid())
    assert store.take_lease("resource", "file:/b", ghost) is None
    assert store.take_lease("resource", "file:/b", owner(store.host)) is None
    store.renew_leases("resource", [("file:/b", "ghost")])  # not held by it: no effect
    assert store.leases("resource", ["file:/b"])[0].pid == os.getpid()
    with pytest.raises(ob.InvalidArgument):
        store.take_lease("nonsense", "k", first)  # type: ignore[arg-type]


# -- runbooks: notebook runs, schedules, schedule locks ------------------------------------------
def test_notebook_runs_are_recorded_and_found(any_store: Store) -> None:
    store = any_store
    first = NotebookRunRow("nb-1", "deploy", "deploy.ipynb", {"env": "dev"},
                           trigger="schedule", schedule_id="nightly", started_at=100.0,
                           host="h", pid=1)
    store.add_notebook_run(first)
    store.set_kernel_pid("nb-1", 4242)
    first.status, first.finished_at, first.error = "failed", 110.0, {"type": "StoreError"}
    first.workflow_runs = ["W-1"]
    first.kernel_pid = 4242
    store.save_notebook_run(first)
    assert store.notebook_run("nb-1") == first
    store.add_notebook_run(NotebookRunRow("nb-2", "other", "o.ipynb", started_at=200.0))
    assert [r.notebook_run_id for r in store.notebook_runs()] == ["nb-2", "nb-1"]
    assert [r.notebook_run_id for r in store.notebook_runs(runbook="deploy")] == ["nb-1"]
    assert [r.notebook_run_id for r in store.notebook_runs(status="failed")] == ["nb-1"]
    assert [r.notebook_run_id for r in store.resumable_notebook_runs(["StoreError"], 3)
            ] == ["nb-1"]
    assert store.resumable_notebook_runs(["StoreError"], 1) == []
    assert store.notebook_run("nb-9") is None


def test_schedules_and_their_locks(any_store: Store) -> None:
    store = any_store
    nightly = ScheduleRow("nightly", "0 2 * * *", "n.ipynb", {"env": "prod"},
                          options={"timeout": 60}, created_at=1000.0, last_due=1000.0)
    assert store.add_schedule(nightly) is True
    assert store.add_schedule(nightly) is False
    store.advance_schedule("nightly", 2000.0, skipped=2, reason="missed")
    store.advance_schedule("nightly", 1500.0)  # never backwards
    row = store.schedule("nightly")
    assert row is not None and (row.last_due, row.skipped, row.last_skip) == (
        2000.0, 2, "missed")
    assert row.parameters == {"env": "prod"} and row.options == {"timeout": 60}
    assert [s.schedule_id for s in store.schedules()] == ["nightly"]
    runner = Owner("nb-1", store.host, os.getpid())
    assert store.take_lease("schedule", "nightly", runner) is None
    assert store.take_lease("schedule", "nightly", owner(store.host)) is not None
    store.release_lease("schedule", "nightly", "nb-1")
    assert store.take_lease("schedule", "nightly", owner(store.host)) is None
    store.remove_schedule("nightly")
    assert store.schedule("nightly") is None


# -- approvals --------------------------------------------------------------------------------
def _waiting(store: Store, run_id: str, step: str) -> None:
    store.write(Batch(events=[
        Event(run_id, "run.created", data={"workflow": "m:W"}),
        Event(run_id, "step.started", step=step, attempt=1,
              data={"name": step, "action": "orbits_nb.approval:Approval", "pos": 0}),
        Event(run_id, "step.waiting", step=step, attempt=1, data={"bag": {}})]))


def test_approvals_are_requested_and_decided_once(any_store: Store) -> None:
    store = any_store
    _waiting(store, "ap", "go")
    store.add_approval(ApprovalRequest("req-1", "ap", "go", "Ship it?", {"n": 1}, 10.0, "bot"))
    assert store.standing_approval("ap", "go") == "req-1"
    assert store.approval_decision("req-1") == (True, None)
    pending = store.pending_approvals("ap")
    assert [(p.request_id, p.details, p.step_status) for p in pending] == [
        ("req-1", {"n": 1}, "waiting")]
    assert store.decide_approval("ap", "go", "approved", by="ann", at=20.0, comment="ok",
                                 via="cli") == "req-1"
    assert store.decide_approval("ap", "go", "rejected", by="bob", at=21.0, comment="",
                                 via="cli") is None
    known, decision = store.approval_decision("req-1")
    assert known and decision is not None and (decision.decision, decision.by) == (
        "approved", "ann")
    assert store.last_decision("ap", "go") == ("approved", "ann")
    assert store.pending_approvals() == []
    assert store.approval_decision("nope") == (False, None)


# -- the schema -----------------------------------------------------------------------------
def test_a_newer_schema_is_refused_with_the_same_message(shared_location: Location) -> None:
    store = shared_location.open()
    store.write(Batch(events=[Event("v", "run.created")]))
    fetch(store, "INSERT INTO schema_version (version) VALUES (?)", [SCHEMA_VERSION + 1])
    store.close()
    again = shared_location.open()
    with pytest.raises(ob.StoreError, match="newer than this orbits_nb understands") as err:
        again.load_run("v")
    assert err.value.fields["reason"] == "newer-schema"
    assert "s3cret" not in str(err.value)


def test_the_documented_tables_exist_with_the_same_columns(any_store: Store) -> None:
    from orbits_nb.store.schema import USER_TABLES

    store = any_store
    store.write(Batch(events=[Event("t", "run.created")]))
    for name in USER_TABLES:
        columns = [d[0] for d in store.relation(f"SELECT * FROM {name} LIMIT 0").description]
        assert columns, name
    got = {name: [d[0] for d in store.relation(f"SELECT * FROM {name} LIMIT 0").description]
           for name in ("runs", "steps", "attempts", "events", "resource_status")}
    reference = ob.DuckDBStore(":memory:")
    try:
        want = {name: [d[0] for d in reference.relation(
            f"SELECT * FROM {name} LIMIT 0").description] for name in got}
    finally:
        reference.close()
    assert got == want
