"""Cancel, reset and retry of runs executing in other processes (and on other hosts).

Each owner is a real child process with an engine of its own (control_flows.owner);
the commands come from this process, through a run handle or the command line.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import CancelledError
from pathlib import Path

import pytest
from control_flows import TESTS, Quick, Sleepy, owner
from polling import until
from stores import Location, pg_server, shared_location  # noqa: F401

import orbits_nb as ob
from orbits_nb.core.errors import RunOwned
from orbits_nb.core.rows import Batch
from orbits_nb.core.state import Event
from orbits_nb.store import open_store
from orbits_nb.store.leases import pid_alive


@pytest.fixture
def here(shared_location: Location  # noqa: F811
         ) -> Iterator[tuple[Location, ob.Engine]]:
    """This process as a second host of the shared store, with an engine on it."""
    engine = ob.Engine(open_store(shared_location.where, host="host-b"))
    try:
        yield shared_location, engine
    finally:
        engine.close()


def killed_at(engine: ob.Engine, child: subprocess.Popen[str], run_id: str,
              step: str) -> None:
    """SIGKILL ``child`` once the start of ``step`` is recorded."""
    until(lambda: engine.store.fetch(
        "SELECT count(*) FROM events WHERE run_id = ? AND step = ? AND kind = "
        "'step.started'", [run_id, step])[0][0])
    child.send_signal(signal.SIGKILL)
    child.wait()


def ended(child: subprocess.Popen[str]) -> str:
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0, err
    return out


def cli(*args: str, state: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(TESTS.parent)])}
    return subprocess.run([sys.executable, "-m", "orbits_nb.cli", "--state", state, *args],
                          capture_output=True, text=True, timeout=120, env=env)


def test_a_cancel_from_another_process_reaches_the_owner(
        here: tuple[Location, ob.Engine], tmp_path: Path) -> None:
    location, engine = here
    child = owner(location.where, "far", "sleepy", tmp_path / "nap", host="host-a")
    run = engine.get_run("far")
    assert run.status == "running"
    assert run.cancel() == "requested"
    assert "END cancelled" in ended(child)  # the owner cancelled it, and recorded it
    state = run.state()
    assert state.status == "cancelled" and state.cancel_requested is None
    asked = [e for e in engine.store.load_run("far") if e.kind == "run.cancel_requested"]
    assert len(asked) == 1 and asked[0].data["via"] == "python"
    assert {"by", "at"} <= set(asked[0].data)
    assert {s.key: s.status for s in state.ordered_steps()} == {
        "first": "succeeded", "nap": "cancelled"}
    assert state.spans[-1].host == "host-a"  # it ended where it executed


def test_orbits_nb_cancel_reaches_a_watcher_in_another_process(
        here: tuple[Location, ob.Engine], tmp_path: Path) -> None:
    location, engine = here
    child = owner(location.where, "watched", "watching", tmp_path / "w", host="host-a")
    done = cli("cancel", "watched", state=location.where)
    assert done.returncode == 0, done.stderr
    assert "cancelled by its owner" in done.stdout
    assert "END cancelled" in ended(child)
    state = engine.get_run("watched").state()
    assert state.steps["watch"].status == "cancelled"
    asked = [e for e in engine.store.load_run("watched") if e.kind == "run.cancel_requested"]
    assert [e.data["via"] for e in asked] == ["cli"]
    again = cli("cancel", "watched", state=location.where)
    assert again.returncode == 1 and "already ended (cancelled)" in again.stdout


def test_cancel_of_a_run_whose_owner_died_is_recorded_here(engine: ob.Engine,
                                                          tmp_path: Path) -> None:
    state = str(engine.store.location)
    child = owner(state, "orphan", "sleepy", tmp_path / "nap")
    killed_at(engine, child, "orphan", "nap")
    run = engine.get_run("orphan")
    assert run.cancel() == "cancelled"
    folded = run.state()
    assert folded.status == "cancelled" and folded.cancel_requested is None
    assert folded.steps["nap"].status == "cancelled"
    assert folded.steps["nap"].spans[-1].status == "cancelled"
    assert engine.store.leases("run", ["orphan"]) == []  # nobody holds it afterwards
    assert run.cancel() == "ended"


def test_a_run_taken_over_with_a_standing_cancel_request_ends_cancelled_at_once(
        engine: ob.Engine, tmp_path: Path) -> None:
    marker = tmp_path / "nap"
    child = owner(str(engine.store.location), "asked", "sleepy", marker)
    killed_at(engine, child, "asked", "nap")  # dies before it could act on a request
    engine.store.write(Batch(events=[Event("asked", "run.cancel_requested",
                                           data={"by": "someone", "via": "cli"})]))
    marker.unlink()
    run = engine.start(Sleepy(str(marker)), run_id="asked")
    with pytest.raises(CancelledError):
        run.wait(60)
    state = run.state()
    assert state.status == "cancelled" and state.executions == 2
    assert not marker.exists()  # the nap did not begin again
    assert state.spans[0].status == "interrupted"


def test_reset_and_retry_of_a_run_another_live_process_executes_are_refused(
        here: tuple[Location, ob.Engine], tmp_path: Path) -> None:
    location, engine = here
    child = owner(location.where, "busy", "sleepy", tmp_path / "nap", host="host-a")
    try:
        run = engine.get_run("busy")
        for command in (lambda: run.reset("nap"), run.retry):
            with pytest.raises(RunOwned, match="executing in host-a pid") as refused:
                command()
            assert refused.value.fields["owner"] == f"host-a:{child.pid}"
        refused_cli = cli("reset", "busy", "nap", state=location.where)
        assert refused_cli.returncode == 2
        assert f"host-a pid {child.pid}" in refused_cli.stderr
        assert "orbits-nb cancel busy" in refused_cli.stderr
        assert cli("retry", "busy", state=location.where).returncode == 2
        assert run.state().steps["nap"].status == "running"  # nothing was discarded
    finally:
        run.cancel()
        ended(child)


def test_reset_of_a_dead_owners_run_then_retry_executes_it_here(engine: ob.Engine,
                                                                tmp_path: Path) -> None:
    marker = tmp_path / "nap"
    child = owner(str(engine.store.location), "dead", "sleepy", marker)
    killed_at(engine, child, "dead", "nap")
    run = engine.get_run("dead")
    run.reset("nap")
    state = run.state()
    # It says it will execute again, not running (its process is gone) nor ended.
    assert (state.status, state.reset_from) == ("pending", "nap")
    assert state.spans[-1].status == "interrupted"
    assert list(state.steps) == ["first"]
    Path(marker).unlink()
    again = run.retry()  # imported (control_flows:Sleepy), executed here
    until(marker.exists)
    assert again.state().status == "running"
    assert again.state().reset_from is None
    again.cancel()
    with pytest.raises(CancelledError):
        again.wait(60)
    assert again.status == "cancelled"


def test_orbits_nb_retry_from_a_step_executes_it_again(engine: ob.Engine,
                                                      tmp_path: Path) -> None:
    flag = tmp_path / "fail"
    flag.touch()
    run = engine.start(Quick(str(flag)), run_id="quick")
    with pytest.raises(ob.StepFailed):
        run.wait(60)
    state = str(engine.store.location)
    flag.unlink()
    done = cli("retry", "quick", state=state)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "quick is succeeded" in done.stdout
    assert engine.get_run("quick").state().steps["first"].execution == 1  # replayed

    again = cli("retry", "quick", "--from", "first", state=state)
    assert again.returncode == 0, again.stdout + again.stderr
    steps = engine.get_run("quick").state().steps
    assert (steps["first"].execution, steps["second"].execution) == (3, 3)

    nothing = cli("retry", "quick", state=state)
    assert nothing.returncode == 0 and "nothing to retry" in nothing.stdout
    unknown = cli("retry", "nope", state=state)
    assert unknown.returncode == 2 and "no run 'nope'" in unknown.stderr
    bad_step = cli("retry", "quick", "--from", "third", state=state)
    assert bad_step.returncode == 2 and "no step 'third'" in bad_step.stderr
    assert "first, second" in bad_step.stderr
    assert cli("cancel", "nope", state=state).returncode == 2


def test_a_cancel_terminates_a_subprocess_executor_call(engine: ob.Engine,
                                                       tmp_path: Path) -> None:
    marker = tmp_path / "pid"
    child = owner(str(engine.store.location), "forked", "inchild", marker)
    worker = int(marker.read_text())
    assert pid_alive(worker)
    assert engine.get_run("forked").cancel() == "requested"
    assert "END cancelled" in ended(child)
    until(lambda: not pid_alive(worker))
    state = engine.get_run("forked").state()
    assert state.steps["child"].status == "cancelled"
    assert state.steps["child"].spans[-1].status == "cancelled"



def test_cancelling_a_nested_run_cancels_the_run_it_is_nested_in(engine: ob.Engine,
                                                                 tmp_path: Path) -> None:
    child = owner(str(engine.store.location), "outer", "nesting", tmp_path / "nap")
    nested = engine.get_run("outer/inner")
    assert nested.cancel() == "requested"  # its parent's owner executes it
    assert "END cancelled" in ended(child)
    assert engine.get_run("outer").status == "cancelled"
    assert nested.state().steps["nap"].status == "cancelled"
