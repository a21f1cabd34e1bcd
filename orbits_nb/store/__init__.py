"""Stores: where runs, steps and events are persisted (DuckDB by default).

Everything outside this package reaches a store through the port
:class:`orbits_nb.core.storage.Store`; :func:`open_store` gives the store for a
location. SQL lives only here, one module per table family.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from orbits_nb.store.location import HOST, default_state_path, is_url, state_location

if TYPE_CHECKING:
    from orbits_nb.core.storage import Store

__all__ = ["HOST", "copy_store", "default_state_path", "open_store", "rows_relation", "shown",
           "state_location"]


def open_store(location: str | Path | None = None, **options: Any) -> Store:
    """The store at ``location`` (default: :func:`state_location`).

    ``location`` is a DuckDB file path, ``":memory:"``, or a team store URL
    ``postgresql://user@host:5432/database`` (psycopg is needed then: ``pip install
    'orbits_nb[postgres]'``). Nothing is opened or created until the first verb needs
    it. ``options`` go to the store (``host``, ``lease_timeout``, ``lock_timeout``...).
    """
    if location is None:
        location = state_location()
    if is_url(location):
        from orbits_nb.store.pg.driver import driver
        from orbits_nb.store.pg.store import PostgresStore

        driver()  # a missing driver says how to install it, before anything else
        return PostgresStore(location, **options)
    from orbits_nb.store.duckdb_store import DuckDBStore

    return DuckDBStore(location, **options)


def copy_store(source: Store, target: Store, *, merge: bool = False) -> dict[str, int]:
    """Copy every record of ``source`` into ``target`` in one transaction; the rows
    copied per table (see :mod:`orbits_nb.store.transfer`)."""
    from orbits_nb.store.transfer import copy_store as copy

    return copy(source, target, merge=merge).rows


def rows_relation(columns: list[tuple[str, str]], rows: list[list[Any]]) -> Any:
    """Rows made in Python as an in-memory DuckDB relation of ``columns`` (name, SQL
    type; a ``TIMESTAMPTZ`` value is given in epoch seconds)."""
    from orbits_nb.store.relations import rows_relation as make

    return make(columns, rows)


def shown(relation: Any, display: Any) -> Any:
    """``relation``, shown in notebooks by ``display(relation) -> mimebundle``; still the
    same DuckDB relation (see :func:`orbits_nb.store.relations.shown`)."""
    from orbits_nb.store.relations import shown as show

    return show(relation, display)
