"""``Fleet``: the same backend for many tenants, a few at a time."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from orbits_nb.core.errors import InvalidArgument, OrbitsError
from orbits_nb.core.workflow import Workflow
from orbits_nb.flagship.backend import DeployBackend, check_client

if TYPE_CHECKING:
    from orbits_nb.core.ports import Executor

#: Keys of Fleet's arguments that are not passed on to each DeployBackend.
_OWN = ("tenants", "concurrency", "email_pattern", "database_pattern")


class FleetFailed(OrbitsError):
    """Some tenants of a fleet failed; the others are deployed (``failed`` counts them)."""


def tenant_step(tenant: str) -> str:
    """The step name of one tenant's deployment in a :class:`Fleet` run."""
    return f"deploy-{tenant}"


class Fleet(Workflow):
    """Deploy :class:`DeployBackend` for each tenant, ``concurrency`` at a time.

    Each tenant is a nested workflow step ``deploy-<tenant>`` (its own run,
    ``<fleet run>/deploy-<tenant>``); ``email_pattern`` and ``database_pattern`` get
    ``{tenant}`` substituted. A failing tenant does not stop the others: the fleet
    finishes them all, then fails with :class:`FleetFailed` listing who failed, so a
    retry redeploys only those. :func:`~orbits_nb.flagship.progress.fleet_progress`
    shows one table for the whole fleet.

    ``executor`` fans the tenants out: their steps run there (e.g. on a Dask cluster,
    ``executor=ob.DaskExecutor("tcp://scheduler:8786")``, with ``concurrency`` as
    high as the cluster takes), except those that name their own executor (the steps
    inside the tenant's AWS account). It is not one of the run's arguments: the same
    fleet run may be continued in the kernel or on another cluster.
    """

    def __init__(self, *, tenants: list[str], email_pattern: str, database_pattern: str,
                 concurrency: int = 2, executor: Executor | None = None,
                 **backend: Any) -> None:
        if not isinstance(tenants, list) or not tenants:
            raise InvalidArgument("tenants must be a non-empty list of tenant names",
                                  argument="tenants")
        for tenant in tenants:
            check_client(tenant)
        duplicates = sorted({t for t in tenants if tenants.count(t) > 1})
        if duplicates:
            raise InvalidArgument(f"tenants are listed twice: {duplicates}",
                                  argument="tenants")
        if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1:
            raise InvalidArgument(f"concurrency must be an integer >= 1, got {concurrency!r}",
                                  argument="concurrency")
        for name, pattern in (("email_pattern", email_pattern),
                              ("database_pattern", database_pattern)):
            if not isinstance(pattern, str) or "{tenant}" not in pattern:
                raise InvalidArgument(f"{name} must contain '{{tenant}}', got {pattern!r}",
                                      argument=name)
        args = {"tenants": tenants, "concurrency": concurrency,
                "email_pattern": email_pattern, "database_pattern": database_pattern,
                **backend}
        self._backend_for(args, tenants[0])  # validates the backend arguments now
        super().__init__(**args)
        if executor is not None:
            self.executor = executor

    @staticmethod
    def _backend_for(args: dict[str, Any], tenant: str) -> DeployBackend:
        common = {k: v for k, v in args.items() if k not in _OWN}
        return DeployBackend(client=tenant,
                             email=args["email_pattern"].format(tenant=tenant),
                             database_url=args["database_pattern"].format(tenant=tenant),
                             **common)

    async def define(self) -> Any:
        limit = asyncio.Semaphore(self.args["concurrency"])

        async def deploy(tenant: str) -> Any:
            async with limit:
                return await self.do(tenant_step(tenant), self._backend_for(self.args, tenant))

        tenants: list[str] = self.args["tenants"]
        outcomes = await asyncio.gather(*(deploy(t) for t in tenants), return_exceptions=True)
        deployed = {t: o for t, o in zip(tenants, outcomes, strict=True)
                    if not isinstance(o, BaseException)}
        failed = {t: o for t, o in zip(tenants, outcomes, strict=True)
                  if isinstance(o, BaseException)}
        if failed:
            lines = "; ".join(f"{t}: {getattr(e, 'cause', None) or e}" for t, e in failed.items())
            raise FleetFailed(f"{len(failed)} of {len(tenants)} tenants failed ({lines}); the "
                              "others are deployed. Fix the cause and run the fleet again: "
                              "deployed tenants replay, failed ones run again",
                              failed=len(failed), deployed=len(deployed))
        return {"deployed": sorted(deployed),
                "accounts": {t: r["account_id"] for t, r in deployed.items()}}
