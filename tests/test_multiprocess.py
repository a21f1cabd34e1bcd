"""Several processes on one state file: no lock error, no lost event."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from stores import Location

import orbits_nb as ob
from orbits_nb.store.integrity import check

WORKER = Path(__file__).with_name("crash_worker.py")

READER = """
import sys, time
import orbits_nb as ob
engine = ob.Engine(sys.argv[1])
reads = 0
deadline = time.monotonic() + float(sys.argv[2])
while time.monotonic() < deadline:
    ob.history(engine=engine).fetchall()
    engine.store.fetch("SELECT count(*) FROM steps")
    reads += 1
print("READS", reads, flush=True)
"""


@pytest.mark.slow
def test_three_processes_share_one_state_file(tmp_path: Path,
                                              shared_location: Location) -> None:
    state = shared_location.where
    steps = 120
    writers = [
        subprocess.Popen([sys.executable, str(WORKER), state, str(tmp_path / f"fx{i}"),
                          str(steps), f"writer-{i}"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(2)
    ]
    time.sleep(0.2)
    reader = subprocess.Popen([sys.executable, "-c", READER, state, "4"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    outputs = [p.communicate(timeout=300) for p in [*writers, reader]]
    for proc, (out, err) in zip([*writers, reader], outputs, strict=True):
        assert proc.returncode == 0, err
        assert "lock" not in err.lower(), err
    assert "RESULT" in outputs[0][0] and "RESULT" in outputs[1][0]
    reads = int(outputs[2][0].split()[1])
    assert reads > 0

    store = shared_location.open()
    assert check(store) == []
    for i in range(2):
        run_id = f"writer-{i}"
        n_steps = steps + steps // 10
        assert store.fetch("SELECT count(*) FROM steps WHERE run_id = ? AND status = "
                           "'succeeded'", [run_id]) == [(n_steps,)]
        kinds = dict(store.fetch("SELECT kind, count(*) FROM events WHERE run_id = ? "
                                 "GROUP BY kind", [run_id]))
        # every step's start and success, every watcher's wait, the run's own events
        assert kinds["step.started"] == n_steps
        assert kinds["step.succeeded"] == n_steps
        assert kinds["step.waiting"] == steps // 10
        assert (kinds["run.created"], kinds["run.started"], kinds["run.succeeded"]) == (1, 1, 1)
    assert store.fetch("SELECT count(*) FROM leases") == [(0,)]


def test_idle_engine_holds_no_lock(tmp_path: Path) -> None:
    state = tmp_path / "idle.duckdb"
    engine = ob.Engine(state)
    try:
        class Noop(ob.Action):
            def main(self) -> int:
                return 1

        class W(ob.Workflow):
            async def define(self) -> int:
                return int(await self.do("noop", Noop()))

        assert engine.start(W()).wait(30) == 1
        deadline = time.monotonic() + 10
        while engine.store.is_open and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not engine.store.is_open
        # Another process (plain duckdb, no orbits_nb hand-over) can open the file now.
        out = subprocess.run([sys.executable, "-c",
                              "import duckdb,sys; c=duckdb.connect(sys.argv[1]); "
                              "print(c.execute('select count(*) from events').fetchone()[0])",
                              str(state)], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert int(out.stdout) > 0
    finally:
        engine.close()


def test_second_process_gets_a_clear_owner_error(tmp_path: Path) -> None:
    state = tmp_path / "owned.duckdb"
    effects = tmp_path / "fx"
    holder = subprocess.Popen([sys.executable, str(WORKER), str(state), str(effects), "400",
                               "owned-run"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    try:
        deadline = time.monotonic() + 60
        while not effects.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        code = ("import sys; sys.path.insert(0, sys.argv[2]); import orbits_nb as ob; "
                "from crash_worker import Chain; e = ob.Engine(sys.argv[1]);\n"
                "try:\n    e.start(Chain(steps=400), run_id='owned-run').wait(60)\n"
                "except ob.RunOwned as err:\n    print('OWNED', err)\n")
        out = subprocess.run([sys.executable, "-c", code, str(state), str(WORKER.parent),
                              str(effects), "x"], capture_output=True, text=True, timeout=120)
        assert "OWNED run 'owned-run' is being executed by" in out.stdout, out.stderr
        assert f"pid {holder.pid} since" in out.stdout
    finally:
        holder.kill()
        holder.wait()
