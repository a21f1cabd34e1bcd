"""``plan()``: what converging would do, without doing it (like ``terraform plan``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from orbits_nb.core.drift import FieldDiff, normalize
from orbits_nb.core.errors import InvalidArgument
from orbits_nb.core.serde import check_json
from orbits_nb.resources.base import Resource

if TYPE_CHECKING:
    from orbits_nb.engine.engine import Engine


@dataclass
class PlannedChange:
    """One resource's planned action: create, update (with diffs), delete or no-op."""

    key: str
    action: str
    diffs: list[FieldDiff] = field(default_factory=list)

    def text(self) -> str:
        mark = {"create": "+", "update": "~", "delete": "-", "no-op": "="}[self.action]
        lines = [f"{mark} {self.key} ({self.action})"]
        lines += [f"    {d.describe(60)}" for d in self.diffs[:20]]
        return "\n".join(lines)


@dataclass
class Plan:
    """The planned changes; ``changes`` counts those that are not no-ops."""

    items: list[PlannedChange]

    @property
    def changes(self) -> int:
        return sum(i.action != "no-op" for i in self.items)

    def text(self) -> str:
        counts = {a: sum(i.action == a for i in self.items)
                  for a in ("create", "update", "delete")}
        head = ", ".join(f"{n} to {a}" for a, n in counts.items()) or "nothing"
        body = "\n".join(i.text() for i in self.items)
        return (body + "\n" if body else "") + f"Plan: {head}."

    def __repr__(self) -> str:
        return self.text()

    def __iter__(self) -> Any:
        return iter(self.items)


async def plan_one(engine: Engine, resource: Resource) -> PlannedChange:
    from orbits_nb.resources import converge

    key = resource.key()
    desired = await resource.call(resource.desired)
    what = f"desired() of {type(resource).__name__}"
    desired = normalize(check_json(desired, what), what)
    row = engine.store.resource(key)
    actual = await converge.observe(resource, key)
    todo = converge.plan(row, desired, actual, resource.comparison(),
                         type(resource).version_text())
    action = {"create": "create", "update": "update"}.get(todo.action, "no-op")
    return PlannedChange(key, action, todo.diffs)


def plan(*targets: Resource, remove: list[str] | tuple[str, ...] = (),
         engine: Engine | None = None) -> Plan:
    """What converging ``targets`` would do, observed now, without changing anything.

    ``remove`` lists recorded resource keys that would be uninstalled (e.g. a tenant
    dropped from a fleet's inventory): they show as planned deletions.

    >>> print(ob.plan(ob.LocalFile("/tmp/a.cfg", content="x=1\\n")).text())  # doctest: +SKIP
    + LocalFile:/tmp/a.cfg (create)
    Plan: 1 to create, 0 to update, 0 to delete.
    """
    import asyncio

    from orbits_nb.engine.engine import default_engine
    from orbits_nb.resources.report import on_engine

    engine = engine or default_engine()
    for target in targets:
        if not isinstance(target, Resource):
            raise InvalidArgument(f"plan() takes resources, got {type(target).__name__}")

    async def all_of() -> list[PlannedChange]:
        return list(await asyncio.gather(*(plan_one(engine, t) for t in targets)))

    items = on_engine(engine, all_of())
    for key in remove:
        row = engine.store.resource(key)
        if row is not None and row.status == "present":
            items.append(PlannedChange(key, "delete"))
    return Plan(items)
