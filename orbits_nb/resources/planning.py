"""``plan()``: what converging would do, without doing it (like ``terraform plan``)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from orbits_nb.core.action import Action
from orbits_nb.core.drift import FieldDiff, normalize
from orbits_nb.core.errors import InvalidArgument
from orbits_nb.core.rows import ResourceRow
from orbits_nb.core.serde import check_json
from orbits_nb.core.workflow import Workflow
from orbits_nb.resources import records
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


async def plan_one(engine: Engine, resource: Resource,
                   desired: Any = None) -> PlannedChange:
    """What converging ``resource`` (to ``desired``, default its ``desired()``) would do."""
    import asyncio

    from orbits_nb.resources import converge

    key = resource.key()
    if desired is None:
        desired = await resource.call(resource.desired)
        what = f"desired() of {type(resource).__name__}"
        desired = normalize(check_json(desired, what), what)
    row = await asyncio.to_thread(engine.store.resource, key)
    actual = await converge.observe(resource, key)
    todo = converge.plan(row, desired, actual, resource.comparison(),
                         type(resource).version_text())
    action = {"create": "create", "update": "update"}.get(todo.action, "no-op")
    return PlannedChange(key, action, todo.diffs)


async def _plan_workflow(engine: Engine, workflow: Workflow) -> list[PlannedChange]:
    """A workflow's declared ``resources()`` (its desired state), and the resources of
    those kinds that runs of its class recorded but it no longer declares (planned
    deletions; a workflow narrows them with ``owns(row)``). Without ``resources()``,
    the resources its run recorded, against their recorded desired state."""
    import asyncio

    from orbits_nb.engine.engine import run_id_for

    declare = getattr(workflow, "resources", None)
    if not callable(declare):
        rows = await asyncio.to_thread(records.select, engine.store,
                                       workflow=run_id_for(workflow))
        return await _plan_rows(engine, rows)
    declared = list(declare())
    items = list(await asyncio.gather(*(plan_one(engine, r) for r in declared)))
    kinds = sorted({r.kind_name() for r in declared})
    rows = await asyncio.to_thread(records.select, engine.store, kinds=kinds,
                                   workflow=workflow.type_name()) if kinds else []
    owns = getattr(workflow, "owns", None)
    kept = {r.key() for r in declared}
    items += [PlannedChange(row.key, "delete") for row in rows
              if row.key not in kept and (not callable(owns) or owns(row))]
    return items


async def _plan_rows(engine: Engine, rows: list[ResourceRow]) -> list[PlannedChange]:
    import asyncio

    from orbits_nb.resources.commands import rebuild

    return list(await asyncio.gather(*(plan_one(engine, rebuild(r.type, r.args), r.desired)
                                       for r in rows)))


def plan(*targets: Resource | Workflow, remove: Iterable[str] = (),
         engine: Engine | None = None) -> Plan:
    """What converging ``targets`` would do, observed now, without changing anything.

    A target is a resource (planned against its ``desired()``) or a workflow: its
    ``resources()`` when it declares them (a fleet's tenants), recorded resources it no
    longer declares being planned deletions; else the resources its run recorded.
    ``remove`` lists further recorded keys to show as planned deletions.

    >>> print(ob.plan(ob.LocalFile("/tmp/a.cfg", content="x=1\\n")).text())  # doctest: +SKIP
    + LocalFile:/tmp/a.cfg (create)
    Plan: 1 to create, 0 to update, 0 to delete.
    """

    from orbits_nb.engine.engine import default_engine
    from orbits_nb.resources.report import on_engine

    engine = engine or default_engine()
    for target in targets:
        if not isinstance(target, (Resource, Workflow)):
            raise InvalidArgument(f"plan() takes resources or workflows, got "
                                  f"{type(target).__name__}")

    async def all_of() -> list[PlannedChange]:
        items: list[PlannedChange] = []
        for target in targets:
            if isinstance(target, Resource):
                items.append(await plan_one(engine, target))
            else:
                items += await _plan_workflow(engine, target)
        return items

    items = on_engine(engine, all_of())
    for key in remove:
        row = engine.store.resource(key)
        if row is not None and row.status == "present":
            items.append(PlannedChange(key, "delete"))
    return Plan(items)


def plan_recorded(rows: list[ResourceRow], engine: Engine) -> Plan:
    """What reconciling the recorded ``rows`` would do (``orbits-nb plan``)."""
    from orbits_nb.resources.report import on_engine

    return Plan(on_engine(engine, _plan_rows(engine, rows)))


class Unchanged(Action):
    """Step: the keys among ``wanted`` (``{key: [desired, version]}``) whose record has
    that desired state and version and is present: a desired-state workflow (a fleet)
    leaves those alone instead of converging each again. Drift is ``ob.drift``'s job."""

    def main(self) -> Any:
        from orbits_nb.resources.converge import engine_of

        store = engine_of(self).store
        out = []
        for key, (desired, version) in self.args["wanted"].items():
            row = store.resource(key)
            if (row is not None and row.status == "present" and row.version == version
                    and row.desired == desired):
                out.append(key)
        return sorted(out)


def unchanged_step(resources: list[Resource]) -> Unchanged:
    """The :class:`Unchanged` step for ``resources`` (their ``desired()`` must be pure)."""
    wanted: dict[str, Any] = {}
    for resource in resources:
        what = f"desired() of {type(resource).__name__}"
        wanted[resource.key()] = [normalize(check_json(resource.desired(), what), what),
                                  type(resource).version_text()]
    return Unchanged(wanted=wanted)
