"""The monitor's timeline and log panels: computed and sent only while shown.

The widget says which panel is shown (``tab``) and what the log view asks for
(``log_query``); each refresh then sends the timeline's layout or the log window,
and only when it changed, so a hidden panel costs nothing and a live log sends only
the lines on screen.
"""

from __future__ import annotations

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
        data: dict[str, Any] = window(self.feed.read(monitor.live), query)
        if data != monitor.log_window:
            monitor.log_window = data
