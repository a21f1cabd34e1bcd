"""The drift widget (ipywidgets): status badges, expandable diffs, Reconcile / Accept /
Refresh. Reconcile and Accept ask for confirmation, naming what they will act on.
Commands run in a background thread so the kernel stays responsive; the widget
redraws itself from a fresh check when each command ends.
"""

from __future__ import annotations

import concurrent.futures
import html
import logging
import os
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import ipywidgets as W

from orbits_nb.core.errors import OrbitsError
from orbits_nb.resources.html import CSS, badge, clock, details_html, report_html, row_html

if TYPE_CHECKING:
    from orbits_nb.resources.check import ResourceCheck
    from orbits_nb.resources.report import DriftReport

ACTIONABLE = ("drifted", "missing", "error")
#: What Accept can adopt: an observed state, or an observed absence.
ACCEPTABLE = ("drifted", "missing")
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
    """Interactive view of a :class:`DriftReport` (``report.widget()``).

    Reconcile and Accept ask first: pressing one shows what it will act on (by name,
    or the count of all drifted resources) with a confirm and a keep button, and
    nothing changes until the confirm button is pressed. Accept needs a selection; its
    button stays disabled until there is one, and the kernel refuses it without one.
    """

    def __init__(self, report: DriftReport) -> None:
        self.report = report
        self.header = W.HTML()
        # Labels name counts: sized to fit, never cut.
        self.refresh_button = W.Button(description="Refresh", icon="refresh",
                                       tooltip="check these resources again",
                                       layout=W.Layout(width="auto"))
        self.reconcile_button = W.Button(description="Reconcile…", icon="wrench",
                                         button_style="warning",
                                         layout=W.Layout(width="auto"))
        self.accept_button = W.Button(description="Accept actual…", icon="check",
                                      layout=W.Layout(width="auto"))
        # An agent's own commands (rollback...), for one selected agent.
        self.command_choice = W.Dropdown(options=[], layout=W.Layout(width="auto"))
        self.command_button = W.Button(description="Run…", icon="play",
                                       layout=W.Layout(width="auto"))
        self.select_all = W.Checkbox(description="select all", indent=False,
                                     layout=W.Layout(width="auto"))
        self.rows = W.VBox()
        self.in_sync = W.HTML()
        self.status = W.HTML()
        self.question = W.HTML()
        self.confirm_button = W.Button(description="Confirm", button_style="danger",
                                       layout=W.Layout(width="auto", flex="none"))
        self.keep_button = W.Button(description="Keep as is",
                                    layout=W.Layout(width="auto", flex="none"))
        self.confirm = W.HBox([self.question, self.confirm_button, self.keep_button],
                              layout=W.Layout(display="none"))
        self.confirm.add_class("od-confirm")
        toolbar = W.HBox([self.refresh_button, self.reconcile_button, self.accept_button,
                          self.command_choice, self.command_button, self.select_all])
        self.box = W.VBox([self.header, toolbar, self.confirm, self.rows, self.in_sync,
                           self.status])
        self.box.add_class("orbits-drift-widget")
        self.checkboxes: dict[str, Any] = {}
        #: The command awaiting confirmation and the keys it named.
        self.asking: tuple[str, list[str]] | None = None
        self._question = ""
        self.pending: concurrent.futures.Future[None] | None = None
        self._lock = threading.RLock()
        self._busy = False
        self._pool = concurrent.futures.ThreadPoolExecutor(1, "orbits-nb-drift-widget")
        self.refresh_button.on_click(lambda _b: self._submit("refresh", self._refresh))
        self.reconcile_button.on_click(lambda _b: self.ask("reconcile"))
        self.accept_button.on_click(lambda _b: self.ask("accept"))
        self.command_button.on_click(
            lambda _b: self.ask(f"command:{self.command_choice.value or ''}"))
        self.confirm_button.on_click(lambda _b: self._confirmed())
        self.keep_button.on_click(lambda _b: self._dismiss())
        self.select_all.observe(self._toggle_all, names="value")
        self.show(report)

    # -- state ----------------------------------------------------------------------------
    def show(self, report: DriftReport) -> None:
        """Redraw from ``report``, keeping the selection of resources still listed."""
        with self._lock:
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
                box.observe(self._selection_changed, names="value")
                self.checkboxes[check.key] = box
                rows.append(W.HBox([box, W.HTML(_card(check))]))
            self.rows.children = tuple(rows)
            self.in_sync.value = _in_sync_html(report)
            if self.asking is not None and self._still_asked() != self._question:
                self._dismiss("the drift changed since you asked: check the list and "
                              "choose again")
            self._update_buttons()

    @property
    def selected(self) -> list[str]:
        return [key for key, box in getattr(self, "checkboxes", {}).items() if box.value]

    def _toggle_all(self, change: dict[str, Any]) -> None:
        for box in self.checkboxes.values():
            box.value = bool(change["new"])

    def _selection_changed(self, _change: Any) -> None:
        with self._lock:
            if self.asking is not None:
                self._dismiss()  # the question named other resources
            self._update_buttons()

    def _update_buttons(self) -> None:
        """Labels, tooltips and enabled state from the report and the selection."""
        chosen = self._checks(self.selected)
        default = self.report.select(None)
        busy = self._busy
        self.refresh_button.disabled = busy
        if chosen:
            self.reconcile_button.description = f"Reconcile selected ({len(chosen)})…"
            self.reconcile_button.tooltip = "converge the selected resources (asks first)"
        else:
            self.reconcile_button.description = f"Reconcile all ({len(default)})…"
            self.reconcile_button.tooltip = ("converge every drifted and missing resource "
                                             "(asks first); or select some")
        self.reconcile_button.disabled = busy or not (chosen or default)
        acceptable = [c for c in chosen if c.status in ACCEPTABLE]
        self.accept_button.disabled = busy or not acceptable
        names = _commands(chosen[0].type) if len(chosen) == 1 else []
        if list(self.command_choice.options) != names:
            self.command_choice.options = names
            self.command_choice.value = names[0] if names else None
        self.command_choice.disabled = self.command_button.disabled = busy or not names
        self.command_button.tooltip = (f"run a command of {chosen[0].key} (asks first)"
                                       if names else "select one agent to run its commands")
        self.accept_button.tooltip = (
            "adopt the observed state of the selected resources as their desired state "
            "(asks first)" if acceptable else
            "select the drifted (or missing) resources whose actual state to accept")

    def _checks(self, keys: list[str]) -> list[ResourceCheck]:
        wanted = set(keys)
        return [c for c in self.report.checks if c.key in wanted]

    def say(self, text: str, status: str = "in_sync") -> None:
        self.status.value = f'<div class="orbits-drift">{badge(status, text)}</div>'

    # -- asking first -------------------------------------------------------------------
    def ask(self, command: str) -> None:
        """Show what ``command`` ("reconcile" or "accept") would do, and wait for OK."""
        with self._lock:
            try:
                question = self._plan(command, self.selected)
            except OrbitsError as err:
                self._dismiss()
                self.say(str(err), "error")
                return
            self.asking, self._question = (command, self.selected), question
            self.question.value = f'<div class="orbits-drift od-question">{question}</div>'
            self.confirm_button.description = (
                "Reconcile" if command == "reconcile" else "Accept actual"
                if command == "accept" else command.split(":", 1)[1].capitalize())
            self.confirm.layout.display = "flex"

    def _plan(self, command: str, keys: list[str]) -> str:
        """The question for ``command`` on ``keys`` (HTML); raises when it cannot act."""
        chosen = self._checks(keys)
        if command == "reconcile":
            targets = chosen or self.report.select(None)
            if not targets:
                raise OrbitsError("nothing to reconcile: every resource listed is in sync")
            what = (f"the {len(targets)} selected resource(s)" if chosen else
                    f"all {len(targets)} drifted or missing resource(s)")
            return (f"Reconcile {what}: {_names(targets)}? A recorded run converges them "
                    "to their desired state.")
        if command.startswith("command:"):
            name = command.split(":", 1)[1]
            if len(chosen) != 1 or name not in _commands(chosen[0].type):
                raise OrbitsError("select one agent and one of its commands first")
            return (f"Run {name} on {_names(chosen)}? A recorded run executes its steps "
                    "under the agent's lease.")
        if command != "accept":
            raise OrbitsError(f"unknown drift widget command {command!r}")
        if not chosen:
            raise OrbitsError("select the resources whose actual state to accept first; "
                              "Accept never acts on all of them at once")
        drifted = [c for c in chosen if c.status == "drifted"]
        missing = [c for c in chosen if c.status == "missing"]
        if not drifted and not missing:
            raise OrbitsError(f"nothing to accept in the selection ({_names(chosen)}): "
                              "only drifted or missing resources can be accepted")
        parts = []
        if drifted:
            parts.append(f"make the actual state the desired state of {_names(drifted)}")
        if missing:
            parts.append(f"forget {_names(missing)} (missing: accepting the absence drops "
                         "its record)")
        skipped = [c for c in chosen if c.status not in ACCEPTABLE]
        rest = f" ({_names(skipped)} skipped: its state could not be read)" if skipped \
            else ""
        return f"Accept: {'; '.join(parts)}?{rest}"

    def _still_asked(self) -> str:
        """The pending question as it reads now ("" if it can no longer be asked)."""
        if self.asking is None:
            return ""
        try:
            return self._plan(*self.asking)
        except OrbitsError:
            return ""

    def _confirmed(self) -> None:
        with self._lock:
            asking, self.asking = self.asking, None
            self.confirm.layout.display = "none"
        if asking is None:
            self.say("nothing to confirm: press Reconcile or Accept first", "error")
            return
        command, keys = asking
        if command == "reconcile":
            self._submit("reconcile", lambda: self._reconcile(keys))
        elif command.startswith("command:"):
            name = command.split(":", 1)[1]
            self._submit(name, lambda: self._command(keys[0], name))
        else:
            self._submit("accept", lambda: self._accept(keys))

    def _dismiss(self, why: str = "") -> None:
        self.asking = None
        self._question = ""
        self.confirm.layout.display = "none"
        if why:
            self.say(why, "drifted")

    # -- commands -------------------------------------------------------------------------
    def _submit(self, name: str, work: Callable[[], str]) -> None:
        with self._lock:
            self._busy = True
            self._update_buttons()
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
                with self._lock:
                    self._busy = False
                    self._update_buttons()
            self.say(message, status)

        self.pending = self._pool.submit(run)

    def _refresh(self) -> str:
        return "checked again"

    def _reconcile(self, keys: list[str]) -> str:
        run = self.report.reconcile(keys or None, wait=False)
        if run is None:
            return "nothing to reconcile"
        self.say(f"reconciling in run {run.run_id}…", "drifted")
        run.wait()
        return f"reconciled {len(run.result or {})} resource(s) in run {run.run_id}"

    def _command(self, key: str, name: str) -> str:
        from orbits_nb.resources.api import command

        run = command(key, name, engine=self.report.engine)
        return f"ran {name} on {key} in run {run.run_id}"

    def _accept(self, keys: list[str]) -> str:
        acceptable = [c.key for c in self._checks(keys) if c.status in ACCEPTABLE]
        if not acceptable:  # never "all drifted": accepting is chosen resource by resource
            raise OrbitsError("select the drifted (or missing) resources to accept first")
        accepted = self.report.accept(acceptable)
        return f"accepted the actual state of {len(accepted)} resource(s)"

    # -- display --------------------------------------------------------------------------
    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        data: dict[str, Any] = dict(self.box._repr_mimebundle_() or {})
        data["text/plain"] = self.report.text()
        data["text/html"] = report_html(self.report)
        return data

    def close(self) -> None:
        self._pool.shutdown(wait=False)
        self.box.close()


def _commands(type_name: str) -> list[str]:
    """The custom commands of the agent class ``type_name`` ([] for other resources)."""
    from orbits_nb.engine.resume import import_class
    from orbits_nb.resources.agent import command_names

    try:
        cls = import_class(type_name)
    except OrbitsError:
        return []
    return command_names(cls) if getattr(cls, "is_agent", False) else []


def _names(checks: list[ResourceCheck], limit: int = 6) -> str:
    """``a.cfg (drifted), motd (missing)``, escaped, the first ``limit`` of them."""
    shown = ", ".join(f"<code>{html.escape(c.identity)}</code> ({html.escape(c.status)})"
                      for c in checks[:limit])
    return shown + (f" and {len(checks) - limit} more" if len(checks) > limit else "")


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
