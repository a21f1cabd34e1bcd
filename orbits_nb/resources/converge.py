"""Convergence: bring one resource to its desired state, under its lease, and record it.

Used by ``Resource.main()`` (a resource as a workflow step) and by the reconcile
step :class:`~orbits_nb.resources.commands.Converge`. Everything that decides
(``plan``) is pure; everything that touches the store runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from orbits_nb.core.drift import (
    IN_SYNC,
    VERSION_PATH,
    Comparison,
    FieldDiff,
    diff,
    normalize,
)
from orbits_nb.core.rows import CheckRecord, ResourceChange, ResourceRow, UserRow
from orbits_nb.core.serde import check_json
from orbits_nb.resources.errors import ConvergenceError, ResourceError
from orbits_nb.resources.leases import ResourceLease, check_on_conflict, held

if TYPE_CHECKING:
    from orbits_nb.core.action import Action
    from orbits_nb.core.storage import Store
    from orbits_nb.engine.engine import Engine
    from orbits_nb.resources.base import Resource


def engine_of(action: Action) -> Engine:
    """The engine running ``action``, or a clear error where there is none."""
    engine = action.__dict__.get("_engine")
    if engine is None:
        raise ResourceError(
            f"{type(action).__name__} must converge inside the engine's process (it takes "
            "a lease in the state store): use it as a workflow step without a "
            "SubprocessExecutor", resource=type(action).__name__)
    return engine  # type: ignore[no-any-return]


def root_of(run_id: str) -> str:
    return run_id.split("/", 1)[0]


async def observe(resource: Resource, key: str) -> Any:
    """``resource.observe()`` normalized, bounded by the class's ``observe_timeout``."""
    actual = await observe_raw(resource, key)
    return None if actual is None else normalize(actual, f"observe() of {key!r}")


async def observe_raw(resource: Resource, key: str) -> Any:
    """``resource.observe()`` as returned (drift checks compare it before normalizing)."""
    limit = type(resource).observe_timeout
    try:
        # asyncio.timeout, not wait_for: no extra task per observation (drift checks
        # observe thousands at once).
        async with asyncio.timeout(limit):
            actual = await resource.call(resource.observe)
    except TimeoutError:
        raise TimeoutError(f"observe() of {key!r} took longer than {limit}s "
                           f"({type(resource).__name__}.observe_timeout)") from None
    return actual


@dataclass
class Plan:
    action: str  # "create", "update" or "none"
    diffs: list[FieldDiff] = field(default_factory=list)


def plan(row: ResourceRow | None, desired: Any, actual: Any, rules: Comparison,
         version: str | None) -> Plan:
    """What to do: create when absent, update when drifted or outdated, else nothing."""
    if actual is None:
        return Plan("create")
    diffs = diff(desired, actual, rules)
    if row is not None and row.status == "present" and row.version != version:
        diffs.append(FieldDiff(VERSION_PATH, version, row.version))
    return Plan("update" if diffs else "none", diffs)


async def converge_step(resource: Resource) -> Any:
    """``Resource.main()``: converge to ``desired()`` as a user of the calling run."""
    engine = engine_of(resource)
    desired = await resource.call(resource.desired)
    desired = normalize(check_json(desired, f"desired() of {type(resource).__name__}"),
                        f"desired() of {type(resource).__name__}")
    return await converge(engine, resource, desired, role="user")


async def converge(engine: Engine, resource: Resource, desired: Any, *, role: str,
                   on_conflict: str | None = None) -> Any:
    """Converge ``resource`` to ``desired`` under its lease; record and return output."""
    store = engine.store
    key = resource.key()
    cls = type(resource)
    lease = ResourceLease(key, "converge" if role == "user" else "reconcile",
                          resource.run_id, resource.step)
    mode = check_on_conflict(on_conflict or cls.on_conflict)
    started = time.time()
    async with held(store, lease, on_conflict=mode, timeout=cls.lease_timeout):
        row = lease.row
        if role == "user":
            await _warn_overrides(store, resource, row, desired)
        actual = await observe(resource, key)
        resource.target = desired
        resource.__dict__["_observed"] = actual
        todo = plan(row, desired, actual, resource.comparison(), cls.version_text())
        if cls.is_agent:
            todo = await _durable(resource, todo)
        returned = await _apply(resource, key, todo)
        after = actual
        if todo.action != "none" and cls.verify:
            after = await observe(resource, key)
            _verify(resource, key, desired, after, todo.action)
        output = _output(resource, key, returned, row, after)
        new = ResourceRow(key, cls.kind_name(), key.split(":", 1)[1], resource.type_name(),
                          resource.args, desired, cls.version_text(), output, "present")
        check = CheckRecord(key, IN_SYNC, "converge" if role == "user" else role,
                            actual=after if cls.verify else None, run_id=resource.run_id,
                            step=resource.step, duration_s=time.time() - started)
        await asyncio.to_thread(lambda: _finish(engine, lease, new, resource, role=role,
                                                check=check))
    _log_result(resource, key, todo, row)
    return output


async def _durable(agent: Resource, todo: Plan) -> Plan:
    """The agent's decision as its first step: a resumed command keeps its decision
    (an install interrupted halfway resumes as that install, not as an update)."""
    from orbits_nb.resources.agent import Decision

    decided = await agent.do("plan", Decision(  # type: ignore[attr-defined]
        action=todo.action, diffs=[d.to_json() for d in todo.diffs]))
    return Plan(decided["action"], [FieldDiff.from_json(d) for d in decided["diffs"]])


async def _apply(resource: Resource, key: str, todo: Plan) -> Any:
    if todo.action == "create":
        resource.log.info("creating %s", key)
        return await resource.call(resource.create)
    if todo.action == "update":
        fields = ", ".join(d.path or "(root)" for d in todo.diffs[:8])
        resource.log.info("updating %s: %d field(s) differ: %s", key, len(todo.diffs), fields)
        return await resource.call(resource.update, todo.diffs)
    return None


def _verify(resource: Resource, key: str, desired: Any, after: Any, action: str) -> None:
    if after is None:
        raise ConvergenceError(
            f"{type(resource).__name__}.{action}() returned but {key!r} is still absent "
            "when observed; check that create() really creates it and that observe() "
            "looks in the same place", key=key)
    remaining = diff(desired, after, resource.comparison())
    if remaining:
        shown = "; ".join(d.describe(40) for d in remaining[:5])
        raise ConvergenceError(
            f"{type(resource).__name__}.{action}() returned but {key!r} still differs from "
            f"its desired state: {shown}. Declare fields the system sets in "
            "server_managed, or fix create()/update()", key=key)


def _output(resource: Resource, key: str, returned: Any, row: ResourceRow | None,
            after: Any) -> Any:
    what = f"output of {key!r}"
    if returned is not None:
        return check_json(returned, what)
    if row is not None and row.output is not None and row.status == "present":
        return row.output
    return check_json(resource.output(after), what)


def _user(engine: Engine, resource: Resource, key: str, role: str) -> UserRow:
    root = root_of(resource.run_id)
    live = engine.active.get(root)
    workflow = live.workflow.type_name() if live is not None and live.workflow else None
    if workflow is None:
        workflow = engine.store.run_workflow(root)
    return UserRow(key, resource.run_id, resource.step, root, workflow, role)


def _finish(engine: Engine, lease: ResourceLease, row: ResourceRow, resource: Resource, *,
            role: str, check: CheckRecord) -> None:
    user = _user(engine, resource, row.key, role)
    engine.store.change_resource(ResourceChange(
        row.key, f"{user.run_id}/{user.step}", converged=row, clear_accept=role == "user",
        users=[user], checks=[check], lease_token=lease.token))
    lease.released = True


async def _warn_overrides(store: Store, resource: Resource, row: ResourceRow | None,
                          desired: Any) -> None:
    if row is None or row.status != "present" or not diff(row.desired, desired):
        return
    key = row.key
    if row.accepted_at:
        resource.log.warning("%s: this step converges it back to the code's desired state, "
                             "replacing the observed state %s accepted", key,
                             row.accepted_by or "someone")
    others = [u for u in await asyncio.to_thread(store.resource_users, [key])
              if u.root_run_id != root_of(resource.run_id)]
    if others:
        names = ", ".join(sorted({u.root_run_id for u in others}))
        resource.log.warning("%s is shared with %s, which recorded a different desired "
                             "state; the latest desired state wins", key, names)


def _log_result(resource: Resource, key: str, todo: Plan, row: ResourceRow | None) -> None:
    if todo.action == "none":
        how = "shared with earlier users" if row is not None else "adopted (it existed)"
        resource.log.info("%s is in sync (%s)", key, how)
    else:
        resource.log.info("%s %sd", key, todo.action)

