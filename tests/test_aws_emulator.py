"""The local AWS emulator: moto's own server, moto's state manager, two small patches.

Each patch is checked twice: the patched server behaves like AWS, and moto as shipped
(``plain=True``) still does not, so a moto release that fixes it shows up here.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path
from typing import Any

import boto3
import moto
import pytest
from aws_helpers import TAKEN_EMAIL
from polling import until

from orbits_nb.aws._moto_server import SUPPORTED, _release, pin
from orbits_nb.aws.emulator import ACCOUNT_MODEL, Emulator

pytest_plugins = ["aws_server"]

ROOT = Path(__file__).resolve().parents[1]
FAILING_BUCKET = {"Resources": {"Assets": {"Type": "AWS::S3::Bucket",
                                           "Properties": {"BucketName": "taken-bucket"}}}}


def org(emulator: Emulator) -> Any:
    return emulator._client("organizations")


def status_of(client: Any, request_id: str) -> str:
    reply = client.describe_create_account_status(CreateAccountRequestId=request_id)
    return str(reply["CreateAccountStatus"]["State"])


def names(emulator: Emulator) -> list[str]:
    return sorted(str(a["Name"]) for a in emulator.accounts())


def test_account_creation_is_paced_by_motos_state_manager(aws: Emulator) -> None:
    aws.set_transition(ACCOUNT_MODEL, {"progression": "manual", "times": 3})
    try:
        assert aws.get_transition(ACCOUNT_MODEL) == {"progression": "manual", "times": 3}
        client = org(aws)
        request = client.create_account(AccountName="acme",
                                        Email="acme@example.com")["CreateAccountStatus"]
        assert request["State"] == "IN_PROGRESS" and "AccountId" not in request
        pending = client.list_create_account_status(States=["IN_PROGRESS"])
        assert [s["Id"] for s in pending["CreateAccountStatuses"]] == [request["Id"]]
        assert names(aws) == ["master"]  # not in the organization before it exists
        assert [status_of(client, request["Id"]) for _ in range(3)] == [
            "IN_PROGRESS", "IN_PROGRESS", "SUCCEEDED"]
        assert names(aws) == ["acme", "master"]
        done = client.list_create_account_status(States=["SUCCEEDED"])
        account_id = next(s["AccountId"] for s in done["CreateAccountStatuses"]
                          if s["Id"] == request["Id"])
        described = client.describe_account(AccountId=account_id)["Account"]
        assert described["Email"] == "acme@example.com"
    finally:
        aws.unset_transition(ACCOUNT_MODEL)
    assert aws.get_transition(ACCOUNT_MODEL) == {"progression": "immediate"}
    again = org(aws).create_account(AccountName="globex", Email="globex@example.com")
    assert again["CreateAccountStatus"]["State"] == "SUCCEEDED"  # moto's default


def test_a_used_or_taken_email_fails_the_request_like_aws(aws: Emulator) -> None:
    client = org(aws)
    client.create_account(AccountName="acme", Email="ops@example.com")
    for email in ("OPS@example.com", TAKEN_EMAIL):
        refused = client.create_account(AccountName="other",
                                        Email=email)["CreateAccountStatus"]
        assert refused["State"] == "FAILED"
        assert refused["FailureReason"] == "EMAIL_ALREADY_EXISTS"
        assert status_of(client, refused["Id"]) == "FAILED"
    failed = client.list_create_account_status(States=["FAILED"])["CreateAccountStatuses"]
    assert len(failed) == 2
    assert names(aws) == ["acme", "master"]


def test_a_failed_resource_rolls_the_stack_back(aws: Emulator) -> None:
    kwargs = {"endpoint_url": aws.endpoint, "region_name": aws.region}
    boto3.client("s3", **kwargs).create_bucket(Bucket="taken-bucket")
    cf = boto3.client("cloudformation", **kwargs)
    cf.create_stack(StackName="broken", TemplateBody=json.dumps(FAILING_BUCKET))
    stack = cf.describe_stacks(StackName="broken")["Stacks"][0]
    assert stack["StackStatus"] == "ROLLBACK_COMPLETE"
    events = cf.describe_stack_events(StackName="broken")["StackEvents"]
    failed = [e for e in events if e["ResourceStatus"] == "CREATE_FAILED"]
    assert [e["LogicalResourceId"] for e in failed] == ["Assets"]
    assert "bucket name is not available" in failed[0]["ResourceStatusReason"]


def test_moto_as_shipped_still_lacks_both_behaviours(tmp_path: Path) -> None:
    with Emulator(plain=True, log_path=tmp_path / "moto.log") as plain:
        plain.create_organization()
        client = org(plain)
        states = [client.create_account(AccountName=f"a{i}", Email="same@example.com")
                  ["CreateAccountStatus"]["State"] for i in range(2)]
        assert states == ["SUCCEEDED", "SUCCEEDED"]  # a duplicate e-mail is accepted
        kwargs = {"endpoint_url": plain.endpoint, "region_name": plain.region,
                  "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
        boto3.client("s3", **kwargs).create_bucket(Bucket="taken-bucket")
        cf = boto3.client("cloudformation", **kwargs)
        with pytest.raises(cf.exceptions.ClientError):  # the API call itself fails
            cf.create_stack(StackName="broken", TemplateBody=json.dumps(FAILING_BUCKET))
        stack = cf.describe_stacks(StackName="broken")["Stacks"][0]
        assert stack["StackStatus"] == "CREATE_IN_PROGRESS"  # and it stays so


def test_the_installed_moto_is_in_the_pinned_range() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    extras = project["project"]["optional-dependencies"]
    pins = {line for extra in ("demo", "dev") for line in extras[extra]
            if line.startswith("moto")}
    assert pins == {pin().replace("moto", "moto[server]", 1)}
    low, high = SUPPORTED
    assert low <= _release(moto.__version__) < high


def test_release_numbers_and_the_pin() -> None:
    assert _release("5.2.5") == (5, 2, 5) and _release("5.3.0.dev12") == (5, 3, 0)
    assert _release("5.1") == (5, 1, 0) and _release("6.0.0rc1") == (6, 0, 0)
    assert pin() == "moto>=5.1.9,<5.3"


def test_an_unsupported_moto_is_refused_with_what_to_do() -> None:
    code = ("import moto, sys\nmoto.__version__ = '9.0.0'\n"
            "from orbits_nb.aws._moto_server import main\nsys.exit(main([]))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 1
    reply = json.loads(proc.stdout.splitlines()[0])
    assert reply["error"] == "UnsupportedMoto"
    assert "moto 9.0.0 is not a release" in reply["message"]
    assert "pip install 'orbits_nb[demo]'" in reply["message"]
    assert "plain=True" in reply["message"]


def test_the_server_stops_when_its_owner_dies(tmp_path: Path) -> None:
    owner = textwrap.dedent("""
        import sys, time
        from orbits_nb.aws.emulator import Emulator
        emu = Emulator().start()
        print(emu._proc.pid, emu.endpoint, flush=True)
        time.sleep(600)
    """)
    proc = subprocess.Popen([sys.executable, "-c", owner], stdout=subprocess.PIPE,
                            text=True, stdin=subprocess.DEVNULL)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.fullmatch(r"(\d+) (http://127\.0\.0\.1:\d+)\n", line)
    assert match, line
    server = int(match.group(1))
    assert boto3.client("sts", endpoint_url=match.group(2), region_name="us-east-1",
                        aws_access_key_id="t", aws_secret_access_key="t"
                        ).get_caller_identity()["Account"]
    proc.send_signal(signal.SIGKILL)  # no chance to stop its server
    proc.wait(60)
    until(lambda: not _alive(server), timeout=60)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(")")[-1].split()[0] != "Z"
