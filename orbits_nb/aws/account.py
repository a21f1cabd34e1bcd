"""``Account``: an AWS account of the organization as a resource (identity: its e-mail)."""

from __future__ import annotations

from typing import Any, ClassVar

from orbits_nb.aws._drive import POLL_SECONDS, context, drive
from orbits_nb.aws.accounts import DEFAULT_ROLE, CreateAWSAccount
from orbits_nb.aws.session import AWS, aws_errors
from orbits_nb.core.drift import FieldDiff
from orbits_nb.core.errors import InvalidArgument
from orbits_nb.resources.base import Resource
from orbits_nb.resources.errors import ResourceError

#: The organizational unit of an account placed at the organization's root.
ROOT = "Root"


class Account(Resource):
    """A member account of the caller's AWS Organization.

    Identity: the e-mail (AWS's own identity of an account). Desired state: the name,
    the ``organizational_unit`` (a name under the root, an ``ou-`` id, or ``"Root"``)
    and the tags. Drift on the OU or the tags is reconciled by moving or retagging
    the account; uninstall removes it from the organization and asks for
    ``confirm=<e-mail>``. The step's result is
    :class:`~orbits_nb.aws.CreateAWSAccount`'s: ``account_id``, ``role_arn``...

    >>> account = await self.do("aws-create", ob.aws.Account(
    ...     name="acme", email="aws+acme@example.com", organizational_unit="clients",
    ...     tags={"client": "acme"}))                                  # doctest: +SKIP
    """

    kind = "aws.Account"
    confirm_uninstall = True
    server_managed = ("account_id",)
    poll_interval_s: ClassVar[float] = POLL_SECONDS

    def __init__(self, *, name: str, email: str, organizational_unit: str = ROOT,
                 tags: dict[str, str] | None = None, role_name: str = DEFAULT_ROLE,
                 profile: str | None = None) -> None:
        create = CreateAWSAccount(name=name, email=email, role_name=role_name, tags=tags,
                                  profile=profile)  # validates them
        if not isinstance(organizational_unit, str) or not organizational_unit.strip():
            raise InvalidArgument(f"Account: organizational_unit must be an OU name, an "
                                  f"'ou-' id or 'Root', got {organizational_unit!r}",
                                  argument="organizational_unit")
        args = dict(create.args)
        if organizational_unit != ROOT:
            args["organizational_unit"] = organizational_unit
        super().__init__(**args)

    def _aws(self) -> AWS:
        return context(None, DEFAULT_ROLE, None, self.args.get("profile"), {})

    def _org(self) -> Any:
        return self._aws().client("organizations")

    def _create_action(self) -> CreateAWSAccount:
        own = ("organizational_unit",)
        return CreateAWSAccount(**{k: v for k, v in self.args.items() if k not in own})

    # -- resource ----------------------------------------------------------------------
    def identity(self) -> str:
        return str(self.args["email"]).lower()

    def desired(self) -> Any:
        return {"name": self.args["name"],
                "organizational_unit": self.args.get("organizational_unit", ROOT),
                "tags": dict(self.args.get("tags", {}))}

    def observe(self) -> Any:
        org = self._org()
        account = self._find(org)
        if account is None:
            return None
        account_id = str(account["Id"])
        with aws_errors("ListTagsForResource"):
            tags = org.list_tags_for_resource(ResourceId=account_id)["Tags"]
        return {"account_id": account_id, "name": account.get("Name"),
                "organizational_unit": self._ou_of(org, account_id),
                "tags": {t["Key"]: t["Value"] for t in tags}}

    def _find(self, org: Any) -> dict[str, Any] | None:
        email = self.identity()
        with aws_errors("ListAccounts"):
            for page in org.get_paginator("list_accounts").paginate():
                for account in page["Accounts"]:
                    if (str(account.get("Email", "")).lower() == email
                            and account.get("Status", "ACTIVE") == "ACTIVE"):
                        return dict(account)
        return None

    def _parent(self, org: Any, account_id: str) -> dict[str, Any]:
        with aws_errors("ListParents"):
            return dict(org.list_parents(ChildId=account_id)["Parents"][0])

    def _ou_of(self, org: Any, account_id: str) -> str:
        parent = self._parent(org, account_id)
        if parent["Type"] == "ROOT":
            return ROOT
        if self.args.get("organizational_unit", "").startswith("ou-"):
            return str(parent["Id"])
        with aws_errors("DescribeOrganizationalUnit"):
            unit = org.describe_organizational_unit(OrganizationalUnitId=parent["Id"])
        return str(unit["OrganizationalUnit"]["Name"])

    def _ou_id(self, org: Any, wanted: str) -> str:
        with aws_errors("ListRoots"):
            root = str(org.list_roots()["Roots"][0]["Id"])
        if wanted == ROOT:
            return root
        if wanted.startswith("ou-"):
            return wanted
        with aws_errors("ListOrganizationalUnitsForParent"):
            for page in org.get_paginator("list_organizational_units_for_parent").paginate(
                    ParentId=root):
                for unit in page["OrganizationalUnits"]:
                    if unit["Name"] == wanted:
                        return str(unit["Id"])
        raise ResourceError(f"organizational unit {wanted!r} is not under the "
                            "organization's root; create it first or name it by its "
                            "'ou-' id", key=self.key())

    def create(self) -> Any:
        result = drive(self._create_action(), self._aws(), poll=self.poll_interval_s)
        after = self.observe()
        if after is not None:
            self._converge(after, self.target)
        return result

    def update(self, diff: list[FieldDiff]) -> Any:
        if any(d.path == "name" for d in diff):
            raise ResourceError(
                f"account {self.identity()} is named {self.observed.get('name')!r}, not "
                f"{self.target['name']!r}; AWS Organizations cannot rename it: rename it in "
                "the account's settings, or accept the observed name", key=self.key())
        self._converge(self.observed, self.target)
        return None

    def _converge(self, actual: dict[str, Any], target: dict[str, Any]) -> None:
        org = self._org()
        account_id = actual["account_id"]
        if actual["organizational_unit"] != target["organizational_unit"]:
            source = self._parent(org, account_id)["Id"]
            destination = self._ou_id(org, target["organizational_unit"])
            self.log.info("moving account %s to %s", account_id,
                          target["organizational_unit"])
            with aws_errors("MoveAccount"):
                org.move_account(AccountId=account_id, SourceParentId=source,
                                 DestinationParentId=destination)
        extra = sorted(set(actual["tags"]) - set(target["tags"]))
        if extra:
            with aws_errors("UntagResource"):
                org.untag_resource(ResourceId=account_id, TagKeys=extra)
        changed = {k: v for k, v in target["tags"].items() if actual["tags"].get(k) != v}
        if changed:
            with aws_errors("TagResource"):
                org.tag_resource(ResourceId=account_id, Tags=[
                    {"Key": k, "Value": v} for k, v in changed.items()])

    def delete(self) -> Any:
        actual = self.observe()
        if actual is None:
            return None
        self.log.info("removing account %s from the organization", actual["account_id"])
        with aws_errors("RemoveAccountFromOrganization"):
            self._org().remove_account_from_organization(AccountId=actual["account_id"])
        return None

    def output(self, actual: Any) -> Any:
        role = self.args.get("role_name", DEFAULT_ROLE)
        account_id = actual["account_id"]
        return {"account_id": account_id, "name": actual["name"], "email": self.args["email"],
                "role_arn": f"arn:aws:iam::{account_id}:role/{role}", "request_id": None,
                "created": False}
