"""Agents: resources whose commands are made of durable steps.

An agent is a :class:`~orbits_nb.resources.base.Resource` that is also a workflow.
Its ``install``, ``update``, ``uninstall`` and ``cycle`` (and any ``command_<name>``)
are ``async def`` methods calling ``await self.do(name, action)``; used as a step, the
agent becomes a nested run (``<run>/<step>``) with its own steps, which a resumed run
replays instead of repeating. Every command holds the resource's lease for as long as it
runs, so commands on one identity are mutually exclusive across processes.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, ClassVar

from orbits_nb.core.action import Action
from orbits_nb.core.drift import FieldDiff, normalize
from orbits_nb.core.errors import InvalidArgument
from orbits_nb.core.serde import check_json
from orbits_nb.core.workflow import Workflow, current_runner
from orbits_nb.resources.base import Resource
from orbits_nb.resources.errors import ResourceError
from orbits_nb.resources.leases import ResourceLease, check_on_conflict, held

if TYPE_CHECKING:
    from orbits_nb.engine.engine import Engine

#: Built-in commands; any other name runs the agent's ``command_<name>``.
BUILT_IN = ("converge", "reconcile", "uninstall")


def engine_here(action: Any) -> Engine:
    """The engine executing the current run (set on steps; read from the runner)."""
    engine = action.__dict__.get("_engine")
    if engine is None:
        engine = getattr(current_runner.get(), "engine", None)
    if engine is None:
        raise ResourceError(f"{type(action).__name__} must run as a workflow step or with "
                            "ob.command()", resource=type(action).__name__)
    return engine  # type: ignore[no-any-return]


def command_names(cls: type[Resource]) -> list[str]:
    """The custom commands of an agent class (``command_<name>`` methods, and
    ``cycle`` when it defines one)."""
    names = [name[len("command_"):] for name in dir(cls)
             if name.startswith("command_") and callable(getattr(cls, name))]
    if inspect.iscoroutinefunction(getattr(cls, "cycle", None)):
        names.append("cycle")
    return sorted(names)


def check_command(resource: Resource, command: Any) -> str:
    """``command`` if ``resource`` runs it; else InvalidArgument listing those it runs."""
    names = command_names(type(resource))
    if not isinstance(command, str) or command not in (*names, "uninstall", "reconcile"):
        if not resource.is_agent:
            raise InvalidArgument(
                f"{resource.key()!r} is a {type(resource).__name__}, not an agent: it has "
                "no custom commands", command=command)
        shown = ", ".join([*names, "reconcile", "uninstall"])
        raise InvalidArgument(f"{resource.key()!r} has no command {command!r}; its "
                              f"commands: {shown}", command=command)
    return command


def as_command(agent: Resource, command: str, options: dict[str, Any] | None = None
               ) -> Resource:
    """``agent`` set to run ``command`` when executed as a step (not its install)."""
    agent.__dict__["_command"] = (command, dict(options or {}))
    return agent


class Decision(Action):
    """The first step of an agent's convergence: what it decided (create, update with
    the field diffs, or none), recorded so that a resumed command keeps to it."""

    def main(self) -> Any:
        return {"action": self.args["action"], "diffs": self.args["diffs"]}


class Agent(Resource, Workflow):
    """A resource whose commands are workflows of durable steps.

    Write ``async def install(self)`` (and optionally ``update(self, diff)``,
    ``uninstall(self)``, ``cycle(self)``, ``command_<name>(self)``); each may call
    ``await self.do(name, action)``. ``observe()`` and ``desired()`` stay as for any
    resource. (``async def uninstall`` is kept as ``uninstall_hook``, since
    ``resource.uninstall()`` stays the step that uninstalls it; a typed code base
    defines ``uninstall_hook`` itself.) Converging calls ``install`` when absent, ``update``
    when it drifted (by default: ``install`` again, whose completed steps replay), and
    nothing when it is in sync. A plain ``Resource`` subclass with ``async def
    install`` becomes an agent by itself.

    >>> class Service(ob.Resource):
    ...     def identity(self): return self.args["name"]
    ...     def desired(self): return {"version": self.args["version"]}
    ...     def observe(self): return registry.get(self.args["name"])
    ...     async def install(self):
    ...         image = await self.do("build", Build(version=self.args["version"]))
    ...         await self.do("deploy", Deploy(image=image))
    ...     async def command_rollback(self):
    ...         await self.do("deploy", Deploy(image="previous"))
    >>> ob.command("Service:api", "rollback")                 # doctest: +SKIP
    """

    _agent_base: ClassVar[bool] = True
    is_agent: ClassVar[bool] = True

    async def install(self) -> Any:
        """Create the resource in state ``self.target``, in durable steps."""
        raise NotImplementedError(f"{type(self).__name__} must define `async def "
                                  "install(self)`")

    async def update(self, diff: list[FieldDiff]) -> Any:
        """Bring the resource to ``self.target``; by default, install again."""
        return await self.install()

    async def uninstall_hook(self) -> Any:
        """Delete the resource (the agent's ``async def uninstall(self)``)."""
        raise NotImplementedError(f"{type(self).__name__} must define `async def "
                                  "uninstall(self)` to be uninstalled")

    async def create(self) -> Any:
        return await self.install()

    async def delete(self) -> Any:
        return await self.uninstall_hook()

    # -- as a step: the command's run ------------------------------------------------
    async def define(self) -> Any:
        from orbits_nb.resources.commands import delete_resource, load_row
        from orbits_nb.resources.converge import converge

        engine = engine_here(self)
        command: str = "converge"
        options: dict[str, Any] = {}
        if "_command" in self.__dict__:
            command, options = self.__dict__["_command"]
        if command == "converge":
            desired = await self.call(self.desired)
            what = f"desired() of {type(self).__name__}"
            return await converge(engine, self, normalize(check_json(desired, what), what),
                                  role="user")
        if command == "uninstall":
            return await delete_resource(engine, self, self, options)
        row = await load_row(engine, self.key())
        if command == "reconcile":
            return await converge(engine, self, row.desired, role="reconcile",
                                  on_conflict=options.get("on_conflict"))
        return await self._custom(engine, command, row.desired, options)

    async def _custom(self, engine: Engine, command: str, desired: Any,
                      options: dict[str, Any]) -> Any:
        hook = getattr(self, "cycle" if command == "cycle" else f"command_{command}", None)
        if hook is None or not inspect.iscoroutinefunction(hook):
            raise InvalidArgument(f"{type(self).__name__}.command_{command} must be an "
                                  "`async def` method", command=command)
        key = self.key()
        lease = ResourceLease(key, command, self.run_id, self.step)
        mode = check_on_conflict(options.get("on_conflict") or type(self).on_conflict)
        async with held(engine.store, lease, on_conflict=mode,
                        timeout=type(self).lease_timeout):
            self.target = desired
            self.log.info("running %s on %s", command, key)
            result = await hook()
        return check_json(result, f"result of {type(self).__name__}.command_{command}")

    async def call(self, hook: Any, *args: Any) -> Any:
        """Hooks run on the run's own task, where ``self.do`` records their steps."""
        if inspect.iscoroutinefunction(hook):
            return await hook(*args)
        return await Resource.call(self, hook, *args)

