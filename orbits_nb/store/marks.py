"""Cheap signals between the processes of one host: "a run was queued or a slot freed",
"a command to a run was recorded".

A DuckDB file is held by one process at a time, so a process waiting for work must
not open it to learn whether there is any. Whoever commits a change that others wait
for appends a byte to a sidecar of the state file (``<file>.queued``,
``<file>.commands``); a waiter compares the sidecar's identity, size and modification
time with what it saw last (one ``stat``) and reads the store only when it moved. In
memory, a counter does the same (nobody else reaches that store).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

#: The sidecar is emptied once it reaches this size (its size then changes all the same).
_LIMIT = 4096


class Signal:
    """One signal (see the module): ``bump()`` after a commit, ``mark()`` to compare."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._count = 0

    def mark(self) -> Any:
        """A value that changes at every ``bump`` from any process; None when the
        sidecar cannot be read (the waiter then reads the store)."""
        if self.path is None:
            return self._count
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            return 0  # never signalled (the first bump creates it)
        except OSError:
            return None
        return (info.st_ino, info.st_size, info.st_mtime_ns)

    def bump(self) -> None:
        self._count += 1
        if self.path is None:
            return
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError:
            return  # e.g. a read-only folder: waiters fall back to their poll interval
        try:
            if os.fstat(fd).st_size >= _LIMIT:
                os.ftruncate(fd, 0)
            os.write(fd, b".")
        except OSError:
            pass  # a full disk: the same fallback
        finally:
            os.close(fd)


class Marks:
    """The ``queue_mark`` and ``command_mark`` verbs of a store on one host's file
    (a mixin of the store: ``file`` is its state file, None in memory)."""

    if TYPE_CHECKING:
        @property
        def file(self) -> Path | None: ...

    def _signal(self, suffix: str) -> Signal:
        signals: dict[str, Signal] = self.__dict__.setdefault("_signals", {})
        found = signals.get(suffix)
        if found is None:
            file = self.file
            found = signals[suffix] = Signal(None if file is None else
                                             Path(f"{file}{suffix}"))
        return found

    def queue_mark(self) -> Any:
        return self._signal(".queued").mark()

    def command_mark(self) -> Any:
        return self._signal(".commands").mark()

    def _queued(self) -> None:
        self._signal(".queued").bump()

    def _commanded(self) -> None:
        self._signal(".commands").bump()
