"""Periodic drift checks in the background: ``orbits_nb.watch_drift(every="10m")``."""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import re
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from orbits_nb.core.errors import InvalidArgument, OrbitsError
from orbits_nb.resources import records
from orbits_nb.resources.check import DEFAULT_CONCURRENCY, check_concurrency, check_rows
from orbits_nb.resources.cycles import run_due
from orbits_nb.resources.report import DriftReport

if TYPE_CHECKING:
    from orbits_nb.engine.engine import Engine
    from orbits_nb.resources.api import TypeFilter
    from orbits_nb.resources.widget import DriftWidget

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
MIN_SECONDS = 0.05

#: Live watches by (engine, filters): starting the same watch again replaces it.
_watches: dict[tuple[int, str], DriftWatch] = {}
_watches_lock = threading.Lock()


def parse_every(every: str | float | dt.timedelta) -> float:
    """``"10m"``, ``"1h30m"``, ``"45s"``, ``"500ms"``, seconds or a timedelta -> seconds.

    >>> parse_every("1h30m")
    5400.0
    """
    if isinstance(every, dt.timedelta):
        seconds = every.total_seconds()
    elif isinstance(every, (int, float)) and not isinstance(every, bool):
        seconds = float(every)
    elif isinstance(every, str) and every.strip():
        text = every.strip().lower().replace(" ", "")
        parts = _PART.findall(text)
        if "".join(n + u for n, u in parts) != text:
            raise InvalidArgument(f"every={every!r} is not a duration; write e.g. '30s', "
                                  "'10m', '1h30m' or a number of seconds", every=every)
        seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    else:
        raise InvalidArgument(f"every= must be a duration like '10m' or seconds, got "
                              f"{every!r}", every=repr(every))
    if seconds < MIN_SECONDS:
        raise InvalidArgument(f"every={every!r} is too short; use at least "
                              f"{MIN_SECONDS}s", every=repr(every))
    return seconds


class DriftWatch:
    """A background drift check every ``interval`` seconds, shown in one widget.

    ``stop()`` ends it; ``last`` is the latest report; ``on_drift(report)`` (if given)
    is called after each check that found drift, missing resources or errors. After
    each check it runs the cycles that are due (resources with ``cycle_every``);
    ``cycles`` lists what they did.
    """

    def __init__(self, engine: Engine, interval: float, filters: dict[str, Any],
                 concurrency: int, on_drift: Callable[[DriftReport], Any] | None) -> None:
        self.engine = engine
        self.interval = interval
        self.filters = filters
        self.concurrency = concurrency
        self.on_drift = on_drift
        self.last: DriftReport | None = None
        self.checks = 0
        self.error: str | None = None
        self._widget: DriftWidget | None = None
        #: What the cycles due at the latest check did (see ``cycle_every``).
        self.cycles: list[dict[str, Any]] = []
        self._cycled: dict[str, float] = {}
        self._checked = threading.Condition()
        self._future: concurrent.futures.Future[None] | None = None

    def start(self) -> DriftWatch:
        self._future = asyncio.run_coroutine_threadsafe(self._loop(), self.engine.loop)
        return self

    @property
    def running(self) -> bool:
        return self._future is not None and not self._future.done()

    def stop(self) -> None:
        """Stop checking (the widget stays, showing the last report)."""
        if self._future is not None:
            self._future.cancel()

    async def _loop(self) -> None:
        from orbits_nb.resources.api import kinds_of

        while True:
            started, clock = time.time(), time.monotonic()
            try:
                rows = await asyncio.to_thread(
                    records.select, self.engine.store, kinds=kinds_of(self.filters["type"]),
                    identity=self.filters["identity"], workflow=self.filters["workflow"],
                    keys=[self.filters["key"]] if self.filters["key"] else ())
                checks = await check_rows(self.engine, rows, concurrency=self.concurrency)
                self.cycles = await run_due(self.engine, rows, self._cycled)
                report = DriftReport(checks, engine=self.engine, filters=self.filters,
                                     concurrency=self.concurrency, started_at=started,
                                     duration_s=time.monotonic() - clock)
                self.error = None
                await asyncio.to_thread(self._publish, report)
            except Exception as err:  # a failing check must not end the watch
                self.error = f"{type(err).__name__}: {err}"
            with self._checked:
                self.checks += 1
                self._checked.notify_all()
            await asyncio.sleep(self.interval)

    def _publish(self, report: DriftReport) -> None:
        self.last = report
        if self._widget is not None:
            self._widget.show(report)
        if self.on_drift is not None and not report.ok:
            self.on_drift(report)

    def wait_for_check(self, count: int = 1, timeout: float | None = None) -> DriftReport:
        """Block until ``count`` checks in total have completed; return the latest."""
        with self._checked:
            if not self._checked.wait_for(lambda: self.checks >= count, timeout):
                raise TimeoutError(f"the drift watch made {self.checks} check(s), not "
                                   f"{count}, within {timeout}s")
        if self.last is None:
            raise OrbitsError(f"the drift watch could not check: {self.error}")
        return self.last

    def widget(self) -> DriftWidget:
        """The widget this watch keeps up to date (created on first use)."""
        from orbits_nb.resources.widget import DriftWidget

        if self._widget is None:
            report = self.last or DriftReport([], engine=self.engine, filters=self.filters,
                                              concurrency=self.concurrency,
                                              started_at=time.time(), duration_s=0.0)
            self._widget = DriftWidget(report)
        return self._widget

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        last = self.last.summary() if self.last else "no check yet"
        return f"DriftWatch(every {self.interval:g}s, {state}, {self.checks} check(s); {last})"

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        from orbits_nb.resources.widget import widgets_wanted

        if widgets_wanted():
            return self.widget()._repr_mimebundle_()
        if self.last is not None:
            return self.last._repr_mimebundle_()
        return {"text/plain": repr(self)}


def watch_drift(every: str | float | dt.timedelta = "10m", *, type: TypeFilter = None,
                identity: str | None = None, workflow: str | None = None,
                key: str | None = None, concurrency: int = DEFAULT_CONCURRENCY,
                on_drift: Callable[[DriftReport], Any] | None = None,
                engine: Engine | None = None) -> DriftWatch:
    """Check drift now and then every ``every`` in the background; display to watch.

    Filters are those of :func:`orbits_nb.drift`. Calling it again with the same
    filters replaces the earlier watch. ``on_drift(report)`` runs (in a worker thread)
    after each check that is not all in sync, e.g. to send an alert.

    >>> watch = ob.watch_drift(every="10m", type=ob.LocalFile)   # doctest: +SKIP
    >>> watch            # the drift widget, refreshed by each check   # doctest: +SKIP
    >>> watch.stop()     # doctest: +SKIP
    """
    from orbits_nb.engine.engine import default_engine
    from orbits_nb.resources.api import kinds_of

    interval = parse_every(every)
    kinds_of(type)  # validate now, not in the background
    if on_drift is not None and not callable(on_drift):
        raise InvalidArgument(f"on_drift must be callable, got {on_drift!r}")
    engine = engine or default_engine()
    filters = {"type": type, "identity": identity, "workflow": workflow, "key": key}
    watch = DriftWatch(engine, interval, filters, check_concurrency(concurrency), on_drift)
    slot = (id(engine), repr(sorted(filters.items(), key=lambda kv: kv[0])))
    with _watches_lock:
        previous = _watches.get(slot)
        if previous is not None:
            previous.stop()
            watch._widget = previous._widget
        _watches[slot] = watch
    return watch.start()
