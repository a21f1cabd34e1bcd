"""Commands on recorded resources: reconcile and uninstall (as durable runs), accept.

Reconcile and uninstall are ordinary workflows (:class:`Reconcile`,
:class:`Uninstall`) whose steps converge or delete one resource each, so they are
recorded, retried and visible like any run. Accept-actual changes only the record,
under the resource's lease, and leaves a row in the drift history.
"""

from __future__ import annotations

import asyncio
import getpass
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
    from orbits_nb.engine.resume import import_class, revive

    cls = import_class(type_name)
    if not issubclass(cls, Resource):
        raise ActionNotFound(f"{type_name} is not a Resource", action=type_name)
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


async def _load(engine: Engine, key: str) -> ResourceRow:
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
        row = await _load(engine, self.args["key"])
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
        _bind(resource, self)
        cls = type(resource)
        lease = ResourceLease(key, "uninstall", self.run_id, self.step)
        mode = check_on_conflict(self.args.get("on_conflict") or cls.on_conflict)
        async with held(engine.store, lease, on_conflict=mode, timeout=cls.lease_timeout):
            active = await asyncio.to_thread(engine.store.resource_users, [key])
            released = self._released(active)
            others = sorted({f"{workflow_label(u.workflow)} ({u.root_run_id})"
                             for u in active if u.root_run_id not in released})
            if others and not self.args.get("force"):
                return await self._keep(engine, lease, key, released, others)
            actual = await observe(resource, key)
            if actual is not None:
                resource.log.info("deleting %s", key)
                await resource.call(resource.delete)
                if cls.verify and await observe(resource, key) is not None:
                    raise ConvergenceError(f"{cls.__name__}.delete() returned but {key!r} "
                                           "still exists when observed", key=key)
            await asyncio.to_thread(self._finish, engine, lease, key, actual is not None)
        return {"key": key, "deleted": True, "existed": actual is not None}

    def _released(self, active: list[UserRow]) -> set[str]:
        names = set(self.args.get("release") or [])
        roots = {root_of(self.run_id)} if self.args.get("release_caller") else set()
        for user in active:
            workflow = user.workflow or ""
            if names & {user.root_run_id, workflow, workflow_label(workflow)}:
                roots.add(user.root_run_id)
        return roots

    async def _keep(self, engine: Engine, lease: ResourceLease, key: str, released: set[str],
                    others: list[str]) -> Any:
        if not self.args.get("release_caller"):
            raise ResourceInUse(
                f"resource {key!r} is still used by {', '.join(others)}", key=key,
                users=others,
                hint="uninstall it from those workflows, release them with release=[run "
                     "id or workflow], or pass force=True to delete it anyway",
                cli_hint="release them with `orbits-nb uninstall KEY --release USER` (a "
                         "root run id or workflow, repeatable), or delete it anyway with "
                         "--force")

        change = ResourceChange(key, f"{self.run_id}/{self.step}", released=sorted(released),
                                lease_token=lease.token)
        await asyncio.to_thread(engine.store.change_resource, change)
        lease.released = True
        self.log.info("kept %s: still used by %s", key, ", ".join(others))
        return {"key": key, "deleted": False, "still_used_by": others}

    def _finish(self, engine: Engine, lease: ResourceLease, key: str, existed: bool) -> None:
        engine.store.change_resource(ResourceChange(
            key, f"{self.run_id}/{self.step}", deleted=True,
            users=[UserRow(key, self.run_id, self.step, root_of(self.run_id), None,
                           "uninstall")],
            checks=[CheckRecord(key, MISSING_STATUS, "uninstall", run_id=self.run_id,
                                step=self.step, error=None if existed else "already absent")],
            lease_token=lease.token))
        lease.released = True


async def _bounded(workflow: Workflow, steps: list[tuple[str, Action]], limit: int) -> Any:
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
    return {a.args["key"]: r for (_, a), r in zip(steps, results, strict=True)}


class Reconcile(Workflow):
    """Converge the listed resources (``resources``: keys) to their recorded state."""

    async def define(self) -> Any:
        keys = list(self.args["resources"])
        steps: list[tuple[str, Action]] = [
            (step_name(k), Converge(key=k, on_conflict=self.args.get("on_conflict")))
            for k in keys]
        return await _bounded(self, steps, int(self.args.get("concurrency", 8)))


class Uninstall(Workflow):
    """Delete the listed resources, protecting those that other workflows use."""

    async def define(self) -> Any:
        steps: list[tuple[str, Action]] = [
            (step_name(k), Delete(key=k, force=bool(self.args.get("force")),
                                  release=list(self.args.get("release") or []),
                                  on_conflict=self.args.get("on_conflict")))
            for k in self.args["resources"]]
        return await _bounded(self, steps, int(self.args.get("concurrency", 8)))


async def accept(engine: Engine, key: str, *, by: str | None = None,
                 on_conflict: str = "wait") -> CheckRecord:
    """Adopt the observed state of ``key`` as its desired state (recorded).

    A missing resource is forgotten (marked deleted): its absence is accepted.
    """
    row = await _load(engine, key)
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
