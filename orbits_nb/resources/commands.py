"""Commands on recorded resources: reconcile and uninstall (as durable runs), accept.

Reconcile and uninstall are ordinary workflows (:class:`Reconcile`,
:class:`Uninstall`) whose steps converge or delete one resource each, so they are
recorded, retried and visible like any run. Accept-actual changes only the record,
under the resource's lease, and leaves a row in the drift history.
"""

from __future__ import annotations

import asyncio
import getpass
import shlex
import time
from typing import TYPE_CHECKING, Any, ClassVar

from orbits_nb.core.action import Action, Retry
from orbits_nb.core.drift import IN_SYNC, MISSING_STATUS, diff, normalize, strip
from orbits_nb.core.errors import ActionNotFound, StepFailed
from orbits_nb.core.rows import CheckRecord, ResourceChange, ResourceRow, UserRow
from orbits_nb.core.workflow import Workflow
from orbits_nb.resources.base import Resource
from orbits_nb.resources.converge import converge, engine_of, observe, root_of
from orbits_nb.resources.errors import (
    ConvergenceError,
    ResourceError,
    ResourceInUse,
    ResourceNotFound,
)
from orbits_nb.resources.leases import ResourceLease, check_on_conflict, held
from orbits_nb.resources.records import workflow_label
from orbits_nb.store import HOST

if TYPE_CHECKING:
    from orbits_nb.engine.engine import Engine


def rebuild(type_name: str, args: dict[str, Any]) -> Resource:
    """The resource of class ``type_name`` with recorded ``args``."""
    from orbits_nb.engine.resume import import_class

    cls = import_class(type_name)
    if not issubclass(cls, Resource):
        raise ActionNotFound(f"{type_name} is not a Resource", action=type_name)
    return rebuild_as(cls, type_name, args)


def rebuild_as(cls: type[Resource], type_name: str, args: dict[str, Any]) -> Resource:
    """The resource of the (already imported) class ``cls`` with recorded ``args``."""
    from orbits_nb.engine.resume import revive

    try:
        resource: Resource = cls(**revive(args))
    except Exception as err:
        raise ActionNotFound(f"cannot rebuild {type_name} from its recorded arguments "
                             f"{sorted(args)}: {type(err).__name__}: {err}",
                             action=type_name) from err
    return resource


def step_name(key: str) -> str:
    """A step name for ``key``: '/' and '#' are reserved in step names."""
    return key.replace("/", "\u2215").replace("#", "\uff03")


def who() -> str:
    try:
        return f"{getpass.getuser()}@{HOST}"
    except Exception:  # no user name in some containers
        return HOST


def _bind(resource: Resource, step: Action) -> None:
    resource.run_id, resource.step, resource.attempt = step.run_id, step.step, step.attempt
    resource.__dict__["_engine"] = step.__dict__.get("_engine")


async def load_row(engine: Engine, key: str) -> ResourceRow:
    row = await asyncio.to_thread(engine.store.resource, key)
    if row is None or row.status != "present":
        state = "was uninstalled" if row is not None else "is not recorded"
        raise ResourceNotFound(f"resource {key!r} {state}; list resources with "
                               "`orbits-nb resources`", key=key)
    return row


class Converge(Action):
    """Step of a reconcile run: converge one recorded resource to its recorded state."""

    retry: ClassVar[Retry] = Retry(attempts=3, delay=1.0, backoff=2.0)

    async def main(self) -> Any:
        engine = engine_of(self)
        row = await load_row(engine, self.args["key"])
        resource = rebuild(row.type, row.args)
        _bind(resource, self)
        return await converge(engine, resource, row.desired, role="reconcile",
                              on_conflict=self.args.get("on_conflict"))


class Delete(Action):
    """Step that uninstalls one resource, refusing while other workflows use it.

    ``release_caller``: the calling workflow releases its own use (a step in that
    workflow); other users keep the resource alive unless ``force``. ``release``
    names further users (root run ids or workflow names) to release.
    """

    retry: ClassVar[Retry] = Retry(attempts=3, delay=1.0, backoff=2.0)

    async def main(self) -> Any:
        engine = engine_of(self)
        key = self.args["key"]
        row = await asyncio.to_thread(engine.store.resource, key)
        resource = rebuild(row.type if row else self.args["type"],
                           row.args if row else self.args.get("resource_args", {}))
        if resource.is_agent:
            raise ResourceError(f"{key!r} is an agent: uninstall it with "
                                "resource.uninstall() or ob.uninstall()", key=key)
        _bind(resource, self)
        return await delete_resource(engine, self, resource, self.args)


def check_confirm(resource: Resource, key: str, options: dict[str, Any]) -> None:
    """Refuse to uninstall a ``confirm_uninstall`` resource without its identity."""
    identity = key.split(":", 1)[1]
    given = options.get("confirm") or []
    given = [given] if isinstance(given, str) else list(given)
    if type(resource).confirm_uninstall and not {identity, key} & set(given):
        raise ResourceError(
            f"uninstalling {key!r} deletes it for good; confirm by repeating its identity",
            key=key, hint=f"pass confirm={identity!r}",
            cli_hint=f"add --confirm {shlex.quote(identity)}")


async def delete_resource(engine: Engine, step: Action, resource: Resource,
                          options: dict[str, Any]) -> Any:
    """Uninstall ``resource`` under its lease as ``step``, refusing while others use it.

    ``options``: ``force``, ``release``, ``release_caller``, ``on_conflict``, ``confirm``.
    """
    key = resource.key()
    cls = type(resource)
    check_confirm(resource, key, options)
    lease = ResourceLease(key, "uninstall", step.run_id, step.step)
    mode = check_on_conflict(options.get("on_conflict") or cls.on_conflict)
    async with held(engine.store, lease, on_conflict=mode, timeout=cls.lease_timeout):
        active = await asyncio.to_thread(engine.store.resource_users, [key])
        released = _released(step, options, active)
        others = sorted({f"{workflow_label(u.workflow)} ({u.root_run_id})"
                         for u in active if u.root_run_id not in released})
        if others and not options.get("force"):
            return await _keep(engine, step, options, lease, key, released, others)
        actual = await observe(resource, key)
        if actual is not None:
            resource.log.info("deleting %s", key)
            await resource.call(resource.delete)
            if cls.verify and await observe(resource, key) is not None:
                raise ConvergenceError(f"{cls.__name__}.delete() returned but {key!r} "
                                       "still exists when observed", key=key)
        await asyncio.to_thread(_finish_delete, engine, step, lease, key, actual is not None)
    return {"key": key, "deleted": True, "existed": actual is not None}


def _released(step: Action, options: dict[str, Any], active: list[UserRow]) -> set[str]:
    names = set(options.get("release") or [])
    roots = {root_of(step.run_id)} if options.get("release_caller") else set()
    for user in active:
        workflow = user.workflow or ""
        if names & {user.root_run_id, workflow, workflow_label(workflow)}:
            roots.add(user.root_run_id)
    return roots


async def _keep(engine: Engine, step: Action, options: dict[str, Any], lease: ResourceLease,
                key: str, released: set[str], others: list[str]) -> Any:
    if not options.get("release_caller"):
        raise ResourceInUse(
            f"resource {key!r} is still used by {', '.join(others)}", key=key,
            users=others,
            hint="uninstall it from those workflows, release them with release=[run "
                 "id or workflow], or pass force=True to delete it anyway",
            cli_hint="release them with `orbits-nb uninstall KEY --release USER` (a "
                     "root run id or workflow, repeatable), or delete it anyway with "
                     "--force")

    change = ResourceChange(key, f"{step.run_id}/{step.step}", released=sorted(released),
                            lease_token=lease.token)
    await asyncio.to_thread(engine.store.change_resource, change)
    lease.released = True
    step.log.info("kept %s: still used by %s", key, ", ".join(others))
    return {"key": key, "deleted": False, "still_used_by": others}


def _finish_delete(engine: Engine, step: Action, lease: ResourceLease, key: str,
                   existed: bool) -> None:
    engine.store.change_resource(ResourceChange(
        key, f"{step.run_id}/{step.step}", deleted=True,
        users=[UserRow(key, step.run_id, step.step, root_of(step.run_id), None,
                       "uninstall")],
        checks=[CheckRecord(key, MISSING_STATUS, "uninstall", run_id=step.run_id,
                            step=step.step, error=None if existed else "already absent")],
        lease_token=lease.token))
    lease.released = True


async def _bounded(workflow: Workflow, steps: list[tuple[str, Action]], limit: int,
                   keys: list[str]) -> Any:
    gate = asyncio.Semaphore(max(1, limit))

    async def one(name: str, action: Action) -> Any:
        async with gate:
            return await workflow.do(name, action)

    results = await asyncio.gather(*(one(n, a) for n, a in steps), return_exceptions=True)
    failed: list[str] = []
    hints: dict[str, str | None] = {}
    for result in results:
        if isinstance(result, StepFailed):
            failed.append(f"{result.step}: {result.cause}")
            if result.cli_hint and not hints:  # what to do next, for the first one
                hints = {"hint": result.hint, "cli_hint": result.cli_hint}
        elif isinstance(result, BaseException):
            raise result
    if failed:
        raise ResourceError(f"{len(failed)} of {len(steps)} resource(s) failed: "
                            + "; ".join(failed[:5]), failed=len(failed), **hints)
    return dict(zip(keys, results, strict=True))


async def _agents(workflow: Workflow, keys: list[str]) -> dict[str, Resource]:
    """The agents among ``keys``, rebuilt: their commands run as nested runs."""
    from orbits_nb.resources.agent import engine_here

    store = engine_here(workflow).store
    rows = await asyncio.to_thread(lambda: [store.resource(k) for k in keys])
    out: dict[str, Resource] = {}
    for key, row in zip(keys, rows, strict=True):
        if row is not None and row.status == "present":
            from orbits_nb.engine.resume import import_class

            if getattr(import_class(row.type), "is_agent", False):
                out[key] = rebuild(row.type, row.args)
    return out


class Reconcile(Workflow):
    """Converge the listed resources (``resources``: keys) to their recorded state."""

    async def define(self) -> Any:
        from orbits_nb.resources.agent import as_command

        keys = list(self.args["resources"])
        agents = await _agents(self, keys)
        conflict = self.args.get("on_conflict")
        steps: list[tuple[str, Action]] = [
            (step_name(k), as_command(agents[k], "reconcile", {"on_conflict": conflict})
             if k in agents else Converge(key=k, on_conflict=conflict))
            for k in keys]
        return await _bounded(self, steps, int(self.args.get("concurrency", 8)), keys)


class Uninstall(Workflow):
    """Delete the listed resources, protecting those that other workflows use."""

    async def define(self) -> Any:
        from orbits_nb.resources.agent import as_command

        keys = list(self.args["resources"])
        agents = await _agents(self, keys)
        confirm = self.args.get("confirm")
        options = {"force": bool(self.args.get("force")),
                   "release": list(self.args.get("release") or []),
                   "on_conflict": self.args.get("on_conflict")}
        steps: list[tuple[str, Action]] = [
            (step_name(k), as_command(agents[k], "uninstall", {**options, "confirm": confirm})
             if k in agents else Delete(key=k, confirm=confirm, **options))
            for k in keys]
        return await _bounded(self, steps, int(self.args.get("concurrency", 8)), keys)


class Command(Workflow):
    """Run one command of a recorded agent (``resource``: key, ``command``: name)."""

    async def define(self) -> Any:
        from orbits_nb.resources.agent import as_command, check_command, engine_here

        key = self.args["resource"]
        row = await load_row(engine_here(self), key)
        agent = rebuild(row.type, row.args)
        command = check_command(agent, self.args["command"])
        options = {"on_conflict": self.args.get("on_conflict"),
                   "confirm": self.args.get("confirm")}
        return await self.do(f"{command}-{step_name(key)}",
                             as_command(agent, command, options))


async def accept(engine: Engine, key: str, *, by: str | None = None,
                 on_conflict: str = "wait") -> CheckRecord:
    """Adopt the observed state of ``key`` as its desired state (recorded).

    A missing resource is forgotten (marked deleted): its absence is accepted.
    """
    row = await load_row(engine, key)
    resource = rebuild(row.type, row.args)
    cls = type(resource)
    by = by or who()
    lease = ResourceLease(key, "accept")
    mode = check_on_conflict(on_conflict)
    started = time.time()
    async with held(engine.store, lease, on_conflict=mode, timeout=cls.lease_timeout):
        actual = await observe(resource, key)
        rules = resource.comparison()
        if actual is None:
            check = CheckRecord(key, MISSING_STATUS, "accept", checked_by=by)
        else:
            accepted = [d.to_json() for d in diff(row.desired, actual, rules)]
            desired = strip(normalize(actual), rules)
            check = CheckRecord(key, IN_SYNC, "accept", diffs=accepted, actual=actual,
                                checked_by=by, duration_s=time.time() - started)
        change = ResourceChange(key, by, deleted=actual is None, checks=[check],
                                accepted=None if actual is None else (desired,
                                                                       cls.version_text()),
                                lease_token=lease.token)
        await asyncio.to_thread(engine.store.change_resource, change)
        lease.released = True
    return check
