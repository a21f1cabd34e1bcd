"""Attempts and executions as they were executed, folded from events."""

from __future__ import annotations

from orbits_nb.core.state import Event, fold


def _events(*specs: tuple[float, str, str | None, int | None, dict]) -> list[Event]:
    return [Event("r", kind, step, attempt, data, ts=ts, seq=i + 1)
            for i, (ts, kind, step, attempt, data) in enumerate(specs)]


def test_replay_keeps_the_work_duration_and_marks_the_step_replayed() -> None:
    events = _events(
        (0.0, "run.created", None, None, {"workflow": "m:W"}),
        (1.0, "run.started", None, None, {"host": "h", "pid": 1}),
        (1.0, "step.started", "a", 1, {"action": "m:A"}),
        (4.0, "step.succeeded", "a", 1, {"result": 1}),
        (4.5, "run.succeeded", None, None, {"result": 1}),
        (100.0, "run.started", None, None, {"host": "h", "pid": 2}),
        (100.25, "run.succeeded", None, None, {"result": 1}),
    )
    state = fold("r", events)
    step = state.steps["a"]
    assert step.duration == 3.0
    assert step.replayed_in(2) and not step.replayed_in(1)
    assert [(s.execution, s.status, s.duration()) for s in state.spans] == [
        (1, "succeeded", 3.5), (2, "succeeded", 0.25)]
    assert state.duration == 3.75
    assert not state.had_failures


def test_a_takeover_closes_the_open_attempt_as_interrupted_at_the_last_record() -> None:
    events = _events(
        (0.0, "run.created", None, None, {"workflow": "m:W"}),
        (1.0, "run.started", None, None, {"host": "h", "pid": 1}),
        (1.0, "step.started", "a", 1, {"action": "m:A"}),
        (2.0, "step.waiting", "a", 1, {"bag": {}}),
        # the kernel dies at 2.0; nobody executes the step until 60.0
        (60.0, "run.started", None, None, {"host": "h", "pid": 2}),
        (60.0, "step.started", "a", 2, {"resumed": True}),
        (61.0, "step.succeeded", "a", 2, {"result": 1}),
        (61.0, "run.succeeded", None, None, {"result": 1}),
    )
    state = fold("r", events)
    spans = state.steps["a"].spans
    assert [(s.attempt, s.execution, s.status, s.started_at, s.finished_at)
            for s in spans] == [(1, 1, "interrupted", 1.0, 2.0), (2, 2, "succeeded", 60.0, 61.0)]
    assert state.steps["a"].duration == 2.0
    assert [s.status for s in state.spans] == ["interrupted", "succeeded"]


def test_a_failure_fixed_later_is_still_a_run_that_had_failures() -> None:
    events = _events(
        (0.0, "run.created", None, None, {"workflow": "m:W"}),
        (1.0, "run.started", None, None, {}),
        (1.0, "step.started", "a", 1, {"action": "m:A"}),
        (2.0, "step.retrying", "a", 1, {"error": {"type": "E"}}),
        (3.0, "step.started", "a", 2, {}),
        (4.0, "step.succeeded", "a", 2, {"result": 1}),
        (4.0, "run.succeeded", None, None, {}),
    )
    state = fold("r", events)
    assert state.status == "succeeded" and state.had_failures
    assert [s.status for s in state.steps["a"].spans] == ["retrying", "succeeded"]
    assert state.steps["a"].duration == 2.0


def test_a_cancel_request_stands_until_the_run_ends() -> None:
    events = _events(
        (0.0, "run.created", None, None, {"workflow": "m:W"}),
        (1.0, "run.started", None, None, {}),
        (2.0, "run.cancel_requested", None, None, {"by": "ann", "via": "cli"}),
    )
    state = fold("r", events)
    assert state.cancel_requested == {"by": "ann", "via": "cli"}
    events.append(Event("r", "run.started", ts=3.0, seq=4))
    assert fold("r", events).cancel_requested is not None  # a takeover still cancels
    events.append(Event("r", "run.cancelled", ts=4.0, seq=5))
    assert fold("r", events).cancel_requested is None
