"""The runbooks themselves: deploy_backend and fleet through papermill, and `orbits-nb demo`.

Real kernels (papermill), a real moto server process and a real webhook receiver.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import papermill
import pytest
from aws_helpers import TAKEN_EMAIL, accounts_named, assert_nowhere
from nbclient import NotebookClient

from orbits_nb.actions import WebhookReceiver
from orbits_nb.aws.emulator import Emulator

pytest_plugins = ["aws_server"]

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
RUNBOOKS = [NOTEBOOKS / "deploy_backend.ipynb", NOTEBOOKS / "fleet.ipynb"]


@pytest.fixture
def hook(monkeypatch: pytest.MonkeyPatch) -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        monkeypatch.setenv("SLACK_WEBHOOK_URL", receiver.url)
        yield receiver


@pytest.fixture
def state_file(_isolated_state: Path) -> Path:
    """The state file the kernels use (ORBITS_NB_STATE, set by conftest)."""
    return _isolated_state


def execute(name: str, output: Path, **parameters: Any) -> nbformat.NotebookNode:
    papermill.execute_notebook(str(NOTEBOOKS / name), str(output), parameters=parameters,
                               kernel_name="python3", cwd=str(NOTEBOOKS),
                               progress_bar=False)
    return nbformat.read(str(output), as_version=4)


def text_of(notebook: nbformat.NotebookNode) -> str:
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            parts.append(output.get("data", {}).get("text/plain", ""))
            parts.append(output.get("evalue", ""))
    return "\n".join(parts)


@pytest.mark.parametrize("path", RUNBOOKS, ids=lambda p: p.name)
def test_runbooks_are_committed_clean_with_parameters(path: Path) -> None:
    notebook = nbformat.read(str(path), as_version=4)
    nbformat.validate(notebook)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code)
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and "slack_webhook = ob.Secret.from_env" in tagged[0].source
    assert notebook.metadata.kernelspec.name == "python3"


@pytest.mark.slow
def test_deploy_backend_runbook_twice(aws: Emulator, hook: WebhookReceiver, tmp_path: Path,
                                      state_file: Path) -> None:
    params = {"git_location": str(tmp_path / "git"),
              "database_url": f"duckdb://{tmp_path / 'acme.duckdb'}"}
    first = execute("deploy_backend.ipynb", tmp_path / "first.ipynb", **params)
    second = execute("deploy_backend.ipynb", tmp_path / "second.ipynb", **params)
    assert "executed now: ['git-create', 'aws-create', 'iac-deploy', 'sql-migrate']" \
        in text_of(first)
    replayed = text_of(second)
    assert "executed now: nothing" in replayed
    assert "replayed from the store: ['aws-create', 'git-create', 'iac-deploy', " \
        "'sql-migrate']" in replayed
    assert "AWS accounts with e-mail aws+acme@example.com: 1" in replayed
    assert len(accounts_named(aws, "acme")) == 1
    assert hook.payloads == []
    for secret in (hook.url, hook.token):
        assert_nowhere(secret, tmp_path / "first.ipynb", tmp_path / "second.ipynb",
                       state_file, store=state_file)


@pytest.mark.slow
def test_deploy_backend_runbook_failure_alerts(aws: Emulator, hook: WebhookReceiver,
                                               tmp_path: Path, state_file: Path) -> None:
    output = tmp_path / "failed.ipynb"
    with pytest.raises(papermill.PapermillExecutionError) as caught:
        execute("deploy_backend.ipynb", output, client="victim", email=TAKEN_EMAIL,
                git_location=str(tmp_path / "git"),
                database_url=f"duckdb://{tmp_path / 'victim.duckdb'}")
    assert caught.value.ename == "StepFailed"
    [alert] = hook.wait_for(1)
    assert set(alert) == {"text"}
    assert "DeployBackend for *victim* failed at step `aws-create`" in alert["text"]
    assert "EMAIL_ALREADY_EXISTS" in alert["text"]
    executed = nbformat.read(str(output), as_version=4)
    shown = text_of(executed)
    assert "notify-aws-create" in shown and "EMAIL_ALREADY_EXISTS" in shown
    assert accounts_named(aws, "victim") == []
    for secret in (hook.url, hook.token):
        assert_nowhere(secret, output, state_file, store=state_file)


@pytest.mark.slow
def test_fleet_runbook(aws: Emulator, hook: WebhookReceiver, tmp_path: Path) -> None:
    executed = execute("fleet.ipynb", tmp_path / "fleet.ipynb", tenants=["acme", "globex"],
                       concurrency=2, git_location=str(tmp_path / "git"),
                       database_pattern=f"duckdb://{tmp_path}/{{tenant}}.duckdb")
    shown = text_of(executed)
    assert "2 tenants: 2 succeeded" in shown
    html = [o["data"]["text/html"] for c in executed.cells for o in c.get("outputs", [])
            if "text/html" in o.get("data", {})]
    assert any("<table" in h and "globex" in h for h in html)
    for tenant in ("acme", "globex"):
        assert len(accounts_named(aws, tenant)) == 1
        assert f"{tenant}: account " in shown


def demo(out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "orbits_nb.cli", "demo", "--out", str(out),
                           *extra], capture_output=True, text=True, timeout=600)


def live_view(executed: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the report cells of an executed notebook in a new kernel beside it."""
    monkeypatch.delenv("ORBITS_NB_STATE", raising=False)
    notebook = nbformat.read(str(executed), as_version=4)
    cells = [c for c in notebook.cells if "orbits-nb-report" in c.metadata.get("tags", [])
             and c.cell_type == "code"]
    assert cells
    for cell in cells:
        cell.outputs = []
    fresh = nbformat.v4.new_notebook(cells=cells)
    NotebookClient(fresh, kernel_name="python3", timeout=120,
                   resources={"metadata": {"path": str(executed.parent)}}).execute()
    return text_of(fresh)


def test_demo_writes_to_a_visible_folder_and_finds_the_shipped_runbook(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from orbits_nb.demo import default_notebook, default_out, shipped_notebooks

    (tmp_path / ".git").mkdir()
    monkeypatch.chdir(tmp_path)
    out = default_out()
    assert out.parent == tmp_path / "output" / "demo"
    assert not any(part.startswith(".") for part in out.relative_to(tmp_path).parts)
    assert shipped_notebooks() == NOTEBOOKS.resolve()
    assert default_notebook() == NOTEBOOKS.resolve() / "deploy_backend.ipynb"


@pytest.mark.slow
def test_demo_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    done = demo(tmp_path / "demo")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "second execution: every step replayed from the store; AWS accounts for the " \
           "client: 1." in done.stdout
    assert "servers stopped." in done.stdout
    for name in ("deploy_backend.first.ipynb", "deploy_backend.second.ipynb",
                 "state.duckdb"):
        assert (tmp_path / "demo" / name).exists()
        assert str(tmp_path / "demo" / name) in done.stdout
    second = nbformat.read(str(tmp_path / "demo" / "deploy_backend.second.ipynb"), 4)
    assert "executed now: nothing" in text_of(second)
    # The folder can move: its report cells name the state beside them.
    moved = tmp_path / "moved"
    (tmp_path / "demo").rename(moved)
    shown = live_view(moved / "deploy_backend.second.ipynb", monkeypatch)
    [run_id] = second.metadata["orbits_nb"]["workflow_runs"]
    assert run_id in shown and "succeeded" in shown and "RunNotFound" not in shown


@pytest.mark.slow
def test_demo_command_failure_path(tmp_path: Path) -> None:
    done = demo(tmp_path / "demo", "--fail", "--client", "globex")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "failed (" in done.stdout and "alert received by the webhook" in done.stdout
    alerts = [json.loads(line) for line in
              (tmp_path / "demo" / "alerts.jsonl").read_text().splitlines()]
    assert len(alerts) == 1  # the second execution does not alert twice
    assert "*globex* failed at step `aws-create`" in alerts[0]["text"]


@pytest.mark.slow
def test_demo_drift_shows_the_hand_change_and_reconcile_repairs_it(tmp_path: Path) -> None:
    done = demo(tmp_path / "demo", "--drift")
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "changed SSM parameter /acme/backend/database-url by hand" in out
    drift_part = out.split("$ orbits-nb drift", 1)[1].split("$ orbits-nb reconcile", 1)[0]
    assert "resources.DatabaseUrlParameter.value" in drift_part
    assert "postgresql://changed-by-hand/db" in drift_part
    assert "(exit 1)" in drift_part
    assert "reconciled 1 resource(s)" in out
    assert "/acme/backend/database-url is back to 'duckdb://" in out


@pytest.mark.slow
def test_drift_check_runbook_finds_a_hand_change_and_reconciles_it(
        aws: Emulator, tmp_path: Path, state_file: Path) -> None:
    from orbits_nb.aws.executor import AccountExecutor

    params = {"git_location": str(tmp_path / "git"),
              "database_url": f"duckdb://{tmp_path / 'acme.duckdb'}"}
    first = text_of(execute("drift_check.ipynb", tmp_path / "first.ipynb", **params))
    assert "2 resource(s): 2 in sync" in first
    [account] = [a["Id"] for a in accounts_named(aws, "acme")]
    ssm = AccountExecutor(account_id=account, region="eu-west-1").context().client("ssm")
    ssm.put_parameter(Name="/acme/backend/database-url", Value="changed-by-hand",
                      Type="String", Overwrite=True)
    second = text_of(execute("drift_check.ipynb", tmp_path / "second.ipynb", **params))
    assert "resources.DatabaseUrlParameter.value" in second
    assert '-> "changed-by-hand"' in second and "reconciled in run Reconcile-" in second
    assert ssm.get_parameter(Name="/acme/backend/database-url")["Parameter"]["Value"] == \
        params["database_url"]
    ssm.put_parameter(Name="/acme/backend/database-url", Value="again", Type="String",
                      Overwrite=True)
    with pytest.raises(papermill.PapermillExecutionError, match="drifted"):
        execute("drift_check.ipynb", tmp_path / "third.ipynb", reconcile=False,
                fail_on_drift=True, **params)
