"""ob.aws.Account and ob.aws.Stack on the moto server: drift by hand, reconcile, uninstall."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import orbits_nb as ob
from orbits_nb.aws.emulator import Emulator
from orbits_nb.aws.executor import AccountExecutor
from orbits_nb.aws.session import AWS

pytest_plugins = ["aws_server"]

ASSETS = Path(ob.__file__).parent / "notebooks" / "assets"


class Env(ob.Workflow):
    """An account (in an OU, tagged) and the backend stack in it."""

    async def define(self) -> Any:
        account = await self.do("account", ob.aws.Account(
            name="acme", email="aws+acme@example.com", organizational_unit="clients",
            tags={"client": "acme"}))
        stack = await self.do("stack", ob.aws.Stack(
            stack_name="acme-backend", template_file=str(ASSETS / "backend.yaml"),
            parameters={"Client": "acme", "DatabaseUrl": "duckdb:///acme.duckdb"},
            tags={"client": "acme"}, account_id=account["account_id"], region="us-east-1"))
        return {"account_id": account["account_id"], "outputs": stack["outputs"]}


def _ou(name: str) -> str:
    org = AWS().client("organizations")
    root = org.list_roots()["Roots"][0]["Id"]
    return str(org.create_organizational_unit(ParentId=root, Name=name)
               ["OrganizationalUnit"]["Id"])


def _in(account_id: str) -> AWS:
    return AccountExecutor(account_id=account_id, region="us-east-1").context()


def test_a_stack_changed_behind_cloudformations_back_drifts_and_reconciles(
        aws: Emulator, engine: ob.Engine) -> None:
    _ou("clients")
    result = Env().run(engine=engine)
    account = result["account_id"]
    assert result["outputs"]["AssetsBucket"] == f"acme-assets-{account}"
    assert ob.drift(engine=engine).ok
    ctx = _in(account)
    ctx.client("ssm").put_parameter(Name="/acme/backend/database-url", Value="hacked",
                                    Type="String", Overwrite=True)
    ctx.client("s3").put_bucket_tagging(Bucket=f"acme-assets-{account}", Tagging={
        "TagSet": [{"Key": "owner", "Value": "someone"}]})
    report = ob.drift(engine=engine)
    drifted = {c.kind: c for c in report.drifted}
    assert set(drifted) == {"aws.Stack"}
    diffs = {d.path: (d.change, d.actual) for d in drifted["aws.Stack"].diffs}
    assert diffs == {"resources.DatabaseUrlParameter.value": ("changed", "hacked"),
                     "resources.AssetsBucket.tags.owner": ("added", "someone")}
    report.reconcile()
    assert ob.drift(engine=engine).ok
    value = ctx.client("ssm").get_parameter(Name="/acme/backend/database-url")
    assert value["Parameter"]["Value"] == "duckdb:///acme.duckdb"


def test_an_account_moved_and_retagged_by_hand_is_moved_back(
        aws: Emulator, engine: ob.Engine) -> None:
    _ou("clients")
    other = _ou("sandbox")
    account = Env().run(engine=engine)["account_id"]
    org = AWS().client("organizations")
    source = org.list_parents(ChildId=account)["Parents"][0]["Id"]
    org.move_account(AccountId=account, SourceParentId=source, DestinationParentId=other)
    org.tag_resource(ResourceId=account, Tags=[{"Key": "client", "Value": "evil"}])
    report = ob.drift(type="aws.Account", engine=engine)
    diffs = {d.path: (d.desired, d.actual) for d in report.drifted[0].diffs}
    assert diffs == {"organizational_unit": ("clients", "sandbox"),
                     "tags.client": ("acme", "evil")}
    report.reconcile()
    assert org.list_parents(ChildId=account)["Parents"][0]["Id"] == source
    assert ob.drift(engine=engine).ok


def test_uninstall_asks_for_confirmation_and_respects_users(
        aws: Emulator, engine: ob.Engine) -> None:
    _ou("clients")
    account = Env().run(engine=engine)["account_id"]
    stack_key = f"aws.Stack:{account}/us-east-1/acme-backend"
    with pytest.raises(ob.OrbitsError, match="confirm by repeating its identity"):
        ob.uninstall(stack_key, release=["Env"], engine=engine)
    with pytest.raises(ob.OrbitsError, match="still used by Env"):
        ob.uninstall(stack_key, confirm=stack_key, engine=engine)
    cf = _in(account).client("cloudformation")
    assert cf.describe_stacks(StackName="acme-backend")["Stacks"]
    ob.uninstall(stack_key, release=["Env"], confirm=stack_key, engine=engine)
    names = [s["StackName"] for s in cf.list_stacks()["StackSummaries"]
             if s["StackStatus"] != "DELETE_COMPLETE"]
    assert "acme-backend" not in names
    ob.uninstall("aws+acme@example.com", release=["Env"], confirm="aws+acme@example.com",
                 engine=engine)
    assert account not in {a["Id"] for a in aws.accounts()}
