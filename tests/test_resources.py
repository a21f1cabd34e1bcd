"""Resources as workflow steps: convergence, output, version, sharing, leases, errors.

``Probe`` (a JSON file per identity, and a log of every create/update/delete) is the
test resource other test modules import too; it counts side effects across processes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import orbits_nb as ob
from orbits_nb.core.drift import FieldDiff
from orbits_nb.core.errors import RemoteError, StepFailed
from orbits_nb.resources import leases
from orbits_nb.resources.errors import ConvergenceError, ResourceBusy


class Probe(ob.Resource):
    """A JSON file ``<root>/<name>.json`` holding ``{"value": ...}``; logs its commands."""

    kind = "Probe"
    server_managed = ("stamp",)

    def identity(self) -> str:
        return str(self.args["name"])

    def desired(self) -> dict[str, Any]:
        return {"value": self.args["value"]}

    @property
    def file(self) -> Path:
        return Path(self.args["root"]) / f"{self.args['name']}.json"

    def observe(self) -> dict[str, Any] | None:
        if not self.file.exists():
            return None
        return {**json.loads(self.file.read_text()), "stamp": time.time()}

    def _log(self, text: str) -> None:
        with open(Path(self.args["root"]) / "calls.log", "a") as log:
            log.write(f"{text} {self.args['name']} pid={os.getpid()}\n")

    def create(self) -> Any:
        signal = os.environ.get("PROBE_SIGNAL_FD")
        if signal:  # tells a test in another process that creation has begun
            os.write(int(signal), b"c")
        gate = os.environ.get("PROBE_GATE")
        if gate:  # creation lasts until the test opens the gate, however slow the machine
            deadline = time.monotonic() + 300
            while not Path(gate).exists() and time.monotonic() < deadline:
                time.sleep(0.02)
        time.sleep(float(self.args.get("slow", 0)))
        self.file.write_text(json.dumps({"value": self.target["value"]}))
        self._log("create")
        return {"id": f"probe-{self.args['name']}", "created_by": self.run_id}

    def update(self, diff: list[FieldDiff]) -> None:
        self.file.write_text(json.dumps({"value": self.target["value"]}))
        self._log("update " + ",".join(d.path for d in diff))

    def delete(self) -> None:
        self.file.unlink()
        self._log("delete")


def calls(root: Path) -> list[str]:
    log = root / "calls.log"
    return [" ".join(line.split()[:2]) for line in log.read_text().splitlines()] \
        if log.exists() else []


class Uses(ob.Workflow):
    """One probe step named ``step`` (default ``probe``)."""

    async def define(self) -> Any:
        probe = Probe(root=self.args["root"], name=self.args["name"],
                      value=self.args["value"], slow=self.args.get("slow", 0))
        return await self.do(self.args.get("step", "probe"), probe)


class Backend(Uses):
    pass


class Frontend(Uses):
    pass


def test_create_then_in_sync_then_update(engine: ob.Engine, root: Path) -> None:
    out = engine.start(Uses(root=str(root), name="a", value=1)).wait()
    assert out == {"id": "probe-a", "created_by": out["created_by"]}
    assert calls(root) == ["create a"]

    # Re-running the same run replays; a fresh run observes it in sync: nothing runs.
    assert engine.start(Uses(root=str(root), name="a", value=1)).wait() == out
    assert engine.start(Uses(root=str(root), name="a", value=1), fresh=True).wait() == out
    assert calls(root) == ["create a"]

    # A changed desired state updates it, and reports which field differed.
    assert engine.start(Uses(root=str(root), name="a", value=2)).wait() == out
    assert calls(root) == ["create a", "update value"]
    assert json.loads((root / "a.json").read_text()) == {"value": 2}
    rows = engine.store.fetch("SELECT desired, status FROM resources WHERE resource_key = "
                              "'Probe:a'")
    assert json.loads(rows[0][0]) == {"value": 2}
    assert rows[0][1] == "present"


def test_existing_resource_is_adopted_not_created(engine: ob.Engine, root: Path) -> None:
    (root / "b.json").write_text(json.dumps({"value": 7}))
    out = engine.start(Uses(root=str(root), name="b", value=7)).wait()
    assert calls(root) == []
    assert out["value"] == 7  # output(actual): the observed state, server fields included


def test_version_change_forces_an_update(engine: ob.Engine, root: Path) -> None:
    engine.start(Uses(root=str(root), name="v", value=1)).wait()

    class ProbeV2(Probe):
        version = 2

    class UsesV2(ob.Workflow):
        async def define(self) -> Any:
            return await self.do("probe", ProbeV2(root=str(root), name="v", value=1))

    engine.start(UsesV2()).wait()
    assert calls(root) == ["create v", "update $version"]
    engine.start(UsesV2(), fresh=True).wait()
    assert calls(root) == ["create v", "update $version"]  # recorded version now 2


def test_two_workflows_share_one_resource_and_its_output(engine: ob.Engine,
                                                         root: Path) -> None:
    back = engine.start(Backend(root=str(root), name="acct", value=1)).wait()
    front = engine.start(Frontend(root=str(root), name="acct", value=1)).wait()
    assert back == front
    assert back["id"] == "probe-acct"
    assert calls(root) == ["create acct"]
    users = engine.store.fetch("SELECT workflow FROM resource_users WHERE role = 'user' "
                               "ORDER BY first_used")
    assert [u[0].rsplit(":", 1)[-1] for u in users] == ["Backend", "Frontend"]
    listed = ob.list_resources(engine=engine).fetchall()
    assert len(listed) == 1
    assert listed[0][0] == "Probe:acct"
    assert listed[0][7] == 2


def test_concurrent_runs_in_one_process_create_once(engine: ob.Engine, root: Path) -> None:
    runs = [engine.start(w(root=str(root), name="shared", value=1, slow=0.3))
            for w in (Backend, Frontend)]
    outs = [r.wait(60) for r in runs]
    assert outs[0] == outs[1]
    assert calls(root) == ["create shared"]


def _held(engine: ob.Engine, key: str) -> leases.ResourceLease:
    lease = leases.ResourceLease(key, "maintenance", run_id="manual", step="hold")
    assert leases.try_acquire(engine.store, lease) is None
    return lease


def test_conflicting_command_fails_fast_when_asked(engine: ob.Engine, root: Path) -> None:
    class Impatient(Probe):
        on_conflict = "fail"

    class UsesImpatient(ob.Workflow):
        async def define(self) -> Any:
            return await self.do("probe", Impatient(root=str(root), name="busy", value=1))

    lease = _held(engine, "Probe:busy")
    run = engine.start(UsesImpatient())
    with pytest.raises(StepFailed) as caught:
        run.wait(30)
    cause = caught.value.cause
    assert isinstance(cause, ResourceBusy)
    assert "is locked: maintenance by" in str(cause)
    assert "'manual'" in str(cause)
    assert "on_conflict='fail' does not wait" in str(cause)
    assert calls(root) == []

    engine.store.release_lease("resource", lease.key, lease.token)
    run.retry().wait(30)
    assert calls(root) == ["create busy"]


def test_conflicting_command_waits_for_the_lease(engine: ob.Engine, root: Path) -> None:
    lease = _held(engine, "Probe:wait")
    run = engine.start(Uses(root=str(root), name="wait", value=1))
    # The step is blocked on the lease: the resource is not created while it is held.
    with pytest.raises(TimeoutError):
        run.wait(0.5)
    assert calls(root) == []
    engine.store.release_lease("resource", lease.key, lease.token)
    run.wait(30)
    assert calls(root) == ["create wait"]


def test_waiting_is_bounded_by_lease_timeout(engine: ob.Engine, root: Path) -> None:
    class Brief(Probe):
        lease_timeout = 0.3

    class UsesBrief(ob.Workflow):
        async def define(self) -> Any:
            return await self.do("probe", Brief(root=str(root), name="long", value=1))

    _held(engine, "Probe:long")
    with pytest.raises(StepFailed, match="still held after waiting"):
        engine.start(UsesBrief()).wait(30)


def test_lease_of_a_dead_process_is_taken_over(engine: ob.Engine, root: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    now = time.time()
    engine.store.fetch("INSERT INTO resource_leases VALUES (?, 'tok', ?, ?, 'create', 'r', "
                       "'s', ?, ?)", ["Probe:orphan", engine.store.host, dead.pid, now, now])
    engine.start(Uses(root=str(root), name="orphan", value=1)).wait(30)
    assert calls(root) == ["create orphan"]
    assert engine.store.fetch("SELECT count(*) FROM resource_leases")[0][0] == 0


def test_create_that_does_not_converge_fails_clearly(engine: ob.Engine, root: Path) -> None:
    class Liar(Probe):
        def create(self) -> None:
            return None

    class UsesLiar(ob.Workflow):
        async def define(self) -> Any:
            return await self.do("probe", Liar(root=str(root), name="liar", value=1))

    with pytest.raises(StepFailed) as caught:
        engine.start(UsesLiar()).wait(30)
    assert isinstance(caught.value.cause, ConvergenceError)
    assert "create() returned but 'Probe:liar' is still absent" in str(caught.value)
    assert engine.store.fetch("SELECT count(*) FROM resources")[0][0] == 0
    assert engine.store.fetch("SELECT count(*) FROM resource_leases")[0][0] == 0


def test_bad_identity_and_unsupported_state_are_named(engine: ob.Engine, root: Path) -> None:
    class Nameless(Probe):
        def identity(self) -> str:
            return ""

    class Weird(Probe):
        def observe(self) -> Any:
            return {"value": 1, "handle": threading.Lock()}

    for cls, message in ((Nameless, r"Nameless.identity\(\) must return a non-empty str"),
                         (Weird, r"observe\(\) of 'Probe:w' at 'handle' holds a lock")):
        class Once(ob.Workflow):
            async def define(self, cls: type[Probe] = cls) -> Any:
                return await self.do("probe", cls(root=str(root), name="w", value=1))

        with pytest.raises(StepFailed, match=message):
            engine.start(Once(), fresh=True).wait(30)


def test_resource_refuses_a_subprocess_executor(engine: ob.Engine, root: Path) -> None:
    class Remote(ob.Workflow):
        async def define(self) -> Any:
            return await self.do("probe", Probe(root=str(root), name="r", value=1),
                                 executor=ob.SubprocessExecutor())

    with pytest.raises(StepFailed) as caught:
        engine.start(Remote()).wait(60)
    cause = caught.value.cause
    text = str(cause)
    assert "must converge inside the engine's process" in text, text
    assert isinstance(cause, (ob.ResourceError, RemoteError))


def test_step_logs_say_what_happened(engine: ob.Engine, root: Path) -> None:
    run = engine.start(Uses(root=str(root), name="l", value=1))
    run.wait()
    again = engine.start(Uses(root=str(root), name="l", value=2))
    again.wait()
    assert "creating Probe:l" in run.logs("probe")
    assert "updating Probe:l: 1 field(s) differ: value" in again.logs("probe")
