"""What resources record, asked of the store: selections and user labels.

The rows (``ResourceRow``, ``UserRow``, ``CheckRecord``, ``ResourceChange``) are the
store port's (:mod:`orbits_nb.core.rows`); every function here is blocking, so async
callers run it in a thread.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from orbits_nb.core.rows import CheckRecord, ResourceChange, ResourceRow, UserRow

if TYPE_CHECKING:
    from orbits_nb.core.storage import Store

__all__ = ["CheckRecord", "ResourceChange", "ResourceRow", "UserRow", "select", "users_of",
           "workflow_label"]


def workflow_label(type_name: str | None) -> str:
    """``pkg.mod:Outer.Deploy`` -> ``Deploy`` (what users call a workflow)."""
    return (type_name or "?").rsplit(":", 1)[-1].rsplit(".", 1)[-1]


def select(store: Store, *, kinds: Iterable[str] = (), identity: str | None = None,
           workflow: str | None = None, keys: Iterable[str] = (),
           include_deleted: bool = False) -> list[ResourceRow]:
    """Recorded resources matching every filter given, ordered by key.

    ``kinds`` match the kind or the ``module:Class`` type; ``identity`` and ``keys``
    may be glob patterns; ``workflow`` matches the class (or ``module:Class``) or the
    root run id of a workflow that uses the resource.
    """
    rows = store.resources(kinds=list(kinds), workflow=workflow or None,
                           include_deleted=include_deleted)
    if identity is not None:
        rows = [r for r in rows if fnmatch.fnmatchcase(r.identity, identity)]
    patterns = list(keys)
    if patterns:
        rows = [r for r in rows if any(fnmatch.fnmatchcase(r.key, p) for p in patterns)]
    return rows


def users_of(store: Store, keys: Sequence[str]) -> dict[str, list[str]]:
    """Active user workflows of each key, as ``Workflow (root run id)`` labels."""
    out: dict[str, list[str]] = {}
    seen: set[tuple[str, str, str | None]] = set()
    users = sorted(store.resource_users(keys), key=lambda u: u.root_run_id)
    for user in users:
        if (user.key, user.root_run_id, user.workflow) not in seen:
            seen.add((user.key, user.root_run_id, user.workflow))
            label = f"{workflow_label(user.workflow)} ({user.root_run_id})"
            out.setdefault(user.key, []).append(label)
    return out
