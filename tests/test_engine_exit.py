"""A process that exits with runs in flight leaves them as a killed one does: resumable,
their open attempts closed as interrupted by whoever executes them next."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import orbits_nb as ob
from orbits_nb.core.rows import Owner

SCRIPT = textwrap.dedent("""
    import sys, time
    import orbits_nb as ob
    sys.path.insert(0, sys.argv[2])
    from exit_flow import Flow

    engine = ob.Engine(sys.argv[1])
    run = engine.start(Flow(), run_id="exiting")
    while "hold" not in run.state().steps:
        time.sleep(0.02)
    print("exiting", flush=True)
    sys.exit(0)  # a graceful end: atexit runs, as in a kernel restart
""")

FLOW = textwrap.dedent("""
    import asyncio, os
    import orbits_nb as ob

    class Quick(ob.Action):
        def main(self):
            return 1

    class Hold(ob.Action):
        async def main(self):
            if os.environ.get("EXIT_FLOW_HOLD") == "1":
                await asyncio.sleep(600)
            return 2

    class Flow(ob.Workflow):
        async def define(self):
            return await self.do("quick", Quick()) + await self.do("hold", Hold())
""")


def test_runs_in_flight_at_exit_are_interrupted_not_cancelled(tmp_path: Path,
                                                                monkeypatch) -> None:
    (tmp_path / "exit_flow.py").write_text(FLOW)
    script = tmp_path / "exiting.py"
    script.write_text(SCRIPT)
    state = tmp_path / "s.duckdb"
    env = {**__import__("os").environ, "EXIT_FLOW_HOLD": "1"}
    # The timeout only keeps a regression from hanging the suite.
    proc = subprocess.run([sys.executable, str(script), str(state), str(tmp_path)],
                          capture_output=True, text=True, timeout=300, check=False, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "exiting" in proc.stdout

    store = ob.DuckDBStore(state)
    events = store.load_run("exiting")
    kinds = [e.kind for e in events]
    assert "run.cancelled" not in kinds and "step.cancelled" not in kinds
    assert store.leases("run", ["exiting"]) == [] or all(
        not store.alive(lease.host, lease.pid, lease.heartbeat)
        for lease in store.leases("run", ["exiting"]))
    taken = store.open_runs([("exiting", Owner("t", store.host, 1))], load=False)
    assert not isinstance(taken["exiting"], ob.RunOwned)  # free at once: given back
    store.release_lease("run", "exiting", "t")
    store.close()

    monkeypatch.syspath_prepend(str(tmp_path))
    from exit_flow import Flow  # type: ignore[import-not-found]

    engine = ob.Engine(state)
    try:
        run = engine.start(Flow(), run_id="exiting")
        assert run.wait(60) == 3
        state_now = run.state()
        assert [s.status for s in state_now.steps["hold"].spans] == [
            "interrupted", "succeeded"]
        assert [s.status for s in state_now.spans] == ["interrupted", "succeeded"]
        assert state_now.steps["quick"].attempts == 1  # it never ran again
    finally:
        engine.close()
