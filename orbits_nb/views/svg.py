"""Turn Graphviz DOT source into SVG text that can be inlined in notebook HTML.

Two backends, tried in this order:

* ``system-dot``: the ``dot`` program on ``PATH`` (Debian/Ubuntu: ``apt-get install graphviz``).
* ``graphviz-pure``: the self-contained ``graphviz-pure`` program from the PyPI package of the
  same name (``pip install graphviz-pure``), a Rust port of Graphviz 16.1 that needs no system
  libraries. It is found through the installed package's metadata, so it works in a kernel whose
  ``PATH`` does not include the environment's ``bin`` directory.

``ORBITS_NB_RENDERER`` forces a path: ``system``, ``bundled`` or ``none`` (unset or ``auto``
means "system, else bundled").

Example::

    >>> from orbits_nb.views.svg import render_svg
    >>> render_svg("digraph { a -> b }").startswith("<svg")
    True
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "ENGINES",
    "ENV_VAR",
    "RenderFailed",
    "RendererUnavailable",
    "SvgRenderError",
    "render_svg",
    "renderer_name",
    "svg_or_none",
]

ENV_VAR = "ORBITS_NB_RENDERER"
ENGINES = frozenset({"dot", "neato", "fdp", "sfdp", "circo", "twopi", "osage", "patchwork"})

SYSTEM_DOT = "system-dot"
GRAPHVIZ_PURE = "graphviz-pure"

_MODES = ("auto", "system", "bundled", "none")
_PROBE_TIMEOUT_S = 10.0
_PROBE_DOT = b"digraph probe { a -> b }"
# Graphviz writes an XML declaration, a DOCTYPE and comments before <svg>; none of them is
# allowed (or useful) inside an HTML document, so they are cut off.
_PROLOG = re.compile(r"\A(?:\s+|<\?xml.*?\?>|<!DOCTYPE[^>]*>|<!--.*?-->)*", re.DOTALL)

_log = logging.getLogger(__name__)


class SvgRenderError(RuntimeError):
    """Base of the errors raised by :func:`render_svg`.

    ``renderer`` is the backend involved (``"system-dot"``, ``"graphviz-pure"`` or None) and
    ``detail`` what that backend printed on stderr, if anything.
    """

    def __init__(self, message: str, *, renderer: str | None = None, detail: str = "") -> None:
        super().__init__(message)
        self.renderer = renderer
        self.detail = detail


class RendererUnavailable(SvgRenderError):
    """No Graphviz backend can be used; the message says what to install."""


class RenderFailed(SvgRenderError):
    """The backend ran but rejected the DOT source (or timed out); the message includes why."""


@dataclass(frozen=True)
class _Backend:
    name: str
    program: str


# Only successful look-ups are kept: after `pip install graphviz-pure` in a running kernel the
# next call finds it without a restart. Keyed by PATH too, since that decides what `dot` is.
_found: dict[tuple[str, str], _Backend] = {}


def renderer_name() -> str | None:
    """Name the backend :func:`render_svg` would use: ``"system-dot"``, ``"graphviz-pure"``,
    or None when none works (or ``ORBITS_NB_RENDERER=none``).

    Raises ValueError if ``ORBITS_NB_RENDERER`` holds an unknown value.
    """
    backend = _backend(_mode())
    return None if backend is None else backend.name


def render_svg(dot: str, *, engine: str = "dot", timeout: float = 30.0) -> str:
    """Lay out ``dot`` with Graphviz and return the ``<svg>...</svg>`` element as text.

    ``engine`` is the Graphviz layout engine (one of :data:`ENGINES`); ``timeout`` bounds the
    layout in seconds, so a huge graph cannot hang a notebook cell.

    Raises RendererUnavailable when no backend is installed, RenderFailed when the backend
    rejects the source (its own message is included), ValueError for an unknown engine.

    Example::

        >>> svg = render_svg('digraph { a [style=filled, fillcolor=palegreen]; a -> b }')
        >>> "<title>a</title>" in svg
        True
    """
    if not isinstance(dot, str):
        raise TypeError(
            f"render_svg() expects DOT source text, got {type(dot).__name__}; "
            "for a graphviz.Digraph pass its .source"
        )
    if engine not in ENGINES:
        raise ValueError(f"unknown Graphviz engine {engine!r}; use one of {sorted(ENGINES)}")
    mode = _mode()
    backend = _backend(mode)
    if backend is None:
        raise RendererUnavailable(_unavailable_message(mode))
    return _strip_prolog(_run(backend, dot, engine, timeout))


def svg_or_none(dot: str, *, engine: str = "dot") -> str | None:
    """Like :func:`render_svg`, but return None instead of raising.

    For callers that draw a graph as a nicety and must never fail the notebook cell.
    """
    try:
        return render_svg(dot, engine=engine)
    except Exception:  # the contract is "never raises", whatever went wrong
        _log.debug("SVG rendering failed; returning None", exc_info=True)
        return None


def _mode() -> str:
    raw = os.environ.get(ENV_VAR, "").strip().lower()
    mode = raw or "auto"
    if mode not in _MODES:
        raise ValueError(
            f"{ENV_VAR}={os.environ[ENV_VAR]!r} is not understood; use one of {list(_MODES)}"
        )
    return mode


def _backend(mode: str) -> _Backend | None:
    if mode == "none":
        return None
    key = (mode, os.environ.get("PATH", ""))
    if key in _found:
        return _found[key]
    candidates: list[_Backend] = []
    if mode in ("auto", "system"):
        dot = shutil.which("dot")
        if dot is not None:
            candidates.append(_Backend(SYSTEM_DOT, dot))
    if mode in ("auto", "bundled"):
        bundled = _graphviz_pure_program()
        if bundled is not None:
            candidates.append(_Backend(GRAPHVIZ_PURE, bundled))
    for candidate in candidates:
        if _works(candidate):
            _found[key] = candidate
            return candidate
    return None


def _graphviz_pure_program() -> str | None:
    """Find the graphviz-pure executable installed for *this* interpreter.

    The wheel puts it in the environment's scripts directory, which a Jupyter kernel started by
    absolute path often does not have on PATH, so the package's file list is asked first.
    """
    try:
        files = importlib.metadata.distribution(GRAPHVIZ_PURE).files or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    for file in files:
        if file.name in ("graphviz-pure", "graphviz-pure.exe"):
            path = Path(file.locate()).resolve()
            if path.is_file() and os.access(path, os.X_OK):
                return str(path)
    return shutil.which(GRAPHVIZ_PURE)


def _works(backend: _Backend) -> bool:
    # A `dot` can be on PATH yet unusable (e.g. Debian's without its SVG plugin configured);
    # one tiny render tells, once per process.
    try:
        probe = subprocess.run(
            [backend.program, "-Tsvg"],
            input=_PROBE_DOT,
            capture_output=True,
            timeout=_PROBE_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        _log.debug("%s at %s does not run", backend.name, backend.program, exc_info=True)
        return False
    ok = probe.returncode == 0 and b"<svg" in probe.stdout
    if not ok:
        _log.debug("%s probe failed: %s", backend.name, probe.stderr.decode(errors="replace"))
    return ok


def _run(backend: _Backend, dot: str, engine: str, timeout: float) -> str:
    try:
        done = subprocess.run(
            [backend.program, "-Tsvg", f"-K{engine}"],
            input=dot.encode("utf-8"),
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise RenderFailed(
            f"{backend.name} did not finish laying out the graph within {timeout:g} s "
            f"(engine {engine!r}); simplify the graph or pass a larger timeout",
            renderer=backend.name,
        ) from exc
    except OSError as exc:
        # The program vanished since it was found (e.g. uninstalled): forget it.
        _found.clear()
        raise RendererUnavailable(
            f"{backend.name} at {backend.program} could not be started ({exc}); "
            "reinstall it or unset " + ENV_VAR,
            renderer=backend.name,
        ) from exc
    stderr = done.stderr.decode("utf-8", errors="replace").strip()
    svg = done.stdout.decode("utf-8", errors="replace")
    if done.returncode != 0 or "<svg" not in svg:
        raise RenderFailed(
            f"{backend.name} could not render the DOT source (exit {done.returncode}): "
            f"{stderr or 'no message'}",
            renderer=backend.name,
            detail=stderr,
        )
    return svg


def _strip_prolog(svg: str) -> str:
    match = _PROLOG.match(svg)
    return svg[match.end() :] if match else svg


def _unavailable_message(mode: str) -> str:
    if mode == "none":
        return f"SVG rendering is switched off by {ENV_VAR}=none; unset it to draw graphs."
    if mode == "system":
        return (
            f"{ENV_VAR}=system but no working Graphviz `dot` is on PATH; install it "
            "(apt-get install graphviz, brew install graphviz) or unset " + ENV_VAR
        )
    if mode == "bundled":
        return (
            f"{ENV_VAR}=bundled but graphviz-pure is not installed for this Python; "
            "pip install graphviz-pure"
        )
    return (
        "No Graphviz renderer found to draw this graph: pip install graphviz-pure "
        "(self-contained, no system packages) or install Graphviz's `dot` "
        "(apt-get install graphviz)."
    )
