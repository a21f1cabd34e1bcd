"""``Stack``: a CloudFormation stack as a resource, with drift down to its resources."""

from __future__ import annotations

import time
from typing import Any, ClassVar

from orbits_nb.aws import observed, stackdrift
from orbits_nb.aws._drive import POLL_SECONDS, context, drive
from orbits_nb.aws.accounts import DEFAULT_ROLE
from orbits_nb.aws.session import AWS, AWSError, aws_errors
from orbits_nb.aws.stacks import SUCCEEDED, DeployStack, StackFailed
from orbits_nb.core.drift import FieldDiff
from orbits_nb.core.serde import Secret
from orbits_nb.resources.base import Resource
from orbits_nb.resources.errors import ResourceError

#: Stack states in which the stack counts as absent (a failed creation is replaced).
GONE = frozenset({"DELETE_COMPLETE", "ROLLBACK_COMPLETE", "ROLLBACK_FAILED",
                  "CREATE_FAILED"})
#: What a parameter given as a Secret looks like in the desired and observed states.
HIDDEN = "(secret)"


class Stack(Resource):
    """A CloudFormation stack: identity = account/region/stack name.

    Desired state: the template's digest, the parameters, the stack tags, and the
    resources the template declares, as far as they can be observed in the account
    (SSM parameters, S3 bucket tags, SQS queue attributes): a value changed by hand
    behind CloudFormation's back is drift, shown field by field, and reconcile puts it
    back (a template, parameter or tag change updates the stack). Uninstall deletes
    the stack and asks for ``confirm=<identity>``. The step's result is
    :class:`~orbits_nb.aws.DeployStack`'s: ``outputs`` and ``env``.

    >>> await self.do("iac-deploy", ob.aws.Stack(
    ...     stack_name="acme-backend", template_file="backend.yaml",
    ...     parameters={"Client": "acme"}, account_id=account["account_id"],
    ...     region="eu-west-1"))                                     # doctest: +SKIP
    """

    kind = "aws.Stack"
    confirm_uninstall = True
    observe_timeout = 300.0
    poll_interval_s: ClassVar[float] = POLL_SECONDS

    def __init__(self, *, stack_name: str, template: str | dict[str, Any] | None = None,
                 template_file: str | None = None, parameters: dict[str, Any] | None = None,
                 tags: dict[str, str] | None = None, capabilities: list[str] | None = None,
                 account_id: str | None = None, role_name: str = DEFAULT_ROLE,
                 region: str | None = None, profile: str | None = None) -> None:
        deploy = DeployStack(stack_name=stack_name, template=template,
                             template_file=template_file, parameters=parameters,
                             capabilities=capabilities, tags=tags, profile=profile,
                             region=region)  # validates every argument
        args = dict(deploy.args)
        if account_id is not None:
            args["account_id"] = str(account_id)
        if role_name != DEFAULT_ROLE:
            args["role_name"] = role_name
        super().__init__(**args)
        self._cache: dict[str, Any] = {}

    # -- context ---------------------------------------------------------------------
    def _aws(self) -> AWS:
        cache = self.__dict__.setdefault("_cache", {})
        return context(self.args.get("account_id"), self.args.get("role_name", DEFAULT_ROLE),
                       self.args.get("region"), self.args.get("profile"), cache)

    def _where(self) -> tuple[str, str]:
        cache = self.__dict__.setdefault("_cache", {})
        if "where" not in cache:
            aws = self._aws()
            region = self.args.get("region") or aws.session().region_name or "us-east-1"
            cache["where"] = (self.args.get("account_id") or aws.whoami(), region)
        return cache["where"]  # type: ignore[no-any-return]

    def _deploy(self) -> DeployStack:
        own = ("account_id", "role_name")
        return DeployStack(**{k: v for k, v in self.args.items() if k not in own})

    # -- resource ----------------------------------------------------------------------
    def identity(self) -> str:
        account, region = self._where()
        return f"{account}/{region}/{self.args['stack_name']}"

    def desired(self) -> Any:
        account, region = self._where()
        body = self._deploy()._body()
        parameters = self._parameters()
        return {"template": observed.digest(body), "parameters": parameters,
                "tags": dict(self.args.get("tags", {})),
                "resources": observed.expected(body, parameters, account=account,
                                               region=region,
                                               stack_name=self.args["stack_name"])}

    def _parameters(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for key, value in self.args.get("parameters", {}).items():
            if isinstance(value, Secret):
                out[key] = HIDDEN
            elif isinstance(value, bool):
                out[key] = "true" if value else "false"
            else:
                out[key] = str(value)
        return out

    def observe(self) -> Any:
        aws = self._aws()
        cf = aws.client("cloudformation")
        stack = self._deploy()._describe(cf, self.args["stack_name"])
        if stack is None or stack["StackStatus"] in GONE:
            return None
        with aws_errors("GetTemplate"):
            body = cf.get_template(StackName=stack["StackId"],
                                   TemplateStage="Original")["TemplateBody"]
        secret = {k for k, v in self.args.get("parameters", {}).items()
                  if isinstance(v, Secret)}
        parameters = {p["ParameterKey"]: HIDDEN if p["ParameterKey"] in secret
                      else str(p.get("ParameterValue"))
                      for p in stack.get("Parameters", [])}
        account, region = self._where()
        fields = observed.expected(body, parameters, account=account, region=region,
                                   stack_name=self.args["stack_name"])
        return {"template": observed.digest(body), "parameters": parameters,
                "tags": {t["Key"]: t["Value"] for t in stack.get("Tags", [])},
                "resources": self._resources(aws, cf, stack["StackId"], fields),
                "status": stack["StackStatus"]}

    server_managed = ("status",)

    def _resources(self, aws: AWS, cf: Any, stack_id: str, fields: dict[str, Any]
                   ) -> dict[str, Any]:
        """The compared fields of the stack's resources: as DetectStackDrift found them
        where the endpoint has it, else (or where it could not check) observed directly."""
        drifts = stackdrift.detect(cf, stack_id, poll=self.poll_interval_s) or {}
        resources: dict[str, Any] = {}
        for logical, (kind, physical) in self._physical(cf, stack_id).items():
            if logical not in fields:
                continue
            drift = drifts.get(logical)
            if drift is not None and drift.get("StackResourceDriftStatus") in stackdrift.CHECKED:
                resources[logical] = observed.found(
                    kind, stackdrift.actual_properties(drift), list(fields[logical]))
            else:
                resources[logical] = observed.observe_resource(aws, kind, physical,
                                                               list(fields[logical]))
        return resources

    def _physical(self, cf: Any, stack_id: str) -> dict[str, tuple[str, str]]:
        out: dict[str, tuple[str, str]] = {}
        with aws_errors("ListStackResources"):
            for page in cf.get_paginator("list_stack_resources").paginate(StackName=stack_id):
                for item in page["StackResourceSummaries"]:
                    if item.get("PhysicalResourceId"):
                        out[item["LogicalResourceId"]] = (item["ResourceType"],
                                                          item["PhysicalResourceId"])
        return out

    def create(self) -> Any:
        return drive(self._deploy(), self._aws(), poll=self.poll_interval_s)

    def update(self, diff: list[FieldDiff]) -> Any:
        result = None
        if any(not d.path.startswith("resources") for d in diff):
            result = drive(self._deploy(), self._aws(), poll=self.poll_interval_s)
        self._repair([d for d in diff if d.path.startswith("resources.")])
        return result

    def _repair(self, diff: list[FieldDiff]) -> None:
        if not diff:
            return
        aws = self._aws()
        cf = aws.client("cloudformation")
        physical = self._physical(cf, self.args["stack_name"])
        for logical in sorted({d.path.split(".")[1] for d in diff if "." in d.path}):
            if logical not in physical:
                continue  # not deployed yet: the stack update above creates it
            kind, name = physical[logical]
            wanted = self.target["resources"][logical]
            if self.observed["resources"].get(logical) is None and kind != "AWS::SSM::Parameter":
                raise ResourceError(
                    f"{logical} ({kind}) of stack {self.args['stack_name']!r} was deleted "
                    "outside CloudFormation; delete and reinstall the stack to recreate it",
                    key=self.key())
            self.log.info("repairing %s (%s) of stack %s", logical, kind,
                          self.args["stack_name"])
            observed.repair(aws, kind, name, wanted)

    def delete(self) -> Any:
        cf = self._aws().client("cloudformation")
        with aws_errors("DeleteStack"):
            cf.delete_stack(StackName=self.args["stack_name"])
        deadline = time.monotonic() + 3600
        while time.monotonic() < deadline:
            stack = self._deploy()._describe(cf, self.args["stack_name"])
            if stack is None or stack["StackStatus"] == "DELETE_COMPLETE":
                return None
            if stack["StackStatus"] == "DELETE_FAILED":
                raise StackFailed(f"deleting stack {self.args['stack_name']!r} failed: "
                                  f"{stack.get('StackStatusReason', 'no reason given')}",
                                  code="DeleteFailed", operation="DeleteStack", status=0)
            time.sleep(self.poll_interval_s)
        raise TimeoutError(f"stack {self.args['stack_name']!r} was not deleted in an hour")

    def output(self, actual: Any) -> Any:
        cf = self._aws().client("cloudformation")
        deploy = self._deploy()
        stack = deploy._describe(cf, self.args["stack_name"])
        if stack is None or stack["StackStatus"] not in SUCCEEDED:
            raise AWSError(f"stack {self.args['stack_name']!r} is not deployed",
                           code="StackGone", operation="DescribeStacks", status=0)
        return deploy._result(stack, "none")
