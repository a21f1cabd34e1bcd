"""A fleet as desired state on the moto server: add a tenant, remove one, drift per tenant."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aws_helpers import accounts_named

import orbits_nb as ob
from orbits_nb.aws.emulator import Emulator
from orbits_nb.aws.executor import AccountExecutor
from orbits_nb.core.errors import InvalidArgument
from orbits_nb.flagship.tenants import TenantFleet, drift_by_tenant

pytest_plugins = ["aws_server"]

ASSETS = Path(ob.__file__).parent / "notebooks" / "assets"


def fleet(tmp_path: Path, tenants: list[str], **extra: Any) -> TenantFleet:
    return TenantFleet(tenants=tenants, email_pattern="aws+{tenant}@example.com",
                       database_pattern=f"duckdb://{tmp_path}/{{tenant}}.duckdb",
                       template_file=str(ASSETS / "backend.yaml"),
                       migrations=str(ASSETS / "migrations"),
                       git_location=str(tmp_path / "git"), region="eu-west-1", **extra)


def executions(engine: ob.Engine, step: str) -> dict[str, int]:
    """How often ``step`` started, per tenant (the agents' nested runs)."""
    out: dict[str, int] = {}
    for run in engine.store.recent_runs(limit=1000):
        events = engine.store.load_run(run.run_id)
        for tenant_run in {e.data.get("child_run_id") for e in events
                           if e.kind == "step.started" and e.data.get("child_run_id")}:
            tenant = tenant_run.rsplit("/backend-", 1)[-1]
            started = sum(e.kind == "step.started" and e.step == step
                          for e in engine.store.load_run(tenant_run))
            out[tenant] = out.get(tenant, 0) + started
    return out


def stacks(tenant: str, emulator: Emulator) -> list[str]:
    [account] = [a["Id"] for a in accounts_named(emulator, tenant)]
    cf = AccountExecutor(account_id=account, region="eu-west-1").context().client(
        "cloudformation")
    return [s["StackName"] for s in cf.list_stacks()["StackSummaries"]
            if s["StackStatus"] != "DELETE_COMPLETE"]


def test_adding_a_tenant_installs_only_that_tenant(aws: Emulator, engine: ob.Engine,
                                                  tmp_path: Path) -> None:
    first = fleet(tmp_path, ["acme", "globex"]).run(engine=engine)
    assert first == {"deployed": ["acme", "globex"], "changed": ["acme", "globex"],
                     "removed": [], "planned_removals": []}
    assert executions(engine, "iac-deploy") == {"acme": 1, "globex": 1}
    grown = fleet(tmp_path, ["acme", "globex", "initech"]).run(engine=engine)
    assert grown["changed"] == ["initech"]
    assert executions(engine, "iac-deploy") == {"acme": 1, "globex": 1, "initech": 1}
    assert executions(engine, "git-create") == {"acme": 1, "globex": 1, "initech": 1}
    assert [len(accounts_named(aws, t)) for t in ("acme", "globex", "initech")] == [1, 1, 1]
    report = ob.drift(workflow="TenantFleet", engine=engine)
    assert report.ok
    assert {c.identity for c in report if c.kind == "TenantBackend"} == {
        "backend-acme", "backend-globex", "backend-initech"}


def test_removing_a_tenant_is_planned_until_confirmed(aws: Emulator, engine: ob.Engine,
                                                     tmp_path: Path) -> None:
    fleet(tmp_path, ["acme", "globex"]).run(engine=engine)
    shrunk = fleet(tmp_path, ["acme"])
    planned = ob.plan(shrunk, engine=engine)
    assert {(i.key, i.action) for i in planned if i.action != "no-op"} == {
        ("TenantBackend:backend-globex", "delete")}
    assert shrunk.run(engine=engine)["planned_removals"] == ["globex"]
    assert stacks("globex", aws) == ["globex-backend"]
    done = fleet(tmp_path, ["acme"], confirm_removals=True).run(engine=engine)
    assert done["removed"] == ["globex"]
    assert stacks("globex", aws) == []
    assert stacks("acme", aws) == ["acme-backend"]
    assert [c.identity for c in ob.drift(type="TenantBackend", engine=engine)] == [
        "backend-acme"]


def test_a_hand_change_in_one_tenant_shows_as_that_tenants_drift(
        aws: Emulator, engine: ob.Engine, tmp_path: Path) -> None:
    fleet(tmp_path, ["acme", "globex"]).run(engine=engine)
    [account] = [a["Id"] for a in accounts_named(aws, "globex")]
    ssm = AccountExecutor(account_id=account, region="eu-west-1").context().client("ssm")
    ssm.put_parameter(Name="/globex/backend/database-url", Value="by-hand", Type="String",
                      Overwrite=True)
    report = ob.drift(workflow="TenantFleet", engine=engine)
    assert [c.identity.rsplit("/", 1)[-1] for c in report.drifted] == ["globex-backend"]
    summary = drift_by_tenant(report)
    assert summary["acme"] == "in sync"
    assert summary["globex"].startswith("aws.Stack drifted: resources.DatabaseUrlParameter")
    assert '"by-hand"' in summary["globex"]


def test_the_inventory_may_be_a_yaml_file_and_is_checked(tmp_path: Path) -> None:
    inventory = tmp_path / "tenants.yaml"
    inventory.write_text("tenants:\n  - acme\n  - globex\n")
    assert TenantFleet(tenants_file=str(inventory), email_pattern="aws+{tenant}@x.com",
                       database_pattern="duckdb:///{tenant}.duckdb",
                       template_file=str(ASSETS / "backend.yaml"),
                       migrations=str(ASSETS / "migrations"),
                       git_location=str(tmp_path)).args["tenants"] == ["acme", "globex"]
    inventory.write_text("- acme\n- Bad Name\n")
    with pytest.raises(InvalidArgument, match="Bad Name"):
        TenantFleet(tenants_file=str(inventory), email_pattern="{tenant}@x.com",
                    database_pattern="{tenant}")
