"""Render time of a 500-step run's diagram: DOT text, then SVG with each renderer.

    .venv/bin/python bench/render_run.py [--steps 500] [--repeat 5]

Prints the median of ``--repeat`` runs for: building the DOT text (full and condensed
as the monitor draws it), and laying it out to SVG with the system ``dot`` and with the
bundled graphviz-pure.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

from orbits_nb.core.dot import Picture, to_dot
from orbits_nb.core.state import RunState, StepState
from orbits_nb.views.svg import render_svg, renderer_name


def synthetic_run(steps: int) -> RunState:
    """Fan-outs of 10 parallel steps joined by one step, like a fleet deployment."""
    state = RunState("bench", workflow="bench:Fleet", status="running", created_at=0.0)
    last: list[str] = []
    pos = 0
    while pos < steps:
        width = min(10, steps - pos)
        batch = []
        for i in range(width):
            key = f"deploy-{pos}"
            status = "succeeded" if pos < steps * 0.6 else ("running" if pos < steps * 0.62
                                                             else "pending")
            state.steps[key] = StepState(key, name=key, pos=pos, action="bench:Deploy",
                                         parents=last if i == 0 else [], concurrent=i > 0,
                                         status=status, attempts=1, started_at=float(pos),
                                         finished_at=pos + 0.5 if status == "succeeded"
                                         else None)
            batch.append(key)
            pos += 1
        last = batch
    return state


def timed(function: Callable[[], object], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    picture = Picture(synthetic_run(args.steps))
    full = to_dot(picture, max_nodes=None)
    condensed = to_dot(picture)
    print(f"{args.steps}-step run: DOT {len(full) // 1024} KB full, "
          f"{len(condensed) // 1024} KB condensed ({condensed.count('class=')} nodes)")
    full_s = timed(lambda: to_dot(picture, max_nodes=None), args.repeat)
    condensed_s = timed(lambda: to_dot(picture), args.repeat)
    print(f"  DOT text, full       {full_s * 1000:8.1f} ms")
    print(f"  DOT text, condensed  {condensed_s * 1000:8.1f} ms")
    for mode in ("system", "bundled"):
        os.environ["ORBITS_NB_RENDERER"] = mode
        name = renderer_name()
        if name is None:
            print(f"  {mode:<8} renderer not available")
            continue
        svg = render_svg(full)
        for label, source in (("full", full), ("condensed", condensed)):
            took = timed(lambda source=source: render_svg(source), args.repeat)
            print(f"  SVG {label:<9} {name:<14} {took * 1000:8.1f} ms"
                  + (f"  ({len(svg) // 1024} KB)" if label == "full" else ""))


if __name__ == "__main__":
    main()
