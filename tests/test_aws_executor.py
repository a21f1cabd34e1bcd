"""AccountExecutor: actions run with an assumed role in the new account (real moto server)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_helpers import assert_nowhere

import orbits_nb as ob
from orbits_nb.aws import AccountExecutor, AWSAction, CreateAWSAccount, DeployStack
from orbits_nb.aws.emulator import Emulator

pytest_plugins = ["aws_server"]

ASSETS = Path(__file__).resolve().parent.parent / "notebooks" / "assets"
#: Executors built by the test, so it can look at the credentials they assumed.
EXECUTORS: dict[str, AccountExecutor] = {}


class MakeBucket(AWSAction):
    """Creates a bucket wherever it runs, and reports who and where it ran."""

    def main(self) -> Any:
        if self.args.get("leak"):
            creds = self.aws.credentials
            print(f"debug: secret key is {creds.secret_key if creds else None}")
        region = self.aws.session().region_name
        s3 = self.aws.client("s3")
        config = {} if region == "us-east-1" else {
            "CreateBucketConfiguration": {"LocationConstraint": region}}
        s3.create_bucket(Bucket=self.args["bucket"], **config)
        return {"account": self.aws.whoami(), "region": region, "env": dict(self.env),
                "pid": os.getpid()}


class InAccount(ob.Workflow):
    async def define(self) -> Any:
        account = await self.do("aws-create", CreateAWSAccount(
            name=self.args["name"], email=f"{self.args['name']}@example.com"))
        executor = AccountExecutor(account_id=account["account_id"], region="eu-west-1",
                                   inner=ob.SubprocessExecutor() if self.args.get("child")
                                   else None)
        EXECUTORS[self.args["name"]] = executor
        made = await self.do("make-bucket", MakeBucket(bucket=self.args["bucket"],
                                                      leak=self.args.get("leak", False)),
                             executor=executor)
        return {"account_id": account["account_id"], **made}


class FromStack(ob.Workflow):
    async def define(self) -> Any:
        account = await self.do("aws-create", CreateAWSAccount(name="acme",
                                                               email="acme@example.com"))
        stack = await self.do("iac-deploy", DeployStack(
            stack_name="acme-backend", template_file=str(ASSETS / "backend.yaml"),
            parameters={"Client": "acme", "DatabaseUrl": "duckdb:///srv/acme.duckdb"}),
            executor=AccountExecutor(account_id=account["account_id"], region="eu-west-1"))
        return await self.do("in-env", MakeBucket(bucket="acme-scratch"),
                             executor=AccountExecutor(stack["env"]))


def bucket_names(**credentials: Any) -> list[str]:
    s3 = boto3.client("s3", **credentials)
    return [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_actions_run_in_the_target_account(aws: Emulator, engine: ob.Engine,
                                           state_path: Path) -> None:
    result = engine.start(InAccount(name="acme", bucket="acme-data")).wait(120)
    assert result["account"] == result["account_id"] != "123456789012"
    assert result["region"] == "eu-west-1"
    assert result["env"] == {"AWS_ACCOUNT_ID": result["account_id"], "AWS_REGION": "eu-west-1"}
    creds = EXECUTORS["acme"].credentials()
    assert "acme-data" in bucket_names(aws_access_key_id=creds.access_key,
                                       aws_secret_access_key=creds.secret_key,
                                       aws_session_token=creds.token)
    assert "acme-data" not in bucket_names()  # not in the management account
    step = engine.store.fetch("SELECT executor FROM steps WHERE step = 'make-bucket'")
    assert step == [(f"aws:{result['account_id']}/OrganizationAccountAccessRole@eu-west-1",)]


def test_credentials_are_never_persisted(aws: Emulator, engine: ob.Engine,
                                         state_path: Path) -> None:
    run = engine.start(InAccount(name="leaky", bucket="leaky-data", leak=True))
    run.wait(120)
    creds = EXECUTORS["leaky"].credentials()
    assert "debug: secret key is ****" in run.logs("make-bucket")
    engine.close()
    for secret in (creds.secret_key, creds.token or ""):
        assert_nowhere(secret, state_path, store=state_path)
    assert "secret" not in EXECUTORS["leaky"].describe().lower()
    assert creds.secret_key not in repr(EXECUTORS["leaky"])


def test_env_from_a_stack_picks_the_account_and_region(aws: Emulator,
                                                       engine: ob.Engine) -> None:
    result = engine.start(FromStack()).wait(120)
    assert result["account"] != "123456789012"
    assert result["region"] == "eu-west-1"
    assert result["env"]["DATABASE_URL"] == "duckdb:///srv/acme.duckdb"
    assert result["env"]["ASSETS_BUCKET"] == f"acme-assets-{result['account']}"


def test_a_subprocess_inside_the_account(aws: Emulator, engine: ob.Engine) -> None:
    result = engine.start(InAccount(name="child", bucket="child-data", child=True)).wait(120)
    assert result["pid"] != os.getpid()
    assert result["account"] == result["account_id"] != "123456789012"


@pytest.mark.parametrize(("kwargs", "message"), [
    ({}, "needs the target account"),
    ({"account_id": "1234"}, "is not 12 digits"),
    ({"role_arn": "arn:aws:iam::role/x"}, "is not an IAM role ARN"),
    ({"account_id": "123456789012", "duration": 60}, "between 900 and 43200"),
    ({"env": ["AWS_ACCOUNT_ID"]}, "env must be a dict"),
])
def test_executor_arguments_are_checked(kwargs: dict[str, Any], message: str) -> None:
    env = kwargs.pop("env", None)
    with pytest.raises(ob.InvalidArgument, match=message):
        AccountExecutor(env, **kwargs)


def test_role_arn_and_env_precedence() -> None:
    executor = AccountExecutor({"AWS_ACCOUNT_ID": "111111111111", "AWS_REGION": "eu-west-3"},
                               role_arn="arn:aws:iam::222222222222:role/Deployer")
    assert executor.account_id == "222222222222"
    assert executor.describe() == "aws:222222222222/Deployer@eu-west-3"
