"""How a :class:`~orbits_nb.engine.run.Run` shows itself: one bundle for every viewer.

``text/plain`` for terminals, ``text/html`` (diagram and step table) for anything that
renders HTML without a kernel (papermill reports, GitHub, nbviewer, untrusted
notebooks), and the live monitor widget when a kernel with comms runs the code.
Nothing here may fail a cell: each richer part falls back to the plainer one.

A run displayed in a kernel before it ended keeps its output up to date: once the run
settles (ends, or is reset or retried from the monitor) the output is replaced by a
fresh bundle, so the static part a saved or executed notebook keeps shows how the run
ended, not how it looked when the cell ran. The replacement is made when the run
settles and, at the latest, when the cell that waited for it finishes (so a headless
execution, which stops reading outputs after its last cell, always records it).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import weakref
from typing import TYPE_CHECKING, Any

from orbits_nb.views.snapshot import settled

if TYPE_CHECKING:
    from orbits_nb.engine.run import Run
    from orbits_nb.views.monitor import Monitor

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
ENV_VAR = "ORBITS_NB_WIDGETS"
ENV_HEADLESS = "ORBITS_NB_HEADLESS"
_OFF, _ON = ("0", "off", "false", "no"), ("1", "on", "true", "yes")
_log = logging.getLogger(__name__)


def _shell() -> Any:
    """The running IPython kernel's shell, or None (looked up in ``sys.modules``)."""
    if "ipykernel" not in sys.modules:
        return None
    ipython = sys.modules.get("IPython")
    get_ipython = getattr(ipython, "get_ipython", None)
    shell = get_ipython() if get_ipython is not None else None
    return shell if getattr(shell, "kernel", None) is not None else None


def has_widget_kernel() -> bool:
    """Whether this code runs in a Jupyter kernel whose outputs someone watches live.

    Detected through ``sys.modules`` (nothing is imported to ask). Headless runbook
    executions (``ORBITS_NB_HEADLESS=1``, set by ``orbits-nb run``) get static output,
    since a widget in a saved notebook only says "model not found";
    ``ORBITS_NB_WIDGETS=0`` turns the widgets off, ``1`` keeps them on when headless.
    """
    flag = os.environ.get(ENV_VAR, "").strip().lower()
    if flag in _OFF:
        return False
    if flag not in _ON and os.environ.get(ENV_HEADLESS, "").strip().lower() in _ON:
        return False
    return _shell() is not None


def static_bundle(run: Run) -> dict[str, Any]:
    """``text/plain`` and ``text/html`` of ``run`` as it is now."""
    from orbits_nb.views.graph import draw, picture_dot
    from orbits_nb.views.html import run_html
    from orbits_nb.views.snapshot import picture_of

    data: dict[str, Any] = {"text/plain": repr(run)}
    try:
        picture = picture_of(run)
        data["text/html"] = run_html(picture, draw(picture_dot(picture)),
                                     run.engine.writer.redact, _last_lines(run))
    except Exception:  # the text repr is still a useful picture
        _log.warning("could not render the HTML view of run %s", run.run_id, exc_info=True)
    return data


def _last_lines(run: Run) -> tuple[list[dict[str, Any]], int] | None:
    """The run-wide log's last lines for the report (None when they cannot be read:
    the rest of the report still shows)."""
    from orbits_nb.views.logview import run_entries, tail

    try:
        run.engine.writer.flush_for_read()
        return tail(run_entries(run.engine.store, run.run_id))
    except Exception:
        _log.warning("could not read the logs of run %s", run.run_id, exc_info=True)
        return None


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
    monitor = _monitor(run)
    if monitor is None:
        return None
    return {"version_major": 2, "version_minor": 0, "model_id": monitor.model_id}


def _monitor(run: Run) -> Monitor | None:
    try:
        from orbits_nb.views.monitor import Monitor

        return Monitor.for_run(run)
    except Exception:  # e.g. anywidget missing: the static bundle still shows the run
        _log.warning("could not open the monitor widget of run %s", run.run_id,
                     exc_info=True)
        return None


def ipython_display(run: Run) -> None:
    """Display ``run``; in a kernel, keep the output showing how the run last settled."""
    from IPython.display import display

    shell = _shell()
    monitor = _monitor(run) if has_widget_kernel() else None
    if shell is None or (monitor is None and run.done):
        display(mimebundle(run, widget=False), raw=True)  # type: ignore[no-untyped-call]
        return
    # Taken before the bundle: a run that settles meanwhile gets its output refreshed.
    output = Output(run, monitor)
    data = output.bundle()
    output.handle = display(data, raw=True, display_id=True)  # type: ignore[no-untyped-call]
    if output.handle is not None:
        output.watch(shell)


_outputs: weakref.WeakSet[Output] = weakref.WeakSet()
_last_bundle: dict[tuple[str, Any], dict[str, Any]] = {}
_hooked: weakref.WeakSet[Any] = weakref.WeakSet()
# Held while a thread sends an update, and when a cell ends: an update sent while a
# cell executes then reaches the client before that cell's end, and counts as seen.
_cell = threading.Lock()
_in_cell = threading.Event()


class Output:
    """One displayed output of a run, replaced by a fresh bundle each time it settles.

    An update sent from a thread while no cell executes may never be recorded (a
    headless client stops reading after the last cell; it also ignores what arrives
    between cells), so each cell's end sends again what no client has seen for sure.
    """

    def __init__(self, run: Run, monitor: Monitor | None) -> None:
        self.run = run
        self.handle: Any = None
        self.monitor = monitor
        self._lock = threading.Lock()
        self._shown = self._confirmed = self._token()

    def _token(self) -> tuple[Any, ...] | None:
        """What the output shows when settled (None while the run is still moving)."""
        if self.monitor is not None:
            head = self.monitor.header
            if not head.get("terminal"):
                return None
            return (id(self.monitor.run), head.get("status"), head.get("executions"))
        return (id(self.run), "settled") if self.run.done else None

    def watch(self, shell: Any) -> None:
        _outputs.add(self)
        if shell not in _hooked:
            shell.events.register("pre_run_cell", _cell_starts)
            shell.events.register("post_run_cell", _cell_ends)
            _hooked.add(shell)
        if self.monitor is not None:
            self.monitor.on_settle(self.refresh)
        else:
            ended = asyncio.run_coroutine_threadsafe(settled(self.run), self.run.engine.loop)
            ended.add_done_callback(lambda _future: threading.Thread(
                target=self.refresh, name="orbits-nb-output", daemon=True).start())

    def settle(self) -> None:
        """At a cell's end (main thread): send what no client has surely seen."""
        monitor = self.monitor
        if monitor is not None and not monitor.header.get("terminal") and monitor.run.done:
            monitor.refresh()  # its pump has not looked yet
        self.refresh(confirm=True)

    def refresh(self, confirm: bool = False) -> None:
        with self._lock:
            token = self._token()
            if token is None or token == self._confirmed or (
                    token == self._shown and not confirm):
                return
            if confirm:
                self._send(token)
                self._confirmed = token
            else:
                with _cell:
                    self._send(token)
                    viewed = self.monitor is not None and self.monitor.viewed
                    if _in_cell.is_set() or viewed:
                        self._confirmed = token
        if self.monitor is None and self._confirmed is not None:
            _outputs.discard(self)  # a run without a monitor settles once

    def bundle(self, token: tuple[Any, ...] | None = None) -> dict[str, Any]:
        """The run's bundle as it is now, with the monitor's widget view if any.

        Outputs of one run refreshed for the same settled state share one rendering.
        """
        run = self.monitor.run if self.monitor is not None else self.run
        key = (run.run_id, token)
        cached = _last_bundle.get(key) if token is not None else None
        data = dict(cached) if cached is not None else static_bundle(run)
        if token is not None and cached is None:
            _last_bundle.clear()
            _last_bundle[key] = dict(data)
        if self.monitor is not None:
            data[WIDGET_MIME] = {"version_major": 2, "version_minor": 0,
                                 "model_id": self.monitor.model_id}
        return data

    def _send(self, token: tuple[Any, ...]) -> None:
        self._shown = token
        try:
            self.handle.update(self.bundle(token), raw=True)
        except Exception:  # a stale output is no reason to break anything
            _log.warning("could not refresh the output of run %s", self.run.run_id,
                         exc_info=True)


def _cell_starts(*_: Any) -> None:
    with _cell:
        _in_cell.set()


def _cell_ends(*_: Any) -> None:
    with _cell:  # waits for an update a thread is sending
        _in_cell.clear()
    for output in list(_outputs):
        output.settle()
