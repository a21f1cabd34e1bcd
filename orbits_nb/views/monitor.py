"""The live run monitor: a widget with the diagram, the step table and an inspector.

A run executing in this kernel is followed through ``engine.subscribe``: the listener
only pokes a :class:`~orbits_nb.views.pump.Pump`, which refreshes at most every
``interval`` seconds on its own thread, sends only the traits that changed (one comm
message per refresh) and redraws the diagram only when its DOT changed, no more
often than its render cost allows. A run executed by another process is polled from
the store. A finished run's monitor has no thread and no subscription.

The status line, the counts and the buttons come from one mapping
(:mod:`orbits_nb.views.status`), which also decides what the kernel accepts when a
button is pressed, so what the view offers and what the kernel does never differ.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anywidget
import traitlets as t

from orbits_nb.core.dot import Picture
from orbits_nb.core.errors import OrbitsError
from orbits_nb.views import inspector, model, status
from orbits_nb.views.graph import Drawer
from orbits_nb.views.panels import Panels
from orbits_nb.views.probe import LoopProbe
from orbits_nb.views.pump import Pump
from orbits_nb.views.snapshot import Snapshotter, settled

if TYPE_CHECKING:
    from orbits_nb.engine.run import Run
    from orbits_nb.engine.runner import RunExecution

_HERE = Path(__file__).parent
#: How many displayed outputs of one run are kept up to date.
SETTLE_CALLBACKS = 16
_log = logging.getLogger(__name__)
_monitors: weakref.WeakValueDictionary[tuple[int, str], Monitor] = (
    weakref.WeakValueDictionary())
_monitors_lock = threading.Lock()


def asset(name: str) -> str:
    return (_HERE / name).read_text(encoding="utf-8")


def widget_module(*names: str) -> str:
    """A widget's ES module: the shared DOM helpers followed by its own code (its main
    file last: the one that exports)."""
    return "\n".join([asset("dom.js"), *(asset(name) for name in names)])


class Monitor(anywidget.AnyWidget):
    """Live view of one run. Usually made by displaying the run (``run`` in a cell)."""

    _esm = widget_module("monitor_timeline.js", "monitor_logs.js", "monitor.js")
    _css = asset("theme.css")

    run_id = t.Unicode("").tag(sync=True)
    header = t.Dict().tag(sync=True)
    palette: t.List[Any] = t.List().tag(sync=True)
    svg = t.Unicode("").tag(sync=True)
    dot = t.Unicode("").tag(sync=True)
    problem = t.Unicode("").tag(sync=True)
    rows: t.List[Any] = t.List().tag(sync=True)
    total_rows = t.Int(0).tag(sync=True)
    first_row = t.Int(0).tag(sync=True)
    page = t.Int(-1).tag(sync=True)
    page_size = t.Int(50).tag(sync=True)
    selected = t.Unicode("").tag(sync=True)
    detail = t.Dict().tag(sync=True)
    approvals: t.List[Any] = t.List().tag(sync=True)
    notice = t.Dict().tag(sync=True)
    controls = t.Dict().tag(sync=True)
    live = t.Bool(False).tag(sync=True)
    remote = t.Bool(False).tag(sync=True)
    #: The panel beside the table: diagram, timeline or logs (see views/panels.py).
    tab = t.Unicode("diagram").tag(sync=True)
    timeline = t.Dict().tag(sync=True)
    log_query = t.Dict().tag(sync=True)
    log_window = t.Dict().tag(sync=True)

    def __init__(self, run: Run, *, interval: float = 0.5, poll: float = 1.5,
                 page_size: int = 50, max_nodes: int | None = 150) -> None:
        if page_size < 1:
            raise ValueError(f"page_size={page_size!r} must be at least 1")
        super().__init__(run_id=run.run_id, palette=inspector.legend(), page_size=page_size)
        self.interval = interval
        self.poll = poll
        self.max_nodes = max_nodes
        self._lock = threading.RLock()
        self._run = run
        self._snap = Snapshotter(run)
        self._panels = Panels(run)
        self._picture: Picture | None = None
        self._table: list[dict[str, Any]] = []
        self._drawer = Drawer(interval)
        self._pump: Pump | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._finish_callbacks: list[Callable[[], None]] = []
        self._settle_callbacks: collections.deque[Callable[[], None]] = collections.deque(
            maxlen=SETTLE_CALLBACKS)
        #: A front end has shown this widget (it pings when it renders).
        self.viewed = False
        #: Executions of the run when Retry was pressed (None: no retry pending).
        self._retried_at: int | None = None
        # Created in a kernel cell: watch whether a cell blocks the kernel's loop.
        self._probe = LoopProbe.of_this_thread(wake=self.poke)
        self.observe(self._on_page, "page")
        self.observe(self._on_select, "selected")
        self.observe(self._on_panel, ["tab", "log_query"])
        self.on_msg(self._on_message)
        self.refresh()
        self._follow()

    # -- following the run ---------------------------------------------------------
    @classmethod
    def for_run(cls, run: Run, **options: Any) -> Monitor:
        """The monitor of ``run`` (one per run and engine; reused by later displays).

        Displayed again, a monitor that no longer follows its run looks at it afresh:
        the run may have been reset, retried or taken over meanwhile.
        """
        key = (id(run.engine), run.run_id)
        with _monitors_lock:
            monitor = _monitors.get(key)
            if monitor is None or monitor.comm is None:
                monitor = cls(run, **options)
                _monitors[key] = monitor
            elif (live := monitor.executing()) is not None and live is not monitor.run:
                monitor.bind(live)  # e.g. started again from a cell
            elif not monitor.following:
                monitor.refresh()
                monitor._follow()
            return monitor

    @property
    def run(self) -> Run:
        return self._run

    @property
    def following(self) -> bool:
        """Whether a thread or subscription still follows the run."""
        return self._pump is not None and self._pump.running

    def bind(self, run: Run) -> None:
        """Follow another handle of the same run (e.g. after a retry)."""
        self._stop()
        with self._lock:
            self._run = run
            self._snap = Snapshotter(run)
            self._panels = Panels(run)
            self._drawer = Drawer(self.interval)
        self.refresh()
        self._follow()
        if not self.following:  # it ended before the first look
            self._ended()

    def poke(self) -> None:
        """Refresh soon (e.g. after a decision was recorded)."""
        if self._pump is not None:
            self._pump.poke()

    def on_finish(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once the run has ended (right away if it already has)."""
        if self.header.get("terminal") and not self.following:
            callback()
        else:
            self._finish_callbacks.append(callback)

    def on_settle(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` after each refresh that finds nothing executing the run
        (it ended, or was reset); it may be called more than once per settled state.

        Only the latest SETTLE_CALLBACKS are kept: a cell displayed again and again
        leaves outputs that are gone from the notebook.
        """
        self._settle_callbacks.append(callback)

    def _follow(self) -> None:
        if self.following:
            return
        here = self._snap.executing_here()
        if self.header.get("terminal") and here is None:
            self.live = self.remote = False
            return
        self.live, self.remote = True, self.header.get("where") == status.ELSEWHERE
        if here is not None:
            # Events drive the refreshes; the run's end (its future completes just
            # after the last state change) pokes once more.
            self._pump = Pump(self._tick, interval=self.interval,
                              poll=max(1.0, 4 * self.interval), name="orbits-nb-monitor")
            self._unsubscribe = here.engine.subscribe(self._listener)
            pump = self._pump
            ended = asyncio.run_coroutine_threadsafe(settled(here), here.engine.loop)
            ended.add_done_callback(lambda _future: pump.poke())
        else:
            self._pump = Pump(self._tick, interval=self.interval, poll=self.poll,
                              name="orbits-nb-monitor-poll", idle_after=60.0)
        self._pump.start()
        self._pump.poke()

    def _listener(self, execution: RunExecution) -> None:
        # Engine thread, every state change: stay O(1).
        while execution.parent is not None:
            execution = execution.parent
        if execution.run_id == self.run_id and self._pump is not None:
            self._pump.poke()

    def _unsubscribe_now(self) -> None:
        unsubscribe, self._unsubscribe = self._unsubscribe, None
        if unsubscribe is not None:
            with contextlib.suppress(ValueError):  # already removed
                unsubscribe()

    def _stop(self) -> None:
        self._unsubscribe_now()
        if self._pump is not None:
            self._pump.stop()
            self._pump = None

    def close(self) -> None:
        self._stop()
        super().close()

    def _tick(self) -> bool:
        more = self.refresh()
        if not more:
            self._unsubscribe_now()
            self._ended()
        return more

    def _ended(self) -> None:
        self.live = False
        self._report_retry()
        callbacks, self._finish_callbacks = self._finish_callbacks, []
        for callback in callbacks:
            try:
                callback()
            except Exception:
                _log.exception("on_finish callback of %s failed", self.run_id)

    def _report_retry(self) -> None:
        """Say so when a retry ended without executing the run (e.g. it is owned)."""
        before, self._retried_at = self._retried_at, None
        if before is None or int(self.header.get("executions") or 0) > before:
            return
        try:
            self._run.wait(0)
        except Exception as err:
            self._say("error", f"could not retry run {self.run_id!r}: {err}")

    def _say(self, level: str, text: str, *lasts: str, at: float | None = None) -> None:
        """Show a notice while the run stays in its current status (or in ``lasts``),
        and not past the run's end if it ended after ``at`` (when it was asked for)."""
        until = sorted({str(self.header.get("status")), *lasts})
        self.notice = {"level": level, "text": text, "at": at or time.time(),
                       "until": until}

    # -- refreshing ------------------------------------------------------------------
    def refresh(self) -> bool:
        """Bring every view up to date; False once nothing executes the run any more."""
        with self._lock:
            picture = self._picture = self._snap.take()
            redact = self._run.engine.writer.redact
            head = model.header(picture, redact)
            self._table = model.rows(picture, redact)
            with self.hold_sync():
                if {**head, "now": 0} != {**self.header, "now": 0}:
                    self.header = head  # "now" alone (for the clock skew) is not news
                self._send_controls()
                if self.notice and model.stale_notice(self.notice, head):
                    self.notice = {}  # said about a state the run has left
                self._send_rows()
                self.approvals = model.approvals(picture)
                self._maybe_draw(picture, head["terminal"])
                self._panels.send(self, picture)
            self._refresh_detail(picture)
        if head["terminal"]:
            for callback in list(self._settle_callbacks):
                try:
                    callback()
                except Exception:
                    _log.exception("on_settle callback of %s failed", self.run_id)
        return not head["terminal"]

    def _send_controls(self) -> None:
        target = status.reset_target(self._picture, self.selected) if self._picture else ""
        blocked = self._probe is not None and self._probe.blocked()
        controls = status.controls(self.header, target, blocked=blocked)
        if controls != self.controls:
            self.controls = controls

    def _maybe_draw(self, picture: Picture, force: bool) -> None:
        diagram = self._drawer.draw(picture, force, self.max_nodes)
        if diagram is None:
            if self._drawer.pending and self._pump is not None:
                self._pump.poke()  # changed, but drawn recently: draw on a later tick
            return
        self.svg = diagram.svg or ""
        self.dot = "" if diagram.svg else diagram.dot
        self.problem = diagram.problem

    def _send_rows(self) -> None:
        size = self.page_size
        total = len(self._table)
        page = self.page if self.page >= 0 else model.auto_page(self._table, size, self.live)
        page = max(0, min(page, max(0, (total - 1) // size)))
        self.first_row = page * size
        self.total_rows = total
        self.rows = self._table[page * size:(page + 1) * size]

    def _on_page(self, _change: Any) -> None:
        with self._lock, self.hold_sync():
            self._send_rows()

    def _on_panel(self, _change: Any) -> None:
        if self._picture is not None:
            with self._lock, self.hold_sync():
                self._panels.send(self, self._picture)

    def _on_select(self, _change: Any) -> None:
        self._panels.detail_key = ()
        if self._picture is not None:
            with self._lock, self.hold_sync():
                self._send_controls()
                self._refresh_detail(self._picture)

    def _refresh_detail(self, picture: Picture) -> None:
        self._panels.detail(self, picture, self._table, self._drawer.groups)

    # -- actions from the front end -----------------------------------------------------
    def _on_message(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if not isinstance(content, dict):
            return
        if content.get("type") == "ping":
            self.viewed = True
            if self._pump is not None:
                self._pump.alive()
            return
        if content.get("type") != "action":
            return
        try:
            self.act(str(content.get("action")), str(content.get("step") or ""),
                     str(content.get("comment") or ""))
        except OrbitsError as err:
            self._say("error", str(err))
        except Exception as err:  # shown, never raised into the kernel's comm handler
            _log.exception("monitor action failed")
            self._say("error", f"{type(err).__name__}: {err}")

    def act(self, action: str, step: str = "", comment: str = "") -> None:
        """Do what a monitor button does: retry, cancel, reset, approve or reject.

        Refused, with the reason, when the button would be disabled in the run's
        current state (the state is read afresh first).
        """
        from orbits_nb.views import actions

        handler = actions.HANDLERS.get(action)
        if handler is None:
            raise OrbitsError(f"unknown monitor action {action!r}; use one of "
                              f"{sorted(actions.HANDLERS)}")
        self.refresh()
        target = status.reset_target(self._picture, step) if self._picture else ""
        control = status.controls(self.header, target).get(action)
        if control is not None and not control["enabled"]:
            if action == "reset" and step and self.header.get("status") in status.SETTLED:
                raise OrbitsError(f"cannot reset run {self.run_id!r} from {step!r}: that "
                                  "step has no record to discard (it has not run, or a "
                                  "reset discarded it already)")
            raise OrbitsError(control["title"])
        if action == "retry":
            self._retried_at = int(self.header.get("executions") or 0)
        asked = time.time()
        text = handler(self, step, comment)
        if self.notice.get("level") == "error" and self.notice.get("at", 0) >= asked:
            return  # the action already failed (a retry that could not start)
        self._say("success", text, *actions.LASTS.get(action, ()), at=asked)

    def executing(self) -> Run | None:
        """The handle executing this run in this process, if any."""
        return self._snap.executing_here()
