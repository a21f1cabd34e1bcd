"""Whether the kernel can act on a button now, or a cell blocks it.

A widget's button press reaches the kernel as a message that the kernel's event loop
handles. A cell awaiting a run (``await run``) leaves that loop running, so buttons
act; a cell blocked in ``run.wait()`` (or any long call) stops it, and a press waits,
unseen, until the cell returns; an approval pressed then can wait for ever. The probe
asks the loop to run a tiny callback and reports the loop blocked when it has not run
after a second, so the monitor can say so instead of offering buttons that do nothing.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable


class LoopProbe:
    """Reports whether ``loop`` has been unable to run a callback for ``after`` seconds."""

    def __init__(self, loop: asyncio.AbstractEventLoop, *, thread: int, after: float = 1.0,
                 wake: Callable[[], None] | None = None) -> None:
        self.loop = loop
        #: The identity of the thread that runs ``loop``.
        self.thread = thread
        self.after = after
        #: Called (on the loop) when a blocked loop answers again.
        self.wake = wake
        self._lock = threading.Lock()
        self._answered = threading.Event()
        self._sent: float | None = None
        self._blocked = False

    @classmethod
    def of_this_thread(cls, **options: object) -> LoopProbe | None:
        """A probe of the event loop running this code (a kernel's), else None."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return None
        return cls(loop, thread=threading.get_ident(), **options)  # type: ignore[arg-type]

    def blocked(self) -> bool:
        """The latest verdict; also sends the next probe once the last one answered."""
        if threading.get_ident() == self.thread:
            return False  # asked from the loop itself: it is running
        now = time.monotonic()
        with self._lock:
            if self._sent is None or self._answered.is_set():
                if self._sent is not None:
                    self._blocked = False
                self._answered.clear()
                self._sent = now
                try:
                    self.loop.call_soon_threadsafe(self._answer)
                except RuntimeError:  # the loop is closed: nothing to block
                    self._sent, self._blocked = None, False
            elif now - self._sent >= self.after:
                self._blocked = True
            return self._blocked

    def _answer(self) -> None:
        self._answered.set()
        if self._blocked and self.wake is not None:
            self.wake()
