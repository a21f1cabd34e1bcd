"""The monitor's inspector, timeline and log panels: computed and sent only when shown.

The widget says which panel is shown (``tab``) and what the log view asks for
(``log_query``); each refresh then sends the timeline's layout or the log window,
and only when it changed, so a hidden panel costs nothing and a live log sends only
the lines on screen.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from orbits_nb.views.logview import LogFeed, Query, window
from orbits_nb.views.timeline import as_data, layout

if TYPE_CHECKING:
    from orbits_nb.core.dot import Picture
    from orbits_nb.engine.run import Run
    from orbits_nb.views.monitor import Monitor

TABS = ("diagram", "timeline", "logs")


class Panels:
    """Keeps a monitor's ``timeline`` and ``log_window`` traits up to date."""

    def __init__(self, run: Run) -> None:
        self.feed = LogFeed(run.engine.store, run.run_id, run.engine.writer.flush_for_read)
        self.detail_key: tuple[Any, ...] = ()

    def detail(self, monitor: Monitor, picture: Picture, table: list[dict[str, Any]],
               groups: dict[str, list[str]]) -> None:
        """The inspector of the selected step, read again when the step changed (and
        every few seconds while it runs)."""
        from orbits_nb.views import inspector

        path = monitor.selected
        if not path:
            if monitor.detail:
                monitor.detail = {}
            return
        row = next((r for r in table if r["path"] == path), None)
        key = (path, row and (row["status"], row["attempts"], row["finished_at"]),
               int(time.monotonic() / 3) if row and row["status"] == "running" else 0)
        if key == self.detail_key:
            return
        self.detail_key = key
        try:
            monitor.detail = inspector.detail(monitor.run, picture, path, groups)
        except Exception as err:  # e.g. the state file is busy: say so, keep the view
            monitor.detail = {"path": path, "title": path, "failed": f"{err}"}

    def send(self, monitor: Monitor, picture: Picture) -> None:
        tab = monitor.tab if monitor.tab in TABS else "diagram"
        if tab == "timeline":
            data = as_data(layout(picture))
            if data != monitor.timeline:
                monitor.timeline = data
        elif tab == "logs":
            self.send_logs(monitor)

    def send_logs(self, monitor: Monitor) -> None:
        query = Query.of(monitor.log_query or {})
        # Ended (the header says so before the monitor stops following): read once more.
        live = not monitor.header.get("terminal")
        data: dict[str, Any] = window(self.feed.read(live), query)
        if data != monitor.log_window:
            monitor.log_window = data
