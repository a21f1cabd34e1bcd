"""A run that waits for a worker folds to ``queued``: submitted (``run.queued``) or
parked by the worker that executed it (``run.parked``), which ends its execution and
the attempts its pause left open as ``parked`` (not ``interrupted``)."""

from __future__ import annotations

import orbits_nb as ob
from orbits_nb.core.rows import Batch
from orbits_nb.core.state import Event, fold


def _events() -> list[Event]:
    return [
        Event("r", "run.created", data={"workflow": "m:W"}, ts=1.0),
        Event("r", "run.queued", data={"queue": "deploys", "key": "acme"}, ts=2.0),
        Event("r", "run.started", data={"host": "h", "pid": 1, "worker": "w1"}, ts=3.0),
        Event("r", "step.started", "poll", 1, {"name": "poll", "action": "m:Poll"}, ts=4.0),
        Event("r", "step.waiting", "poll", 1, {"bag": {"n": 1}}, ts=5.0),
        Event("r", "run.parked", data={"until": 65.0, "reason": "watcher",
                                       "watcher": "poll"}, ts=6.0),
    ]


def test_a_submitted_run_is_queued_in_its_queue() -> None:
    state = fold("r", _events()[:2])
    assert (state.status, state.queue, state.not_before, state.parked_for) == (
        "queued", "deploys", None, None)


def test_a_parked_run_is_queued_until_its_watcher_polls_again() -> None:
    state = fold("r", _events())
    assert state.status == "queued"
    assert state.not_before == 65.0
    assert state.parked_for == {"reason": "watcher", "watcher": "poll"}
    assert [(s.status, s.finished_at) for s in state.spans] == [("parked", 6.0)]
    step = state.steps["poll"]
    assert (step.status, step.bag) == ("waiting", {"n": 1})
    assert [(s.status, s.finished_at) for s in step.spans] == [("parked", 6.0)]


def test_a_parked_run_executes_again_without_an_interrupted_span() -> None:
    events = [*_events(),
              Event("r", "run.started", data={"host": "h", "pid": 2, "worker": "w2"}, ts=70.0),
              Event("r", "step.started", "poll", 2, {"resumed": True}, ts=70.5)]
    state = fold("r", events)
    assert (state.status, state.not_before, state.parked_for) == ("running", None, None)
    assert [s.status for s in state.spans] == ["parked", "running"]
    assert [s.status for s in state.steps["poll"].spans] == ["parked", "running"]


def test_the_history_tables_say_queued_and_parked_as_the_fold_does() -> None:
    store = ob.DuckDBStore(":memory:")
    store.write(Batch(events=_events()))
    assert store.fetch("SELECT status FROM runs WHERE run_id = 'r'") == [("queued",)]
    assert store.fetch("SELECT status, epoch(finished_at) FROM executions") == [
        ("parked", 6.0)]
    assert store.fetch("SELECT status, epoch(finished_at) FROM attempts") == [
        ("parked", 6.0)]
