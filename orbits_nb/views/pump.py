"""Coalesce a flood of change notifications into a few refreshes.

The engine calls its listeners on every state change, on its own thread; a listener
must stay cheap. :class:`Pump` turns ``poke()`` calls from any thread into at most one
``refresh()`` per ``interval`` on one background thread, and can also poll on a timer
(for runs executed by another process). ``refresh`` returns False when there is
nothing more to follow, which ends the thread: a finished run costs nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

_log = logging.getLogger(__name__)


class Pump:
    def __init__(self, refresh: Callable[[], bool], *, interval: float = 0.5,
                 poll: float | None = None, name: str = "orbits-nb-view",
                 idle_after: float | None = None) -> None:
        if interval <= 0:
            raise ValueError(f"interval={interval!r} must be positive")
        self._refresh = refresh
        self.interval = interval
        self.poll = poll
        self.name = name
        #: Pause polling when no front end said it is alive for this long (None: never).
        self.idle_after = idle_after
        self._cond = threading.Condition()
        self._dirty = False
        self._stopped = False
        self._last = 0.0
        self._alive_at: float | None = None
        self._thread: threading.Thread | None = None
        self.refreshes = 0

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        with self._cond:
            if self.running:
                return
            self._stopped = False
            self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
            self._thread.start()

    def poke(self) -> None:
        """Ask for a refresh soon (cheap; safe from any thread)."""
        with self._cond:
            if not self._dirty:
                self._dirty = True
                self._cond.notify()

    def alive(self) -> None:
        """A front end is showing the view: keep polling."""
        with self._cond:
            self._alive_at = time.monotonic()
            self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(5)

    def _watched(self) -> bool:
        if self.idle_after is None or self._alive_at is None:
            return True
        return time.monotonic() - self._alive_at < self.idle_after

    def _wait(self) -> bool:
        """Wait until a refresh is due; False when stopped."""
        with self._cond:
            while not self._stopped:
                polling = self.poll is not None and self._watched()
                if self._dirty or (polling and time.monotonic() - self._last >= (
                        self.poll or 0)):
                    break
                timeout = None
                if polling:
                    timeout = max(0.01, (self.poll or 0) - (time.monotonic() - self._last))
                self._cond.wait(timeout)
            if self._stopped:
                return False
            pause = self.interval - (time.monotonic() - self._last)
        if pause > 0:
            time.sleep(pause)  # coalesce: pokes during the pause ride along
        with self._cond:
            self._dirty = False
        return not self._stopped

    def _loop(self) -> None:
        while self._wait():
            self._last = time.monotonic()
            try:
                more = self._refresh()
            except Exception:  # a view must never take the kernel down
                _log.exception("refreshing %s failed", self.name)
                more = True
            self.refreshes += 1
            if not more:
                break
        with self._cond:
            self._thread = None if self._thread is threading.current_thread() else self._thread
