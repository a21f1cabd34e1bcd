"""How a :class:`~orbits_nb.engine.run.Run` shows itself: one bundle for every viewer.

``text/plain`` for terminals, ``text/html`` (diagram and step table) for anything that
renders HTML without a kernel (papermill reports, GitHub, nbviewer, untrusted
notebooks), and the live monitor widget when a kernel with comms runs the code.
Nothing here may fail a cell: each richer part falls back to the plainer one.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orbits_nb.engine.run import Run

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
ENV_VAR = "ORBITS_NB_WIDGETS"
_log = logging.getLogger(__name__)


def has_widget_kernel() -> bool:
    """Whether this code runs in a Jupyter kernel that can open widget comms.

    Detected through ``sys.modules`` (nothing is imported to ask);
    ``ORBITS_NB_WIDGETS=0`` turns the widgets off (static output only).
    """
    if os.environ.get(ENV_VAR, "").strip().lower() in ("0", "off", "false", "no"):
        return False
    if "ipykernel" not in sys.modules:
        return False
    ipython = sys.modules.get("IPython")
    get_ipython = getattr(ipython, "get_ipython", None)
    shell = get_ipython() if get_ipython is not None else None
    return getattr(shell, "kernel", None) is not None


def static_bundle(run: Run) -> dict[str, Any]:
    """``text/plain`` and ``text/html`` of ``run`` as it is now."""
    from orbits_nb.views.graph import draw, picture_dot
    from orbits_nb.views.html import run_html
    from orbits_nb.views.snapshot import picture_of

    data: dict[str, Any] = {"text/plain": repr(run)}
    try:
        picture = picture_of(run)
        data["text/html"] = run_html(picture, draw(picture_dot(picture)),
                                     run.engine.writer.redact)
    except Exception:  # the text repr is still a useful picture
        _log.warning("could not render the HTML view of run %s", run.run_id, exc_info=True)
    return data


def mimebundle(run: Run, include: Any = None, exclude: Any = None,
               *, widget: bool | None = None) -> dict[str, Any]:
    """The display bundle of ``run`` (``Run._repr_mimebundle_``)."""
    data = static_bundle(run)
    if widget if widget is not None else has_widget_kernel():
        view = widget_view(run)
        if view is not None:
            data[WIDGET_MIME] = view
    if include:
        data = {k: v for k, v in data.items() if k in include}
    if exclude:
        data = {k: v for k, v in data.items() if k not in exclude}
    return data


def widget_view(run: Run) -> dict[str, Any] | None:
    try:
        from orbits_nb.views.monitor import Monitor

        monitor = Monitor.for_run(run)
    except Exception:  # e.g. anywidget missing: the static bundle still shows the run
        _log.warning("could not open the monitor widget of run %s", run.run_id,
                     exc_info=True)
        return None
    return {"version_major": 2, "version_minor": 0, "model_id": monitor.model_id}


def ipython_display(run: Run) -> None:
    """Display ``run``; once a live run ends, refresh its static HTML in the output.

    The refreshed bundle is what a papermill report keeps, so the saved notebook shows
    how the run ended, not how it looked when the cell ran.
    """
    from IPython.display import display

    live = not run.done and has_widget_kernel()
    bundle = mimebundle(run)
    if not live or WIDGET_MIME not in bundle:
        display(bundle, raw=True)  # type: ignore[no-untyped-call]
        return
    handle = display(bundle, raw=True, display_id=True)  # type: ignore[no-untyped-call]
    from orbits_nb.views.monitor import Monitor

    monitor = Monitor.for_run(run)

    def refresh() -> None:
        if handle is not None:
            handle.update(mimebundle(monitor.run, widget=True), raw=True)

    monitor.on_finish(refresh)
