"""``run.graph()``: the run's diagram as a ``graphviz.Digraph`` that always displays.

``graphviz.Digraph`` draws itself with the system ``dot`` program and fails the cell
when there is none; :class:`RunDigraph` draws with :func:`orbits_nb.views.svg.render_svg`
(system ``dot`` or the bundled graphviz-pure) and, when neither works, shows its DOT
source with a one-line hint instead of raising.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import graphviz

from orbits_nb.core.dot import Picture, dot_parts, to_dot
from orbits_nb.views.status import run_status
from orbits_nb.views.svg import SvgRenderError, render_svg

if TYPE_CHECKING:
    from orbits_nb.engine.run import Run

HINT = ("orbits_nb: no Graphviz renderer here, showing the DOT source; "
        "pip install graphviz-pure (or apt-get install graphviz) to draw it")


@dataclass
class Diagram:
    """A rendered diagram, or the DOT source and why it could not be drawn."""

    dot: str
    svg: str | None
    problem: str = ""
    seconds: float = 0.0


def draw(dot: str) -> Diagram:
    """Render ``dot`` to SVG; never raises (the problem is kept for display)."""
    started = time.perf_counter()
    try:
        svg = render_svg(dot)
    except (SvgRenderError, ValueError, OSError) as err:
        return Diagram(dot, None, str(err).splitlines()[0] if str(err) else HINT,
                       time.perf_counter() - started)
    return Diagram(dot, svg, "", time.perf_counter() - started)


class Drawer:
    """Draws a live run's diagram only when its DOT changed, and no more often than
    its cost allows (a big diagram costs more to lay out and to ship)."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.groups: dict[str, list[str]] = {}
        #: The DOT changed but was drawn too recently: draw again on a later look.
        self.pending = False
        self._digest = ""
        self._drawn_at = 0.0
        self._every = interval

    def draw(self, picture: Picture, force: bool, max_nodes: int | None) -> Diagram | None:
        """The new diagram, or None when there is nothing new to draw yet."""
        parts = dot_parts(picture, max_nodes=max_nodes)
        source = parts.source()
        digest = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()
        self.pending = False
        if digest == self._digest:
            return None
        if not force and time.monotonic() - self._drawn_at < self._every:
            self.pending = True
            return None
        diagram = draw(source)
        self._digest, self._drawn_at, self.groups = digest, time.monotonic(), parts.groups
        self._every = max(self.interval, 4 * diagram.seconds, len(source) / 200_000)
        return diagram


def picture_dot(picture: Picture, *, title: bool = False, rankdir: str = "TB",
                max_nodes: int | None = 150) -> str:
    state = picture.state
    label = f"{state.workflow.rsplit(':', 1)[-1]} · {state.run_id} · {run_status(picture)}"
    return to_dot(picture, title=label if title else None, rankdir=rankdir,
                  max_nodes=max_nodes)


class RunDigraph(graphviz.Digraph):  # type: ignore[misc]
    """A ``graphviz.Digraph`` that renders without system Graphviz, or shows its source."""

    def _repr_image_svg_xml(self) -> str:
        return render_svg(str(self.source))

    def svg(self) -> str:
        """The diagram as SVG text (raises if no renderer is available)."""
        return render_svg(str(self.source))

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None,
                          **_: Any) -> dict[str, str]:
        diagram = draw(str(self.source))
        if diagram.svg is None:
            return {"text/plain": f"{HINT} ({diagram.problem})\n{self.source}"}
        return {"image/svg+xml": diagram.svg,
                "text/plain": f"<diagram of {self.name}: {self.source.count('->')} edges>"}


def run_graph(run: Run, *, rankdir: str = "TB", title: bool = True,
              max_nodes: int | None = 150, previous: bool = True) -> RunDigraph:
    """The diagram of ``run`` as a :class:`RunDigraph` (see ``Run.graph``)."""
    from orbits_nb.views.snapshot import picture_of

    picture = picture_of(run, previous=previous)
    state = picture.state
    label = f"{state.workflow.rsplit(':', 1)[-1]} · {state.run_id} · {run_status(picture)}"
    parts = dot_parts(picture, title=label if title else None, rankdir=rankdir,
                      max_nodes=max_nodes)
    return RunDigraph(name=parts.name, graph_attr=parts.graph_attr,
                      node_attr=parts.node_attr, edge_attr=parts.edge_attr,
                      body=[line + "\n" for line in parts.body])
