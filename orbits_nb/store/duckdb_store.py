"""The DuckDB store: the embedded default implementation of the store port.

The file itself (opening, hand-over between processes, faults, reads that create
nothing) is :class:`~orbits_nb.store.statefile.StateFile`; each table family keeps its
SQL in a module of its own (runs, logs, leases, resources, notebook runs, schedules,
approvals, queues, the history projection), composed here into one
:class:`~orbits_nb.core.storage.Store`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from orbits_nb.store.approvals import ApprovalTables
from orbits_nb.store.commands import CommandTables
from orbits_nb.store.guard import check_query
from orbits_nb.store.notebook_runs import NotebookRunTables
from orbits_nb.store.queues import QueueTables
from orbits_nb.store.resources import ResourceTables
from orbits_nb.store.runs import RunTables
from orbits_nb.store.schedules import ScheduleTables


class DuckDBStore(RunTables, ResourceTables, NotebookRunTables, ScheduleTables,
                  ApprovalTables, CommandTables,
                  QueueTables):
    """Everything orbits_nb keeps, in a DuckDB file (or ``":memory:"``).

    Reads never create anything: while the file does not exist they see an empty
    store; the first write creates the file and its folders. A file this process may
    not write is opened read-only for reads, and writes to it fail with a
    :class:`~orbits_nb.StoreError` that says so. Every DuckDB failure leaves the
    store as a :class:`~orbits_nb.StoreError` naming the file.

    ``host`` is the host id it records and judges leases by (default: this host, or
    ``$ORBITS_NB_HOST``); ``lease_timeout`` the seconds without heartbeat after which
    a holder on another host counts as gone (``$ORBITS_NB_LEASE_TIMEOUT``, 60).
    """

    def __init__(self, path: str | Path, *, lock_timeout: float | None = None,
                 time_slice: float = 0.2, idle_release: float = 0.05,
                 host: str | None = None, lease_timeout: float | None = None) -> None:
        super().__init__(path, lock_timeout=lock_timeout, time_slice=time_slice,
                         idle_release=idle_release)
        self._init_leases(host, lease_timeout)

    def fetch(self, query: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        """Rows of any ``query`` against the file, for maintenance and tests (not part of
        the store port); a query that only selects creates no file when none exists."""
        check_query(query, params)
        with self._session("auto", query) as con:
            self._current(con)
            return con.execute(query, params or []).fetchall()
