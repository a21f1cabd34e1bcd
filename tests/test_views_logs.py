"""The run-wide log view: lines interleaved by time, levels, attempts, filters, windows."""

from __future__ import annotations

from pathlib import Path

from test_timeline_flows import FanOut
from test_widgets import comms

__all__ = ["comms"]  # the fixture

import orbits_nb as ob
from orbits_nb.core.rows import LogLine
from orbits_nb.views.logview import Query, entries, level_of, run_entries, tail, window


def line(step: str, message: str, ts: float, stream: str = "stdout",
         attempt: int = 1) -> tuple[str, LogLine]:
    return step, LogLine("r", step, attempt, stream, message, ts)


def test_lines_of_every_step_interleave_by_time_with_level_step_and_attempt() -> None:
    got = entries([line("a", "a1", 1.0), line("a", "a2", 3.0),
                   line("b", "WARNING deploy: careful", 2.0, "log"),
                   line("b", "oops", 2.5, "stderr", attempt=2)],
                  {("a", 1): "interrupted"})
    assert [(e.step, e.message, e.level) for e in got] == [
        ("a", "a1", "stdout"), ("b", "WARNING deploy: careful", "warning"),
        ("b", "oops", "stderr"), ("a", "a2", "stdout")]
    shown = [e.as_dict(i) for i, e in enumerate(got)]
    assert shown[0]["where"] == "a #1 (interrupted)"  # never mixed into the next attempt
    assert shown[2]["where"] == "b #2"


def test_levels_of_records_and_streams() -> None:
    assert level_of(LogLine("r", "s", 1, "log", "ERROR x: bad")) == "error"
    assert level_of(LogLine("r", "s", 1, "log", "no level here")) == "info"
    assert level_of(LogLine("r", "s", 1, "stderr", "e")) == "stderr"


def test_filters_and_a_window_over_fifty_thousand_lines() -> None:
    lines = [line(f"s{i % 50}", f"{'ERROR x: ' if i % 1000 == 0 else ''}line {i}",
                  float(i), "log" if i % 1000 == 0 else "stdout") for i in range(50_000)]
    every = entries(lines)
    tail_window = window(every, Query())
    assert len(tail_window["lines"]) == 200 and tail_window["matched"] == 50_000
    assert tail_window["lines"][-1]["message"] == "line 49999"
    assert tail_window["following"]
    errors = window(every, Query(levels=frozenset({"error"})))
    assert errors["matched"] == 50 and {x["level"] for x in errors["lines"]} == {"error"}
    one = window(every, Query(step="s7", text="LINE 4", offset=0, size=10))
    assert [x["message"] for x in one["lines"]][:2] == ["line 407", "line 457"]
    assert all(x["step"] == "s7" for x in one["lines"]) and len(one["lines"]) == 10
    assert not one["following"] and one["first"] == 0
    assert "s7" in one["steps"] and one["levels"] == ["stdout", "error"]
    assert Query.of({"levels": ["bogus", "stderr"], "offset": "x", "size": 10**9}) == Query(
        levels=frozenset({"stderr"}))


def test_a_real_run_logs_every_step_and_the_report_shows_the_last_lines(
        tmp_path: Path) -> None:
    engine = ob.Engine(tmp_path / "state.duckdb")
    try:
        run = engine.start(FanOut(n=6, fail_every=3))
        run.wait(60)
        engine.writer.flush_for_read()
        every = run_entries(engine.store, run.run_id)
        text = run.logs()
        from orbits_nb.views.display import static_bundle

        page = static_bundle(run)["text/html"]
    finally:
        engine.close()
    steps = {e.step for e in every}
    assert {"prepare", "deploy-0", "deploy-5", "report"} <= steps
    assert {"stdout", "info", "error"} <= {e.level for e in every}
    assert [e.ts for e in every] == sorted(e.ts for e in every)
    assert "[deploy-2] deploying 2" in text  # run.logs() is unchanged
    shown, total = tail(every, 5)
    assert total == len(every) and len(shown) == 5
    assert 'class="orbits-nb-logs"' in page and "deploy 2 failed" in page


def test_a_nested_run_s_lines_carry_the_step_path(tmp_path: Path) -> None:
    from test_views_flows import DeployBackend

    engine = ob.Engine(tmp_path / "state.duckdb")
    try:
        run = engine.start(DeployBackend(client="acme", nested=True))
        run.wait(60)
        engine.writer.flush_for_read()
        every = run_entries(engine.store, run.run_id)
    finally:
        engine.close()
    assert {"nested/i1", "nested/i2", "git-create"} <= {e.step for e in every}
    only = window(every, Query(step="nested"))
    assert {x["step"] for x in only["lines"]} == {"nested/i1", "nested/i2"}


def test_the_monitor_sends_a_panel_only_while_it_is_shown_and_a_window_of_lines(
        engine: ob.Engine, comms: list) -> None:
    from test_widgets import frontend_sets

    from orbits_nb.views.monitor import Monitor

    run = engine.start(FanOut(n=40))
    run.wait(60)
    monitor = Monitor(run)
    assert monitor.timeline == {} and monitor.log_window == {}  # hidden: not computed
    frontend_sets(monitor, tab="timeline")
    rows = monitor.timeline["rows"]
    assert any(r["kind"] == "group" and r["size"] == 40 and r["collapsed"] for r in rows)
    frontend_sets(monitor, tab="logs", log_query={"size": 25})
    window_ = monitor.log_window
    assert len(window_["lines"]) == 25 and window_["total"] > 80  # 2 lines per deploy
    assert window_["following"] and window_["lines"][-1]["step"] == "report"
    frontend_sets(monitor, log_query={"step": "deploy-7", "offset": 0, "size": 25})
    assert {x["step"] for x in monitor.log_window["lines"]} == {"deploy-7"}


def test_the_feed_reads_the_last_lines_when_the_run_ends_and_again_when_it_runs(
        tmp_path: Path) -> None:
    from orbits_nb.views.logview import LogFeed

    engine = ob.Engine(tmp_path / "state.duckdb")
    try:
        run = engine.start(FanOut(n=2))
        run.wait(60)
        reads: list[int] = []
        feed = LogFeed(engine.store, run.run_id, lambda: reads.append(1))
        feed.read(live=True)
        feed.read(live=True)  # within the refresh interval: not read again
        assert len(reads) == 1
        feed.read(live=False)  # the run ended meanwhile: its last lines, right away
        feed.read(live=False)
        assert len(reads) == 2
        feed._read_at = -1e9  # a retry: live again, and read again
        feed.read(live=True)
        assert len(reads) == 3
    finally:
        engine.close()
