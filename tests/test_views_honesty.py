"""What the monitor and the static report say about time, counts and executions is true.

A replay keeps the work's recorded duration, the timer counts every execution's work
and never goes back, a count never claims completion while the run can add steps, an
execution whose process went away is called interrupted.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from test_views_flows import DeployBackend
from test_widgets import comms

__all__ = ["comms"]  # the fixture

import orbits_nb as ob
from orbits_nb.core.state import Event, RunState, StepState, fold
from orbits_nb.views import model
from orbits_nb.views.snapshot import recorded_replays
from orbits_nb.views.status import GONE, HERE, RunView


def _events(*specs: tuple[float, str, str | None, int | None, dict]) -> list[Event]:
    return [Event("r", kind, step, attempt, data, ts=ts, seq=i + 1)
            for i, (ts, kind, step, attempt, data) in enumerate(specs)]


FIRST = (
    (0.0, "run.created", None, None, {"workflow": "m:W"}),
    (1.0, "run.started", None, None, {"host": "h", "pid": 1}),
    (1.0, "step.started", "a", 1, {"action": "m:A", "pos": 0}),
    (4.0, "step.succeeded", "a", 1, {"result": 1}),
    (4.0, "step.started", "b", 1, {"action": "m:B", "pos": 1}),
    (4.5, "step.failed", "b", 1, {"error": {"type": "E", "message": "boom"}}),
    (4.5, "run.failed", None, None, {"error": {"type": "E", "message": "boom"}}),
)
SECOND = (
    (100.0, "run.started", None, None, {"host": "h", "pid": 2}),
    (100.0, "step.started", "b", 1, {"action": "m:B", "pos": 1}),
    (100.25, "step.succeeded", "b", 1, {"result": 2}),
    (100.25, "run.succeeded", None, None, {"result": 2}),
)


def replayed_view() -> RunView:
    state = fold("r", _events(*FIRST, *SECOND))
    return RunView(state, recorded_replays(state), recorded_status=state.status)


def test_a_replayed_step_says_replayed_with_its_recorded_duration() -> None:
    view = replayed_view()
    row = {r["step"]: r for r in model.rows(view)}["a"]
    assert row["status"] == "replayed" and row["replayed"]
    assert row["duration"] == 3.0  # the work as it was done, never 0 ms


def test_the_header_counts_the_work_of_every_execution_and_names_each() -> None:
    head = model.header(replayed_view())
    assert [(s["execution"], s["status"]) for s in head["execution_spans"]] == [
        (1, "failed"), (2, "succeeded")]
    assert model.work_seconds(head, 1e9) == pytest.approx(3.75)
    text = model.progress_text(head)
    assert "3.8 s" in text and "250 ms" not in text
    assert "execution 2 of 2 (1 failed, 2 succeeded)" in text
    assert head["had_failures"]


def test_an_execution_whose_process_is_gone_is_interrupted_and_its_clock_stands() -> None:
    events = _events(*FIRST[:3], (2.0, "step.waiting", "a", 1, {"bag": {}}))
    state = fold("r", events)
    view = RunView(state, recorded_status="running", where=GONE)
    head = model.header(view)
    assert [s["status"] for s in head["execution_spans"]] == ["interrupted"]
    assert head["open_since"] is None
    assert model.work_seconds(head, 10.0) == model.work_seconds(head, 1e6) == 1.0


def test_the_timer_never_goes_backwards_over_a_sequence_of_snapshots() -> None:
    """Snapshots as the monitor takes them while a run fails, is retried and ends."""
    everything = [*FIRST, *SECOND]
    clock = model.Clock()
    shown: list[float] = []
    for cut in range(2, len(everything) + 1):
        state = fold("r", _events(*everything[:cut]))
        view = RunView(state, recorded_replays(state), recorded_status=state.status,
                       where=HERE if state.status == "running" else "")
        head = model.header(view)
        now = everything[cut - 1][0]
        raw = model.work_seconds(head, now)
        shown.append(clock.shown(head, now))
        # Without the clamp, too: a new execution never restarts the clock.
        assert raw >= (shown[-2] if len(shown) > 1 else 0.0) - 1e-9
    assert shown == sorted(shown)
    assert shown[-1] == pytest.approx(3.75)
    # A later snapshot carrying an earlier kernel time cannot make it go back.
    head = model.header(RunView(fold("r", _events(*FIRST[:3])), where=HERE,
                                recorded_status="running"))
    assert clock.shown(head, 50.0) == 49.0
    assert clock.shown(head, 20.0) == 49.0


def running(*keys_done: str, previous: RunState | None = None) -> dict[str, object]:
    state = RunState("r", workflow="m:W", status="running", started_at=1.0, executions=1)
    for pos, key in enumerate(keys_done):
        state.steps[key] = StepState(key, name=key, pos=pos, action="m:A",
                                     status="succeeded", started_at=1.0, finished_at=2.0)
    return model.header(RunView(state, previous=previous, recorded_status="running",
                                where=HERE))


def test_counts_never_claim_completion_while_the_run_runs() -> None:
    first = running("a", "b")
    assert model.count_text(first) == "2 steps done · total unknown (first run)"
    before = RunState("p", workflow="m:W", status="succeeded")
    before.steps = {k: StepState(k, pos=i) for i, k in enumerate("ab")}
    again = running("a", "b", previous=before)
    assert model.count_text(again) == "2/~3 steps done (estimate)"
    assert again["shown_total"] > again["done"]
    ended = model.header(replayed_view())
    assert model.count_text(ended) == "2/2 steps done"
    # About to execute again here (a retry starting): its steps are known, not final.
    view = replayed_view()
    view.where = HERE
    assert model.count_text(model.header(view)) == "2/~3 steps done (estimate)"


def test_a_notice_about_a_retry_goes_once_the_run_ended_after_the_press() -> None:
    notice = {"level": "success", "text": "retrying: …", "at": 50.0,
              "until": ["failed", "pending", "running", "succeeded"]}
    assert model.stale_notice(notice, {"status": "succeeded", "finished_at": 60.0,
                                 "terminal": True})
    assert not model.stale_notice(notice, {"status": "running", "finished_at": None,
                                     "terminal": False})
    # said after the run ended (e.g. why a retry could not start): kept
    assert not model.stale_notice({**notice, "at": 70.0}, {"status": "succeeded",
                                                     "finished_at": 60.0, "terminal": True})


def test_another_process_shows_the_replay_with_recorded_durations(tmp_path: Path) -> None:
    """The static report of a retried run, drawn by a process that did not execute it."""
    fix = tmp_path / "fixed"
    state_file = tmp_path / "state.duckdb"
    engine = ob.Engine(state_file)
    run = engine.start(DeployBackend(client="acme", flaky=str(fix)))
    with pytest.raises(ob.StepFailed):
        run.wait(30)
    fix.touch()
    run.retry().wait(30)
    engine.close()
    other = ob.Engine(state_file)
    try:
        from orbits_nb.views.display import static_bundle

        page = static_bundle(other.get_run(run.run_id))["text/html"]
        state = other.get_run(run.run_id).state()
    finally:
        other.close()
    git = state.steps["git-create"]
    assert git.duration and git.duration > 0
    row = re.search(r'data-step="git-create".*?</tr>', page, re.S)
    assert row, page[:500]
    assert "replayed" in row.group(0)
    assert "0 ms" not in row.group(0) or git.duration < 0.0005
    assert "execution 2 of 2" in page


def test_the_terminal_summary_of_a_replayed_run_counts_every_execution(
        tmp_path: Path) -> None:
    import io

    from orbits_nb.engine.progress import TerminalProgress

    fix = tmp_path / "fixed"
    engine = ob.Engine(tmp_path / "state.duckdb")
    try:
        run = engine.start(DeployBackend(client="acme", flaky=str(fix)))
        with pytest.raises(ob.StepFailed):
            run.wait(30)
        fix.touch()
        again = run.retry()
        again.wait(30)
        state = again.state()
        progress = TerminalProgress(again, io.StringIO(), tty=False)
        summary = progress._summary(state, [])
    finally:
        engine.close()
    assert state.duration is not None and len(state.spans) == 2
    took = re.search(r"succeeded in ([\d.]+) (ms|s)", summary)
    assert took, summary
    value = float(took.group(1)) / (1000 if took.group(2) == "ms" else 1)
    assert value == pytest.approx(state.duration, abs=0.06)
    assert value >= state.spans[0].duration()


def test_the_inspector_names_an_attempt_closed_by_a_takeover_interrupted() -> None:
    from orbits_nb.views.inspector import _attempts

    events = _events(
        (0.0, "run.created", None, None, {"workflow": "m:W"}),
        (1.0, "run.started", None, None, {"host": "h", "pid": 1}),
        (1.0, "step.started", "a", 1, {"action": "m:A"}),
        (2.0, "step.waiting", "a", 1, {"bag": {}}),
        (60.0, "run.started", None, None, {"host": "h", "pid": 2}),
        (60.0, "step.started", "a", 2, {"resumed": True}),
        (61.0, "step.succeeded", "a", 2, {"result": 1}),
    )
    step = fold("r", events).steps["a"]
    history = _attempts(events, "a", step.spans)
    assert [(a["attempt"], a["status"], a["execution"]) for a in history] == [
        (1, "interrupted", 1), (2, "succeeded", 2)]


def test_a_drifted_step_says_so_in_the_table_and_the_report() -> None:
    from orbits_nb.views.graph import Diagram
    from orbits_nb.views.html import run_html

    view = replayed_view()
    view.drifted = frozenset({"b"})
    rows = {r["step"]: r for r in model.rows(view)}
    assert rows["b"]["drifted"] and not rows["a"]["drifted"]
    page = run_html(view, Diagram("digraph {}", None, "no renderer"))
    row = re.search(r'data-step="b".*?</tr>', page, re.S)
    assert row and "drifted since" in row.group(0)


def test_the_inspector_labels_lines_by_attempt_when_there_are_several() -> None:
    from types import SimpleNamespace

    from orbits_nb.core.rows import LogLine
    from orbits_nb.views.inspector import _logs

    def run_with(*lines: LogLine) -> Any:
        store = SimpleNamespace(logs=lambda _run_id, _step: list(lines))
        return SimpleNamespace(engine=SimpleNamespace(store=store))

    once = run_with(LogLine("r", "a", 1, "stdout", "hello", 1.0))
    assert _logs(once, "r", "a")["logs"] == "hello"  # one attempt: nothing to tell apart
    twice = run_with(LogLine("r", "a", 1, "stdout", "first try", 1.0),
                     LogLine("r", "a", 2, "stdout", "second try", 2.0),
                     LogLine("r", "a", 1, "stderr", "late line of the first", 3.0))
    assert _logs(twice, "r", "a")["logs"].splitlines() == [
        "#1 first try", "#2 second try", "#1 stderr: late line of the first"]


def test_the_retry_notice_is_gone_once_the_retried_run_succeeded(
        engine: ob.Engine, comms: list, tmp_path: Path) -> None:
    from polling import until

    from orbits_nb.views.monitor import Monitor

    fix = tmp_path / "fixed"
    run = engine.start(DeployBackend(client="acme", flaky=str(fix)))
    with pytest.raises(ob.StepFailed):
        run.wait(30)
    monitor = Monitor(run)
    fix.touch()
    monitor.act("retry")
    until(lambda: monitor.refresh() is False and monitor.header["status"] == "succeeded")
    monitor.refresh()
    assert monitor.notice == {}
    assert "execution 2 of 2" in model.progress_text(monitor.header)
