"""Errors of resources and drift, in the one :class:`~orbits_nb.OrbitsError` hierarchy.

They keep their structured fields (``key``, ``holder``, ``users``...) and pickle
cleanly (the base class rebuilds them from message and fields).
"""

from __future__ import annotations

from orbits_nb.core.errors import OrbitsError


class ResourceError(OrbitsError):
    """Base class of the errors raised about a resource (field ``key``)."""


class ResourceBusy(ResourceError):
    """Another command holds the resource's lease (fields ``key``, ``holder``)."""


class ResourceInUse(ResourceError):
    """Uninstall refused: other workflows still use the resource (field ``users``)."""


class ResourceNotFound(ResourceError):
    """No recorded resource matches the given key, identity or selection."""


class ConvergenceError(ResourceError):
    """create()/update()/delete() returned but the observed state still differs."""
