"""``CreateAWSAccount``: a member account of an AWS Organization, created once."""

from __future__ import annotations

import re
import threading
from typing import Any

from orbits_nb.aws.action import AWSAction
from orbits_nb.aws.session import AWSError, aws_errors
from orbits_nb.core.action import IN_PROGRESS, Retry
from orbits_nb.core.errors import InvalidArgument

DEFAULT_ROLE = "OrganizationAccountAccessRole"
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_ROLE = re.compile(r"^[\w+=,.@-]{1,64}$")
_HINTS = {
    "AWSOrganizationsNotInUseException": "enable AWS Organizations in the management "
    "account first (aws organizations create-organization --feature-set ALL)",
    "AccessDeniedException": "run this step with credentials of the organization's "
    "management account (or a delegated administrator)",
}

# Two workflows of one process asking for the same account must not both create it.
_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def _lock_for(email: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(email.lower(), threading.Lock())


class AccountCreationFailed(AWSError):
    """AWS reported the account creation as FAILED (``reason`` is AWS's FailureReason)."""


class CreateAWSAccount(AWSAction):
    """Create an AWS account in the caller's organization and wait until it exists.

    Idempotent by e-mail (AWS's identity of an account): an account of the
    organization with that e-mail is adopted instead of created, and a creation
    request already in flight for that name is watched rather than repeated, so a
    resumed or repeated step never creates a second account. The result is
    ``{"account_id", "name", "email", "role_arn", "request_id", "created"}``.

    >>> CreateAWSAccount(name="acme", email="aws+acme@example.com")
    CreateAWSAccount(name='acme', email='aws+acme@example.com')
    """

    retry = Retry(attempts=4, delay=2.0, backoff=2.0)
    poll_interval = 5.0
    timeout = 3600.0

    def __init__(self, *, name: str, email: str, role_name: str = DEFAULT_ROLE,
                 tags: dict[str, str] | None = None, profile: str | None = None,
                 region: str | None = None) -> None:
        if not isinstance(name, str) or not 1 <= len(name.strip()) <= 50:
            raise InvalidArgument(f"CreateAWSAccount: name must be 1 to 50 characters, got "
                                  f"{name!r}", argument="name")
        if not isinstance(email, str) or not _EMAIL.match(email) or len(email) > 64:
            raise InvalidArgument(f"CreateAWSAccount: email {email!r} is not a valid e-mail "
                                  "address (at most 64 characters)", argument="email")
        if not isinstance(role_name, str) or not _ROLE.match(role_name):
            raise InvalidArgument(f"CreateAWSAccount: role_name {role_name!r} is not a valid "
                                  "IAM role name", argument="role_name")
        if tags is not None and not (isinstance(tags, dict) and all(
                isinstance(k, str) and isinstance(v, str) for k, v in tags.items())):
            raise InvalidArgument("CreateAWSAccount: tags must be a dict of str to str",
                                  argument="tags")
        args: dict[str, Any] = {"name": name, "email": email}
        if role_name != DEFAULT_ROLE:
            args["role_name"] = role_name
        if tags:
            args["tags"] = tags
        super().__init__(**args, profile=profile, region=region)

    # -- main: adopt or create ---------------------------------------------------------
    def main(self) -> Any:
        with _lock_for(self.args["email"]):
            org = self.aws.client("organizations")
            existing = self._account_with_email(org)
            if existing is not None:
                self.log.info("account %s with e-mail %s already exists: adopting it",
                              existing["Id"], self.args["email"])
                return self._result(existing["Id"], request_id=None, created=False)
            pending = self._pending_request(org)
            if pending is not None:
                self.log.info("a creation request for %r is in flight (%s): watching it",
                              self.args["name"], pending)
                self.bag["request_id"] = pending
                return IN_PROGRESS
            request: dict[str, Any] = {"AccountName": self.args["name"],
                                       "Email": self.args["email"],
                                       "RoleName": self.args.get("role_name", DEFAULT_ROLE)}
            if self.args.get("tags"):
                request["Tags"] = [{"Key": k, "Value": v} for k, v in self.args["tags"].items()]
            with aws_errors("CreateAccount", _HINTS):
                status = org.create_account(**request)["CreateAccountStatus"]
        self.bag["request_id"] = status["Id"]
        self.log.info("requested account %r (request %s)", self.args["name"], status["Id"])
        return self._settle(status)

    # -- watch: follow the request --------------------------------------------------------
    def watch(self) -> Any:
        request_id = self.bag["request_id"]
        org = self.aws.client("organizations")
        with aws_errors("DescribeCreateAccountStatus"):
            status = org.describe_create_account_status(
                CreateAccountRequestId=request_id)["CreateAccountStatus"]
        return self._settle(status)

    def _settle(self, status: dict[str, Any]) -> Any:
        state = status.get("State")
        if state == "SUCCEEDED":
            return self._result(status["AccountId"], status["Id"], created=True)
        if state == "FAILED":
            return self._failed(status)
        return IN_PROGRESS

    def _failed(self, status: dict[str, Any]) -> Any:
        reason = str(status.get("FailureReason", "UNKNOWN"))
        if reason == "EMAIL_ALREADY_EXISTS":
            # Lost a race with another creator of the same account: adopt theirs.
            existing = self._account_with_email(self.aws.client("organizations"))
            if existing is not None:
                return self._result(existing["Id"], status["Id"], created=False)
        raise AccountCreationFailed(
            f"AWS could not create account {self.args['name']!r} <{self.args['email']}>: "
            f"{reason}. {_REASONS.get(reason, 'See the AWS Organizations console.')}",
            code=reason, operation="CreateAccount", status=0, reason=reason,
            request_id=str(status.get("Id", "")))

    # -- helpers ---------------------------------------------------------------------------
    def _account_with_email(self, org: Any) -> dict[str, Any] | None:
        email = self.args["email"].lower()
        with aws_errors("ListAccounts", _HINTS):
            for page in org.get_paginator("list_accounts").paginate():
                for account in page["Accounts"]:
                    if str(account.get("Email", "")).lower() == email:
                        self._check_name(account)
                        return dict(account)
        return None

    def _check_name(self, account: dict[str, Any]) -> None:
        if account.get("Name") != self.args["name"]:
            raise AccountCreationFailed(
                f"e-mail {self.args['email']} already belongs to account {account['Id']} "
                f"named {account.get('Name')!r}, not {self.args['name']!r}; use another "
                "e-mail, or the same name to adopt that account",
                code="EMAIL_IN_USE", operation="CreateAccount", status=0,
                reason="EMAIL_IN_USE", request_id="")

    def _pending_request(self, org: Any) -> str | None:
        with aws_errors("ListCreateAccountStatus", _HINTS):
            pages = org.get_paginator("list_create_account_status").paginate(
                States=["IN_PROGRESS"])
            for page in pages:
                for status in page["CreateAccountStatuses"]:
                    if status.get("AccountName") == self.args["name"]:
                        return str(status["Id"])
        return None

    def _result(self, account_id: str, request_id: str | None, created: bool) -> Any:
        role = self.args.get("role_name", DEFAULT_ROLE)
        return {"account_id": str(account_id), "name": self.args["name"],
                "email": self.args["email"], "role_arn": f"arn:aws:iam::{account_id}:role/{role}",
                "request_id": request_id, "created": created}


_REASONS = {
    "EMAIL_ALREADY_EXISTS": "The e-mail is used by another AWS account; choose another.",
    "ACCOUNT_LIMIT_EXCEEDED": "The organization reached its account quota; ask AWS "
                              "support for an increase.",
    "INVALID_EMAIL": "AWS rejected the e-mail address.",
    "INVALID_ADDRESS": "The management account's address is invalid.",
    "CONCURRENT_ACCOUNT_MODIFICATION": "Another change to the organization was in "
                                       "progress; run the step again.",
    "INTERNAL_FAILURE": "AWS had an internal failure; run the step again.",
}
