"""Queues: named lines of submitted runs that workers drain within limits."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from orbits_nb.core.errors import InvalidArgument

if TYPE_CHECKING:
    from orbits_nb.core.rows import QueueRow
    from orbits_nb.engine.engine import Engine

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")


def check_queue_name(name: object) -> str:
    """``name`` if it is a valid queue name, else InvalidArgument naming it."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidArgument(
            f"a queue name is letters, digits and _ . : - (at most 100, starting with a "
            f"letter or digit), got {name!r}", queue=repr(name))
    return name


def check_limit(what: str, value: object) -> int | None:
    """``value`` if it is None or a whole number of at least 1."""
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InvalidArgument(f"Queue({what}=...) must be a whole number of at least 1, "
                              f"or None for no bound; got {value!r}")
    return value


@dataclass(frozen=True)
class Queue:
    """A queue of submitted runs, drained by ``orbits-nb worker`` processes.

    At most ``concurrency`` of its runs execute at once and at most ``per_key`` per
    ``key`` given to :meth:`~orbits_nb.Workflow.submit` (None: no bound); the limits
    hold across every worker on every host. Declaring a queue changes nothing until it
    is recorded: by the first ``submit(queue=...)`` with it, or :meth:`declare`.

    >>> deploys = Queue("deploys", concurrency=4, per_key=1)
    >>> run = DeployBackend(client="acme").submit(queue=deploys, key="acme")  # doctest: +SKIP
    """

    name: str
    concurrency: int | None = None
    per_key: int | None = None

    def __post_init__(self) -> None:
        check_queue_name(self.name)
        check_limit("concurrency", self.concurrency)
        check_limit("per_key", self.per_key)

    def row(self) -> QueueRow:
        from orbits_nb.core.rows import QueueRow  # the store's row types load with a store

        return QueueRow(self.name, self.concurrency, self.per_key)

    def declare(self, engine: Engine | None = None) -> Queue:
        """Record the queue and its limits in the store (they replace recorded ones)."""
        from orbits_nb.core.workflow import process_engine

        (engine or process_engine()).store.declare_queue(self.row())
        return self
