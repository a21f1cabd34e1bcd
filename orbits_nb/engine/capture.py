"""Per-step capture of ``print`` output and logging records.

While a step runs, a context variable names its sink; the stdout/stderr proxies and
the logging handler send what they see there. Outside a step they pass everything
through untouched, so installing the capture changes nothing for other code.
"""

from __future__ import annotations

import io
import logging
import sys
import threading
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, TextIO


class StepSink:
    """Collects the output of one step attempt, line by line."""

    def __init__(self, emit: Callable[[str, str], None]) -> None:
        self._emit = emit
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

    def close(self) -> None:
        with self._lock:
            partial, self._partial = self._partial, {}
        for stream, rest in partial.items():
            self._emit(stream, rest)


current_sink: ContextVar[StepSink | None] = ContextVar("orbits_nb_sink", default=None)


class _Proxy(io.TextIOBase):
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


class _Handler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        sink = current_sink.get()
        if sink is not None:
            try:
                sink.record("log", f"{record.levelname} {record.name}: {record.getMessage()}")
            except Exception:
                self.handleError(record)


_install_lock = threading.Lock()


def install() -> None:
    """Route step output to sinks (idempotent; called when an engine starts)."""
    with _install_lock:
        for name in ("stdout", "stderr"):
            stream = getattr(sys, name)
            if stream is not None and not isinstance(stream, _Proxy):
                setattr(sys, name, _Proxy(name, stream))
        root = logging.getLogger()
        if not any(isinstance(h, _Handler) for h in root.handlers):
            root.addHandler(_Handler())
        # Records of `self.log` must exist to be captured, whatever the root level.
        actions = logging.getLogger("orbits_nb.action")
        if actions.level == logging.NOTSET:
            actions.setLevel(logging.DEBUG)
            actions.propagate = True
