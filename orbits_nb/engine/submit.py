"""Submitting a run to a queue: recorded at once, executed by a worker."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from orbits_nb.core.errors import InvalidArgument, NondeterminismError
from orbits_nb.core.queue import Queue, check_queue_name
from orbits_nb.core.rows import QueuedRun
from orbits_nb.core.state import Event, fold
from orbits_nb.engine.run import Run
from orbits_nb.store.guard import check_run_id

if TYPE_CHECKING:
    from orbits_nb.core.workflow import Workflow
    from orbits_nb.engine.engine import Engine

#: Set by a worker that re-executes a runbook headlessly to execute run ``<run id>``
#: (a run the runbook submitted): there, submitting that run executes it in place,
#: instead of queueing it again and waiting for the worker that waits for it.
EXECUTES_ENV = "ORBITS_NB_EXECUTES_RUN"


def submit(engine: Engine, workflow: Workflow, *, queue: str | Queue = "default",
           key: str | None = None, run_id: str | None = None, fresh: bool = False,
           priority: int = 0) -> Run:
    """Record ``workflow``'s run as queued in ``queue`` and return its handle at once.

    The run id rules are those of ``start()``. A run that waits in a queue or executes
    already is returned as it is; a run that completed returns its recorded result as
    ``start()`` does; a failed or cancelled one is queued again (completed steps replay).
    In the runbook a worker re-executes to execute this run (``EXECUTES_ENV``), the run
    executes in place, as ``start()`` would.
    """
    from orbits_nb.engine.engine import run_id_for

    declared = queue if isinstance(queue, Queue) else None
    name = queue.name if isinstance(queue, Queue) else check_queue_name(queue)
    if key is not None and (not isinstance(key, str) or not key):
        raise InvalidArgument(f"submit(key=...) must be a non-empty string or None; got "
                              f"{key!r}", key=repr(key))
    if not isinstance(priority, int) or isinstance(priority, bool):
        raise InvalidArgument(f"submit(priority=...) must be a whole number; got "
                              f"{priority!r}")
    if run_id is not None and run_id != "":
        check_run_id(run_id)
    run_id = run_id or run_id_for(workflow, fresh)
    if os.environ.get(EXECUTES_ENV) == run_id:
        return engine.start(workflow, run_id=run_id)
    live = engine.active.get(run_id)
    if live is not None and not live.done:
        return live
    engine.writer.flush()
    state = fold(run_id, engine.store.load_run(run_id))
    if state.workflow and state.workflow != workflow.type_name():
        raise NondeterminismError(
            f"run {run_id!r} was recorded for {state.workflow}, not "
            f"{workflow.type_name()}", run_id=run_id, expected=state.workflow,
            actual=workflow.type_name(), hint="use another run_id or submit(fresh=True)")
    if state.status == "succeeded":
        return engine.start(workflow, run_id=run_id)
    events = []
    if not state.workflow:
        meta = {**engine.run_meta(), "queue": name, "key": key}
        events.append(Event(run_id, "run.created", data={
            "workflow": workflow.type_name(), "args": workflow.args, "parent_run_id": None,
            "parent_step": None, "meta": meta}))
    events.append(Event(run_id, "run.queued", data={"queue": name, "key": key}))
    engine.store.enqueue(QueuedRun(run_id, name, key, priority), events,
                         declared.row() if declared else None)
    return Run(engine, run_id, workflow=workflow)
