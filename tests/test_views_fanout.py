"""A wide fan-out stays readable in the diagram: one node with counts, not a strip."""

from __future__ import annotations

import re

import pytest
from test_timeline import fanout_events

from orbits_nb.core.dot import Picture, dot_parts, to_dot
from orbits_nb.core.state import fold
from orbits_nb.views.graph import draw

#: The widest fan-out still drawn one node per step.
WIDEST_KEPT = 12


def width_pt(svg: str) -> float:
    match = re.search(r'<svg[^>]*width="([\d.]+)pt"', svg)
    assert match, svg[:300]
    return float(match.group(1))


@pytest.mark.parametrize("n", [16, 200])
def test_a_wide_fanout_is_one_node_with_counts_by_state(n: int) -> None:
    picture = Picture(fold("r", fanout_events(n)))
    parts = dot_parts(picture)
    source = parts.source()
    failed = n // 10
    label = f"{n} x Deploy ({n - failed} succeeded, {failed} failed)"
    assert label in source
    (name,) = [g for g in parts.groups if len(parts.groups[g]) == n]
    assert parts.groups[name] == [f"d{i}" for i in range(n)]
    line = next(x for x in parts.body if x.strip().startswith(f'"{name}"'))
    assert "st-failed" in line  # drawn in its most telling state
    assert '"d5" [' not in source and f'"prep" -> "{name}"' in source
    diagram = draw(source)
    if diagram.svg is not None:  # as wide as a few nodes, not as wide as n of them
        assert width_pt(diagram.svg) < 500


def test_a_narrow_fanout_keeps_one_node_per_step() -> None:
    source = to_dot(Picture(fold("r", fanout_events(WIDEST_KEPT))))
    assert all(f'"d{i}" [' in source for i in range(WIDEST_KEPT))
    assert " x Deploy" not in source
