"""Stores: where runs, steps and events are persisted (DuckDB by default).

Everything outside this package reaches a store through the port
:class:`orbits_nb.core.storage.Store`; :func:`open_store` gives the store for a
location. SQL lives only here, one module per table family.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from orbits_nb.store.location import HOST, default_state_path

if TYPE_CHECKING:
    from orbits_nb.core.storage import Store

__all__ = ["HOST", "default_state_path", "open_store"]


def open_store(location: str | Path | None = None, **options: Any) -> Store:
    """The store at ``location`` (default: :func:`default_state_path`).

    ``location`` is a DuckDB file path or ``":memory:"``. Nothing is opened or created
    until the first verb needs it. ``options`` go to the store (``host``,
    ``lease_timeout``, ``lock_timeout``...).
    """
    from orbits_nb.store.duckdb_store import DuckDBStore

    return DuckDBStore(default_state_path() if location is None else location, **options)
