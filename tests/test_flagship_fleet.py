"""Fleet: the backend for several tenants, with a concurrency limit and one progress view.

The emulator keeps accounts IN_PROGRESS for a moment, so tenants' deployments last long
enough for the concurrency limit to be observable in the recorded timings.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

import orbits_nb as ob
from orbits_nb.actions import WebhookReceiver
from orbits_nb.aws.emulator import Emulator
from orbits_nb.core.state import fold
from orbits_nb.flagship import Fleet, FleetFailed
from orbits_nb.flagship.progress import fleet_progress, summary, watch_fleet

pytestmark = pytest.mark.slow
ASSETS = Path(__file__).resolve().parent.parent / "notebooks" / "assets"


@pytest.fixture(scope="module")
def slow_aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with Emulator(account_delay=1.0, taken_emails=["taken@example.com"],
                  log_path=log) as emu:
        yield emu


@pytest.fixture
def env(slow_aws: Emulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[WebhookReceiver]:
    slow_aws.reset()
    for key, value in slow_aws.environ().items():
        if value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            monkeypatch.setenv(key, value)
    slow_aws.create_organization()
    with WebhookReceiver() as hook:
        monkeypatch.setenv("SLACK_WEBHOOK_URL", hook.url)
        yield hook


def fleet(tmp_path: Path, tenants: list[str], concurrency: int = 2) -> Fleet:
    return Fleet(tenants=tenants, concurrency=concurrency,
                 email_pattern="{tenant}@example.com",
                 database_pattern=f"duckdb://{tmp_path}/{{tenant}}.duckdb",
                 region="eu-west-1", git_location=str(tmp_path / "git"),
                 template_file=str(ASSETS / "backend.yaml"),
                 migrations=str(ASSETS / "migrations"),
                 webhook=ob.Secret.from_env("SLACK_WEBHOOK_URL"))


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    points = sorted([(start, 1) for start, _ in intervals] +
                    [(end, -1) for _, end in intervals])
    best = current = 0
    for _, delta in points:
        current += delta
        best = max(best, current)
    return best


def test_fleet_limits_concurrency_and_isolates_failures(
        env: WebhookReceiver, slow_aws: Emulator, tmp_path: Path, engine: ob.Engine,
        capsys: pytest.CaptureFixture[str]) -> None:
    tenants = ["acme", "globex", "taken", "initech"]
    run = engine.start(fleet(tmp_path, tenants))
    table = watch_fleet(run)  # blocks until the fleet ends; prints outside a notebook
    with pytest.raises(FleetFailed, match="1 of 4 tenants failed"):
        run.wait(300)
    rows = {row["tenant"]: row for row in table}
    assert [rows[t]["status"] for t in tenants] == ["succeeded", "succeeded", "failed",
                                                    "succeeded"]
    assert rows["acme"]["done"] == "4/4" and len(rows["acme"]["account"]) == 12
    assert "aws-create" in rows["taken"]["error"]
    assert "EMAIL_ALREADY_EXISTS" in rows["taken"]["error"]
    assert summary(table) == "4 tenants: 1 failed, 3 succeeded"
    assert "4 tenants: 1 failed, 3 succeeded" in capsys.readouterr().out
    [alert] = env.wait_for(1)
    assert "*taken* failed at step `aws-create`" in alert["text"]
    names = {a["Name"] for a in slow_aws.accounts()}
    assert {"acme", "globex", "initech"} <= names and "taken" not in names
    # The semaphore: never more than 2 tenant runs at once, and 2 did overlap.
    intervals = []
    for tenant in tenants:
        child = fold(f"{run.run_id}/deploy-{tenant}",
                     engine.store.load_run(f"{run.run_id}/deploy-{tenant}"))
        assert child.started_at is not None and child.finished_at is not None
        intervals.append((child.started_at, child.finished_at))
    assert max_overlap(intervals) == 2


def test_fleet_retry_redeploys_only_the_failed_tenant(
        env: WebhookReceiver, slow_aws: Emulator, tmp_path: Path, engine: ob.Engine) -> None:
    blocker = tmp_path / "broken.duckdb"
    blocker.mkdir()  # the tenant's database path is taken by a directory
    (blocker / "keep").write_text("x")
    first = engine.start(fleet(tmp_path, ["acme", "broken"]))
    with pytest.raises(FleetFailed, match="1 of 2 tenants failed"):
        first.wait(300)
    rows = {row["tenant"]: row for row in fleet_progress(first)}
    assert rows["broken"]["status"] == "failed" and rows["broken"]["done"] == "3/4"
    assert rows["broken"]["error"].startswith("sql-migrate:")

    def attempts(tenant: str) -> dict[str, int]:
        child = f"{first.run_id}/deploy-{tenant}"
        return {s.key: s.attempts
                for s in fold(child, engine.store.load_run(child)).ordered_steps()}

    before = {t: attempts(t) for t in ("acme", "broken")}
    shutil.rmtree(blocker)  # the fix
    second = first.retry()
    result = second.wait(300)
    assert result["deployed"] == ["acme", "broken"]
    assert attempts("acme") == before["acme"]  # replayed, not redeployed
    after = attempts("broken")
    assert after["sql-migrate"] == before["broken"]["sql-migrate"] + 1
    assert {k: v for k, v in after.items() if k.startswith(("git", "aws", "iac"))} == {
        "git-create": 1, "aws-create": 1, "iac-deploy": 1}
    for tenant in ("acme", "broken"):
        assert sum(a["Name"] == tenant for a in slow_aws.accounts()) == 1
    assert [row["status"] for row in fleet_progress(second)] == ["succeeded", "succeeded"]
