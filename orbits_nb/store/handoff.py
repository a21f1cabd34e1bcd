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

Each holder signs ``<file>.lock`` with a signature of its own, so a process can tell
cheaply, without opening the state file, whether anybody else has held it since it
let go (:meth:`Turnstile.mark`).
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import time
import uuid
from pathlib import Path

from orbits_nb.core.errors import StoreBusy


class Turnstile:
    """The two sidecar locks of one state file, for one process."""

    def __init__(self, path: Path, *, timeout: float = 120.0) -> None:
        self.path = path
        self.timeout = timeout
        self._file_fd: int | None = None
        #: What this process last signed the lock file with, and the number of times
        #: it found the file held by somebody else since (see ``mark``).
        self._signature: str | None = None
        self._foreign = 0
        self._closed: tuple[int, int, int] | None = None

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
                self._sign(file_fd)
            self._file_fd = file_fd
        finally:
            if queue_fd is not None:
                os.close(queue_fd)  # closing the descriptor also drops its lock

    def release(self) -> None:
        if self._file_fd is not None:
            if self._file_fd >= 0:
                # The state file as this process left it: a program writing it without
                # these locks (the duckdb CLI) changes it, which ``mark`` then sees.
                self._closed = _identity(self.path)
                os.close(self._file_fd)
            self._file_fd = None

    def mark(self) -> int | None:
        """A value that changes whenever another process (or another store of this one)
        may have held the file since this one let go of it; None when it cannot tell.

        Costs a read of the lock file at most: the state file is not opened.
        """
        if self._file_fd is not None:
            return self._foreign if self._file_fd >= 0 else None  # nobody else writes now
        if self._signature is None or self._closed is None:
            return None
        try:
            signed = Path(f"{self.path}.lock").read_text()
        except OSError:
            return None
        if signed != self._signature or _identity(self.path) != self._closed:
            return None
        return self._foreign

    def _sign(self, fd: int) -> None:
        """Say who holds the file (for the error a starved waiter reports), in words
        nobody else signs with, and count the times somebody else held it before."""
        try:
            previous = os.pread(fd, 4096, 0).decode(errors="replace")
        except OSError:
            previous = ""
        if self._signature is None or previous != self._signature:
            self._foreign += 1
        signature = f"{socket.gethostname()} pid {os.getpid()}\n{uuid.uuid4().hex}"
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, signature.encode(), 0)
        except OSError:
            signature = ""  # e.g. a full disk: the lock is held all the same, unsigned
        self._signature = signature or None

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
            signed = Path(f"{self.path}.lock").read_text()
        except OSError:
            return "another process"
        return signed.split("\n", 1)[0] or "another process"


def _identity(path: Path) -> tuple[int, int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_ino, info.st_size, info.st_mtime_ns)
