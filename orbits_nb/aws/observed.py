"""What a stack's resources should look like, and what they look like in the account.

CloudFormation's own drift detection (DetectStackDrift, :mod:`.stackdrift`) is used
where the endpoint has it; it is not available on every endpoint (moto has none), so
there the resource types the shipped templates use are observed directly: SSM
parameters (value, type), S3 buckets (tags) and SQS queues (the attributes the
template sets). A value changed by hand behind CloudFormation's back then shows as a
field-level diff, e.g. ``resources.DatabaseUrlParameter.value``.

Expectations come from the template with its intrinsic functions resolved (``Ref``,
``Fn::Sub``, ``Fn::Join``); a field whose value cannot be known before deployment
(a ``Fn::GetAtt``, a queue URL) is left out of the comparison.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from typing import Any

from orbits_nb.aws.session import AWSError, aws_errors

#: The properties of an SQS queue that are compared when the template sets them.
QUEUE_ATTRIBUTES = ("VisibilityTimeout", "DelaySeconds", "MessageRetentionPeriod",
                    "MaximumMessageSize", "ReceiveMessageWaitTimeSeconds")
#: The property that names a resource, so a ``Ref`` to it is known before deployment.
NAME_PROPERTY = {"AWS::S3::Bucket": "BucketName", "AWS::SSM::Parameter": "Name"}


class Unknown(Exception):
    """A value that only the deployment can tell (left out of the comparison)."""


def _loader() -> Any:
    import yaml

    class Loader(yaml.SafeLoader):  # type: ignore[misc]
        pass

    def tagged(loader: Any, suffix: str, node: Any) -> Any:
        name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
            if suffix == "GetAtt":
                value = str(value).split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {name: value}

    Loader.add_multi_constructor("!", tagged)
    return Loader


def parse(body: Any) -> dict[str, Any]:
    """A template (JSON or YAML with CloudFormation's short tags) as a dict."""
    if isinstance(body, dict):
        return body
    text = str(body)
    try:
        parsed = json.loads(text)
    except ValueError:
        import yaml

        parsed = yaml.load(text, Loader=_loader())
    return parsed if isinstance(parsed, dict) else {}


def digest(body: Any) -> str:
    """A short digest of the template's content, the same for YAML or JSON spellings."""
    canonical = json.dumps(parse(body), sort_keys=True, default=str)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()[:16]


def resolve(value: Any, names: dict[str, str]) -> Any:
    """``value`` with ``Ref``/``Fn::Sub``/``Fn::Join`` resolved from ``names``."""
    if isinstance(value, list):
        return [resolve(v, names) for v in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"Ref"}:
        if value["Ref"] not in names:
            raise Unknown(value["Ref"])
        return names[value["Ref"]]
    if set(value) == {"Fn::Sub"}:
        text, extra = value["Fn::Sub"], {}
        if isinstance(text, list):
            text, extra = text[0], {k: resolve(v, names) for k, v in text[1].items()}
        scope = {**names, **extra}

        def sub(match: re.Match[str]) -> str:
            if match.group(1) not in scope:
                raise Unknown(match.group(1))
            return str(scope[match.group(1)])

        return re.sub(r"\$\{([^}!]+)\}", sub, str(text))
    if set(value) == {"Fn::Join"}:
        separator, items = value["Fn::Join"]
        return str(separator).join(str(resolve(i, names)) for i in items)
    if any(k == "Ref" or k.startswith("Fn::") for k in value):
        raise Unknown(next(iter(value)))
    return {k: resolve(v, names) for k, v in value.items()}


def _known(value: Any, names: dict[str, str]) -> tuple[bool, Any]:
    try:
        return True, resolve(value, names)
    except Unknown:
        return False, None


def _tags(value: Any) -> dict[str, str]:
    return {str(t["Key"]): str(t["Value"]) for t in value or []}


def expected(template: Any, parameters: dict[str, str], *, account: str, region: str,
             stack_name: str) -> dict[str, Any]:
    """``{logical id: {field: value}}`` for the observed types of ``template``."""
    doc = parse(template)
    names = {"AWS::AccountId": account, "AWS::Region": region, "AWS::StackName": stack_name,
             "AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com"}
    for name, spec in (doc.get("Parameters") or {}).items():
        if name in parameters:
            names[name] = parameters[name]
        elif isinstance(spec, dict) and "Default" in spec:
            names[name] = str(spec["Default"])
    resources = doc.get("Resources") or {}
    for logical, spec in resources.items():  # a Ref to a named resource is its name
        prop = NAME_PROPERTY.get(spec.get("Type", ""))
        props = spec.get("Properties") or {}
        if prop and prop in props:
            ok, value = _known(props[prop], names)
            if ok:
                names[logical] = str(value)
    out: dict[str, Any] = {}
    for logical, spec in resources.items():
        fields = _fields(spec.get("Type", ""), spec.get("Properties") or {}, names)
        if fields is not None:
            out[logical] = fields
    return out


def _fields(kind: str, props: dict[str, Any], names: dict[str, str]) -> dict[str, Any] | None:
    wanted: dict[str, Any] = {}
    if kind == "AWS::SSM::Parameter":
        wanted = {"value": props.get("Value"), "type": props.get("Type", "String")}
    elif kind == "AWS::S3::Bucket":
        wanted = {"tags": props.get("Tags", [])}
    elif kind == "AWS::SQS::Queue":
        wanted = {a: props[a] for a in QUEUE_ATTRIBUTES if a in props}
    else:
        return None
    out: dict[str, Any] = {}
    for field, value in wanted.items():
        ok, known = _known(value, names)
        if ok:
            out[field] = _tags(known) if field == "tags" else str(known)
    return out


def found(kind: str, properties: dict[str, Any] | None, fields: list[str]
          ) -> dict[str, Any] | None:
    """The compared ``fields`` of a resource from its deployed ``properties`` (as
    DetectStackDrift reports them), shaped as :func:`expected` shapes them."""
    if properties is None:
        return None
    state = _fields(kind, properties, {}) or {}
    if "tags" in state:  # the tags CloudFormation sets itself are not the template's
        state["tags"] = {k: v for k, v in state["tags"].items() if not k.startswith("aws:")}
    if kind == "AWS::S3::Bucket":
        state.setdefault("tags", {})
    return {f: state[f] for f in fields if f in state}


# -- observation --------------------------------------------------------------------------
def observe_resource(aws: Any, kind: str, physical: str, fields: list[str]
                     ) -> dict[str, Any] | None:
    """The ``fields`` of one deployed resource, or None when it no longer exists."""
    reader = _READERS.get(kind)
    return None if reader is None else reader(aws, physical, fields)


def _ssm(aws: Any, name: str, fields: list[str]) -> dict[str, Any] | None:
    try:
        with aws_errors("GetParameter"):
            parameter = aws.client("ssm").get_parameter(Name=name)["Parameter"]
    except AWSError as err:
        if err.fields.get("code") == "ParameterNotFound":
            return None
        raise
    state = {"value": str(parameter.get("Value")), "type": str(parameter.get("Type"))}
    return {f: state[f] for f in fields if f in state}


def _bucket(aws: Any, name: str, fields: list[str]) -> dict[str, Any] | None:
    s3 = aws.client("s3")
    try:
        with aws_errors("GetBucketTagging"):
            tags = s3.get_bucket_tagging(Bucket=name)["TagSet"]
    except AWSError as err:
        if err.fields.get("code") == "NoSuchBucket":
            return None
        if err.fields.get("code") != "NoSuchTagSet":
            raise
        tags = []
    # Tags CloudFormation sets itself (aws:cloudformation:*) are not the template's.
    return {"tags": {k: v for k, v in _tags(tags).items() if not k.startswith("aws:")}}


def _queue(aws: Any, url: str, fields: list[str]) -> dict[str, Any] | None:
    try:
        with aws_errors("GetQueueAttributes"):
            attributes = aws.client("sqs").get_queue_attributes(
                QueueUrl=url, AttributeNames=["All"])["Attributes"]
    except AWSError as err:
        if "NonExistentQueue" in str(err.fields.get("code")):
            return None
        raise
    return {f: str(attributes.get(f)) for f in fields}


_READERS: dict[str, Callable[[Any, str, list[str]], dict[str, Any] | None]] = {
    "AWS::SSM::Parameter": _ssm, "AWS::S3::Bucket": _bucket, "AWS::SQS::Queue": _queue}


# -- repair ----------------------------------------------------------------------------------
def repair(aws: Any, kind: str, physical: str, wanted: dict[str, Any]) -> None:
    """Put one resource's compared fields back to ``wanted`` (drift behind CloudFormation's
    back, which a stack update would not see)."""
    if kind == "AWS::SSM::Parameter":
        with aws_errors("PutParameter"):
            aws.client("ssm").put_parameter(Name=physical, Value=wanted["value"],
                                            Type=wanted.get("type", "String"), Overwrite=True)
    elif kind == "AWS::S3::Bucket":
        s3 = aws.client("s3")
        with aws_errors("PutBucketTagging"):
            if wanted.get("tags"):
                s3.put_bucket_tagging(Bucket=physical, Tagging={"TagSet": [
                    {"Key": k, "Value": v} for k, v in wanted["tags"].items()]})
            else:
                s3.delete_bucket_tagging(Bucket=physical)
    elif kind == "AWS::SQS::Queue":
        with aws_errors("SetQueueAttributes"):
            aws.client("sqs").set_queue_attributes(QueueUrl=physical, Attributes=wanted)
