"""Idempotent resume: a process killed while watching an account creation, resumed.

The emulator keeps new accounts IN_PROGRESS for a few seconds (as AWS does for
minutes), so the process can be killed with SIGKILL while its step is waiting.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

import orbits_nb as ob
from orbits_nb.aws.emulator import Emulator
from orbits_nb.core.state import StepState, fold
from orbits_nb.store.duckdb_store import DuckDBStore

pytestmark = pytest.mark.slow
DELAY = 6.0
RUN_ID = "resume-test"

SCRIPT = textwrap.dedent("""
    import sys
    import orbits_nb as ob
    from orbits_nb.aws import CreateAWSAccount

    class QuickPoll(CreateAWSAccount):
        poll_interval = 0.3

    class OneAccount(ob.Workflow):
        async def define(self):
            return await self.do("aws-create", QuickPoll(name="acme",
                                                         email="acme@example.com"))

    engine = ob.Engine(sys.argv[1])
    print("RESULT", engine.start(OneAccount(), run_id=sys.argv[2]).wait(300)["account_id"])
    engine.close()
""")


@pytest.fixture(scope="module")
def slow_aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with Emulator(account_delay=DELAY, log_path=log) as emu:
        yield emu


@pytest.fixture
def env(slow_aws: Emulator, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    slow_aws.reset()
    for key, value in slow_aws.environ().items():
        if value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            monkeypatch.setenv(key, value)
    slow_aws.create_organization()
    return dict(os.environ)


def step_state(path: Path) -> StepState | None:
    store = DuckDBStore(path)
    try:
        return fold(RUN_ID, store.load_run(RUN_ID)).steps.get("aws-create")
    finally:
        store.close()


def creation_requests(name: str) -> list[dict[str, object]]:
    org = boto3.client("organizations")
    statuses = org.list_create_account_status()["CreateAccountStatuses"]
    return [s for s in statuses if s["AccountName"] == name]


def test_killed_mid_watch_resumes_without_a_second_account(
        env: dict[str, str], slow_aws: Emulator, tmp_path: Path) -> None:
    script = tmp_path / "deploy.py"
    script.write_text(SCRIPT)
    state = tmp_path / "state.duckdb"
    first = subprocess.Popen([sys.executable, str(script), str(state), RUN_ID], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    step = None
    while time.monotonic() < deadline and first.poll() is None:
        step = step_state(state)
        if step is not None and step.status == "waiting":
            break
        time.sleep(0.2)
    assert step is not None and step.status == "waiting", first.stderr.read() if \
        first.poll() is not None and first.stderr else step
    request_id = step.bag["request_id"]
    os.kill(first.pid, signal.SIGKILL)
    first.wait(10)
    assert first.returncode == -signal.SIGKILL
    # Killed mid-watch: AWS is still creating, the store says "waiting".
    status = boto3.client("organizations").describe_create_account_status(
        CreateAccountRequestId=request_id)["CreateAccountStatus"]
    assert status["State"] == "IN_PROGRESS"
    still = step_state(state)
    assert still is not None and still.status == "waiting"

    second = subprocess.run([sys.executable, str(script), str(state), RUN_ID], env=env,
                            capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    account_id = second.stdout.split("RESULT", 1)[1].strip()
    accounts = [a for a in slow_aws.accounts() if a["Name"] == "acme"]
    assert [a["Id"] for a in accounts] == [account_id]
    assert len(creation_requests("acme")) == 1
    done = step_state(state)
    assert done is not None and done.status == "succeeded"
    assert done.result["request_id"] == request_id and done.result["created"] is True
    store = DuckDBStore(state)
    try:
        requested = store.fetch("SELECT count(*) FROM logs WHERE step = 'aws-create' AND "
                                "message LIKE '%requested account%'")
    finally:
        store.close()
    assert requested == [(1,)]  # main() ran once: the resumed process only watched


class OneAccount(ob.Workflow):
    async def define(self) -> object:
        from orbits_nb.aws import CreateAWSAccount

        return await self.do("aws-create", CreateAWSAccount(name="globex",
                                                            email="globex@example.com"))


def test_a_request_sent_just_before_a_crash_is_adopted(env: dict[str, str],
                                                       slow_aws: Emulator,
                                                       engine: ob.Engine) -> None:
    # The process died right after CreateAccount, before its bag reached the store.
    org = boto3.client("organizations")
    sent = org.create_account(AccountName="globex", Email="globex@example.com")
    result = engine.start(OneAccount()).wait(120)
    assert result["request_id"] == sent["CreateAccountStatus"]["Id"]
    assert [a["Id"] for a in slow_aws.accounts() if a["Name"] == "globex"] == [
        result["account_id"]]
    assert len(creation_requests("globex")) == 1
