"""Reads of the history (``runs``, ``steps``, ``attempts``) go through one hook.

Those are views folded from ``events``, always current: there is nothing to do before
a read yet.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from orbits_nb.store.statefile import StateFile

if TYPE_CHECKING:
    import duckdb


class HistoryTables(StateFile):
    """What the store does before it reads the history."""

    #: Events were written since the history was last brought up to date.
    _stale = False

    def _current(self, con: duckdb.DuckDBPyConnection) -> None:
        """Before a read of the history (outside a transaction)."""
