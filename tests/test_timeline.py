"""The timeline layout (pure) and its SVG: rows, groups, bars, scale and ticks."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from test_timeline_flows import FanOut

import orbits_nb as ob
from orbits_nb.core.dot import Picture
from orbits_nb.core.state import Event, fold
from orbits_nb.views import timeline_svg as tsvg
from orbits_nb.views.snapshot import picture_of, recorded_replays
from orbits_nb.views.timeline import COLLAPSE_OVER, as_data, layout, ticks


def _events(*specs: tuple[float, str, str | None, int | None, dict]) -> list[Event]:
    return [Event("r", kind, step, attempt, data, ts=ts, seq=i + 1)
            for i, (ts, kind, step, attempt, data) in enumerate(specs)]


def fanout_events(n: int, start: float = 2.0) -> list[Event]:
    specs: list[tuple[float, str, str | None, int | None, dict]] = [
        (0.0, "run.created", None, None, {"workflow": "m:W"}),
        (1.0, "run.started", None, None, {}),
        (1.0, "step.started", "prep", 1, {"action": "m:Prep", "pos": 0}),
        (2.0, "step.succeeded", "prep", 1, {}),
    ]
    for i in range(n):
        specs.append((start + i * 0.01, "step.started", f"d{i}", 1, {
            "action": "m:Deploy", "pos": 1 + i, "parents": ["prep"] if i == 0 else [],
            "concurrent": i > 0}))
    for i in range(n):
        kind = "step.failed" if i % 10 == 9 else "step.succeeded"
        specs.append((5.0 + i * 0.01, kind, f"d{i}", 1, {}))
    return _events(*specs)


@pytest.mark.parametrize(("n", "collapsed"), [(16, False), (200, True)])
def test_a_fanout_is_one_group_with_a_summary_bar(n: int, collapsed: bool) -> None:
    lay = layout(Picture(fold("r", fanout_events(n))))
    groups = [r for r in lay.rows if r.kind == "group"]
    assert len(groups) == 1
    group = groups[0]
    assert group.size == n and group.collapsed is collapsed
    assert group.counts == {"succeeded": n - n // 10, "failed": n // 10}
    assert f"{n} x Deploy ({n - n // 10} ok, {n // 10} failed)" == group.label
    (summary,) = group.bars
    assert (summary.start, summary.end) == (2.0, pytest.approx(5.0 + (n - 1) * 0.01))
    members = [r for r in lay.rows if r.group == group.id and r.kind == "step"]
    assert len(members) == n and all(r.depth == 1 for r in members)
    visible = lay.visible()
    assert (len(visible) == 3) is collapsed  # run, prep, the group
    assert len(visible) <= COLLAPSE_OVER + 4


def test_rows_keep_their_height_however_many_there_are() -> None:
    """Never a thin strip: the SVG grows (and the report scrolls) instead."""
    lay = layout(Picture(fold("r", fanout_events(200))))
    small = tsvg.timeline_svg(lay)
    every = tsvg.timeline_svg(lay, expand=True)
    for svg, rows in ((small, 3), (every, len(lay.rows))):
        height = int(re.search(r'height="(\d+)"', svg).group(1))
        assert height == tsvg.AXIS + tsvg.ROW * rows + 6
        bars = re.findall(r'class="onb-tl-bar[^"]*"[^>]*height="(\d+)"', svg)
        assert bars and {int(h) for h in bars} == {tsvg.BAR}
    assert tsvg.BAR >= 12 and tsvg.ROW >= 18


def test_retries_are_consecutive_bars_on_the_steps_row_and_waiting_is_its_own() -> None:
    events = _events(
        (0.0, "run.created", None, None, {"workflow": "m:W"}),
        (3.0, "run.started", None, None, {}),
        (3.0, "step.started", "a", 1, {"action": "m:A"}),
        (4.0, "step.retrying", "a", 1, {"error": {"type": "E"}}),
        (5.0, "step.started", "a", 2, {}),
        (6.0, "step.succeeded", "a", 2, {}),
        (6.0, "step.started", "gate", 1, {"action": "m:Gate", "pos": 1}),
        (6.5, "step.waiting", "gate", 1, {"bag": {}}),
        (9.0, "step.succeeded", "gate", 1, {}),
    )
    lay = layout(Picture(fold("r", events)))
    rows = {r.id: r for r in lay.rows}
    assert [(b.attempt, b.status, b.start, b.end) for b in rows["a"].bars] == [
        (1, "retrying", 3.0, 4.0), (2, "succeeded", 5.0, 6.0)]
    assert [(b.kind, b.start, b.end) for b in rows["gate"].bars] == [
        ("attempt", 6.0, 6.5), ("waiting", 6.5, 9.0)]
    # The queue wait: created, nobody executing it until 3.0.
    assert [(b.kind, b.start, b.end) for b in rows["#run"].bars][0] == ("queue", 0.0, 3.0)
    svg = tsvg.timeline_svg(lay)
    assert "url(#onb-wait)" in svg and 'stroke-dasharray="3,2"' in svg
    assert "a attempt 1: retrying" in svg  # every bar says what it is in words


def test_a_replayed_step_keeps_its_bars_hatched_and_an_interrupted_one_is_dashed() -> None:
    events = _events(
        (0.0, "run.created", None, None, {"workflow": "m:W"}),
        (1.0, "run.started", None, None, {}),
        (1.0, "step.started", "a", 1, {"action": "m:A"}),
        (2.0, "step.succeeded", "a", 1, {}),
        (2.0, "step.started", "b", 1, {"action": "m:B", "pos": 1}),
        (2.5, "step.waiting", "b", 1, {"bag": {}}),
        (50.0, "run.started", None, None, {}),
        (50.0, "step.started", "b", 2, {}),
        (51.0, "step.succeeded", "b", 2, {}),
        (51.0, "run.succeeded", None, None, {}),
    )
    state = fold("r", events)
    lay = layout(Picture(state, recorded_replays(state)))
    rows = {r.id: r for r in lay.rows}
    assert rows["a"].status == "replayed"
    assert [(b.replayed, b.execution) for b in rows["a"].bars] == [(True, 1)]
    assert [b.status for b in rows["#run"].bars] == ["queued", "interrupted", "succeeded"]
    assert [b.status for b in rows["b"].bars] == ["running", "interrupted", "succeeded"]
    svg = tsvg.timeline_svg(lay)
    assert "url(#onb-hatch)" in svg and "replayed from execution 1" in svg


def test_ticks_are_round_and_span_the_axis() -> None:
    assert [label for _, label in ticks(0, 300)] == [
        "0 min", "1 min", "2 min", "3 min", "4 min", "5 min"]
    assert [label for _, label in ticks(10, 10.5)][:3] == ["0 ms", "100 ms", "200 ms"]
    for t0, t1 in ((0, 0.003), (5, 9), (0, 7200), (0, 3 * 86400)):
        marks = ticks(t0, t1)
        assert 2 <= len(marks) <= 9
        assert marks[0][0] == t0 and marks[-1][0] <= t1 + 1e-9
    lay = layout(Picture(fold("r", fanout_events(4))))
    assert lay.x(lay.t0, 100) == 0 and lay.x(lay.t1, 100) == 100


def test_a_real_200_way_fanout_and_its_static_report(tmp_path: Path) -> None:
    engine = ob.Engine(tmp_path / "state.duckdb")
    try:
        run = engine.start(FanOut(n=200, fail_every=10))
        assert run.wait(120) == 180
        picture = picture_of(run)
        lay = layout(picture)
        data = as_data(lay)
        from orbits_nb.views.display import static_bundle

        page = static_bundle(run)["text/html"]
    finally:
        engine.close()
    group = next(r for r in data["rows"] if r["kind"] == "group")
    assert group["label"] == "200 x Deploy (180 ok, 20 failed)" and group["collapsed"]
    assert [r["id"] for r in data["rows"] if r["kind"] != "step" or not r["group"]] == [
        "#run", "prepare", group["id"], "report"]
    assert "orbits-nb-timeline" in page and "orbits-nb-timeline-all" in page
    assert "max-height:720px;overflow:auto" in page


def test_a_step_failed_in_one_execution_and_run_again_keeps_both_attempts() -> None:
    events = _events(
        (0.0, "run.created", None, None, {"workflow": "m:W"}),
        (1.0, "run.started", None, None, {}),
        (1.0, "step.started", "a", 1, {"action": "m:A"}),
        (2.0, "step.failed", "a", 1, {"error": {"type": "E"}}),
        (2.0, "run.failed", None, None, {}),
        (10.0, "run.started", None, None, {}),
        (10.0, "step.started", "a", 2, {"action": "m:A"}),
        (12.0, "step.succeeded", "a", 2, {}),
        (12.0, "run.succeeded", None, None, {}),
    )
    lay = layout(Picture(fold("r", events)))
    row = next(r for r in lay.rows if r.id == "a")
    assert [(b.attempt, b.execution, b.status) for b in row.bars] == [
        (1, 1, "failed"), (2, 2, "succeeded")]
