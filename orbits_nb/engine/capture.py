"""Per-step capture of ``print`` output and logging records.

While a step runs, a context variable names its sink. Outside steps nothing is
changed: ``sys.stdout``/``sys.stderr`` are swapped for pass-through proxies only while
at least one step executes (and put back only if nobody replaced them meanwhile), and
logging keeps the user's handlers untouched (no handler is added to the root logger,
so ``logging.basicConfig()`` and ``logging.lastResort`` work as usual). Inside a step
each record goes to the step's logs exactly once: handlers that would print it on the
console (where the step's prints are not shown either) are skipped, other handlers
(files, services) still receive it.
"""

from __future__ import annotations

import io
import logging
import sys
import threading
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, TextIO, TypeVar

T = TypeVar("T")


class StepSink:
    """Collects the output of one step attempt, line by line.

    An executor that runs the call elsewhere also says here where it ran
    (:meth:`place`, e.g. the Dask worker's address), for the step's record.
    """

    def __init__(self, emit: Callable[[str, str], None],
                 placed: Callable[[dict[str, Any]], None] | None = None) -> None:
        self._emit = emit
        self._placed = placed
        self._partial: dict[str, str] = {}
        self._lock = threading.Lock()

    def write(self, stream: str, text: str) -> None:
        with self._lock:
            text = self._partial.pop(stream, "") + text
            *lines, rest = text.split("\n")
            if rest:
                self._partial[stream] = rest
        for line in lines:
            self._emit(stream, line)

    def record(self, stream: str, line: str) -> None:
        self._emit(stream, line)

    def place(self, where: dict[str, Any]) -> None:
        """Where the call ran (call on the engine's loop): JSON values only."""
        if self._placed is not None:
            self._placed(where)

    def close(self) -> None:
        with self._lock:
            partial, self._partial = self._partial, {}
        for stream, rest in partial.items():
            self._emit(stream, rest)


current_sink: ContextVar[StepSink | None] = ContextVar("orbits_nb_sink", default=None)


class _Proxy(io.TextIOBase):
    """Sends writes made inside a step to its sink, everything else to ``original``."""

    def __init__(self, name: str, original: TextIO) -> None:
        self.name_ = name
        self.original = original

    def write(self, text: str) -> int:
        sink = current_sink.get()
        if sink is None:
            return self.original.write(text)
        sink.write(self.name_, text)
        return len(text)

    def flush(self) -> None:
        self.original.flush()

    def isatty(self) -> bool:
        return self.original.isatty()

    def fileno(self) -> int:
        return self.original.fileno()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.original, name)


_lock = threading.Lock()
_active = 0
_installed: dict[str, _Proxy] = {}
_STREAMS = ("stdout", "stderr")


def begin() -> None:
    """A step starts executing: route step output to sinks (counted; see :func:`end`)."""
    global _active
    with _lock:
        _active += 1
        for name in _STREAMS:
            stream = getattr(sys, name)
            # Checked at each start: the user may have replaced the stream meanwhile.
            if stream is not None and not isinstance(stream, _Proxy):
                _installed[name] = _Proxy(name, stream)
                setattr(sys, name, _installed[name])
        _route_logging()


def end() -> None:
    """A step stopped executing; the last one puts the streams back."""
    global _active
    with _lock:
        _active -= 1
        if _active > 0:
            return
        for name, proxy in _installed.items():
            if getattr(sys, name) is proxy:  # else the user replaced it: leave theirs
                setattr(sys, name, proxy.original)
        _installed.clear()


def in_thread(function: Callable[[], T]) -> T:
    """Call a step's blocking ``function`` in a worker thread (in the step's context).

    The thread keeps the output routing installed for as long as it runs: a call whose
    step was cancelled without it (abandoned) may go on printing after its step ended,
    and those lines still belong to its own attempt (its sink), never to the console
    or to whichever step runs next. Its last partial line is kept when it ends.
    """
    from orbits_nb.executors._boundary import called

    begin()
    try:
        return called(function)
    finally:
        end()
        sink = current_sink.get()
        if sink is not None:
            sink.close()


def line_of(record: logging.LogRecord) -> str:
    """How a record reads in the step's logs."""
    try:
        message = record.getMessage()
    except Exception:  # bad %-arguments must not lose the record
        message = f"{record.msg!r} % {record.args!r}"
    line = f"{record.levelname} {record.name}: {message}"
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        line += "\n" + record.exc_text
    if record.stack_info:
        line += "\n" + record.stack_info
    return line


def _consoles() -> set[int]:
    streams: list[Any] = [sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__]
    for outer in list(streams):
        inner = outer
        while isinstance(inner, _Proxy):
            inner = inner.original
            streams.append(inner)
    return {id(s) for s in streams if s is not None}


def _prints_to_console(handler: logging.Handler, consoles: set[int]) -> bool:
    return (isinstance(handler, logging.StreamHandler)
            and not isinstance(handler, logging.FileHandler)
            and id(getattr(handler, "stream", None)) in consoles)


def _call_handlers_in_step(logger: logging.Logger, record: logging.LogRecord,
                           sink: StepSink) -> None:
    """``Logger.callHandlers`` inside a step: the step's logs, then non-console handlers.

    ``logging.lastResort`` is never used here: the record is already in the logs.
    """
    sink.record("log", line_of(record))
    consoles = _consoles()
    current: logging.Logger | None = logger
    while current is not None:
        for handler in current.handlers:
            if record.levelno >= handler.level and not _prints_to_console(handler, consoles):
                handler.handle(record)
        current = current.parent if current.propagate else None


def _route_logging() -> None:
    """Wrap ``logging.Logger.callHandlers`` once (idempotent, thread-safe via _lock)."""
    original = logging.Logger.callHandlers
    if getattr(original, "_orbits_nb", False):
        return

    def callHandlers(self: logging.Logger, record: logging.LogRecord) -> None:
        sink = current_sink.get()
        if sink is None:
            original(self, record)
        else:
            _call_handlers_in_step(self, record, sink)

    callHandlers._orbits_nb = True  # type: ignore[attr-defined]
    logging.Logger.callHandlers = callHandlers  # type: ignore[method-assign]
    # Records of `self.log` must exist to be captured, whatever the root level.
    actions = logging.getLogger("orbits_nb.action")
    if actions.level == logging.NOTSET:
        actions.setLevel(logging.DEBUG)
