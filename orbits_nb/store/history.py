"""When the history tables catch up with ``events`` (the fold is :mod:`.projection`).

The store folds before any read of ``runs``, ``steps`` or ``attempts``, and when it
lets go of the file while nobody waits for it (idle), so a file at rest has current
tables for any program that opens it. It never folds inside a commit, nor while
another process waits for the file: the durable cost of a step stays that of
appending its events, and a hand-over stays quick (whoever reads next, or goes idle
next, folds for both). Events a process left unfolded when it died are folded the
same way by the next one. A fold that fails (a full disk) changes nothing and is tried
again later: the events are safe.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from orbits_nb.store import projection
from orbits_nb.store.atomic import atomic
from orbits_nb.store.statefile import StateFile

if TYPE_CHECKING:
    import duckdb


class HistoryTables(StateFile):
    """Keeps the history tables current (see the module)."""

    #: Events may lie past the watermark (written here since the last fold, or found).
    _stale = False

    def rebuild_history(self) -> None:
        with self.transaction() as con:
            projection.rebuild(con)
        self._stale = False

    def _opened(self, con: duckdb.DuckDBPyConnection, *, read_only: bool) -> None:
        super()._opened(con, read_only=read_only)
        self._stale = True  # another process may have written: the next fold checks

    def _closing(self, con: duckdb.DuckDBPyConnection) -> None:
        if not self._waiter():
            self._catch_up(con)
        super()._closing(con)

    def _current(self, con: duckdb.DuckDBPyConnection) -> None:
        """Before a read of the history tables (outside a transaction): fold what is
        pending, unless the file is read-only here."""
        if self._stale and not self._read_only:
            self._catch_up(con)

    def _catch_up(self, con: duckdb.DuckDBPyConnection) -> None:
        import duckdb

        if not self._stale:
            return
        try:
            with atomic(con):
                low, high = projection.lag(con)
                if high > low:
                    projection.fold(con, low, high)
        except duckdb.Error:
            return  # stays stale: a later fold (this process's or the next one's) redoes it
        self._stale = False
