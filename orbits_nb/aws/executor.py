"""``AccountExecutor``: run an action inside another AWS account (the seed's CloudExecutor)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from orbits_nb.aws.accounts import DEFAULT_ROLE
from orbits_nb.aws.session import AWS, Credentials, aws_errors, current, current_aws
from orbits_nb.core.errors import InvalidArgument
from orbits_nb.core.serde import Secret

if TYPE_CHECKING:
    from orbits_nb.core.action import Action
    from orbits_nb.core.ports import Executor, Method, Outcome

_ACCOUNT = re.compile(r"^\d{12}$")
_ROLE_ARN = re.compile(r"^arn:aws[\w-]*:iam::(\d{12}):role/[\w+=,.@/-]+$")
#: Renew assumed credentials this many seconds before they expire.
RENEW_MARGIN = 300.0


class AccountExecutor:
    """Runs an action with an assumed role in a target account.

    ``env`` is typically the ``env`` of a previous :class:`~orbits_nb.aws.DeployStack`
    result: its values become ``action.env``, and its ``AWS_ACCOUNT_ID`` and
    ``AWS_REGION`` pick the account and region unless ``account_id`` / ``region`` /
    ``role_arn`` say otherwise. Credentials come from STS ``AssumeRole`` with the
    caller's own configuration, live in memory only, are masked if an action logs
    them, and never reach the store: :meth:`describe` names the account and role only.

    >>> stack = await self.do("iac-deploy", DeployStack(...))          # doctest: +SKIP
    >>> await self.do("sql-migrate", RunSQLMigrations(folder="migrations"),
    ...               executor=AccountExecutor(stack["env"]))            # doctest: +SKIP
    """

    def __init__(self, env: Mapping[str, Any] | None = None, *,
                 account_id: str | None = None, role_name: str = DEFAULT_ROLE,
                 role_arn: str | None = None, region: str | None = None,
                 session_name: str = "orbits-nb", duration: int = 3600,
                 external_id: Secret | None = None, profile: str | None = None,
                 inner: Executor | None = None) -> None:
        if env is not None and not isinstance(env, Mapping):
            raise InvalidArgument(f"AccountExecutor: env must be a dict of variables (e.g. a "
                                  f"DeployStack result's 'env'), got {type(env).__name__}")
        self.env = {str(k): str(v) for k, v in (env or {}).items()}
        account_id = account_id or self.env.get("AWS_ACCOUNT_ID")
        if role_arn is not None:
            match = _ROLE_ARN.match(role_arn)
            if match is None:
                raise InvalidArgument(f"AccountExecutor: role_arn {role_arn!r} is not an IAM "
                                      "role ARN (arn:aws:iam::123456789012:role/Name)")
            account_id = match.group(1)
        if account_id is None:
            raise InvalidArgument("AccountExecutor needs the target account: pass "
                                  "account_id=, role_arn=, or an env with AWS_ACCOUNT_ID")
        if not _ACCOUNT.match(str(account_id)):
            raise InvalidArgument(f"AccountExecutor: account id {account_id!r} is not 12 "
                                  "digits")
        if not 900 <= duration <= 43200:
            raise InvalidArgument(f"AccountExecutor: duration {duration} must be between 900 "
                                  "and 43200 seconds")
        self.account_id = str(account_id)
        self.role_arn = role_arn or f"arn:aws:iam::{self.account_id}:role/{role_name}"
        self.region = region or self.env.get("AWS_REGION") or self.env.get("AWS_DEFAULT_REGION")
        self.session_name = session_name
        self.duration = duration
        self.external_id = external_id
        self.profile = profile
        self.inner = inner
        self._credentials: Credentials | None = None

    def describe(self) -> str:
        role = self.role_arn.rsplit("/", 1)[-1]
        return f"aws:{self.account_id}/{role}" + (f"@{self.region}" if self.region else "")

    def __repr__(self) -> str:
        return f"AccountExecutor({self.describe()})"

    # -- credentials ------------------------------------------------------------------
    def credentials(self) -> Credentials:
        """Assumed-role credentials, renewed shortly before they expire."""
        cached = self._credentials
        if cached is not None and (cached.expires or 0) - RENEW_MARGIN > time.time():
            return cached
        request: dict[str, Any] = {"RoleArn": self.role_arn,
                                   "RoleSessionName": self.session_name,
                                   "DurationSeconds": self.duration}
        if self.external_id is not None:
            request["ExternalId"] = self.external_id.reveal()
        sts = current(profile=self.profile, region=self.region).client("sts")
        with aws_errors("AssumeRole", {"AccessDenied": "the caller may not assume "
                                       f"{self.role_arn}; check its trust policy"}):
            reply = sts.assume_role(**request)["Credentials"]
        self._credentials = Credentials(
            access_key=reply["AccessKeyId"], secret_key=reply["SecretAccessKey"],
            token=reply.get("SessionToken"), expires=reply["Expiration"].timestamp())
        return self._credentials

    def context(self) -> AWS:
        """The :class:`~orbits_nb.aws.session.AWS` context of the target account."""
        return AWS(region=self.region, credentials=self.credentials(),
                   account_id=self.account_id)

    # -- Executor protocol ------------------------------------------------------------
    def interruptible(self, action: Action, method: Method) -> bool:
        """As the executor the work runs in: a cancel stops a subprocess or a
        coroutine at once, while a call in a thread is left to finish."""
        from orbits_nb.engine.flight import interruptible
        from orbits_nb.executors.local import LocalExecutor

        return interruptible(self.inner or LocalExecutor(), action, method)

    def abandons(self, action: Action, method: Method) -> bool:
        """As the executor the work runs in: a call in a thread of this process that a
        cancel cannot stop is left to run on its own, as there."""
        from orbits_nb.engine.flight import abandons
        from orbits_nb.executors.local import LocalExecutor

        return abandons(self.inner or LocalExecutor(), action, method)

    async def call(self, action: Action, method: Method) -> Outcome:
        loop = asyncio.get_running_loop()
        context = await loop.run_in_executor(None, self.context)
        creds = context.credentials
        assert creds is not None
        # Wrapping them remembers their values: a step that prints or logs the
        # credentials gets them masked wherever its output goes.
        Secret(creds.secret_key, name="aws-secret-key")
        if creds.token:
            Secret(creds.token, name="aws-session-token")
        action.env = {**self.env, "AWS_ACCOUNT_ID": self.account_id,
                      **({"AWS_REGION": self.region} if self.region else {})}
        inner = self._inner(context)
        token = current_aws.set(context)
        try:
            return await inner.call(action, method)
        finally:
            current_aws.reset(token)

    def _inner(self, context: AWS) -> Executor:
        from orbits_nb.executors.local import LocalExecutor
        from orbits_nb.executors.subprocess import SubprocessExecutor

        if self.inner is None:
            return LocalExecutor()
        if isinstance(self.inner, SubprocessExecutor):
            # A child process learns the account through its environment.
            return SubprocessExecutor(self.inner.python,
                                      env={**self.inner.env, **self.env, **context.environ()})
        return self.inner
