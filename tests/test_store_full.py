"""A full disk loses nothing silently: records are kept and written once there is room.

The disk is a real tmpfs of a few MiB that the test fills and frees; a second proof
uses a file size limit (RLIMIT_FSIZE) in a child process, which needs no privilege.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from polling import until
from store_helpers import SmallDisk, Steps, small_disk

import orbits_nb as ob
from orbits_nb.store.integrity import check

GATES: dict[str, threading.Event] = {}
LINES = 300


def gate(name: str) -> threading.Event:
    return GATES.setdefault(name, threading.Event())


class Chatty(ob.Action):
    """Prints, waits for the test to change the disk, prints again."""

    def main(self) -> Any:
        for i in range(int(self.args.get("before", 0))):
            print(f"before {i} " + "b" * 100)
        gate("speak").wait()
        for i in range(int(self.args["during"])):
            print(f"during {i} " + "d" * 100)
        gate("finish").wait()
        return "done"


class Talk(ob.Workflow):
    async def define(self) -> Any:
        return await self.do("talk", Chatty(**self.args))


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[SmallDisk]:
    GATES.clear()
    with small_disk(tmp_path / "disk") as mounted:
        yield mounted
    for event in GATES.values():
        event.set()  # never leave a step thread blocked


def _count(engine: ob.Engine, pattern: str) -> int:
    rows = engine.store.fetch("SELECT count(*) FROM logs WHERE message LIKE ?", [pattern])
    return int(rows[0][0])


def test_log_lines_written_while_the_disk_is_full_are_kept(disk: SmallDisk) -> None:
    engine = ob.Engine(disk.folder / "state.duckdb")
    engine.writer.retry_for = 600  # the outage below is transient: nothing may fail
    try:
        run = engine.start(Talk(before=20, during=LINES))
        until(lambda: _count(engine, "before %") == 20)
        disk.fill()
        gate("speak").set()
        until(lambda: getattr(engine.writer, "failures", 0) >= 2)  # retried at least once
        disk.free()
        gate("finish").set()
        assert run.wait(120) == "done"
        assert _count(engine, "during %") == LINES
        assert _count(engine, "before %") == 20
        assert engine.writer.failing is None
        assert check(engine.store) == []
    finally:
        engine.close()


def test_a_lasting_full_disk_fails_the_run_clearly_and_keeps_its_records(
        disk: SmallDisk, capfd: pytest.CaptureFixture[str]) -> None:
    path = disk.folder / "state.duckdb"
    engine = ob.Engine(path)
    engine.writer.retry_for = 0.5
    try:
        run = engine.start(Talk(during=LINES))
        until(lambda: engine.store.fetch("SELECT status FROM steps") == [("running",)])
        disk.fill()
        gate("speak").set()
        gate("finish").set()
        with pytest.raises(ob.StoreError) as info:
            run.wait(120)
        assert str(path) in str(info.value) and "no space left" in str(info.value).lower()
        assert info.value.fields["reason"] == "disk-full"
        # Reads still work; the store shows the step running: its end is not written yet.
        assert engine.store.fetch("SELECT status FROM steps") == [("running",)]
        # So do the user's reads: they show what is durable instead of raising.
        assert engine.get_run(run.run_id).status == "running"
        assert [r[0] for r in ob.history(engine=engine).fetchall()] == [run.run_id]
        assert "during" not in engine.get_run(run.run_id).logs("talk")  # not durable yet
        reported = capfd.readouterr().err
        assert reported.count("Retrying for") == 1, reported  # once, not per attempt

        disk.free()  # the kept records are written by the next retry
        until(lambda: engine.store.fetch("SELECT status FROM runs") == [("failed",)])
        assert _count(engine, "during %") == LINES
        assert engine.store.fetch("SELECT status FROM steps") == [("succeeded",)]
        assert engine.store.fetch("SELECT count(*) FROM leases") == [(0,)]
        assert check(engine.store) == []
        assert "can be written again" in capfd.readouterr().err
    finally:
        engine.close()


def test_memory_stays_bounded_and_the_loss_is_reported(
        disk: SmallDisk, capfd: pytest.CaptureFixture[str]) -> None:
    engine = ob.Engine(disk.folder / "state.duckdb")
    engine.writer.retry_for = 600
    engine.writer.max_kept_logs = 50
    try:
        run = engine.start(Talk(during=LINES))
        until(lambda: engine.store.fetch("SELECT count(*) FROM leases") == [(1,)])
        disk.fill()
        gate("speak").set()
        until(lambda: engine.writer.lost_logs >= LINES - 50)
        disk.free()
        gate("finish").set()
        assert run.wait(120) == "done"
        kept = _count(engine, "during %")
        assert 50 <= kept < LINES
        notes = run.logs()
        assert f"{LINES - kept} log lines of this run were lost" in notes
        err = capfd.readouterr().err
        assert err.count("dropping the oldest log lines") == 1, err
    finally:
        engine.close()


def test_a_new_state_file_on_a_full_disk_is_not_left_half_made(disk: SmallDisk) -> None:
    disk.fill()
    path = disk.folder / "new" / "state.duckdb"
    engine = ob.Engine(path)
    try:
        with pytest.raises(ob.StoreError, match="no room is left") as info:
            engine.start(Steps(n=1)).wait(60)
        assert str(path) in str(info.value)
        assert not path.exists() and not Path(f"{path}.wal").exists()
        disk.free()  # and nothing the failed attempt held blocks the next one
        assert engine.start(Steps(n=1)).wait(60) == 1
    finally:
        engine.close()
    assert ob.DuckDBStore(path).fetch("SELECT status FROM runs") == [("succeeded",)]


CHILD = """
import resource, signal, sys
import orbits_nb as ob

class Fill(ob.Action):
    def main(self):
        # From here on no file may grow: the writes of this step's records fail.
        resource.setrlimit(resource.RLIMIT_FSIZE, (1, resource.RLIM_INFINITY))
        for i in range(200):
            print(f"line {i} " + "z" * 100)
        return "filled"

class W(ob.Workflow):
    async def define(self):
        return await self.do("fill", Fill())

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail with EFBIG instead of dying
engine = ob.Engine(sys.argv[1])
try:
    engine.start(W()).wait(120)
except ob.StoreError as err:
    print("CAUGHT", type(err).__name__, err.fields["reason"], err)
except BaseException as err:
    print("OTHER", type(err).__module__, type(err).__name__, err)
resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
engine.close()  # the kept records are written now
"""


def test_file_size_limit_fails_the_commit_with_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "limited" / "state.duckdb"
    out = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True,
                         text=True, timeout=300,
                         env={**os.environ, "ORBITS_NB_WRITE_RETRY": "0.5"})
    assert out.returncode == 0, out.stderr
    assert "CAUGHT StoreError disk-full" in out.stdout, (out.stdout, out.stderr)
    assert str(path) in out.stdout
    assert "Traceback" not in out.stderr, out.stderr
    store = ob.DuckDBStore(path)
    assert store.fetch("SELECT status FROM steps") == [("succeeded",)]
    assert store.fetch("SELECT count(*) FROM logs WHERE message LIKE 'line %'") == [(200,)]
    assert check(store) == []


def test_a_waiter_that_gives_up_does_not_stop_the_writer(tmp_path: Path) -> None:
    """A cancelled commit (a step cancelled while its record was being written) is
    still written, and every later write still happens."""
    from orbits_nb.core.rows import Batch
    from orbits_nb.core.state import Event
    from orbits_nb.engine.writer import Writer

    store = ob.DuckDBStore(tmp_path / "s.duckdb")
    writer = Writer(store)
    try:
        given_up = writer.submit(Batch(events=[Event("r-1", "run.created",
                                                     data={"workflow": "m:W"})]))
        given_up.cancel()
        writer.flush(30)
        writer.submit(Batch(events=[Event("r-2", "run.created",
                                          data={"workflow": "m:W"})])).result(30)
        runs = {row[0] for row in store.fetch("SELECT run_id FROM events")}
        assert runs == {"r-1", "r-2"}
    finally:
        writer.stop()
        store.close()


def test_a_cancelled_start_gives_its_lease_back(tmp_path: Path) -> None:
    from orbits_nb.core.rows import Owner
    from orbits_nb.engine.writer import Writer

    store = ob.DuckDBStore(tmp_path / "s.duckdb")
    writer = Writer(store)
    try:
        opening = writer.open_run("r-1", Owner("t-1", store.host, os.getpid()))
        opening.cancel()
        writer.flush(30)
        writer.flush(30)  # the release is queued once the open was served
        assert store.fetch("SELECT count(*) FROM leases") == [(0,)]
        # Another owner in this live process can take the run at once.
        assert writer.open_run("r-1", Owner("t-2", store.host, os.getpid())).result(30) == []
    finally:
        writer.stop()
        store.close()
