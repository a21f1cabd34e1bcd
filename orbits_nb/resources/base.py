"""The :class:`Resource` base class: an action with an identity and a desired state."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any, ClassVar

from orbits_nb.core.action import Action
from orbits_nb.core.drift import Comparison, FieldDiff
from orbits_nb.core.errors import InvalidArgument
from orbits_nb.core.serde import dumps


class _ResourceType(type):
    """Makes a Resource whose ``install`` is ``async def`` an agent (see ``Agent``).

    The agent's own ``uninstall`` hook is kept as ``uninstall_hook``, so that
    ``resource.uninstall()`` still gives the step that uninstalls it from a workflow.
    """

    def __new__(mcls, name: str, bases: tuple[type, ...], ns: dict[str, Any],
                **kwargs: Any) -> _ResourceType:
        if not ns.get("_agent_base") and inspect.iscoroutinefunction(ns.get("install")):
            from orbits_nb.resources.agent import Agent

            if not any(issubclass(b, Agent) for b in bases):
                bases = (*[b for b in bases if b not in Agent.__mro__], Agent)
        agent = ns.get("_agent_base") or any(getattr(b, "is_agent", False) for b in bases)
        if agent and inspect.iscoroutinefunction(ns.get("uninstall")):
            ns["uninstall_hook"] = ns.pop("uninstall")
        return super().__new__(mcls, name, bases, ns, **kwargs)


class Resource(Action, metaclass=_ResourceType):
    """Something that should exist in a given state, converged by a workflow step.

    Subclass it and define ``identity()`` (a stable key from the arguments),
    ``desired()`` (the spec, plain data), ``observe()`` (the actual state, or None when
    absent), ``create()``, ``update(diff)`` and ``delete()``. Each may be a plain
    method (run in a worker thread) or ``async def``. Used as a step,
    ``await self.do("name", MyResource(...))`` converges it: create when absent,
    update when drifted or when the class ``version`` changed, nothing when in sync.
    The step's result is the resource's output: what ``create()``/``update()``
    returned (ids, URLs), else the last recorded output, else ``output(actual)``.

    Two workflows asking for the same identity share one resource: the first creates
    it, the other finds it in sync and gets the same output. Commands on one identity
    are mutually exclusive across processes (a lease in the store); a conflicting
    command waits up to ``lease_timeout`` seconds, or fails at once when
    ``on_conflict = "fail"``.

    >>> class Note(Resource):
    ...     def identity(self): return self.args["path"]
    ...     def desired(self): return {"text": self.args["text"]}
    ...     def observe(self):
    ...         p = pathlib.Path(self.args["path"])
    ...         return {"text": p.read_text()} if p.exists() else None
    ...     def create(self): pathlib.Path(self.args["path"]).write_text(self.target["text"])
    ...     def update(self, diff): self.create()
    ...     def delete(self): pathlib.Path(self.args["path"]).unlink()
    """

    #: Change it to force an update of every resource of this class on next converge.
    version: ClassVar[str | int | None] = None
    #: The name in resource keys (``kind:identity``); default: the class name.
    kind: ClassVar[str | None] = None
    #: Fields set by the system (ids, timestamps) that never count as drift.
    server_managed: ClassVar[tuple[str, ...]] = ()
    #: Lists whose order carries no meaning.
    unordered: ClassVar[tuple[str, ...]] = ()
    #: Lists of objects matched on a key field, e.g. ``{"columns": "name"}``.
    list_keys: ClassVar[dict[str, str]] = {}
    #: "wait" for a conflicting command (up to ``lease_timeout`` s) or "fail" at once.
    on_conflict: ClassVar[str] = "wait"
    lease_timeout: ClassVar[float] = 600.0
    #: Seconds one ``observe()`` may take before the check records an error.
    observe_timeout: ClassVar[float | None] = 120.0
    #: Observe again after create/update/delete and fail if still not converged.
    verify: ClassVar[bool] = True
    #: Uninstall only with ``confirm=<identity>`` (accounts, stacks: costly to lose).
    confirm_uninstall: ClassVar[bool] = False
    #: True for agents (resources whose commands are made of durable steps).
    is_agent: ClassVar[bool] = False
    #: How often ``ob.watch_drift()`` runs this resource's cycle (e.g. ``"15m"``):
    #: an agent's ``async def cycle()``, else an observation recorded as a cycle that
    #: reconciles only with ``reconcile_on_cycle``.
    cycle_every: ClassVar[str | float | None] = None
    reconcile_on_cycle: ClassVar[bool] = False

    # -- to implement -------------------------------------------------------------------
    def identity(self) -> str:
        """A stable key derived from the arguments (e.g. a path or a name)."""
        raise NotImplementedError(
            f"{type(self).__name__} must define identity(): a stable key from its "
            "arguments, e.g. `return self.args['path']`")

    def desired(self) -> Any:
        """The desired state as plain data (dicts, lists, scalars)."""
        raise NotImplementedError(f"{type(self).__name__} must define desired()")

    def observe(self) -> Any:
        """The actual state in the same shape as ``desired()``, or None when absent."""
        raise NotImplementedError(f"{type(self).__name__} must define observe()")

    def create(self) -> Any:
        """Create the resource in state ``self.target``; may return its output."""
        raise NotImplementedError(f"{type(self).__name__} must define create()")

    def update(self, diff: list[FieldDiff]) -> Any:
        """Bring the resource to ``self.target``; ``diff`` lists what differs."""
        raise NotImplementedError(f"{type(self).__name__} must define update(diff)")

    def delete(self) -> Any:
        """Delete the resource (used by uninstall)."""
        raise NotImplementedError(f"{type(self).__name__} must define delete() to be "
                                  "uninstalled")

    def output(self, actual: Any) -> Any:
        """The step result when create/update returned none: by default the state."""
        return actual

    # -- derived --------------------------------------------------------------------------
    @property
    def target(self) -> Any:
        """The desired state being applied: ``desired()``, or the recorded (accepted)
        desired state when a reconcile converges the resource."""
        if "_target" in self.__dict__:
            return self.__dict__["_target"]
        return self.desired()

    @target.setter
    def target(self, value: Any) -> None:
        self.__dict__["_target"] = value

    @property
    def observed(self) -> Any:
        """The state observed just before create/update was called."""
        return self.__dict__.get("_observed")

    def comparison(self) -> Comparison:
        """How desired and actual are compared; override to make it depend on args."""
        return Comparison(ignore=tuple(self.server_managed),
                          unordered=tuple(self.unordered), keys=dict(self.list_keys))

    @classmethod
    def kind_name(cls) -> str:
        return cls.kind or cls.__qualname__

    @classmethod
    def version_text(cls) -> str | None:
        return None if cls.version is None else dumps(cls.version)

    def key(self) -> str:
        """``kind:identity``, the resource's key in the store."""
        identity = self.identity()
        if not isinstance(identity, str) or not identity.strip():
            raise InvalidArgument(
                f"{type(self).__name__}.identity() must return a non-empty str, got "
                f"{identity!r}", resource=type(self).__name__)
        return f"{self.kind_name()}:{identity}"

    async def call(self, hook: Callable[..., Any], *args: Any) -> Any:
        """Run one hook: ``async def`` on the loop, plain functions in a thread."""
        if inspect.iscoroutinefunction(hook):
            return await hook(*args)
        value = await asyncio.to_thread(hook, *args)
        if inspect.isawaitable(value):
            value = await value
        return value

    # -- as a step --------------------------------------------------------------------
    async def main(self) -> Any:
        from orbits_nb.resources.converge import converge_step

        return await converge_step(self)

    def uninstall(self, *, force: bool = False, confirm: str | None = None) -> Action:
        """A step that releases this workflow's use and deletes the resource when no
        other workflow still uses it: ``await self.do("drop", res.uninstall())``.
        ``confirm`` repeats the identity of a resource with ``confirm_uninstall``."""
        from orbits_nb.resources.commands import Delete

        options = {"force": force, "release_caller": True, "confirm": confirm}
        if self.is_agent:
            from orbits_nb.resources.agent import as_command

            return as_command(self, "uninstall", options)
        return Delete(key=self.key(), type=self.type_name(), resource_args=self.args,
                      **options)
