"""CreateAWSAccount, DeployStack and the session factory against a real moto server."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_helpers import TAKEN_EMAIL, accounts_named

import orbits_nb as ob
from orbits_nb.aws import AWS, AWSError, CreateAWSAccount, DeployStack
from orbits_nb.aws.emulator import Emulator
from orbits_nb.aws.session import client, make_session
from orbits_nb.aws.stacks import env_name
from orbits_nb.engine.table import records

pytest_plugins = ["aws_server"]

ASSETS = Path(__file__).resolve().parent.parent / "notebooks" / "assets"
ACTIONS = {"account": CreateAWSAccount, "stack": DeployStack}


class Step(ob.Workflow):
    """One action as one step: ``kind`` picks the class, ``kwargs`` its arguments."""

    async def define(self) -> Any:
        action = ACTIONS[self.args["kind"]](**self.args["kwargs"])
        return await self.do(self.args["kind"], action)


def run_step(engine: ob.Engine, kind: str, **kwargs: Any) -> ob.Run:
    run = engine.start(Step(kind=kind, kwargs=kwargs), fresh=True)
    with contextlib.suppress(ob.OrbitsError):
        run.wait(120)
    return run


def step_error(run: ob.Run) -> str:
    row = records(run.steps())[0]
    return str(row["error"]) + " " + json.dumps(run.state().ordered_steps()[0].error)


# -- session factory -----------------------------------------------------------------
def test_clients_follow_aws_endpoint_url(aws: Emulator) -> None:
    s3 = client("s3", region="eu-west-1")
    assert s3.meta.endpoint_url == aws.endpoint
    s3.create_bucket(Bucket="via-factory",
                     CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    direct = boto3.client("s3", endpoint_url=aws.endpoint, region_name="eu-west-1")
    assert "via-factory" in [b["Name"] for b in direct.list_buckets()["Buckets"]]
    assert AWS().whoami() == "123456789012"  # moto's management account


def test_profiles_from_the_aws_config_file(aws: Emulator, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "config"
    config.write_text(f"[profile emu]\nregion = ap-south-1\nendpoint_url = {aws.endpoint}\n"
                      "aws_access_key_id = testing\naws_secret_access_key = testing\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    for key in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                "AWS_DEFAULT_REGION", "AWS_REGION"):
        monkeypatch.delenv(key, raising=False)
    context = AWS(profile="emu")
    assert context.session().region_name == "ap-south-1"
    assert context.client("sqs").meta.endpoint_url == aws.endpoint
    assert context.whoami() == "123456789012"
    with pytest.raises(ob.InvalidArgument, match="'nope' is not in your AWS config"):
        make_session(profile="nope")


def test_a_missing_region_is_a_clear_error(aws: Emulator,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.delenv("AWS_REGION")
    with pytest.raises(AWSError, match="no AWS region configured for sqs"):
        AWS().client("sqs")
    assert AWS().client("organizations").meta.region_name == "us-east-1"


# -- CreateAWSAccount ----------------------------------------------------------------
def test_create_account_then_adopt_it(aws: Emulator, engine: ob.Engine) -> None:
    run = run_step(engine, "account", name="acme", email="aws+acme@example.com")
    result = run.wait()
    assert result["created"] is True and len(result["account_id"]) == 12
    assert result["role_arn"] == (f"arn:aws:iam::{result['account_id']}:role/"
                                  "OrganizationAccountAccessRole")
    assert [a["Id"] for a in accounts_named(aws, "acme")] == [result["account_id"]]
    # Another run asking for the same account (same e-mail) adopts it.
    again = run_step(engine, "account", name="acme", email="AWS+acme@example.com").wait()
    assert again["account_id"] == result["account_id"] and again["created"] is False
    assert len(accounts_named(aws, "acme")) == 1


def test_failed_account_creation_reports_the_reason(aws: Emulator,
                                                    engine: ob.Engine) -> None:
    run = run_step(engine, "account", name="victim", email=TAKEN_EMAIL)
    assert run.status == "failed"
    error = step_error(run)
    assert "AccountCreationFailed" in error and "EMAIL_ALREADY_EXISTS" in error
    assert "used by another AWS account" in error
    assert records(run.steps())[0]["attempts"] == 1  # a refusal is not retried
    assert accounts_named(aws, "victim") == []


def test_same_email_under_another_name_is_refused(aws: Emulator, engine: ob.Engine) -> None:
    run_step(engine, "account", name="acme", email="ops@example.com").wait()
    run = run_step(engine, "account", name="globex", email="ops@example.com")
    assert run.status == "failed"
    assert "already belongs to account" in step_error(run)
    assert "named 'acme'" in step_error(run)


def test_without_an_organization_the_hint_says_what_to_do(aws: Emulator,
                                                          engine: ob.Engine) -> None:
    aws.reset()  # no organization any more
    run = run_step(engine, "account", name="acme", email="aws+acme@example.com")
    error = step_error(run)
    assert "AWSOrganizationsNotInUseException" in error
    assert "create-organization" in error


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"name": "", "email": "a@b.co"}, "name must be 1 to 50"),
    ({"name": "acme", "email": "not-an-email"}, "is not a valid e-mail"),
    ({"name": "acme", "email": "a@b.co", "role_name": "bad role"}, "not a valid IAM role"),
    ({"name": "acme", "email": "a@b.co", "region": "mars-1"}, "not an AWS region"),
    ({"name": "acme", "email": "a@b.co", "tags": {"k": 1}}, "tags must be a dict"),
])
def test_account_arguments_are_checked_at_once(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ob.InvalidArgument, match=message):
        CreateAWSAccount(**kwargs)


# -- DeployStack ---------------------------------------------------------------------
def backend(name: str = "acme-backend", **extra: Any) -> dict[str, Any]:
    params = {"Client": "acme", "DatabaseUrl": "duckdb:///tmp/acme.duckdb"}
    params.update(extra.pop("parameters", {}))
    return {"stack_name": name, "template_file": str(ASSETS / "backend.yaml"),
            "parameters": params, **extra}


def test_deploy_stack_returns_outputs_as_env(aws: Emulator, engine: ob.Engine) -> None:
    result = run_step(engine, "stack", **backend()).wait()
    assert result["operation"] == "create" and result["status"] == "CREATE_COMPLETE"
    assert result["outputs"]["AssetsBucket"] == "acme-assets-123456789012"
    env = result["env"]
    assert env["AWS_ACCOUNT_ID"] == "123456789012" and env["AWS_REGION"] == "us-east-1"
    assert env["DATABASE_URL"] == "duckdb:///tmp/acme.duckdb"
    assert env["JOBS_QUEUE_URL"].endswith("/acme-jobs")
    ssm = boto3.client("ssm")
    value = ssm.get_parameter(Name="/acme/backend/database-url")["Parameter"]["Value"]
    assert value == "duckdb:///tmp/acme.duckdb"


def test_unchanged_stack_is_a_no_op_and_changes_update_it(aws: Emulator,
                                                          engine: ob.Engine) -> None:
    run_step(engine, "stack", **backend()).wait()
    cf = boto3.client("cloudformation")
    events = len(cf.describe_stack_events(StackName="acme-backend")["StackEvents"])
    same = run_step(engine, "stack", **backend()).wait()
    assert same["operation"] == "none"
    assert len(cf.describe_stack_events(StackName="acme-backend")["StackEvents"]) == events
    changed = run_step(engine, "stack", **backend(
        parameters={"DatabaseUrl": "postgresql://db.internal/acme"})).wait()
    assert changed["operation"] == "update" and changed["status"] == "UPDATE_COMPLETE"
    assert changed["env"]["DATABASE_URL"] == "postgresql://db.internal/acme"


def test_a_failing_resource_fails_the_step_with_its_events(aws: Emulator,
                                                           engine: ob.Engine) -> None:
    boto3.client("s3").create_bucket(Bucket="acme-assets-123456789012")  # name taken
    run = run_step(engine, "stack", **backend())
    assert run.status == "failed"
    error = step_error(run)
    assert "StackFailed" in error and "ROLLBACK_COMPLETE" in error
    assert "AssetsBucket (AWS::S3::Bucket) CREATE_FAILED" in error
    assert "bucket name is not available" in error
    # The cause fixed, the same deployment deletes the rolled-back stack and recreates it.
    boto3.client("s3").delete_bucket(Bucket="acme-assets-123456789012")
    result = engine.start(Step(kind="stack", kwargs=backend()), run_id=run.run_id)
    assert result.wait(120)["status"] == "CREATE_COMPLETE"
    sqs = boto3.client("sqs").list_queues()["QueueUrls"]
    assert len([q for q in sqs if q.endswith("/acme-jobs")]) == 1


def test_inline_templates_and_argument_checks(aws: Emulator, engine: ob.Engine) -> None:
    template = {"Resources": {"Q": {"Type": "AWS::SQS::Queue",
                                    "Properties": {"QueueName": "inline-q"}}},
                "Outputs": {"QueueName": {"Value": {"Fn::GetAtt": ["Q", "QueueName"]}}}}
    result = run_step(engine, "stack", stack_name="inline", template=template).wait()
    assert result["env"]["QUEUE_NAME"] == "inline-q"
    with pytest.raises(ob.InvalidArgument, match="exactly one of template="):
        DeployStack(stack_name="x", template="{}", template_file="a.yaml")
    with pytest.raises(ob.InvalidArgument, match="must start with a letter"):
        DeployStack(stack_name="9lives", template="{}")
    with pytest.raises(ob.InvalidArgument, match="unknown capabilities"):
        DeployStack(stack_name="x", template="{}", capabilities=["CAPABILITY_ALL"])
    missing = run_step(engine, "stack", stack_name="x", template_file="/nonexistent.yaml")
    assert "cannot read template_file" in step_error(missing)


def test_env_names_of_outputs() -> None:
    assert env_name("DatabaseUrl") == "DATABASE_URL"
    assert env_name("JobsQueueURL") == "JOBS_QUEUE_URL"
    assert env_name("api-endpoint") == "API_ENDPOINT"


def test_no_updates_answer_from_cloudformation_is_a_no_op(aws: Emulator,
                                                          engine: ob.Engine) -> None:
    # With a template URL the action cannot compare bodies itself, so it asks for an
    # update and CloudFormation answers "No updates are to be performed".
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="templates")
    s3.put_object(Bucket="templates", Key="backend.yaml",
                  Body=(ASSETS / "backend.yaml").read_bytes())
    url = "https://templates.s3.amazonaws.com/backend.yaml"  # moto reads its own S3
    kwargs = backend(template_url=url)
    del kwargs["template_file"]
    first = run_step(engine, "stack", **kwargs).wait()
    again_run = run_step(engine, "stack", **kwargs)
    again = again_run.wait()
    assert "reports no updates to perform" in again_run.logs()
    assert first["operation"] == "create" and again["operation"] == "none"
    assert again["outputs"] == first["outputs"]


def test_losing_a_creation_race_adopts_the_winner(aws: Emulator) -> None:
    # Two creators of one account at once: AWS refuses the second with
    # EMAIL_ALREADY_EXISTS; the loser finds the winner's account in the organization.
    won = boto3.client("organizations").create_account(AccountName="acme",
                                                       Email="acme@example.com")
    loser = CreateAWSAccount(name="acme", email="acme@example.com")
    result = loser._settle({"Id": "car-lost", "State": "FAILED",
                            "FailureReason": "EMAIL_ALREADY_EXISTS"})
    assert result["account_id"] == won["CreateAccountStatus"]["AccountId"]
    assert result["created"] is False
    assert len(accounts_named(aws, "acme")) == 1
