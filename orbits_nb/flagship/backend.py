"""The seed's DeployBackend workflow, and the base class it shares with a frontend."""

from __future__ import annotations

import asyncio
import contextlib
import re
from pathlib import Path
from typing import Any, ClassVar

from orbits_nb.actions.git import CreateGitRepo
from orbits_nb.actions.slack import SendSlackAlert
from orbits_nb.actions.sql import RunSQLMigrations
from orbits_nb.aws.account import Account
from orbits_nb.aws.accounts import DEFAULT_ROLE, CreateAWSAccount
from orbits_nb.aws.executor import AccountExecutor
from orbits_nb.aws.stack import Stack
from orbits_nb.aws.stacks import DeployStack
from orbits_nb.core.errors import InvalidArgument, StepFailed
from orbits_nb.core.serde import Secret
from orbits_nb.core.workflow import Workflow

_CLIENT = re.compile(r"^[a-z][a-z0-9-]{1,23}$")


def check_client(client: Any) -> str:
    """``client`` if it can name an account, a repository and a stack; else InvalidArgument."""
    if not isinstance(client, str) or not _CLIENT.match(client):
        raise InvalidArgument(
            f"client {client!r} must be 2-24 lowercase letters, digits or '-', starting "
            "with a letter (it names the account, the repository and the buckets)",
            argument="client")
    return client


def _check_webhook(webhook: Any) -> None:
    if webhook is not None and not isinstance(webhook, Secret):
        raise InvalidArgument("webhook must be an orbits_nb.Secret (e.g. "
                              "Secret.from_env('SLACK_WEBHOOK_URL'))", argument="webhook")


def _check_file(value: Any, argument: str, *, folder: bool = False) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidArgument(f"{argument} must be a path, got {value!r}", argument=argument)
    path = Path(value).expanduser()
    if not (path.is_dir() if folder else path.is_file()):
        kind = "directory" if folder else "file"
        raise InvalidArgument(f"{argument} {value!r} is not an existing {kind}",
                              argument=argument)
    return str(path.resolve())


class BaseWorkflow(Workflow):
    """Shared golden-path creation: a git repository and the client's AWS account.

    Subclasses name their ``component``; their repositories differ
    (``acme-backend``, ``acme-frontend``) while the account is the same one: the
    account is the resource :class:`~orbits_nb.aws.Account`, whose identity is its
    e-mail, so the second workflow finds it in sync and shares it. The stack is the
    resource :class:`~orbits_nb.aws.Stack`: ``orbits-nb drift`` sees a parameter or a
    bucket tag changed by hand, and ``orbits-nb reconcile`` puts it back.
    """

    component: ClassVar[str] = "app"

    def __init__(self, *, client: str, email: str, git_location: str | None = None,
                 git_provider: str = "local", git_owner: str | None = None,
                 git_token: Secret | None = None, role_name: str = DEFAULT_ROLE,
                 **args: Any) -> None:
        common: dict[str, Any] = {"client": check_client(client), "email": email,
                                  "git_provider": git_provider, "role_name": role_name}
        common.update({k: v for k, v in (("git_location", git_location),
                                         ("git_owner", git_owner),
                                         ("git_token", git_token)) if v is not None})
        self._repo_action(common)  # validates the git and account arguments early
        CreateAWSAccount(name=client, email=email, role_name=role_name)
        super().__init__(**common, **args)

    def _repo_action(self, args: dict[str, Any]) -> CreateGitRepo:
        return CreateGitRepo(name=f"{args['client']}-{self.component}",
                             location=args.get("git_location"),
                             provider=args.get("git_provider", "local"),
                             owner=args.get("git_owner"), token=args.get("git_token"))

    async def define_creation(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """Create the repository and the account in parallel; return both results."""
        outcomes: tuple[Any, ...] = await asyncio.gather(
            self.do("git-create", self._repo_action(self.args)),
            self.do("aws-create", Account(
                name=self.args["client"], email=self.args["email"],
                role_name=self.args.get("role_name", DEFAULT_ROLE))),
            # Wait for both before raising, so no step is left running unobserved.
            return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        repo, account = outcomes
        return repo, account

    async def deploy_stack(self, account: dict[str, Any], parameters: dict[str, Any],
                           tags: dict[str, str] | None = None) -> Any:
        """The ``iac-deploy`` step: this component's stack, in the client's account."""
        client = self.args["client"]
        return await self.do("iac-deploy", Stack(
            stack_name=f"{client}-{self.component}", template_file=self.args["template_file"],
            parameters={"Client": client, **parameters}, tags={"client": client, **(tags or {})},
            account_id=account["account_id"], region=self.args.get("region"),
            role_name=self.args.get("role_name", DEFAULT_ROLE)))

    def account_executor(self, account: dict[str, Any]) -> AccountExecutor:
        """The executor acting in the client's account, with the workflow's region."""
        return AccountExecutor(account_id=account["account_id"],
                               region=self.args.get("region"),
                               role_name=self.args.get("role_name", DEFAULT_ROLE))

    async def alert(self, error: StepFailed) -> None:
        """Post the failure to the webhook, once per failing step (if one is set)."""
        webhook = self.args.get("webhook")
        if webhook is None:
            return
        text = (f":rotating_light: {type(self).__name__} for *{self.args['client']}* failed "
                f"at step `{error.step}` (run `{error.run_id}`): {error.cause}\n"
                f"Inspect it with `orbits-nb show {error.run_id}`.")
        # A failed alert is recorded on the run; the deployment's error is the one to raise.
        with contextlib.suppress(StepFailed):
            await self.do(f"notify-{error.step}", SendSlackAlert(webhook=webhook, text=text))


class DeployBackend(BaseWorkflow):
    """Deploy a new backend environment for a client (the seed's flagship runbook).

    git repository and AWS account in parallel, then the CloudFormation stack in the
    new account, then the SQL migrations in that account's context (the stack's
    outputs as env); on a failed step, an alert to the webhook, then the error.

    >>> DeployBackend(client="acme", email="aws+acme@example.com", region="eu-west-1",
    ...               git_location="/srv/git", template_file="assets/backend.yaml",
    ...               migrations="assets/migrations",
    ...               database_url="duckdb:///srv/acme.duckdb",
    ...               webhook=Secret.from_env("SLACK_WEBHOOK_URL")).start()  # doctest: +SKIP
    """

    component = "backend"

    def __init__(self, *, client: str, email: str, template_file: str, migrations: str,
                 database_url: str, region: str = "us-east-1",
                 webhook: Secret | None = None, **common: Any) -> None:
        check_client(client)
        _check_webhook(webhook)
        if not isinstance(database_url, str) or not database_url:
            raise InvalidArgument(f"database_url must be a DuckDB path or a postgresql:// "
                                  f"URL, got {database_url!r}", argument="database_url")
        extra: dict[str, Any] = {
            "template_file": _check_file(template_file, "template_file"),
            "migrations": _check_file(migrations, "migrations", folder=True),
            "database_url": database_url, "region": region}
        if webhook is not None:
            extra["webhook"] = webhook
        DeployStack(stack_name=f"{client}-backend", template_file=template_file,
                    region=region)
        super().__init__(client=client, email=email, **common, **extra)

    async def define(self) -> Any:
        client = self.args["client"]
        try:
            repo, account = await self.define_creation()
            stack = await self.deploy_stack(
                account, {"DatabaseUrl": self.args["database_url"]},
                tags={"managed-by": "orbits-nb"})
            migrated = await self.do("sql-migrate", RunSQLMigrations(
                folder=self.args["migrations"]), executor=AccountExecutor(stack["env"]))
        except StepFailed as err:
            await self.alert(err)
            raise
        return {"client": client, "account_id": account["account_id"],
                "repository": repo["clone_url"], "stack": stack["stack_name"],
                "outputs": stack["outputs"], "migrations": migrated["applied"]}


class DeployFrontend(BaseWorkflow):
    """The frontend of a client: same account as its backend, its own repo and stack."""

    component = "frontend"

    def __init__(self, *, client: str, email: str, template_file: str,
                 region: str = "us-east-1", webhook: Secret | None = None,
                 **common: Any) -> None:
        check_client(client)
        _check_webhook(webhook)
        extra: dict[str, Any] = {"template_file": _check_file(template_file,
                                                              "template_file"),
                                 "region": region}
        if webhook is not None:
            extra["webhook"] = webhook
        super().__init__(client=client, email=email, **common, **extra)

    async def define(self) -> Any:
        client = self.args["client"]
        try:
            repo, account = await self.define_creation()
            stack = await self.deploy_stack(account, {})
        except StepFailed as err:
            await self.alert(err)
            raise
        return {"client": client, "account_id": account["account_id"],
                "repository": repo["clone_url"], "outputs": stack["outputs"]}
