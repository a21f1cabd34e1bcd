"""The drift widget (ipywidgets): status badges, expandable diffs, Reconcile / Accept /
Refresh. Commands run in a background thread so the kernel stays responsive; the
widget redraws itself from a fresh check when each command ends.
"""

from __future__ import annotations

import concurrent.futures
import html
import logging
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import ipywidgets as W

from orbits_nb.resources.html import CSS, badge, clock, details_html, report_html, row_html

if TYPE_CHECKING:
    from orbits_nb.resources.check import ResourceCheck
    from orbits_nb.resources.report import DriftReport

ACTIONABLE = ("drifted", "missing", "error")
MAX_WIDGET_ROWS = 200
_OFF, _ON = ("0", "false", "no", "off"), ("1", "true", "yes", "on")
_log = logging.getLogger(__name__)


def widgets_wanted() -> bool:
    """Whether to display a live widget: in a kernel, unless headless.

    ``ORBITS_NB_WIDGETS=0/1`` forces the choice; ``ORBITS_NB_HEADLESS=1`` (set by
    headless runbook runs) shows static HTML, which is what an executed notebook keeps.
    """
    flag = os.environ.get("ORBITS_NB_WIDGETS", "").strip().lower()
    if flag in _OFF:
        return False
    if flag in _ON:
        return True
    if os.environ.get("ORBITS_NB_HEADLESS", "").strip().lower() in _ON:
        return False
    if "ipykernel" not in sys.modules:
        return False
    shell = sys.modules.get("IPython")
    get = getattr(shell, "get_ipython", None)
    return bool(get and getattr(get(), "kernel", None) is not None)


def bundle(report: DriftReport, make: Callable[[], DriftWidget], include: Any = None,
           exclude: Any = None) -> dict[str, Any]:
    """Display data: always text and HTML, plus the widget view in a kernel.

    The HTML stays in the bundle so an executed notebook keeps a readable report;
    nothing here may fail a cell, so a widget that cannot open leaves the HTML.
    """
    data: dict[str, Any] = {"text/plain": report.text(), "text/html": report_html(report)}
    if widgets_wanted():
        try:
            view = make().box._repr_mimebundle_() or {}
        except Exception:
            _log.warning("could not open the drift widget", exc_info=True)
            view = {}
        data.update({k: v for k, v in view.items() if k != "text/plain"})
    if include:
        data = {k: v for k, v in data.items() if k in include}
    if exclude:
        data = {k: v for k, v in data.items() if k not in exclude}
    return data


def _card(check: ResourceCheck) -> str:
    users = html.escape(", ".join(check.users)) or "no workflow"
    since = f" · since {clock(check.since)}" if check.since and not check.ok else ""
    return (f'<div class="orbits-drift">{badge(check.status)} <b>{html.escape(check.kind)}'
            f"</b> <code>{html.escape(check.identity)}</code><small>{since} · used by "
            f"{users}</small>{details_html(check)}</div>")


class DriftWidget:
    """Interactive view of a :class:`DriftReport` (``report.widget()``)."""

    def __init__(self, report: DriftReport) -> None:
        self.report = report
        self.header = W.HTML()
        self.refresh_button = W.Button(description="Refresh", icon="refresh",
                                       tooltip="check these resources again")
        self.reconcile_button = W.Button(description="Reconcile", icon="wrench",
                                         button_style="warning",
                                         tooltip="converge the selected resources (all "
                                                 "drifted and missing when none is selected)")
        self.accept_button = W.Button(description="Accept actual", icon="check",
                                      tooltip="adopt the observed state of the selected "
                                              "resources as their desired state")
        self.select_all = W.Checkbox(description="select all", indent=False,
                                     layout=W.Layout(width="auto"))
        self.rows = W.VBox()
        self.in_sync = W.HTML()
        self.status = W.HTML()
        toolbar = W.HBox([self.refresh_button, self.reconcile_button, self.accept_button,
                          self.select_all])
        self.box = W.VBox([self.header, toolbar, self.rows, self.in_sync, self.status])
        self.box.add_class("orbits-drift-widget")
        self.checkboxes: dict[str, Any] = {}
        self.pending: concurrent.futures.Future[None] | None = None
        self._pool = concurrent.futures.ThreadPoolExecutor(1, "orbits-nb-drift-widget")
        self.refresh_button.on_click(lambda _b: self._submit("refresh", self._refresh))
        self.reconcile_button.on_click(lambda _b: self._submit("reconcile", self._reconcile))
        self.accept_button.on_click(lambda _b: self._submit("accept", self._accept))
        self.select_all.observe(self._toggle_all, names="value")
        self.show(report)

    # -- state ----------------------------------------------------------------------------
    def show(self, report: DriftReport) -> None:
        """Redraw from ``report``, keeping the selection of resources still listed."""
        kept = set(self.selected)
        self.report = report
        self.header.value = CSS + _head(report)
        actionable = [c for c in report.checks if c.status in ACTIONABLE]
        self.checkboxes = {}
        rows = []
        for check in actionable[:MAX_WIDGET_ROWS]:
            box = W.Checkbox(value=check.key in kept, indent=False,
                             layout=W.Layout(width="24px"))
            box.add_class("od-select")
            self.checkboxes[check.key] = box
            rows.append(W.HBox([box, W.HTML(_card(check))]))
        self.rows.children = tuple(rows)
        self.in_sync.value = _in_sync_html(report)
        self.reconcile_button.disabled = not actionable
        self.accept_button.disabled = not any(c.status == "drifted" for c in actionable)

    @property
    def selected(self) -> list[str]:
        return [key for key, box in getattr(self, "checkboxes", {}).items() if box.value]

    def _toggle_all(self, change: dict[str, Any]) -> None:
        for box in self.checkboxes.values():
            box.value = bool(change["new"])

    def say(self, text: str, status: str = "in_sync") -> None:
        self.status.value = f'<div class="orbits-drift">{badge(status, text)}</div>'

    # -- commands -------------------------------------------------------------------------
    def _submit(self, name: str, work: Callable[[], str]) -> None:
        buttons = (self.refresh_button, self.reconcile_button, self.accept_button)
        for button in buttons:
            button.disabled = True
        self.say(f"{name}…", "drifted")

        def run() -> None:
            try:
                message, status = work(), "in_sync"
            except Exception as err:
                message, status = f"{name} failed: {type(err).__name__}: {err}", "error"
            try:
                self.show(self.report.refresh())
            except Exception as err:  # keep the command's message, add why no refresh
                message += f" (refresh failed: {err})"
            finally:
                self.refresh_button.disabled = False
            self.say(message, status)

        self.pending = self._pool.submit(run)

    def _refresh(self) -> str:
        return "checked again"

    def _reconcile(self) -> str:
        keys = self.selected or None
        run = self.report.reconcile(keys, wait=False)
        if run is None:
            return "nothing to reconcile"
        self.say(f"reconciling in run {run.run_id}…", "drifted")
        run.wait()
        return f"reconciled {len(run.result or {})} resource(s) in run {run.run_id}"

    def _accept(self) -> str:
        keys = self.report.accept(self.selected or None)
        return f"accepted the actual state of {len(keys)} resource(s)"

    # -- display --------------------------------------------------------------------------
    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        data: dict[str, Any] = dict(self.box._repr_mimebundle_() or {})
        data["text/plain"] = self.report.text()
        data["text/html"] = report_html(self.report)
        return data

    def close(self) -> None:
        self._pool.shutdown(wait=False)
        self.box.close()


def _head(report: DriftReport) -> str:
    from orbits_nb.resources.html import summary_html

    return f'<div class="orbits-drift">{summary_html(report)}</div>'


def _in_sync_html(report: DriftReport) -> str:
    ok = [c for c in report.checks if c.ok]
    if not ok:
        return ""
    rows = "".join(row_html(c) for c in ok[:MAX_WIDGET_ROWS])
    return (f'<div class="orbits-drift"><details><summary>{len(ok)} resource(s) in sync'
            '</summary><table class="od-table"><tbody>' + rows + "</tbody></table></details>"
            "</div>")
