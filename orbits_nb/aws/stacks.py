"""``DeployStack``: create or update a CloudFormation stack and return its outputs."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from orbits_nb.aws.action import AWSAction
from orbits_nb.aws.session import AWSError, aws_errors
from orbits_nb.core.action import IN_PROGRESS, Retry
from orbits_nb.core.errors import InvalidArgument
from orbits_nb.core.serde import Secret

_NAME = re.compile(r"^[A-Za-z][-A-Za-z0-9]{0,127}$")
CAPABILITIES = ("CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND")
BODY_LIMIT = 51_200
SUCCEEDED = frozenset({"CREATE_COMPLETE", "UPDATE_COMPLETE", "IMPORT_COMPLETE"})


class StackFailed(AWSError):
    """A stack operation ended in a failed or rolled-back state.

    The message lists the failing resources with CloudFormation's reasons; the
    ``status`` field holds the final stack status.
    """


def env_name(output_key: str) -> str:
    """``DatabaseUrl`` -> ``DATABASE_URL``: how an output becomes an env variable.

    >>> env_name("JobsQueueURL"), env_name("assets_bucket")
    ('JOBS_QUEUE_URL', 'ASSETS_BUCKET')
    """
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", output_key)
    text = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", text)
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").upper()


class DeployStack(AWSAction):
    """Deploy a CloudFormation template as ``stack_name``: create it, or update it.

    Give exactly one of ``template`` (the body, as text or a dict), ``template_file``
    (a path, e.g. a CDK ``cdk.out/*.template.json``) or ``template_url`` (S3). An
    unchanged template and parameters is a no-op. The result holds the stack's
    ``outputs`` and an ``env`` dict for the next step: each output under its
    UPPER_SNAKE name plus ``AWS_ACCOUNT_ID`` and ``AWS_REGION``. A failed deployment
    raises :class:`StackFailed` naming the failing resources and their reasons.

    >>> DeployStack(stack_name="acme", template_file="b.yaml", parameters={"Client": "acme"})
    DeployStack(stack_name='acme', template_file='b.yaml', parameters={'Client': 'acme'})
    """

    retry = Retry(attempts=3, delay=5.0, backoff=2.0)
    poll_interval = 10.0
    timeout = 7200.0

    def __init__(self, *, stack_name: str, template: str | dict[str, Any] | None = None,
                 template_file: str | None = None, template_url: str | None = None,
                 parameters: dict[str, Any] | None = None,
                 capabilities: list[str] | None = None, tags: dict[str, str] | None = None,
                 profile: str | None = None, region: str | None = None) -> None:
        if not isinstance(stack_name, str) or not _NAME.match(stack_name):
            raise InvalidArgument(
                f"DeployStack: stack_name {stack_name!r} must start with a letter and hold "
                "only letters, digits and '-' (at most 128)", argument="stack_name")
        given = [k for k, v in (("template", template), ("template_file", template_file),
                                ("template_url", template_url)) if v is not None]
        if len(given) != 1:
            raise InvalidArgument("DeployStack needs exactly one of template=, "
                                  f"template_file= or template_url= (got {given or 'none'})",
                                  argument="template")
        if template is not None and not isinstance(template, (str, dict)):
            raise InvalidArgument("DeployStack: template must be the template text or a "
                                  f"dict, got {type(template).__name__}", argument="template")
        for key, value in (parameters or {}).items():
            if not isinstance(value, (str, int, float, bool, Secret)):
                raise InvalidArgument(f"DeployStack: parameter {key!r} must be a string, "
                                      f"number or Secret, got {type(value).__name__}",
                                      argument="parameters")
        unknown = sorted(set(capabilities or ()) - set(CAPABILITIES))
        if unknown:
            raise InvalidArgument(f"DeployStack: unknown capabilities {unknown}; use "
                                  f"{list(CAPABILITIES)}", argument="capabilities")
        args: dict[str, Any] = {"stack_name": stack_name}
        args.update({k: v for k, v in (("template", template),
                                       ("template_file", template_file),
                                       ("template_url", template_url),
                                       ("parameters", parameters or None),
                                       ("capabilities", capabilities or None),
                                       ("tags", tags or None)) if v is not None})
        super().__init__(**args, profile=profile, region=region)

    # -- main ------------------------------------------------------------------------
    def main(self) -> Any:
        cf = self.aws.client("cloudformation")
        name = self.args["stack_name"]
        stack = self._describe(cf, name)
        if stack is None:
            return self._create(cf)
        status = stack["StackStatus"]
        self.bag["stack_id"] = stack["StackId"]
        if status == "ROLLBACK_COMPLETE":
            # A stack whose creation failed cannot be updated: delete it, then create.
            self.log.info("stack %s is %s from a failed creation: deleting it first",
                          name, status)
            with aws_errors("DeleteStack"):
                cf.delete_stack(StackName=stack["StackId"])
            self.bag["phase"] = "deleting"
            return IN_PROGRESS
        if status.endswith("_IN_PROGRESS"):
            self.log.info("stack %s is %s: waiting for that operation", name, status)
            self.bag["phase"] = "adopted"
            return IN_PROGRESS
        return self._update(cf, stack)

    def _create(self, cf: Any) -> Any:
        request = self._request()
        request["Capabilities"] = self.args.get("capabilities", [])
        with aws_errors("CreateStack"):
            stack_id = cf.create_stack(**request)["StackId"]
        self.bag.update(stack_id=stack_id, phase="create", last_event=None)
        self.log.info("creating stack %s", self.args["stack_name"])
        return self._settle(cf, self._describe(cf, stack_id))

    def _update(self, cf: Any, stack: dict[str, Any]) -> Any:
        if self._unchanged(cf, stack):
            self.log.info("stack %s is up to date", self.args["stack_name"])
            return self._result(stack, "none")
        self.bag.update(phase="update", last_event=self._last_event(cf, stack["StackId"]))
        request = self._request()
        request["Capabilities"] = self.args.get("capabilities", [])
        try:
            with aws_errors("UpdateStack"):
                cf.update_stack(**request)
        except AWSError as err:
            if "No updates are to be performed" in err.message:
                self.log.info("stack %s: CloudFormation reports no updates to perform",
                              self.args["stack_name"])
                return self._result(stack, "none")
            raise
        self.log.info("updating stack %s", self.args["stack_name"])
        return self._settle(cf, self._describe(cf, stack["StackId"]))

    # -- watch -----------------------------------------------------------------------
    def watch(self) -> Any:
        cf = self.aws.client("cloudformation")
        stack = self._describe(cf, self.bag["stack_id"])
        if self.bag.get("phase") == "deleting":
            status = stack["StackStatus"] if stack else "DELETE_COMPLETE"
            if status == "DELETE_COMPLETE":
                return self._create(cf)
            if status.endswith("_IN_PROGRESS"):
                return IN_PROGRESS
            raise self._failure(cf, stack or {}, f"deleting the failed stack ended {status}")
        return self._settle(cf, stack)

    def _settle(self, cf: Any, stack: dict[str, Any] | None) -> Any:
        if stack is None:
            raise StackFailed(f"stack {self.args['stack_name']!r} disappeared while it was "
                              "being deployed", code="StackGone", operation="DeployStack",
                              status=0, stack_status="DELETE_COMPLETE")
        status = stack["StackStatus"]
        if status in SUCCEEDED:
            operation = "create" if self.bag.get("phase") == "create" else "update"
            return self._result(stack, operation)
        if status.endswith("_IN_PROGRESS"):
            return IN_PROGRESS  # also while rolling back: the final state has the events
        raise self._failure(cf, stack, f"ended {status}")

    # -- helpers -----------------------------------------------------------------------
    def _request(self) -> dict[str, Any]:
        request: dict[str, Any] = {"StackName": self.args["stack_name"]}
        if "template_url" in self.args:
            request["TemplateURL"] = self.args["template_url"]
        else:
            request["TemplateBody"] = self._body()
        request["Parameters"] = [
            {"ParameterKey": key, "ParameterValue": _text(value)}
            for key, value in self.args.get("parameters", {}).items()]
        request["Tags"] = [{"Key": k, "Value": v}
                           for k, v in self.args.get("tags", {}).items()]
        return request

    def _body(self) -> str:
        template = self.args.get("template")
        if isinstance(template, dict):
            body = json.dumps(template, indent=1, sort_keys=True)
        elif isinstance(template, str):
            body = template
        else:
            path = Path(self.args["template_file"]).expanduser()
            try:
                body = path.read_text(encoding="utf-8")
            except OSError as err:
                raise InvalidArgument(f"DeployStack: cannot read template_file {str(path)!r}: "
                                      f"{err.strerror}", argument="template_file") from None
        if len(body.encode()) > BODY_LIMIT:
            raise InvalidArgument(
                f"DeployStack: the template is {len(body.encode())} bytes, over "
                f"CloudFormation's {BODY_LIMIT}-byte limit for inline templates; upload it "
                "to S3 and pass template_url=", argument="template")
        return body

    def _describe(self, cf: Any, name: str) -> dict[str, Any] | None:
        try:
            with aws_errors("DescribeStacks"):
                stacks = cf.describe_stacks(StackName=name)["Stacks"]
        except AWSError as err:
            if err.fields.get("code") == "ValidationError" and "does not exist" in err.message:
                return None
            raise
        return dict(stacks[0]) if stacks else None

    def _unchanged(self, cf: Any, stack: dict[str, Any]) -> bool:
        if "template_url" in self.args or stack["StackStatus"] not in SUCCEEDED:
            return False
        current = {p["ParameterKey"]: p.get("ParameterValue")
                   for p in stack.get("Parameters", [])}
        wanted = {k: _text(v) for k, v in self.args.get("parameters", {}).items()}
        if any(current.get(k) != v for k, v in wanted.items()):
            return False
        tags = {t["Key"]: t["Value"] for t in stack.get("Tags", [])}
        if any(tags.get(k) != v for k, v in self.args.get("tags", {}).items()):
            return False
        with aws_errors("GetTemplate"):
            deployed = cf.get_template(StackName=stack["StackId"],
                                       TemplateStage="Original")["TemplateBody"]
        body = self._body()
        if isinstance(deployed, str):
            return deployed.strip() == body.strip()
        try:
            return bool(json.loads(body) == json.loads(json.dumps(deployed)))
        except ValueError:
            return False

    def _last_event(self, cf: Any, stack_id: str) -> str | None:
        with aws_errors("DescribeStackEvents"):
            events = cf.describe_stack_events(StackName=stack_id)["StackEvents"]
        return str(events[0]["EventId"]) if events else None

    def _failure(self, cf: Any, stack: dict[str, Any], what: str) -> StackFailed:
        events = self._failed_events(cf, stack.get("StackId", self.bag.get("stack_id")))
        lines = "".join(f"\n  - {e}" for e in events) or "\n  (no failure events recorded)"
        reason = stack.get("StackStatusReason")
        status = stack.get("StackStatus", "UNKNOWN")
        return StackFailed(
            f"stack {self.args['stack_name']!r} {what}"
            + (f" ({reason})" if reason else "") + f"; failing resources:{lines}",
            code="StackFailed", operation="DeployStack", status=0, stack_status=status,
            failures=len(events))

    def _failed_events(self, cf: Any, stack_id: str | None) -> list[str]:
        if not stack_id:
            return []
        found: list[str] = []
        with aws_errors("DescribeStackEvents"):
            for page in cf.get_paginator("describe_stack_events").paginate(
                    StackName=stack_id):
                for event in page["StackEvents"]:
                    if event["EventId"] == self.bag.get("last_event"):
                        return found
                    status = str(event.get("ResourceStatus", ""))
                    is_stack = event.get("ResourceType") == "AWS::CloudFormation::Stack"
                    if status.endswith("_FAILED") and not is_stack:
                        found.append(f"{event.get('LogicalResourceId')} "
                                     f"({event.get('ResourceType')}) {status}: "
                                     f"{event.get('ResourceStatusReason', 'no reason given')}")
        return found[:20]

    def _result(self, stack: dict[str, Any], operation: str) -> dict[str, Any]:
        outputs = {o["OutputKey"]: o.get("OutputValue", "") for o in stack.get("Outputs", [])}
        arn = str(stack["StackId"]).split(":")
        env = {"AWS_REGION": arn[3], "AWS_ACCOUNT_ID": arn[4]} if len(arn) > 4 else {}
        env.update({env_name(key): str(value) for key, value in outputs.items()})
        return {"stack_name": stack["StackName"], "stack_id": stack["StackId"],
                "status": stack["StackStatus"], "operation": operation,
                "outputs": outputs, "env": env}


def _text(value: Any) -> str:
    if isinstance(value, Secret):
        return value.reveal()
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
