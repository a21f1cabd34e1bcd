"""ob.aws.Stack and CloudFormation's DetectStackDrift: a real botocore client whose
answers are stubbed (Stubber), and the fallback on the moto server, which lacks it."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

import orbits_nb as ob
from orbits_nb.aws import stack as stack_module
from orbits_nb.aws import stackdrift
from orbits_nb.aws.emulator import Emulator
from orbits_nb.aws.session import AWS
from orbits_nb.core.drift import normalize, verdict

pytest_plugins = ["aws_server"]

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
STACK_ID = "arn:aws:cloudformation:us-east-1:123456789012:stack/acme/1"
TEMPLATE = {"Resources": {
    "Url": {"Type": "AWS::SSM::Parameter",
            "Properties": {"Name": "/acme/url", "Type": "String", "Value": "https://acme"}},
    "Jobs": {"Type": "AWS::SQS::Queue", "Properties": {"VisibilityTimeout": 90}},
    "Assets": {"Type": "AWS::S3::Bucket", "Properties": {
        "BucketName": "acme-assets", "Tags": [{"Key": "client", "Value": "acme"}]}}}}
PHYSICAL = {"Url": ("AWS::SSM::Parameter", "/acme/url"),
            "Jobs": ("AWS::SQS::Queue", "https://sqs.us-east-1.amazonaws.com/1/jobs"),
            "Assets": ("AWS::S3::Bucket", "acme-assets")}


class Stubbed(AWS):
    """An AWS context whose clients are real botocore clients with stubbed answers."""

    def __init__(self) -> None:
        super().__init__(region="us-east-1")
        self.clients = {name: boto3.client(name, region_name="us-east-1",
                                           aws_access_key_id="k", aws_secret_access_key="s")
                        for name in ("cloudformation", "s3", "ssm", "sqs")}
        self.stubs = {name: Stubber(c) for name, c in self.clients.items()}

    def client(self, service: str, **kwargs: Any) -> Any:
        return self.clients[service]


@pytest.fixture
def stubbed(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stubbed]:
    aws = Stubbed()
    monkeypatch.setattr(stack_module, "context", lambda *args: aws)
    for stub in aws.stubs.values():
        stub.activate()
    yield aws
    for stub in aws.stubs.values():
        stub.assert_no_pending_responses()
        stub.deactivate()
    stackdrift.forget()


def _stack() -> ob.aws.Stack:
    stack = ob.aws.Stack(stack_name="acme", template=TEMPLATE)
    stack._cache["where"] = ("123456789012", "us-east-1")
    return stack


def _describe(cf: Stubber) -> None:
    cf.add_response("describe_stacks", {"Stacks": [{
        "StackName": "acme", "StackId": STACK_ID, "StackStatus": "UPDATE_COMPLETE",
        "CreationTime": NOW, "Parameters": [], "Tags": []}]}, {"StackName": "acme"})
    cf.add_response("get_template", {"TemplateBody": json.dumps(TEMPLATE)},
                    {"StackName": STACK_ID, "TemplateStage": "Original"})


def _resources(cf: Stubber) -> None:
    cf.add_response("list_stack_resources", {"StackResourceSummaries": [
        {"LogicalResourceId": logical, "PhysicalResourceId": physical, "ResourceType": kind,
         "LastUpdatedTimestamp": NOW, "ResourceStatus": "CREATE_COMPLETE"}
        for logical, (kind, physical) in PHYSICAL.items()]}, {"StackName": STACK_ID})


def _drift(logical: str, status: str, actual: dict[str, Any] | None = None) -> dict[str, Any]:
    kind, physical = PHYSICAL[logical]
    out: dict[str, Any] = {"StackId": STACK_ID, "LogicalResourceId": logical,
                           "PhysicalResourceId": physical, "ResourceType": kind,
                           "StackResourceDriftStatus": status, "Timestamp": NOW}
    if actual is not None:
        out["ActualProperties"] = json.dumps(actual)
    return out


def test_detect_stack_drift_reports_a_value_changed_by_hand_field_by_field(
        stubbed: Stubbed) -> None:
    cf, s3 = stubbed.stubs["cloudformation"], stubbed.stubs["s3"]
    _describe(cf)
    cf.add_response("detect_stack_drift", {"StackDriftDetectionId": "d-1"},
                    {"StackName": STACK_ID})
    cf.add_response("describe_stack_drift_detection_status", {
        "StackId": STACK_ID, "StackDriftDetectionId": "d-1", "StackDriftStatus": "DRIFTED",
        "DetectionStatus": "DETECTION_IN_PROGRESS", "Timestamp": NOW},
        {"StackDriftDetectionId": "d-1"})
    cf.add_response("describe_stack_drift_detection_status", {
        "StackId": STACK_ID, "StackDriftDetectionId": "d-1", "StackDriftStatus": "DRIFTED",
        "DetectionStatus": "DETECTION_COMPLETE", "Timestamp": NOW},
        {"StackDriftDetectionId": "d-1"})
    cf.add_response("describe_stack_resource_drifts", {"StackResourceDrifts": [
        _drift("Url", "MODIFIED", {"Name": "/acme/url", "Type": "String",
                                   "Value": "by-hand"}),
        _drift("Jobs", "IN_SYNC", {"VisibilityTimeout": 90}),
        _drift("Assets", "NOT_CHECKED")]}, {"StackName": STACK_ID})
    _resources(cf)
    # CloudFormation did not check the bucket: it is observed directly.
    s3.add_response("get_bucket_tagging", {"TagSet": [
        {"Key": "client", "Value": "acme"},
        {"Key": "aws:cloudformation:stack-name", "Value": "acme"}]}, {"Bucket": "acme-assets"})
    stack = _stack()
    stack.poll_interval_s = 0.0
    actual = normalize(stack.observe())
    assert actual["resources"] == {"Url": {"value": "by-hand", "type": "String"},
                                   "Jobs": {"VisibilityTimeout": "90"},
                                   "Assets": {"tags": {"client": "acme"}}}
    status, diffs = verdict(stack.desired(), actual, stack.comparison())
    assert (status, [(d.path, d.desired, d.actual) for d in diffs]) == (
        "drifted", [("resources.Url.value", "https://acme", "by-hand")])


def test_a_deleted_resource_is_missing_from_the_observed_stack(stubbed: Stubbed) -> None:
    cf = stubbed.stubs["cloudformation"]
    _describe(cf)
    cf.add_response("detect_stack_drift", {"StackDriftDetectionId": "d-2"})
    cf.add_response("describe_stack_drift_detection_status", {
        "StackId": STACK_ID, "StackDriftDetectionId": "d-2", "StackDriftStatus": "DRIFTED",
        "DetectionStatus": "DETECTION_COMPLETE", "Timestamp": NOW})
    cf.add_response("describe_stack_resource_drifts", {"StackResourceDrifts": [
        _drift("Url", "DELETED"), _drift("Jobs", "IN_SYNC", {"VisibilityTimeout": 90}),
        _drift("Assets", "IN_SYNC", {"BucketName": "acme-assets", "Tags": [
            {"Key": "client", "Value": "acme"}]})]})
    _resources(cf)
    stack = _stack()
    _, diffs = verdict(stack.desired(), normalize(stack.observe()), stack.comparison())
    assert [(d.path, d.change) for d in diffs] == [("resources.Url", "changed")]
    assert diffs[0].actual is None


def test_an_endpoint_without_detect_stack_drift_is_remembered_once(
        stubbed: Stubbed) -> None:
    cf = stubbed.stubs["cloudformation"]
    endpoint = stubbed.clients["cloudformation"].meta.endpoint_url
    for attempt in range(2):
        _describe(cf)
        if attempt == 0:  # asked once; the second observation goes straight to the types
            cf.add_client_error("detect_stack_drift", "NotImplemented",
                                "DetectStackDrift is not implemented", 501)
        _resources(cf)
        stubbed.stubs["ssm"].add_response("get_parameter", {"Parameter": {
            "Name": "/acme/url", "Type": "String", "Value": "https://acme"}})
        stubbed.stubs["sqs"].add_response("get_queue_attributes", {"Attributes": {
            "VisibilityTimeout": "90"}})
        stubbed.stubs["s3"].add_response("get_bucket_tagging", {"TagSet": [
            {"Key": "client", "Value": "acme"}]})
        stack = _stack()
        status, _ = verdict(stack.desired(), normalize(stack.observe()), stack.comparison())
        assert status == "in_sync"
        assert not stackdrift.supported(endpoint)


def test_moto_answers_not_implemented_and_the_stack_is_observed_directly(
        aws: Emulator, engine: ob.Engine) -> None:
    stackdrift.forget()
    template = {"Resources": {"Url": {"Type": "AWS::SSM::Parameter", "Properties": {
        "Name": "/moto/url", "Type": "String", "Value": "https://acme"}}}}

    class Deploy(ob.Workflow):
        async def define(self) -> Any:
            return await self.do("stack", ob.aws.Stack(
                stack_name="moto-drift", template=template, region="us-east-1"))

    Deploy().run(engine=engine)
    endpoint = ob.aws.client("cloudformation", region="us-east-1").meta.endpoint_url
    assert not stackdrift.supported(endpoint)  # the converge's observation asked once
    ob.aws.client("ssm", region="us-east-1").put_parameter(
        Name="/moto/url", Value="by-hand", Type="String", Overwrite=True)
    [drifted] = ob.drift(engine=engine).drifted
    assert [(d.path, d.actual) for d in drifted.diffs] == [("resources.Url.value", "by-hand")]
