"""Fair hand-over of the state file between processes.

DuckDB lets one process open a file for writing at a time, and a second process gets
an error instead of waiting. Every orbits_nb process therefore takes two advisory
``flock`` locks next to the file before opening it:

* ``<file>.queue`` is held only by a process *waiting* for the file;
* ``<file>.lock`` is held by the process that has the file open.

A waiter takes the queue lock, then the file lock, then lets the queue go. The holder
checks the queue lock after each batch of work: when it is taken, somebody is waiting,
so the holder closes the file once its time slice is used. Because the holder must
itself pass through the queue to come back, two busy processes alternate instead of
one starving the other. Locks held by a process vanish when it dies.

A process that only reads a file it may not write (a read-only file or folder) locks
the sidecars it finds, opened read-only, and creates none.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import time
from pathlib import Path

from orbits_nb.core.errors import StoreBusy


class Turnstile:
    """The two sidecar locks of one state file, for one process."""

    def __init__(self, path: Path, *, timeout: float = 120.0) -> None:
        self.path = path
        self.timeout = timeout
        self._file_fd: int | None = None

    @property
    def held(self) -> bool:
        return self._file_fd is not None

    def acquire(self, *, create: bool = True) -> None:
        """Wait (bounded) until this process may open the state file.

        ``create=False`` (a reader of a file it may not write) creates no sidecar;
        raises :class:`OSError` when a sidecar cannot be opened as asked.
        """
        deadline = time.monotonic() + self.timeout
        queue_fd = self._open(".queue", create)
        try:
            if queue_fd is not None:
                self._lock(queue_fd, deadline)
            file_fd = self._open(".lock", create)
            if file_fd is None:
                self._file_fd = -1  # nobody may write here: there is no one to wait for
                return
            try:
                self._lock(file_fd, deadline)
            except BaseException:
                os.close(file_fd)
                raise
            if create:
                _sign(file_fd)
            self._file_fd = file_fd
        finally:
            if queue_fd is not None:
                os.close(queue_fd)  # closing the descriptor also drops its lock

    def release(self) -> None:
        if self._file_fd is not None:
            if self._file_fd >= 0:
                os.close(self._file_fd)
            self._file_fd = None

    def someone_waits(self) -> bool:
        """True when another process is queued for the file."""
        try:
            fd = self._open(".queue", create=False)
        except OSError:
            return False
        if fd is None:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    def _open(self, suffix: str, create: bool) -> int | None:
        name = f"{self.path}{suffix}"
        if create:
            return os.open(name, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            return os.open(name, os.O_RDWR)
        except FileNotFoundError:
            return None
        except PermissionError:
            pass  # flock works on a descriptor opened for reading only
        except OSError as err:
            if err.errno != errno.EROFS:
                raise
        try:
            return os.open(name, os.O_RDONLY)
        except FileNotFoundError:
            return None

    def _lock(self, fd: int, deadline: float) -> None:
        delay = 0.0005
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise StoreBusy(
                        f"the state file {self.path} stayed busy for {self.timeout:.0f}s "
                        f"(held by {self._holder()}); is that process stuck? "
                        "Stop it or raise ORBITS_NB_LOCK_TIMEOUT",
                        path=str(self.path),
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.02)

    def _holder(self) -> str:
        try:
            return Path(f"{self.path}.lock").read_text() or "another process"
        except OSError:
            return "another process"


def _sign(fd: int) -> None:
    """Say who holds the file, for the error a starved waiter reports."""
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{socket.gethostname()} pid {os.getpid()}".encode(), 0)
    except OSError:
        pass  # e.g. a full disk: the lock is held all the same, only unsigned
