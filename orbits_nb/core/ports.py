"""The ports the engine joins: executors and the step context they receive.

The store port (what is kept, and how features ask for it) is
:class:`orbits_nb.core.storage.Store`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    from orbits_nb.core.action import Action

Method = Literal["main", "watch"]


@dataclass
class Outcome:
    """What one call of ``main``/``watch`` produced: a value and the bag after it."""

    value: Any
    bag: dict[str, Any]
    logs: list[tuple[str, str]] = field(default_factory=list)


@runtime_checkable
class Executor(Protocol):
    """Decides where an action's ``main``/``watch`` runs.

    ``call`` returns an :class:`Outcome` or raises the action's exception (or a
    :class:`~orbits_nb.core.errors.RemoteError` when it cannot travel back).
    ``describe()`` is what the store records; it must not contain secrets.
    """

    def describe(self) -> str: ...

    async def call(self, action: Action, method: Method) -> Outcome: ...
