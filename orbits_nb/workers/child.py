"""The process that executes claimed runs for a worker: ``python -m
orbits_nb.workers.child RUN_ID``, or ``-``: start, then execute the runs whose ids
arrive on stdin one after the other, reporting ``CODE RUN_ID STATUS`` for each (and
``cancel RUN_ID`` when a cancel request reached it) on the file descriptor
``ORBITS_NB_WORKER_FD`` (stdout stays the user's). The worker keeps such processes
ready, so a claimed run begins at once and no run pays a process start.

It holds the run lease under the worker's token (``ORBITS_NB_WORKER_TOKEN``), so its
engine continues the lease the worker took; it ends when its worker dies, so a
killed worker's runs are free to be taken over. The code says how the run stopped:
ended (0: the child dequeued it), parked or drained to continue later (75), or the
child could not execute it (1). A cancel requested from anywhere cancels the run here.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from orbits_nb.core.errors import OrbitsError
from orbits_nb.core.rows import Batch, Owner, QueuedRun
from orbits_nb.core.state import RUN_TERMINAL, Event, error_info, fold
from orbits_nb.core.timer import RunParked

if TYPE_CHECKING:
    from orbits_nb.engine.engine import Engine
    from orbits_nb.engine.run import Run

ENDED, FAILED, PARKED = 0, 1, 75
TOKEN_ENV = "ORBITS_NB_WORKER_TOKEN"
WORKER_ENV = "ORBITS_NB_WORKER_ID"
PARK_ENV = "ORBITS_NB_PARK_AFTER"
REPORT_ENV = "ORBITS_NB_WORKER_FD"
#: What the worker writes instead of a run id: claim a run here and execute it.
CLAIM = "+"
#: The worker's queues, one per line (none: every queue).
QUEUES_ENV = "ORBITS_NB_WORKER_QUEUES"
#: Seconds between two looks for a cancel requested from another process.
CANCEL_POLL = 0.05


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m orbits_nb.workers.child RUN_ID", file=sys.stderr)
        return FAILED
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the worker decides what a ^C does
    _die_with_parent()
    from orbits_nb.engine.engine import Engine
    from orbits_nb.store import state_location

    where = state_location()
    engine = Engine(where)
    engine.owner = Owner(os.environ.get(TOKEN_ENV) or engine.owner.token,
                         engine.store.host, os.getpid())
    engine.worker = os.environ.get(WORKER_ENV) or f"worker-{engine.owner.host}-{os.getpid()}"
    park = os.environ.get(PARK_ENV)
    engine.park_after = float(park) if park else None
    signal.signal(signal.SIGTERM, lambda *_: _drain(engine))
    try:
        if args[0] != "-":
            return _execute(engine, args[0], where, lambda _: None)[0]
        return _serve(engine, where)
    finally:
        engine.close()


def _serve(engine: Engine, where: Any) -> int:
    """Execute the runs named on stdin until it closes (or the worker drains); a
    line ``+`` asks this process to claim a run itself and execute it.

    A run that ended here is dequeued here, where the file is held already, and the
    next runnable run is claimed in the same hold (under the worker's token, within
    the queues' limits): the report ``0 RUN_ID STATUS NEXT_ID TAKES`` tells the worker
    that this process goes on with ``NEXT_ID``, so a busy queue never waits for the
    worker to take the file, claim and hand the run over.
    """
    report = os.fdopen(int(os.environ[REPORT_ENV]), "w", buffering=1)
    _ = engine.loop  # ready before a run is known: it begins at once
    queues = [q for q in os.environ.get(QUEUES_ENV, "").splitlines() if q]
    for line in sys.stdin:
        run_id = line.strip()
        # Held from run to run while it goes on claiming: handed over only to a
        # process that waits for it (closing an idle file folds the history).
        with engine.store.keep_open():
            if run_id.startswith(CLAIM):
                # The worker saw something queued: claim here, where the run
                # executes, so the file is opened once (not by the worker, then here).
                run_id = _claim(engine, queues, report, int(run_id[1:] or 1))
            while run_id:
                run_id, stop = _one(engine, run_id, where, report, queues)
                if stop:
                    return ENDED
    return ENDED


def _claim(engine: Engine, queues: list[str], report: Any, most: int) -> str:
    """Claim up to ``most`` runs in one claim, reporting ``claimed ID TAKES ...``
    (``- 0``: none); this process executes the first, the worker hands the others to
    its other processes, so that runs claimed together begin together."""
    try:
        taken = _next(engine, queues, most)
    except OrbitsError as err:
        print(f"orbits-nb worker: claim: {err}", file=sys.stderr)
        taken = []
    words = " ".join(f"{e.run_id} {e.takes}" for e in taken) or "- 0"
    report.write(f"claimed {words}\n")
    return taken[0].run_id if taken else ""


def _one(engine: Engine, run_id: str, where: Any, report: Any, queues: list[str]
         ) -> tuple[str, bool]:
    """Execute ``run_id`` and report it: the run claimed to go on with ("" for none),
    and whether this process must end now."""
    following = ""
    try:
        code, status = _execute(engine, run_id, where, report.write)
        stop = engine.draining or (status == "cancelled" and _left_running(engine, run_id))
        if code == ENDED:
            engine.store.dequeue(run_id)
            following = "" if stop else "".join(
                f" {e.run_id} {e.takes}" for e in _next(engine, queues, 1))
    except OrbitsError as err:
        print(f"orbits-nb worker: run {run_id}: {err}", file=sys.stderr)
        code, status, stop = FAILED, "unknown", engine.draining
    report.write(f"{code} {run_id} {status}{following}\n")
    # A cancel that abandoned a step's thread, which may still be at work, ends this
    # process to stop it (the worker starts a fresh one for the next run).
    return (following.split()[0] if following else ""), stop


def _next(engine: Engine, queues: list[str], most: int) -> list[QueuedRun]:
    """Claim up to ``most`` runs for this worker. A run whose cancel was requested
    before it began is ended here, and the claim goes on."""
    from orbits_nb.workers.claims import cancel_unstarted

    while not engine.draining:
        claimed = engine.store.claim_runs(engine.owner, most, queues)
        if not claimed:
            return []
        kept = [e for e in claimed if not e.cancel]
        for entry in claimed:
            if entry.cancel:
                cancel_unstarted(engine.store, entry, engine.owner.token)
                print(f"{engine.worker}: {entry.run_id} cancelled before it began",
                      flush=True)
        if kept:
            return kept
    return []


def _left_running(engine: Engine, run_id: str) -> bool:
    """Whether a cancel abandoned a step of ``run_id`` whose thread may still run."""
    try:
        state = fold(run_id, engine.store.load_run(run_id))
    except OrbitsError:
        return True  # cannot tell: a fresh process is the safe side
    return any(step.abandoned for step in state.steps.values())


def _drain(engine: Engine) -> None:
    """First SIGTERM: start no new step (the run parks once its steps finish); the
    second ends the process at once (its lease is then free to be taken over)."""
    if engine.draining:
        os._exit(PARKED)
    engine.draining = True


def _die_with_parent() -> None:
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.2)
        os._exit(FAILED)

    threading.Thread(target=watch, name="orbits-nb-parent", daemon=True).start()


def _execute(engine: Engine, run_id: str, where: Any, report: Callable[[str], Any]
             ) -> tuple[int, str]:
    """Execute the run; how it stopped (the exit code) and its status."""
    from orbits_nb.engine.resume import load_workflow

    state = fold(run_id, engine.store.load_run(run_id))
    if not state.workflow:
        print(f"orbits-nb worker: no run {run_id!r} in {engine.store.location}",
              file=sys.stderr)
        return FAILED, "unknown"
    if state.status == "succeeded":
        return ENDED, state.status
    if state.meta.get("notebook_run_id") or state.meta.get("notebook"):
        return _runbook(engine, run_id, where), "resumed"
    try:
        workflow = load_workflow(state.workflow, state.args)
    except Exception as err:
        _record_failure(engine, run_id, err)
        return ENDED, "failed"
    run = engine.start(workflow, run_id=run_id)
    stop = threading.Event()
    threading.Thread(target=_watch_cancel, args=(engine, run, stop, report), daemon=True,
                     name="orbits-nb-cancel").start()
    try:
        run.wait()
    except RunParked:
        return PARKED, "parked"
    except BaseException:
        pass  # the run recorded its own end (failed or cancelled)
    finally:
        stop.set()
    status = run.state().status
    return (ENDED if status in RUN_TERMINAL else PARKED), status


def _watch_cancel(engine: Engine, run: Run, stop: threading.Event,
                  report: Callable[[str], Any]) -> None:
    """Cancel the run here when a cancel is requested from anywhere, and tell the
    worker (it terminates this process if the run does not stop in time). The run's
    events are read again only when a command was recorded since the last look."""
    seen: Any = object()
    while not stop.wait(CANCEL_POLL):
        mark = engine.store.command_mark()
        if mark is not None and mark == seen:
            continue
        try:
            requested = fold(run.run_id, engine.store.load_run(run.run_id)).cancel_requested
        except OrbitsError:
            continue  # the store is busy: look again
        seen = mark
        if requested is not None:
            report(f"cancel {run.run_id}\n")
            run.cancel()
            return


def _record_failure(engine: Engine, run_id: str, err: BaseException) -> None:
    """The run cannot be executed here (its class does not import): it fails, saying so."""
    info: dict[str, Any] = error_info(err)
    info["message"] = (f"the worker {engine.worker} could not load the workflow: "
                       f"{info.get('message', '')}")
    events = [Event(run_id, "run.started", data={"host": engine.owner.host,
                                                  "pid": engine.owner.pid,
                                                  "worker": engine.worker}),
              Event(run_id, "run.failed", data={"error": info})]
    engine.writer.submit(Batch(events=events,
                               release_leases=[(run_id, engine.owner.token)])).result()


def _runbook(engine: Engine, run_id: str, where: Any) -> int:
    """A run started by a runbook: re-execute its notebook headlessly, as
    ``orbits-nb resume`` does. Its kernel takes the run lease, so the entry is held
    back meanwhile (nobody else takes it while the lease changes hands)."""
    from orbits_nb.engine.submit import EXECUTES_ENV
    from orbits_nb.runbooks.resume import resume

    engine.store.park_run(run_id, time.time() + 24 * 3600)
    engine.store.release_lease("run", run_id, engine.owner.token)
    # The runbook's kernel opens the state itself: let go of it now, though this process
    # holds it from run to run (it is handed over only when somebody waits, and nothing
    # here looks for a waiter while the notebook executes).
    engine.store.close()
    # The runbook's own submit() of this run must execute it there, not queue it again
    # (its kernel inherits this process's environment).
    os.environ[EXECUTES_ENV] = run_id
    try:
        done = resume(run_id, state=where)
    except OrbitsError as err:
        print(f"orbits-nb worker: run {run_id}: {err}", file=sys.stderr)
        return FAILED
    finally:
        os.environ.pop(EXECUTES_ENV, None)
    return ENDED if done.run_status in RUN_TERMINAL else FAILED


if __name__ == "__main__":
    sys.exit(main())
