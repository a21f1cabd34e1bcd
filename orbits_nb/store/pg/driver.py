"""psycopg 3 and its pool, imported on first use of a team store."""

from __future__ import annotations

from typing import Any

from orbits_nb._optional import needs

FEATURE = "the PostgreSQL team store"


def driver() -> Any:
    """The ``(psycopg, psycopg_pool)`` modules, or :class:`~orbits_nb.MissingDependency`
    saying ``pip install 'orbits_nb[postgres]'``."""
    with needs("postgres", FEATURE):
        import psycopg
        import psycopg.types.json
        import psycopg_pool
    return psycopg, psycopg_pool
