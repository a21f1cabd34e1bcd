"""Completed runs are returned as recorded: ``define()`` is not executed again.

A run whose latest run event is ``run.succeeded`` (no reset since), started again with
the workflow class and arguments it was recorded for, returns its recorded result
without replaying a step. Anything else executes: a failed or cancelled run continues
(completed steps replay), a reset run re-executes from the reset step, and another
class under the same run id is refused.

The engine remembers the runs it saw complete, so starting one again in the same
process reads nothing at all, as long as the store says nobody else has written it
since (:meth:`~orbits_nb.core.storage.StoreHandle.write_mark`); otherwise it reads
the run's events, as a fresh process does.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from orbits_nb.core.serde import digest, dumps_record, loads_record, mask_json
from orbits_nb.core.state import Event, RunState
from orbits_nb.core.workflow import Workflow


@dataclass(frozen=True, slots=True)
class Completed:
    """What a handle needs of a run that completed: its result and replayed steps."""

    workflow: str
    args: dict[str, Any]
    #: The result as the store keeps it (masked JSON): decoded afresh for each handle,
    #: so it reads back exactly as from the store, and nobody's changes to it stick.
    recorded: str
    executions: int
    steps: tuple[str, ...]
    #: The store's write mark taken while the run's lease was held.
    mark: Any

    @classmethod
    def of(cls, state: RunState, mark: Any, args: dict[str, Any] | None = None
           ) -> Completed:
        steps = tuple(k for k, s in state.steps.items() if s.status == "succeeded")
        recorded = mask_json(dumps_record({"result": state.result}))
        return cls(state.workflow, state.args if args is None else args, recorded,
                   state.executions, steps, mark)

    @property
    def result(self) -> Any:
        return (loads_record(self.recorded) or {}).get("result")

    def matches(self, workflow: Workflow) -> bool:
        return self.workflow == workflow.type_name() and same_args(self.args,
                                                                   workflow.args)

    def state(self, run_id: str) -> RunState:
        """The run's state as far as a returned handle keeps it (no steps)."""
        return RunState(run_id, workflow=self.workflow, args=self.args, status="succeeded",
                        result=self.result, executions=self.executions)


def same_args(recorded: dict[str, Any], given: dict[str, Any]) -> bool:
    if recorded is given:
        return True
    try:
        return digest(recorded) == digest(given)
    except Exception:  # arguments that do not serialize alike: execute, as before
        return False


def completed_as_recorded(events: list[Event], state: RunState, workflow: Workflow) -> bool:
    """Whether ``events`` end with the run's success and ``workflow`` is what they
    were recorded for (class and arguments)."""
    for event in reversed(events):
        if event.step is None and event.kind != "run.meta":
            if event.kind != "run.succeeded":
                return False
            break
    else:
        return False
    return state.workflow == workflow.type_name() and same_args(state.args, workflow.args)


class CompletedRuns:
    """The runs this engine saw complete, the most recent ``size`` of them."""

    def __init__(self, size: int = 1024) -> None:
        self.size = size
        self._runs: OrderedDict[str, Completed] = OrderedDict()
        self._lock = threading.Lock()  # the engine loop remembers, callers look up

    def remember(self, run_id: str, completed: Completed) -> None:
        with self._lock:
            if completed.mark is None:
                self._runs.pop(run_id, None)
                return
            self._runs[run_id] = completed
            self._runs.move_to_end(run_id)
            while len(self._runs) > self.size:
                self._runs.popitem(last=False)

    def forget(self, run_id: str) -> None:
        """Drop ``run_id`` and the run it is nested in (a reset writes both)."""
        with self._lock:
            self._runs.pop(run_id, None)
            self._runs.pop(run_id.split("/", 1)[0], None)

    def lookup(self, run_id: str, workflow: Workflow, mark: Any) -> Completed | None:
        """The remembered completion of ``run_id`` if it still holds for ``workflow``
        and the store's ``mark`` says nobody else wrote since."""
        with self._lock:
            completed = self._runs.get(run_id)
        if completed is None or mark is None or completed.mark != mark:
            return None
        return completed if completed.matches(workflow) else None
