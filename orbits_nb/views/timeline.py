"""The timeline of a run: one row per step, one bar per attempt, on a time axis.

Pure layout, drawn by the static report (:mod:`orbits_nb.views.timeline_svg`) and by
the monitor widget (from :func:`as_data`). Rows are the run itself (its executions,
and the queue wait before the first one), then each step in order, nested workflows
indented under the step that runs them. Each attempt is a bar coloured by how it
ended; the time it spent waiting (a watcher, an approval, a durable sleep) is a part
of its bar of its own; retries are consecutive bars on the step's row; a replayed
step keeps the bars of the execution that did the work, marked replayed.

A fan-out (steps started together after the same parents) of :data:`GROUP_MIN` or
more steps becomes a group: a summary row (first start to last end, counts by state)
with the members under it, collapsed by default when there are more than
:data:`COLLAPSE_OVER` of them, so a 200-way fan-out is one readable row, not a strip.

>>> from orbits_nb.core.state import RunState, StepState, AttemptSpan
>>> state = RunState("r", created_at=0.0, status="succeeded")
>>> state.steps["a"] = StepState("a", status="succeeded", started_at=1.0, finished_at=3.0,
...                              spans=[AttemptSpan(1, 1, 1.0, 3.0, "succeeded")])
>>> [r.label for r in layout(Picture(state)).rows]
['run', 'a']
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from orbits_nb.core.dot import Picture, display_status, short_action
from orbits_nb.core.state import RunState, StepState

#: Fewest steps sharing their parents that are drawn as a group.
GROUP_MIN = 4
#: Groups with more members than this start collapsed.
COLLAPSE_OVER = 16
_MAX_DEPTH = 8


@dataclass
class Bar:
    """A stretch of time on a row. ``end`` None: still open (drawn up to now)."""

    start: float
    end: float | None
    status: str
    #: attempt | waiting | execution | queue | summary
    kind: str = "attempt"
    attempt: int = 0
    execution: int = 0
    replayed: bool = False
    label: str = ""


@dataclass
class Row:
    """One line of the timeline: the run, a step, or a fan-out group's summary."""

    id: str
    label: str
    kind: str  # run | step | group
    depth: int = 0
    status: str = ""
    bars: list[Bar] = field(default_factory=list)
    #: The group this row belongs to ("" for none); a group row's own id for itself.
    group: str = ""
    #: Group rows: members by display state, and whether it starts collapsed.
    counts: dict[str, int] = field(default_factory=dict)
    size: int = 0
    collapsed: bool = False


@dataclass
class Layout:
    """Rows and the time axis: ``t0``..``t1`` (kernel clock) with labelled ticks."""

    t0: float
    t1: float
    rows: list[Row]
    ticks: list[tuple[float, str]]
    live: bool = False

    def x(self, ts: float, width: float) -> float:
        """Where ``ts`` falls on an axis ``width`` wide."""
        span = max(self.t1 - self.t0, 1e-9)
        return max(0.0, min(width, (ts - self.t0) / span * width))

    def visible(self) -> list[Row]:
        """The rows shown with each group as it starts (collapsed or not)."""
        closed = {r.id for r in self.rows if r.kind == "group" and r.collapsed}
        return [r for r in self.rows if r.kind == "group" or r.group not in closed]


def layout(picture: Picture, now: float | None = None) -> Layout:
    """The timeline of ``picture`` (its nested runs included); the axis of a live run
    reaches ``now`` when given, else the last recorded end (a live view extends it)."""
    rows = [_run_row(picture.state)]
    _step_rows(picture, "", 0, rows)
    live = any(b.end is None for r in rows for b in r.bars)
    starts = [b.start for r in rows for b in r.bars]
    ends = [b.end for r in rows for b in r.bars if b.end is not None]
    t0 = min(starts) if starts else (picture.state.created_at or 0.0)
    t1 = max([*ends, *([now] if live and now is not None else [])], default=t0)
    t1 = max(t1, t0 + 1e-3)
    return Layout(t0, t1, rows, ticks(t0, t1), live)


def _run_row(state: RunState) -> Row:
    row = Row("#run", "run", "run", status=state.status)
    first = state.spans[0].started_at if state.spans else state.started_at
    if state.created_at is not None and first is not None and first > state.created_at:
        row.bars.append(Bar(state.created_at, first, "queued", "queue",
                            label="queued (created, not started)"))
    for span in state.spans:
        row.bars.append(Bar(span.started_at, span.finished_at, span.status, "execution",
                            execution=span.execution,
                            label=f"execution {span.execution}: {span.status}"))
    return row


def drawn_parents(state: RunState) -> dict[str, tuple[str, ...]]:
    """Each step's parents as drawn: steps started alongside another (``gather``)
    record none and share its parents (as in :mod:`orbits_nb.core.dot`)."""
    out: dict[str, tuple[str, ...]] = {}
    last: tuple[str, ...] = ()
    for step in state.ordered_steps():
        last = tuple(step.parents) if step.parents or not step.concurrent else last
        out[step.key] = last
    return out


def _fanouts(state: RunState) -> dict[str, list[StepState]]:
    """Step key of each group's first member -> its members (fan-outs only)."""
    parents = drawn_parents(state)
    by_parents: dict[tuple[str, ...], list[StepState]] = {}
    for step in state.ordered_steps():
        by_parents.setdefault(parents[step.key], []).append(step)
    # Started together: every member but the first says it began alongside another.
    return {members[0].key: members for members in by_parents.values()
            if len(members) >= GROUP_MIN
            and sum(s.concurrent for s in members[1:]) >= len(members) - 1}


def _step_rows(picture: Picture, prefix: str, depth: int, out: list[Row]) -> None:
    state = picture.state
    groups = _fanouts(state)
    member_of = {s.key: first for first, members in groups.items() for s in members}
    placed: set[str] = set()
    for step in state.ordered_steps():
        if step.key in placed:
            continue
        first = member_of.get(step.key)
        if first is None:
            _one_step(picture, step, prefix, depth, "", out)
            continue
        members = groups[first]
        group_id = f"#group:{prefix}{first}"
        out.append(_group_row(picture, members, group_id, depth))
        for member in members:
            placed.add(member.key)
            _one_step(picture, member, prefix, depth + 1, group_id, out)


def _one_step(picture: Picture, step: StepState, prefix: str, depth: int, group: str,
              out: list[Row]) -> None:
    shown = display_status(step, picture.replayed)
    path = prefix + step.key
    out.append(Row(path, step.key, "step", depth, shown, step_bars(step, shown),
                   group=group))
    child = picture.children.get(step.key)
    if child is not None and depth < _MAX_DEPTH:
        rows: list[Row] = []
        _step_rows(child, path + "/", depth + 1, rows)
        for row in rows:
            row.group = row.group or group
        out.extend(rows)


def step_bars(step: StepState, shown: str) -> list[Bar]:
    """The step's attempts as bars, each split where it began waiting."""
    replayed = shown == "replayed"
    if not step.spans:
        if step.started_at is None:
            return []
        return [Bar(step.started_at, step.finished_at, shown, replayed=replayed,
                    attempt=step.attempts, label=f"{step.key}: {shown}")]
    bars = []
    for span in step.spans:
        label = f"{step.key} attempt {span.attempt}: {span.status}" + (
            f" (replayed from execution {span.execution})" if replayed else "")
        waited = span.waited_at
        if waited is not None and waited > span.started_at:
            bars.append(Bar(span.started_at, waited, "running", "attempt", span.attempt,
                            span.execution, replayed, label))
        if waited is not None:
            end_status = "waiting" if span.open else span.status
            bars.append(Bar(waited, span.finished_at, end_status, "waiting", span.attempt,
                            span.execution, replayed, label + " (waiting)"))
        else:
            bars.append(Bar(span.started_at, span.finished_at, span.status, "attempt",
                            span.attempt, span.execution, replayed, label))
    return bars


def _group_row(picture: Picture, members: list[StepState], group_id: str,
               depth: int) -> Row:
    counts: dict[str, int] = {}
    for step in members:
        shown = display_status(step, picture.replayed)
        counts[shown] = counts.get(shown, 0) + 1
    starts = [s.started_at for s in members if s.started_at is not None]
    ends = [s.finished_at for s in members]
    actions = {short_action(s.action) for s in members}
    name = actions.pop() if len(actions) == 1 else "steps"
    tally = ", ".join(f"{n} {'ok' if k == 'succeeded' else k}"
                      for k, n in sorted(counts.items(), key=lambda kv: -kv[1]))
    status = next((s for s in ("failed", "running", "retrying", "waiting", "pending")
                   if counts.get(s)), max(counts, key=lambda k: counts[k]))
    row = Row(group_id, f"{len(members)} x {name} ({tally})", "group", depth, status,
              group=group_id, counts=counts, size=len(members),
              collapsed=len(members) > COLLAPSE_OVER)
    if starts:
        end = None if any(e is None for e in ends) else max(e for e in ends if e)
        row.bars.append(Bar(min(starts), end, status, "summary", label=row.label))
    return row


_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400,
          21600, 43200, 86400]


def ticks(t0: float, t1: float, most: int = 8) -> list[tuple[float, str]]:
    """Round times from ``t0`` to ``t1``, labelled relative to ``t0``.

    >>> [label for _, label in ticks(0, 60)]
    ['0 s', '10 s', '20 s', '30 s', '40 s', '50 s', '60 s']
    """
    span = max(t1 - t0, 1e-3)
    if span < most:
        step = 10 ** math.floor(math.log10(span / most * 2))
        step = next(m * step for m in (1, 2, 5, 10) if span / (m * step) <= most)
    else:
        step = next((s for s in _STEPS if span / s <= most), _STEPS[-1])
    out = []
    n = 0
    while n * step <= span + 1e-9:
        out.append((t0 + n * step, _relative(n * step, step, span)))
        n += 1
    return out


def _relative(value: float, step: float, span: float) -> str:
    if step >= 3600:
        return f"{value / 3600:g} h"
    if step >= 60:
        return f"{value / 60:g} min"
    if span >= 1:
        return f"{round(value, 3):g} s"
    return f"{value * 1000:.0f} ms"


def as_data(lay: Layout) -> dict[str, Any]:
    """The layout as JSON for the widget (it draws each row and bar itself)."""
    return {"t0": lay.t0, "t1": lay.t1, "live": lay.live,
            "ticks": [[t, label] for t, label in lay.ticks],
            "rows": [asdict(row) for row in lay.rows]}
