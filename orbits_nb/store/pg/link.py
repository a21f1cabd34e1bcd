"""The connection side of the team store: a pool, sessions, transactions, retries.

A process keeps a small psycopg pool; a thread holds one connection for the length of
a verb (nested verbs of that thread reuse it). Connections run in autocommit: a
:meth:`PgLink.transaction` is an explicit ``BEGIN ... COMMIT``. A connection is checked
when taken from the pool, so one the server dropped meanwhile is replaced; the first
connection, and any after a drop, are tried again with bounded backoff before the
fault is reported (see :mod:`.faults`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

from orbits_nb.core.errors import StoreError
from orbits_nb.store.guard import seconds_from_env
from orbits_nb.store.pg import url as urls
from orbits_nb.store.pg.dialect import bind, translate
from orbits_nb.store.pg.driver import driver
from orbits_nb.store.pg.faults import TRANSIENT, pg_fault

if TYPE_CHECKING:
    import psycopg
    import psycopg_pool

T = TypeVar("T")


class PgConnection:
    """A psycopg connection that takes the DuckDB-dialect SQL of the table families."""

    def __init__(self, raw: psycopg.Connection[Any]) -> None:
        self.raw = raw
        self._cursor = raw.cursor()
        self.depth = 0
        self.committing = False

    def execute(self, query: str, params: Sequence[Any] | None = None) -> PgConnection:
        text, values = bind(translate(query), params)
        self._cursor.execute(text, values or None)
        return self

    def fetchall(self) -> list[tuple[Any, ...]]:
        return list(self._cursor.fetchall()) if self._cursor.description else []

    def fetchone(self) -> tuple[Any, ...] | None:
        return self._cursor.fetchone() if self._cursor.description else None

    @property
    def in_transaction(self) -> bool:
        return self.raw.info.transaction_status != 0  # not IDLE


def _configure(raw: psycopg.Connection[Any]) -> None:
    """JSON columns come back as their text, as DuckDB gives them."""
    psycopg, _ = driver()

    def as_text(data: str | bytes) -> str:
        return data.decode() if isinstance(data, bytes) else data

    psycopg.types.json.set_json_loads(as_text, raw)


class PgLink:
    """A team store location and this process's connections to it."""

    def __init__(self, url: str, *, retry_for: float | None = None,
                 pool_size: int = 8, **_ignored: Any) -> None:
        self.url = urls.check(url)
        self.shown = urls.describe(url)
        self.path = Path(self.shown)  # for messages shared with the DuckDB store
        self.retry_for = (seconds_from_env("ORBITS_NB_PG_RETRY", 10.0) if retry_for is None
                          else retry_for)
        self.pool_size = pool_size
        self.busy = False
        self.idle_release = 0.05
        self._read_only = False
        self._pool: psycopg_pool.ConnectionPool[Any] | None = None
        self._pool_lock = threading.Lock()
        self._local = threading.local()
        self._schema_ready = False
        self._kept: set[PgConnection] = set()

    # -- the handle ---------------------------------------------------------------------
    @property
    def location(self) -> str:
        return self.shown

    @property
    def file(self) -> Path | None:
        return None

    @property
    def exists(self) -> bool:
        return True  # a server: the first verb creates what is missing

    @property
    def is_open(self) -> bool:
        return self._pool is not None

    def write_mark(self) -> None:
        """Other hosts write the server at any time, unseen: the engine always reads
        the state instead of trusting what it remembers."""

    def tick(self) -> None:
        """Idle time: an idle writer gives its connection back; fold the history past
        the watermark."""
        if not self.busy:
            self.let_go()
        self._idle()

    def _idle(self) -> None:
        """Called by :meth:`tick` (for subclasses)."""

    def close(self) -> None:
        with self._pool_lock:
            kept, self._kept = self._kept, set()
        for con in kept:
            with suppress(Exception):
                con.raw.close()
        self._local.kept = None
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            with suppress(Exception):
                pool.close(timeout=1.0)

    @contextmanager
    def keep_open(self) -> Iterator[None]:
        yield

    # -- sessions -------------------------------------------------------------------------
    @contextmanager
    def connection(self, *, write: bool = True) -> Iterator[PgConnection]:
        """This thread's connection for one verb (errors become :class:`StoreError`)."""
        psycopg, _ = driver()
        held: PgConnection | None = getattr(self._local, "con", None)
        if held is not None:
            held.depth += 1
            try:
                yield held
            finally:
                held.depth -= 1
            return
        con = self._checkout()
        self._local.con = con
        try:
            yield con
        except psycopg.Error as err:
            raise pg_fault(self.url, err) from None
        finally:
            self._local.con = None
            self._checkin(con)

    @contextmanager
    def kept_connection(self) -> Iterator[PgConnection]:
        """Like :meth:`connection`, on a connection this thread keeps between calls
        (the writer's: no trip to the pool per commit), until :meth:`let_go`."""
        psycopg, _ = driver()
        if getattr(self._local, "con", None) is not None:
            with self.connection() as held:
                yield held
            return
        con: PgConnection | None = getattr(self._local, "kept", None)
        if con is None or con.raw.broken or con.raw.closed:
            con = self._local.kept = self._checkout()
            with self._pool_lock:
                self._kept.add(con)
        self._local.con = con
        try:
            yield con
        except psycopg.Error as err:
            self.let_go()  # a connection that failed is not kept
            raise pg_fault(self.url, err) from None
        except BaseException:
            self.let_go()
            raise
        finally:
            self._local.con = None

    def let_go(self) -> None:
        """Give this thread's kept connection back to the pool."""
        con: PgConnection | None = getattr(self._local, "kept", None)
        self._local.kept = None
        if con is not None:
            with self._pool_lock:
                self._kept.discard(con)
            self._checkin(con)

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[PgConnection]:
        """One ``BEGIN ... COMMIT`` (nested in an open one: part of it)."""
        with self.connection(write=write) as con:
            if con.in_transaction:
                yield con
                return
            psycopg, _ = driver()
            con.raw.execute("BEGIN")
            try:
                yield con
                con.committing = True
                try:
                    con.raw.execute("COMMIT")
                except psycopg.Error as err:
                    error = pg_fault(self.url, err)
                    error.fields["committing"] = True  # kept or not: nobody can tell
                    raise error from None
            except BaseException:
                if not con.raw.broken:
                    with suppress(Exception):
                        con.raw.execute("ROLLBACK")
                raise
            finally:
                con.committing = False

    @contextmanager
    def _session(self, mode: str, query: str | None = None) -> Iterator[PgConnection]:
        with self.connection(write=mode == "write") as con:
            yield con

    def retrying(self, work: Callable[[], T], *, landed: Callable[[], bool] | None = None
                 ) -> T:
        """Run ``work`` (a whole verb), again on a fresh connection after a drop.

        After a drop the outcome of a COMMIT sent may be unknown: ``landed`` then says
        whether the failed try was kept (so it is not written twice).
        """
        deadline = time.monotonic() + self.retry_for
        delay = 0.05
        while True:
            try:
                return work()
            except StoreError as err:
                reason = err.fields.get("reason")
                if reason not in TRANSIENT or time.monotonic() > deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
            if landed is not None and self._landed(landed, deadline):
                return None  # type: ignore[return-value]

    def _landed(self, landed: Callable[[], bool], deadline: float) -> bool:
        while True:
            try:
                return landed()
            except StoreError as err:
                if err.fields.get("reason") not in TRANSIENT or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    # -- the pool -----------------------------------------------------------------------
    def _checkout(self) -> PgConnection:
        psycopg, pool_module = driver()
        pool = self._open_pool()
        deadline = time.monotonic() + self.retry_for
        delay = 0.05
        while True:
            try:
                raw = pool.getconn(timeout=max(0.5, min(5.0, self.retry_for)))
                break
            except (psycopg.Error, pool_module.PoolTimeout) as err:
                if time.monotonic() > deadline:
                    raise pg_fault(self.url, self._why(err)) from None
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
        con = PgConnection(raw)
        if not self._schema_ready:
            self._local.con = con  # the schema's own statements use this connection
            try:
                self._prepare(con)
            except psycopg.Error as err:
                self._checkin(con)
                raise pg_fault(self.url, err) from None
            except BaseException:
                self._checkin(con)
                raise
            finally:
                self._local.con = None
            self._schema_ready = True
        return con

    def _checkin(self, con: PgConnection) -> None:
        pool = self._pool
        if pool is None:
            with suppress(Exception):
                con.raw.close()
            return
        if not con.raw.broken and con.in_transaction:
            with suppress(Exception):
                con.raw.execute("ROLLBACK")
        with suppress(Exception):
            pool.putconn(con.raw)

    def _open_pool(self) -> psycopg_pool.ConnectionPool[Any]:
        psycopg, pool_module = driver()
        with self._pool_lock:
            if self._pool is not None:
                return self._pool
            self._first_connect(psycopg)
            pool = pool_module.ConnectionPool(
                self.url, min_size=1, max_size=self.pool_size, open=False,
                kwargs={"autocommit": True, "cursor_factory": psycopg.RawCursor},
                configure=_configure, check=pool_module.ConnectionPool.check_connection,
                reconnect_timeout=max(self.retry_for, 1.0), name="orbits_nb")
            pool.open(wait=False)
            self._pool = pool
            return self._pool

    def _first_connect(self, psycopg: Any) -> None:
        """Connect once directly, so a bad URL, password or server says so clearly
        (the pool would only time out)."""
        deadline = time.monotonic() + self.retry_for
        delay = 0.1
        while True:
            try:
                psycopg.connect(self.url, connect_timeout=5, autocommit=True).close()
                return
            except psycopg.Error as err:
                fault = pg_fault(self.url, err)
                if fault.fields["reason"] not in TRANSIENT or time.monotonic() > deadline:
                    raise fault from None
            except Exception as err:  # a malformed URL reaches libpq as ProgrammingError
                raise pg_fault(self.url, err, reason="query") from None
            time.sleep(delay)
            delay = min(delay * 2, 1.0)

    def _why(self, err: BaseException) -> BaseException:
        """The connection error behind a pool timeout, when one connect tells it."""
        psycopg, _ = driver()
        try:
            psycopg.connect(self.url, connect_timeout=2).close()
        except psycopg.Error as cause:
            return cast(BaseException, cause)
        return err

    def _prepare(self, con: PgConnection) -> None:
        """Bring the schema up to date on the first connection (for subclasses)."""
