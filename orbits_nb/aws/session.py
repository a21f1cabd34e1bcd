"""One factory for AWS clients, and the errors AWS calls turn into.

Everything goes through boto3's own configuration chain, so profiles
(``AWS_PROFILE`` / ``~/.aws/config``), environment variables and
``AWS_ENDPOINT_URL`` (or ``AWS_ENDPOINT_URL_<SERVICE>``) work unchanged: the same
action runs against real AWS or against a local emulator such as moto's server.

Inside an :class:`~orbits_nb.aws.executor.AccountExecutor`, :func:`current` returns the
assumed-role context of the target account instead of the default one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from orbits_nb._optional import needs
from orbits_nb.core.errors import InvalidArgument, OrbitsError

if TYPE_CHECKING:
    import boto3

#: What needs boto3, in the message of a missing one.
FEATURE = "AWS actions (CreateAWSAccount, DeployStack, AccountExecutor, aws.client)"
#: Services whose API lives in one region whatever the session says.
GLOBAL_SERVICES = {"organizations": "us-east-1", "iam": "us-east-1"}
#: Error codes worth another attempt (the engine retries them per the action's Retry).
TRANSIENT_CODES = frozenset({
    "Throttling", "ThrottlingException", "TooManyRequestsException", "RequestLimitExceeded",
    "ServiceUnavailable", "ServiceUnavailableException", "InternalFailure",
    "InternalError", "InternalServerError", "ConcurrentModificationException",
})


class AWSError(OrbitsError):
    """An AWS API call failed for a reason another attempt will not fix.

    Fields: ``code`` (AWS error code), ``operation`` and ``status`` (HTTP status).
    """


@dataclass(frozen=True)
class Credentials:
    """Temporary credentials; kept in memory only (never in the store or the bag)."""

    access_key: str
    secret_key: str
    token: str | None = None
    expires: float | None = None

    def __repr__(self) -> str:
        return f"Credentials(access_key={self.access_key[:4]}****)"


@dataclass
class AWS:
    """The AWS context an action runs in: where its clients point and as whom.

    >>> aws = AWS(region="eu-west-1")
    >>> aws.client("s3").list_buckets()                   # doctest: +SKIP
    """

    profile: str | None = None
    region: str | None = None
    credentials: Credentials | None = field(default=None, repr=False)
    account_id: str | None = None
    _session: Any = field(default=None, repr=False, compare=False)

    def session(self) -> boto3.Session:
        """A boto3 session honouring the profile, region and credentials given."""
        if self._session is None:
            self._session = make_session(profile=self.profile, region=self.region,
                                         credentials=self.credentials)
        return self._session

    def client(self, service: str, **kwargs: Any) -> Any:
        """A boto3 client; the endpoint comes from the standard AWS configuration."""
        session = self.session()  # first: it says which extra to install if boto3 is missing
        with needs("aws", FEATURE):
            from botocore.config import Config

        region = kwargs.pop("region_name", None) or session.region_name
        if region is None:
            region = GLOBAL_SERVICES.get(service)
        if region is None:
            raise AWSError(
                f"no AWS region configured for {service}: pass region=..., or set "
                "AWS_REGION / AWS_DEFAULT_REGION, or a region in your AWS profile",
                code="NoRegion", operation="client", status=0)
        kwargs.setdefault("config", Config(retries={"mode": "standard", "max_attempts": 5}))
        return session.client(service, region_name=region, **kwargs)

    def environ(self) -> dict[str, str]:
        """Environment variables that give a subprocess (a CLI, ``cdk``) this context."""
        env: dict[str, str] = {}
        region = self.session().region_name
        if region:
            env["AWS_REGION"] = env["AWS_DEFAULT_REGION"] = region
        if self.credentials is not None:
            env["AWS_ACCESS_KEY_ID"] = self.credentials.access_key
            env["AWS_SECRET_ACCESS_KEY"] = self.credentials.secret_key
            if self.credentials.token:
                env["AWS_SESSION_TOKEN"] = self.credentials.token
        elif self.profile:
            env["AWS_PROFILE"] = self.profile
        if self.account_id:
            env["AWS_ACCOUNT_ID"] = self.account_id
        return env

    def whoami(self) -> str:
        """The account id these credentials act in (asks STS once)."""
        if self.account_id is None:
            with aws_errors("GetCallerIdentity"):
                identity = self.client("sts").get_caller_identity()
            self.account_id = str(identity["Account"])
        return self.account_id


def make_session(*, profile: str | None = None, region: str | None = None,
                 credentials: Credentials | None = None) -> boto3.Session:
    """A boto3 session from the standard chain, with optional overrides."""
    with needs("aws", FEATURE):
        import boto3
        from botocore.exceptions import ProfileNotFound

    try:
        if credentials is not None:
            return boto3.Session(aws_access_key_id=credentials.access_key,
                                 aws_secret_access_key=credentials.secret_key,
                                 aws_session_token=credentials.token, region_name=region)
        return boto3.Session(profile_name=profile, region_name=region)
    except ProfileNotFound:
        raise InvalidArgument(f"AWS profile {profile!r} is not in your AWS config "
                              "(~/.aws/config); check the name or set AWS_PROFILE",
                              profile=profile) from None


#: The context set by an AccountExecutor around an action's main()/watch().
current_aws: ContextVar[AWS | None] = ContextVar("orbits_nb_aws", default=None)


def current(*, profile: str | None = None, region: str | None = None) -> AWS:
    """The AWS context of the running action: the executor's, else the default chain."""
    context = current_aws.get()
    if context is not None:
        if region and context.region != region:
            return AWS(region=region, credentials=context.credentials,
                       account_id=context.account_id, profile=context.profile)
        return context
    return AWS(profile=profile, region=region)


def client(service: str, *, profile: str | None = None, region: str | None = None) -> Any:
    """Shortcut: ``current(profile=..., region=...).client(service)``."""
    return current(profile=profile, region=region).client(service)


@contextlib.contextmanager
def aws_errors(operation: str, hints: dict[str, str] | None = None) -> Iterator[None]:
    """Turn a permanent botocore ``ClientError`` into an :class:`AWSError`.

    Transient errors (throttling, 5xx, connection failures) propagate unchanged, so the
    engine's retry policy applies to them. ``hints`` maps error codes to advice.
    """
    with needs("aws", FEATURE):
        from botocore.exceptions import ClientError, NoCredentialsError

    try:
        yield
    except ClientError as err:
        error = err.response.get("Error", {})
        code = str(error.get("Code", "Unknown"))
        status = int(err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
        if code in TRANSIENT_CODES or status >= 500:
            raise
        message = str(error.get("Message", err))
        text = f"AWS {operation} failed: {code}: {message}"
        hint = (hints or {}).get(code)
        raise AWSError(text + (f"; {hint}" if hint else ""), code=code,
                       operation=operation, status=status) from None
    except NoCredentialsError:
        raise AWSError(f"AWS {operation} failed: no AWS credentials found; set AWS_PROFILE "
                       "or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY",
                       code="NoCredentials", operation=operation, status=0) from None


def error_code(err: BaseException) -> str:
    """The AWS error code of a ``ClientError`` or :class:`AWSError` ('' otherwise)."""
    code = getattr(err, "code", None)
    if isinstance(code, str):
        return code
    response = getattr(err, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""
