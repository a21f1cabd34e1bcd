"""The flagship DeployBackend workflow end to end on a real moto server (no notebook)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import duckdb
import pytest
from aws_helpers import accounts_named, assert_nowhere

import orbits_nb as ob
from orbits_nb.actions import WebhookReceiver
from orbits_nb.aws.emulator import Emulator
from orbits_nb.engine.table import records
from orbits_nb.flagship import DeployBackend, DeployFrontend

pytest_plugins = ["aws_server"]

ASSETS = Path(__file__).resolve().parent.parent / "notebooks" / "assets"


@pytest.fixture
def hook(monkeypatch: pytest.MonkeyPatch) -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        monkeypatch.setenv("SLACK_WEBHOOK_URL", receiver.url)
        yield receiver


def backend(tmp_path: Path, client: str = "acme", **extra: Any) -> DeployBackend:
    return DeployBackend(
        client=client, email=f"aws+{client}@example.com", region="eu-west-1",
        git_location=str(tmp_path / "git"), template_file=str(ASSETS / "backend.yaml"),
        migrations=str(ASSETS / "migrations"),
        database_url=f"duckdb://{tmp_path / (client + '.duckdb')}",
        webhook=ob.Secret.from_env("SLACK_WEBHOOK_URL"), **extra)


def stack_events(account_id: str) -> int:
    sts = boto3.client("sts")
    creds = sts.assume_role(RoleArn=f"arn:aws:iam::{account_id}:role/"
                            "OrganizationAccountAccessRole",
                            RoleSessionName="test")["Credentials"]
    cf = boto3.client("cloudformation", region_name="eu-west-1",
                      aws_access_key_id=creds["AccessKeyId"],
                      aws_secret_access_key=creds["SecretAccessKey"],
                      aws_session_token=creds["SessionToken"])
    return len(cf.describe_stack_events(StackName="acme-backend")["StackEvents"])


def test_deploy_backend_then_replay(aws: Emulator, hook: WebhookReceiver, tmp_path: Path,
                                    state_path: Path) -> None:
    engine = ob.Engine(state_path)
    result = engine.start(backend(tmp_path)).wait(180)
    engine.close()
    assert result["migrations"] == ["001_customers.sql", "002_orders.sql",
                                    "003_order_status.sql"]
    assert result["outputs"]["AssetsBucket"] == f"acme-assets-{result['account_id']}"
    assert result["repository"] == (tmp_path / "git" / "acme-backend.git").as_uri()
    events = stack_events(result["account_id"])
    # A new process (a new engine on the same state) replays everything.
    engine = ob.Engine(state_path)
    run = engine.start(backend(tmp_path))
    assert run.wait(180) == result
    assert run.execution is not None
    assert run.execution.replayed == {"git-create", "aws-create", "iac-deploy", "sql-migrate"}
    engine.close()
    assert [a["Id"] for a in accounts_named(aws, "acme")] == [result["account_id"]]
    assert stack_events(result["account_id"]) == events
    with duckdb.connect(str(tmp_path / "acme.duckdb")) as con:
        assert con.execute("SELECT count(*) FROM orbits_nb_migrations").fetchone() == (3,)
    assert hook.payloads == []
    assert_nowhere(hook.token, state_path, store=state_path)


def test_failed_stack_alerts_then_fix_and_retry(aws: Emulator, hook: WebhookReceiver,
                                                tmp_path: Path, state_path: Path) -> None:
    org = boto3.client("organizations")
    made = org.create_account(AccountName="acme", Email="aws+acme@example.com")
    account_id = made["CreateAccountStatus"]["AccountId"]
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=f"acme-assets-{account_id}")  # squatted in another account
    engine = ob.Engine(state_path)
    run = engine.start(backend(tmp_path))
    with pytest.raises(ob.StepFailed) as caught:
        run.wait(180)
    assert caught.value.step == "iac-deploy"
    steps = {row["step"]: row["status"] for row in records(run.steps())}
    assert steps == {"git-create": "succeeded", "aws-create": "succeeded",
                     "iac-deploy": "failed", "notify-iac-deploy": "succeeded"}
    [alert] = hook.wait_for(1)
    assert "DeployBackend for *acme* failed at step `iac-deploy`" in alert["text"]
    assert "AssetsBucket (AWS::S3::Bucket) CREATE_FAILED" in alert["text"]
    assert f"orbits-nb show {run.run_id}" in alert["text"]
    # Fix the cause and retry the same run: it continues from the failed step.
    s3.delete_bucket(Bucket=f"acme-assets-{account_id}")
    result = run.retry().wait(180)
    assert result["account_id"] == account_id
    assert len(hook.payloads) == 1  # no new alert
    engine.close()
    assert len(accounts_named(aws, "acme")) == 1
    assert_nowhere(hook.url, state_path, store=state_path)


def test_backend_and_frontend_share_one_account(aws: Emulator, hook: WebhookReceiver,
                                                tmp_path: Path, engine: ob.Engine) -> None:
    front = DeployFrontend(client="acme", email="aws+acme@example.com", region="eu-west-1",
                           git_location=str(tmp_path / "git"),
                           template_file=str(ASSETS / "frontend.yaml"))

    async def both() -> list[Any]:
        return list(await asyncio.gather(engine.start(backend(tmp_path)),
                                         engine.start(front)))

    back_result, front_result = asyncio.run(both())
    assert back_result["account_id"] == front_result["account_id"]
    assert len(accounts_named(aws, "acme")) == 1
    repos = sorted(p.name for p in (tmp_path / "git").iterdir())
    assert repos == ["acme-backend.git", "acme-frontend.git"]
    for repo in repos:
        subprocess.run(["git", "--git-dir", str(tmp_path / "git" / repo), "rev-parse"],
                       check=True)
    assert front_result["outputs"]["SiteBucket"] == f"acme-site-{front_result['account_id']}"


@pytest.mark.parametrize(("change", "message"), [
    ({"client": "Acme!"}, "must be 2-24 lowercase"),
    ({"template_file": "/nonexistent.yaml"}, "is not an existing file"),
    ({"migrations": "/nonexistent"}, "is not an existing directory"),
    ({"webhook": "https://hooks.example/x"}, "webhook must be an orbits_nb.Secret"),
    ({"email": "nope"}, "is not a valid e-mail"),
    ({"region": "nowhere"}, "not an AWS region"),
    ({"git_location": None}, "needs location="),
])
def test_bad_runbook_input_is_rejected_before_anything_runs(
        tmp_path: Path, change: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {
        "client": "acme", "email": "aws+acme@example.com", "region": "eu-west-1",
        "git_location": str(tmp_path), "template_file": str(ASSETS / "backend.yaml"),
        "migrations": str(ASSETS / "migrations"), "database_url": "x.duckdb"}
    args.update(change)
    with pytest.raises(ob.InvalidArgument, match=message):
        DeployBackend(**{k: v for k, v in args.items() if v is not None})


# -- the seed's error-handling pattern, retried after a fix (engine level) -------------
FIXED: dict[str, bool] = {}


class Fragile(ob.Action):
    def main(self) -> Any:
        if not FIXED.get(self.args["key"]):
            raise RuntimeError("broken until fixed")
        return "ok"


class Echo(ob.Action):
    def main(self) -> Any:
        return self.args["text"]


class SeedPattern(ob.Workflow):
    async def define(self) -> Any:
        try:
            await self.do("aws-create", Fragile(key=self.args["key"]))
            return await self.do("iac-deploy", Echo(text="deployed"))
        except ob.StepFailed as err:
            await self.do("notify", Echo(text=f"{err.step} failed"))
            raise


def test_a_run_that_alerted_can_be_fixed_and_retried(engine: ob.Engine) -> None:
    run = engine.start(SeedPattern(key="k1"))
    with pytest.raises(ob.StepFailed):
        run.wait(30)
    FIXED["k1"] = True
    # The code now reaches iac-deploy where the failed execution recorded "notify":
    # that is the error path of a failure, not a change of code.
    assert run.retry().wait(30) == "deployed"


def test_importing_the_building_blocks_loads_no_heavy_package() -> None:
    code = ("import sys, orbits_nb.aws, orbits_nb.actions, orbits_nb.flagship, "
            "orbits_nb.flagship.progress\n"
            "heavy = {'boto3', 'botocore', 'duckdb', 'psycopg', 'moto', 'papermill', "
            "'IPython'} & set(sys.modules)\n"
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)
