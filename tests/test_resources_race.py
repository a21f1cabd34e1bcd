"""Two processes, one state file, one resource identity: created once, shared, leased."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
from pathlib import Path

import pytest
from test_resources import calls

import orbits_nb as ob

pytestmark = pytest.mark.slow

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent

CHILD = """
import json, sys
sys.path[:0] = [{tests!r}, {root!r}]
import orbits_nb as ob
import test_resources as t

engine = ob.Engine({state!r})
cls = getattr(t, {workflow!r})
print("ready", flush=True)
sys.stdin.readline()                      # the barrier: both start together
try:
    out = engine.start(cls(root={probes!r}, name="acct", value=1, slow={slow})).wait(120)
    print(json.dumps({{"ok": out}}), flush=True)
except Exception as err:
    print(json.dumps({{"error": str(err)}}), flush=True)
finally:
    engine.close()
"""


def spawn(tmp: Path, workflow: str, slow: float, **env: str) -> subprocess.Popen[str]:
    code = CHILD.format(tests=str(TESTS), root=str(ROOT), state=str(tmp / "state.duckdb"),
                        workflow=workflow, probes=str(tmp / "probes"), slow=slow)
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "ORBITS_NB_PROGRESS": "0", **env},
                            pass_fds=tuple(int(v) for k, v in env.items() if k.endswith("FD")))
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready", proc.stderr.read() if proc.stderr else ""
    return proc


def finish(proc: subprocess.Popen[str]) -> dict[str, object]:
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    return dict(json.loads(out.strip().splitlines()[-1]))


def test_two_processes_racing_create_the_shared_resource_once(tmp_path: Path) -> None:
    (tmp_path / "probes").mkdir()
    procs = [spawn(tmp_path, "Backend", 0.5), spawn(tmp_path, "Frontend", 0.5)]
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    results = [finish(p) for p in procs]

    assert all("ok" in r for r in results), results
    assert results[0]["ok"] == results[1]["ok"]
    assert calls(tmp_path / "probes") == ["create acct"]

    engine = ob.Engine(tmp_path / "state.duckdb")
    try:
        users = engine.store.fetch("SELECT DISTINCT workflow FROM resource_users WHERE "
                                   "resource_key = 'Probe:acct' AND role = 'user'")
        assert sorted(u[0].rsplit(":", 1)[-1] for u in users) == ["Backend", "Frontend"]
        assert engine.store.fetch("SELECT count(*) FROM resources")[0][0] == 1
        assert engine.store.fetch("SELECT count(*) FROM resource_leases")[0][0] == 0
        # The loser waited for the lease, then found the resource in sync.
        logs = [m for (m,) in engine.store.fetch("SELECT message FROM logs")]
        assert sum("is in sync (shared with earlier users)" in m for m in logs) == 1, logs
    finally:
        engine.close()


def test_a_conflicting_command_in_another_process_fails_by_choice(tmp_path: Path) -> None:
    (tmp_path / "probes").mkdir()
    read_end, write_end = os.pipe()
    gate = tmp_path / "gate"
    holder = spawn(tmp_path, "Backend", 0.0, PROBE_SIGNAL_FD=str(write_end),
                   PROBE_GATE=str(gate))
    os.close(write_end)
    assert holder.stdin is not None
    holder.stdin.write("go\n")
    holder.stdin.flush()
    poller = select.poll()  # not select(): it refuses descriptors above 1023
    poller.register(read_end, select.POLLIN)
    assert poller.poll(120_000)
    assert os.read(read_end, 1) == b"c"
    os.close(read_end)

    code = (f"import sys; sys.path[:0] = [{str(TESTS)!r}, {str(ROOT)!r}]\n"
            "import orbits_nb as ob, test_resources as t\n"
            "class Impatient(t.Probe):\n    on_conflict = 'fail'\n"
            "class W(ob.Workflow):\n    async def define(self):\n"
            f"        return await self.do('p', Impatient(root={str(tmp_path / 'probes')!r}, "
            "name='acct', value=1))\n"
            f"e = ob.Engine({str(tmp_path / 'state.duckdb')!r})\n"
            "try:\n    e.start(W()).wait(60)\nexcept Exception as err:\n    print(err)\n"
            "finally:\n    e.close()\n")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           timeout=120, check=False, env={**os.environ, "ORBITS_NB_PROGRESS": "0"})
    assert "is locked: converge by" in other.stdout, other.stdout + other.stderr
    assert f"pid {holder.pid}" in other.stdout
    assert "on_conflict='fail' does not wait" in other.stdout
    gate.touch()
    assert "ok" in finish(holder)
    assert calls(tmp_path / "probes") == ["create acct"]
