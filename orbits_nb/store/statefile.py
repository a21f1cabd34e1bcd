"""The state file, opened only while there is work, and never created by a read.

All access in a process is serialized on one connection. Between processes the file
is handed over through :class:`~orbits_nb.store.handoff.Turnstile`, so nobody sees a
DuckDB lock error: a process waits its turn, bounded by ``lock_timeout``.

Reads of a missing file see an empty store and create nothing; the first write
creates the file and its folders. A file this process may not write is opened
read-only for reads. Every DuckDB failure, at open or in any statement, leaves as a
:class:`~orbits_nb.StoreError` naming the file (see :mod:`orbits_nb.store.guard`).

:meth:`StateFile.transaction` is the one way to write several statements at once.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from orbits_nb.core.errors import StoreBusy, StoreError
from orbits_nb.store.atomic import atomic, quiet
from orbits_nb.store.guard import (
    BROKEN,
    fault,
    os_fault,
    read_only_message,
    seconds_from_env,
)
from orbits_nb.store.handoff import Turnstile
from orbits_nb.store.migrate import empty_store, ensure_schema

if TYPE_CHECKING:
    import duckdb

#: "write" creates the file; "read" never does; "auto" reads when the query only reads.
Mode = Literal["write", "read", "auto"]
#: Statement kinds that only read (SHOW, DESCRIBE and WITH parse as SELECT).
_READ_KINDS = frozenset({"SELECT", "EXPLAIN"})


class StateFile:
    """One state file (or ``":memory:"``) and this process's connection to it."""

    #: How often a holder whose time slice is used looks for a waiting process (the
    #: look opens and locks a sidecar: not at every pass of a busy writer).
    wait_check = 0.01
    #: Seconds without any use after which the file is let go while runs are in flight
    #: (a process waiting for it gets it sooner: see ``tick``).
    busy_idle_release = 2.0
    #: Seconds the file stays open after a query of ``relation()`` when nothing else
    #: keeps it open: a notebook's queries come in bursts, and opening a big file costs
    #: more than most queries. A process waiting for the file waits at most this long.
    query_linger = 0.25
    #: Seconds between two looks for a waiting process while the file lingers.
    linger_check = 0.05

    def __init__(self, path: str | Path, *, lock_timeout: float | None = None,
                 time_slice: float = 0.2, idle_release: float = 0.05) -> None:
        self.memory = str(path) == ":memory:"
        self.path = Path(path) if not self.memory else Path(":memory:")
        timeout = lock_timeout or seconds_from_env("ORBITS_NB_LOCK_TIMEOUT", 120.0)
        self.lock_timeout = timeout
        self.time_slice = time_slice
        self.idle_release = idle_release
        self._turnstile = None if self.memory else Turnstile(self.path, timeout=timeout)
        self._lock = threading.RLock()
        self._con: duckdb.DuckDBPyConnection | None = None
        self._read_only = False
        self._empty: duckdb.DuckDBPyConnection | None = None
        self._opened_at = 0.0
        self._last_used = 0.0
        self._next_check = 0.0
        self._users = 0
        self._linger: threading.Timer | None = None
        self._linger_until = 0.0
        #: Set by the engine while it has runs in flight; idle stores close at once.
        self.busy = False
        #: Holds of ``keep_open`` (nested, from any thread): the file stays open as
        #: while ``busy``, whatever the engine sets.
        self._holds = 0

    # -- the file -------------------------------------------------------------------
    @property
    def location(self) -> str:
        """The state file's path (``:memory:`` for an in-memory store), for messages."""
        return str(self.path)

    @property
    def file(self) -> Path | None:
        """The state file, or None for an in-memory store."""
        return None if self.memory else self.path

    @property
    def exists(self) -> bool:
        """Whether the state file exists (a read of a missing one sees an empty store)."""
        return self.memory or self.path.is_file()

    @contextmanager
    def connection(self, *, write: bool = True) -> Iterator[duckdb.DuckDBPyConnection]:
        """The open connection, for one unit of work (opens the file if needed).

        ``write=False`` promises that the work only reads: a missing file is then not
        created (an empty store answers) and a file this process may not write is
        opened read-only. DuckDB errors raised inside become :class:`StoreError`.
        """
        with self._session("write" if write else "read") as con:
            yield con

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[duckdb.DuckDBPyConnection]:
        """The connection inside one transaction: committed when the block ends,
        rolled back (and nothing of it kept) when anything in it raises."""
        with self.connection(write=write) as con, atomic(con):
            yield con

    @contextmanager
    def keep_open(self) -> Iterator[None]:
        """Keep the file open for a few operations in a row, then hand it over (it is
        handed over meanwhile only to a process waiting for it, as while ``busy``)."""
        with self._lock:
            self._holds += 1
        try:
            yield
        finally:
            with self._lock:
                self._holds -= 1
                last = not self._holds and not self.busy
            if last and not self.memory:  # closing a store in memory would drop it
                self.close()

    @property
    def _held_open(self) -> bool:
        return self.busy or self._holds > 0

    @contextmanager
    def _session(self, mode: Mode, query: str | None = None, *, linger: bool = False
                 ) -> Iterator[duckdb.DuckDBPyConnection]:
        """``mode`` is "write", "read", or "auto" (read when ``query`` only selects);
        ``linger`` keeps the file open ``query_linger`` seconds after the session."""
        import duckdb

        with self._lock:
            try:
                con = self._acquire(mode, query)
            except duckdb.Error as err:
                raise self._failed(err, query) from None
            held = con is self._con
            self._users += held
            try:
                yield con
            except duckdb.Error as err:
                raise self._failed(err, query) from None
            finally:
                if held:
                    self._users -= 1
                    self._last_used = time.monotonic()
                    if not self._held_open and not self.memory and not self._users:
                        if linger and self.query_linger > 0:
                            self._keep_for(self.query_linger)
                        else:
                            self._close()

    def _acquire(self, mode: Mode, query: str | None) -> duckdb.DuckDBPyConnection:
        if self._con is not None and not (mode == "write" and self._read_only):
            return self._con
        if not self.memory and not self._file_exists():
            if mode == "read" or (mode == "auto" and self._only_reads(query)):
                return self._empty_store()
            mode = "write"
        if self._con is not None:  # opened read-only for reads; now a write comes
            if not self._may_write() or self._users:
                raise StoreError(read_only_message(self.path), path=str(self.path),
                                 reason="read-only")
            self._close()
        reading = not self.memory and mode != "write"
        try:
            self._open(read_only=reading and not self._may_write())
        except StoreError as err:
            if not (reading and err.fields.get("reason") == "read-only"):
                raise
            self._open(read_only=True)  # writable by its modes, yet refused: read only
        assert self._con is not None
        return self._con

    def _file_exists(self) -> bool:
        if self.path.is_dir():
            raise StoreError(f"the state path {self.path} is a folder; give a file path "
                             f"such as {self.path / 'state.duckdb'}", path=str(self.path),
                             reason="io")
        return self.path.exists()

    def _may_write(self) -> bool:
        folder = self.path.parent
        if not os.access(folder, os.W_OK):
            return False
        return not self.path.exists() or os.access(self.path, os.W_OK)

    def _only_reads(self, query: str | None) -> bool:
        if query is None:
            return False
        kinds = {s.type.name for s in self._empty_store().extract_statements(query)}
        return bool(kinds) and kinds <= _READ_KINDS

    def _empty_store(self) -> duckdb.DuckDBPyConnection:
        if self._empty is None:
            self._empty = empty_store()
        return self._empty

    def _failed(self, err: BaseException, query: str | None = None) -> StoreError:
        """The StoreError for ``err``; a connection that may be broken is closed."""
        error = fault(self.path, err, query=query)
        if error.fields.get("reason") in BROKEN and self._con is not None:
            with suppress(Exception):
                self._close(broken=True)
        return error

    def tick(self) -> None:
        """Hand the file over: at once when no run is in flight, when somebody waits
        and our time slice is used, or after ``busy_idle_release`` seconds unused.

        While runs are in flight the file stays open between their writes (reopening
        costs a connection and a schema check); a waiting process is looked for every
        ``wait_check`` seconds once the slice is used, so it gets the file within the
        slice and that, whether the holder is writing or idle.
        """
        if self._con is None or self.memory:
            return
        with self._lock:
            if self._con is None or self._users:
                return
            if self._linger is not None and not self._held_open:
                # Kept for the next query (its timer closes it), unless somebody waits.
                if self._waiter():
                    self._close()
                return
            now = time.monotonic()
            if not self._held_open or now - self._last_used > self.busy_idle_release:
                self._close()
            elif now - self._opened_at > self.time_slice and now >= self._next_check:
                self._next_check = now + self.wait_check
                if self._waiter():
                    self._close()

    def _keep_for(self, seconds: float) -> None:
        """Keep the file open ``seconds`` more, unless a process waits for it."""
        self._linger_until = time.monotonic() + seconds
        if self._linger is None:
            self._arm()

    def _arm(self) -> None:
        timer = threading.Timer(self.linger_check, self._lingered)
        timer.daemon = True
        self._linger = timer
        timer.start()

    def _lingered(self) -> None:
        with self._lock:
            if self._linger is None:
                return
            if self._users or self._held_open:  # in use again: its owner lets go of it
                self._linger = None
                return
            if time.monotonic() < self._linger_until and not self._waiter():
                self._arm()
                return
            self._linger = None
            # Nobody to tell in this timer thread; what was committed is in the file
            # or its log either way, and the next use opens it again.
            with suppress(Exception):
                self._close()

    def _waiter(self) -> bool:
        return self._turnstile is not None and self._turnstile.someone_waits()

    def close(self) -> None:
        with self._lock:
            self._close()
            if self._empty is not None:
                self._empty.close()
                self._empty = None

    @property
    def is_open(self) -> bool:
        return self._con is not None

    def write_mark(self) -> int | None:
        """A value, read without opening the file, that changes whenever another
        process (or another store object) may have written the file since this one
        last held it; None when that cannot be told. An in-memory store is reached by
        nobody else."""
        if self._turnstile is None:
            return 0
        return self._turnstile.mark()

    def _open(self, *, read_only: bool) -> None:
        import duckdb

        if self._turnstile is not None:
            if not read_only:
                try:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                except OSError as err:
                    raise os_fault(self.path, err, "create its folder") from None
                if not self._may_write():
                    raise StoreError(read_only_message(self.path), path=str(self.path),
                                     reason="read-only")
            try:
                self._turnstile.acquire(create=not read_only)
            except OSError as err:
                raise os_fault(self.path, err, "open its lock files") from None
        # Checked while holding the file's lock: nobody else can be creating it now.
        existed = self.memory or self.path.exists()
        try:
            self._con = quiet(self._connect(duckdb, read_only))
            ensure_schema(self._con, self.path, read_only=read_only)
            self._opened(self._con, read_only=read_only)
        except BaseException as err:
            self._abandon(created=not existed)
            if isinstance(err, duckdb.Error):
                raise fault(self.path, err) from None
            raise
        self._read_only = read_only
        self._opened_at = time.monotonic()

    def _abandon(self, *, created: bool) -> None:
        """Undo a failed open; a file this open created is removed, not left half-made."""
        if self._con is not None:
            with suppress(Exception):
                self._con.close()
            self._con = None
        if created and not self.memory:
            for leftover in (self.path, Path(f"{self.path}.wal")):
                with suppress(OSError):
                    leftover.unlink()
        if self._turnstile is not None:
            self._turnstile.release()

    def _connect(self, db: Any, read_only: bool) -> duckdb.DuckDBPyConnection:
        if self.memory:
            return cast("duckdb.DuckDBPyConnection", db.connect(":memory:"))
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.005
        while True:
            try:
                return cast("duckdb.DuckDBPyConnection",
                            db.connect(str(self.path), read_only=read_only))
            except db.IOException as err:
                text = str(err)
                if "lock" not in text.lower():
                    raise
                # A process outside orbits_nb (e.g. the duckdb CLI) holds the file.
                if time.monotonic() > deadline:
                    raise StoreBusy(
                        f"the state file {self.path} is locked by a program outside "
                        f"orbits_nb: {text}", path=str(self.path)) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.25)

    def _opened(self, con: duckdb.DuckDBPyConnection, *, read_only: bool) -> None:
        """Called once the file is open and its schema current (for subclasses)."""

    def _closing(self, con: duckdb.DuckDBPyConnection) -> None:
        """Called before a writable file is closed in good order (for subclasses)."""

    def _close(self, *, broken: bool = False) -> None:
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        if self._con is None:
            return
        if not broken and not self._read_only:
            self._closing(self._con)
        con, self._con = self._con, None
        try:
            con.close()
        except Exception as err:  # e.g. the checkpoint at close met a full disk
            raise fault(self.path, err) from None
        finally:
            if self._turnstile is not None:
                self._turnstile.release()
