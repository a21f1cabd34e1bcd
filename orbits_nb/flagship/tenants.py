"""A fleet as desired state: one agent per tenant backend, converged from an inventory.

:class:`TenantBackend` is an agent (identity ``backend-<tenant>``) whose install is the
flagship's steps (repository and account in parallel, the stack, the migrations);
:class:`TenantFleet` converges one per tenant of its inventory. A fleet run whose
inventory gained a tenant installs only that tenant: the others, recorded with the
same desired state, are left alone (drift in them is ``ob.drift``'s to find). A
tenant dropped from the inventory is a planned uninstall that happens only with
``confirm_removals=True``. Failures give one summary alert for the fleet.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orbits_nb.actions.git import CreateGitRepo
from orbits_nb.actions.slack import SendSlackAlert
from orbits_nb.actions.sql import RunSQLMigrations
from orbits_nb.aws.account import Account
from orbits_nb.aws.accounts import DEFAULT_ROLE
from orbits_nb.aws.executor import AccountExecutor
from orbits_nb.aws.stack import Stack
from orbits_nb.core.action import Action
from orbits_nb.core.errors import InvalidArgument, StepFailed
from orbits_nb.core.rows import ResourceRow
from orbits_nb.core.serde import Secret
from orbits_nb.core.workflow import Workflow
from orbits_nb.flagship.backend import check_client
from orbits_nb.flagship.fleet import FleetFailed
from orbits_nb.resources.agent import Agent, as_command
from orbits_nb.resources.base import Resource
from orbits_nb.resources.planning import unchanged_step

if TYPE_CHECKING:
    from orbits_nb.resources.report import DriftReport

#: Arguments of TenantFleet that are not passed on to each TenantBackend.
_OWN = ("tenants", "tenants_file", "concurrency", "email_pattern", "database_pattern",
        "confirm_removals", "webhook")


class TenantBackend(Agent):
    """One tenant's backend: repository, account, stack and migrations, as one agent."""

    kind = "TenantBackend"

    def __init__(self, *, tenant: str, email: str, database_url: str, template_file: str,
                 migrations: str, git_location: str, region: str = "us-east-1",
                 role_name: str = DEFAULT_ROLE, fleet: str = "fleet") -> None:
        check_client(tenant)
        super().__init__(tenant=tenant, email=email, database_url=database_url,
                         template_file=template_file, migrations=migrations,
                         git_location=git_location, region=region, role_name=role_name,
                         fleet=fleet)

    def identity(self) -> str:
        return f"backend-{self.args['tenant']}"

    def desired(self) -> Any:
        return {"email": self.args["email"], "stack": self._stack_name(),
                "database_url": self.args["database_url"]}

    def _stack_name(self) -> str:
        return f"{self.args['tenant']}-backend"

    def _account(self) -> Account:
        return Account(name=self.args["tenant"], email=self.args["email"],
                       role_name=self.args["role_name"])

    def _stack(self, account_id: str) -> Stack:
        tenant = self.args["tenant"]
        return Stack(stack_name=self._stack_name(), template_file=self.args["template_file"],
                     parameters={"Client": tenant, "DatabaseUrl": self.args["database_url"]},
                     tags={"client": tenant, "managed-by": "orbits-nb"},
                     account_id=account_id, region=self.args["region"],
                     role_name=self.args["role_name"])

    def observe(self) -> Any:
        account = self._account().observe()
        if account is None:
            return None
        stack = self._stack(account["account_id"]).observe()
        if stack is None:
            return None
        return {"email": self.args["email"], "stack": self._stack_name(),
                "database_url": stack["parameters"].get("DatabaseUrl")}

    async def install(self) -> Any:
        tenant = self.args["tenant"]
        repo, account = await asyncio.gather(
            self.do("git-create", CreateGitRepo(name=f"{tenant}-backend",
                                                location=self.args["git_location"])),
            self.do("aws-create", self._account()))
        stack = await self.do("iac-deploy", self._stack(account["account_id"]))
        migrated = await self.do("sql-migrate", RunSQLMigrations(
            folder=self.args["migrations"]), executor=AccountExecutor(stack["env"]))
        return {"tenant": tenant, "account_id": account["account_id"],
                "repository": repo["clone_url"], "stack": stack["stack_name"],
                "migrations": migrated["applied"]}

    async def uninstall_hook(self) -> Any:
        """Uninstall the tenant's stack (the account stays: removing an account from
        the organization is ``ob.uninstall`` of the ``aws.Account``, confirmed)."""
        account = await asyncio.to_thread(self._account().observe)
        if account is not None:
            stack = self._stack(account["account_id"])
            await self.do("iac-uninstall", stack.uninstall(force=True,
                                                           confirm=stack.identity()))
        return None


class FindRemovals(Action):
    """The recorded tenants of fleet ``fleet`` that its inventory no longer lists."""

    def main(self) -> Any:
        from orbits_nb.resources.converge import engine_of

        keep = set(self.args["keep"])
        rows = engine_of(self).store.resources(kinds=[TenantBackend.kind])
        return sorted(r.args["tenant"] for r in rows if r.status == "present"
                      and r.args.get("fleet") == self.args["fleet"]
                      and r.args.get("tenant") not in keep)


def read_inventory(tenants: list[str] | None, tenants_file: str | None) -> list[str]:
    """The tenant names: the list given, or those of a YAML file (a list, or a mapping
    with a ``tenants`` list)."""
    if tenants_file is not None:
        import yaml

        try:
            data = yaml.safe_load(Path(tenants_file).expanduser().read_text())
        except (OSError, yaml.YAMLError) as err:
            raise InvalidArgument(f"cannot read the tenant inventory {tenants_file!r}: "
                                  f"{err}", argument="tenants_file") from None
        tenants = data.get("tenants") if isinstance(data, dict) else data
    if not isinstance(tenants, list):
        raise InvalidArgument("the tenant inventory must be a list of tenant names",
                              argument="tenants")
    for tenant in tenants:
        check_client(tenant)
    duplicates = sorted({t for t in tenants if tenants.count(t) > 1})
    if duplicates:
        raise InvalidArgument(f"tenants are listed twice: {duplicates}", argument="tenants")
    return list(tenants)


class TenantFleet(Workflow):
    """Converge one :class:`TenantBackend` per tenant of the inventory.

    ``tenants`` (a list) or ``tenants_file`` (YAML) is the inventory; ``name`` names
    the fleet (its tenants are the recorded TenantBackends with that ``fleet``).

    >>> TenantFleet(tenants=["acme", "globex"], email_pattern="aws+{tenant}@example.com",
    ...             database_pattern="duckdb:///srv/{tenant}.duckdb",
    ...             template_file="assets/backend.yaml", migrations="assets/migrations",
    ...             git_location="/srv/git").run()                # doctest: +SKIP
    """

    def __init__(self, *, email_pattern: str, database_pattern: str,
                 tenants: list[str] | None = None, tenants_file: str | None = None,
                 name: str = "fleet", concurrency: int = 4, confirm_removals: bool = False,
                 webhook: Secret | None = None, **backend: Any) -> None:
        for arg, pattern in (("email_pattern", email_pattern),
                             ("database_pattern", database_pattern)):
            if not isinstance(pattern, str) or "{tenant}" not in pattern:
                raise InvalidArgument(f"{arg} must contain '{{tenant}}', got {pattern!r}",
                                      argument=arg)
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise InvalidArgument(f"concurrency must be an integer >= 1, got {concurrency!r}",
                                  argument="concurrency")
        inventory = read_inventory(tenants, tenants_file)
        args: dict[str, Any] = {"tenants": inventory, "email_pattern": email_pattern,
                                "database_pattern": database_pattern, "fleet": name,
                                "concurrency": concurrency,
                                "confirm_removals": bool(confirm_removals), **backend}
        if webhook is not None:
            args["webhook"] = webhook
        super().__init__(**args)
        self.resources()  # validates the backend arguments now

    def resources(self) -> list[Resource]:
        """The desired state: one agent per tenant of the inventory."""
        common = {k: v for k, v in self.args.items() if k not in _OWN}
        return [TenantBackend(tenant=t, email=self.args["email_pattern"].format(tenant=t),
                              database_url=self.args["database_pattern"].format(tenant=t),
                              **common) for t in self.args["tenants"]]

    def owns(self, row: ResourceRow) -> bool:
        """Whether a recorded resource is one of this fleet's tenants (for ``ob.plan``)."""
        return row.kind == TenantBackend.kind and row.args.get("fleet") == self.args["fleet"]

    async def define(self) -> Any:
        limit = asyncio.Semaphore(self.args["concurrency"])

        async def converge(agent: Resource) -> Any:
            async with limit:
                return await self.do(agent.identity(), agent)

        agents = self.resources()
        # Tenants recorded with the same desired state are left alone (not even
        # observed): adding one tenant installs that tenant only.
        kept = set(await self.do("unchanged", unchanged_step(agents)))
        changed = [a for a in agents if a.key() not in kept]
        outcomes = await asyncio.gather(*(converge(a) for a in changed),
                                        return_exceptions=True)
        failed = {a.args["tenant"]: o for a, o in zip(changed, outcomes, strict=True)
                  if isinstance(o, BaseException)}
        removals: list[str] = await self.do("removals", FindRemovals(
            fleet=self.args["fleet"], keep=self.args["tenants"]))
        removed = await self._remove(removals) if self.args["confirm_removals"] else []
        if removals and not removed:
            self.log.warning("planned uninstall of %s (no longer in the inventory): run "
                             "with confirm_removals=True to uninstall them",
                             ", ".join(removals))
        if failed:
            await self._alert(failed)
            lines = "; ".join(f"{t}: {getattr(e, 'cause', None) or e}"
                              for t, e in failed.items())
            raise FleetFailed(f"{len(failed)} of {len(agents)} tenants failed ({lines}); "
                              "the others are deployed. Fix the cause and run the fleet "
                              "again", failed=len(failed), deployed=len(agents) - len(failed))
        return {"deployed": sorted(self.args["tenants"]),
                "changed": sorted(a.args["tenant"] for a in changed), "removed": removed,
                "planned_removals": [] if removed else removals}

    async def _remove(self, tenants: list[str]) -> list[str]:
        """Uninstall the agents of ``tenants`` (they are confirmed removals)."""
        from orbits_nb.resources.agent import engine_here
        from orbits_nb.resources.commands import rebuild

        store = engine_here(self).store
        for tenant in tenants:
            row = await asyncio.to_thread(store.resource,
                                          f"{TenantBackend.kind}:backend-{tenant}")
            if row is not None:
                await self.do(f"remove-{tenant}", as_command(
                    rebuild(row.type, row.args), "uninstall", {"force": True}))
        return tenants

    async def _alert(self, failed: dict[str, BaseException]) -> None:
        webhook = self.args.get("webhook")
        if webhook is None:
            return
        lines = "\n".join(f"- *{t}*: {getattr(e, 'cause', None) or e}"
                          for t, e in sorted(failed.items()))
        text = (f":rotating_light: TenantFleet {self.args['fleet']!r}: {len(failed)} of "
                f"{len(self.args['tenants'])} tenants failed\n{lines}")
        try:
            await self.do("notify", SendSlackAlert(webhook=webhook, text=text))
        except StepFailed:
            self.log.warning("the fleet's alert could not be sent")


def drift_by_tenant(report: DriftReport) -> dict[str, str]:
    """One line per tenant from a drift report of a fleet's resources (e.g.
    ``ob.drift(workflow="TenantFleet")``): ``in sync`` or what drifted, field by field.

    A resource belongs to the tenant whose agent's run uses it (its account, its stack)
    or is that agent.
    """
    users = report.engine.store.resource_users([c.key for c in report])
    tenant_of: dict[str, str] = {}
    for user in users:
        step = user.run_id.rsplit("/", 1)[-1] if "/" in user.run_id else user.step
        if step.startswith("backend-"):
            tenant_of[user.key] = step[len("backend-"):]
    for check in report:
        if check.kind == TenantBackend.kind:
            tenant_of[check.key] = check.identity[len("backend-"):]
    lines: dict[str, list[str]] = {}
    for check in report:
        tenant = tenant_of.get(check.key)
        if tenant is None:
            continue
        bucket = lines.setdefault(tenant, [])
        if not check.ok:
            what = "; ".join(d.describe(50) for d in check.diffs[:3]) or check.status
            bucket.append(f"{check.kind} {check.status}: {what}")
    return {t: " | ".join(found) or "in sync" for t, found in sorted(lines.items())}
