"""DeployCDKStack on the moto server: a small Python CDK app synthesized, then deployed.

The app needs aws-cdk-lib in some Python (the ``[cdk]`` extra): this interpreter, or the
one named by ``ORBITS_NB_CDK_PYTHON``; and Node.js.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import orbits_nb as ob
from orbits_nb.aws.cdk import CDK_HINT, DeployCDKStack
from orbits_nb.aws.emulator import Emulator

pytest_plugins = ["aws_server"]

APP = '''
import aws_cdk as cdk
from aws_cdk import aws_sqs as sqs, aws_ssm as ssm

app = cdk.App()
stack = cdk.Stack(app, "AcmeCdk", synthesizer=cdk.DefaultStackSynthesizer(
    generate_bootstrap_version_rule=False))
ssm.StringParameter(stack, "Url", parameter_name="/acme/cdk/url",
                    string_value="https://acme.example")
sqs.Queue(stack, "Jobs", queue_name="acme-cdk-jobs",
          visibility_timeout=cdk.Duration.seconds(90))
app.synth()
'''


def cdk_python() -> str | None:
    for python in (sys.executable, os.environ.get("ORBITS_NB_CDK_PYTHON")):
        if python and subprocess.run([python, "-c", "import aws_cdk"],
                                     capture_output=True, check=False).returncode == 0:
            return python
    return None


class Infra(ob.Workflow):
    async def define(self) -> Any:
        return await self.do("iac-deploy", DeployCDKStack(**self.args))


def toolchain() -> str:
    """The Python with aws-cdk-lib, once Node.js is there too; else a skip with the
    install hint, or a failure in CI (``python3 dev.py test`` sets both up)."""
    python, node = cdk_python(), shutil.which("node")
    if python is not None and node is not None:
        return python
    missing = [what for what, found in (("aws-cdk-lib (pip install 'orbits_nb[cdk]', or "
                                         "ORBITS_NB_CDK_PYTHON naming a Python that has "
                                         "it)", python), ("Node.js (apt-get install "
                                                          "nodejs)", node)) if not found]
    message = "the CDK test needs " + " and ".join(missing)
    if os.environ.get("CI") == "true":
        pytest.fail(message + "; `python3 dev.py test` installs both")
    pytest.skip(message)


@pytest.mark.slow
def test_a_cdk_app_is_synthesized_deployed_and_watched_for_drift(
        aws: Emulator, engine: ob.Engine, tmp_path: Path) -> None:
    python = toolchain()
    app = tmp_path / "app.py"
    app.write_text(APP)
    Infra(app=str(app), stack="AcmeCdk", python=python,
          region="us-east-1").run(engine=engine, timeout=600)
    ssm = ob.aws.client("ssm", region="us-east-1")
    assert ssm.get_parameter(Name="/acme/cdk/url")["Parameter"]["Value"] == \
        "https://acme.example"
    assert (tmp_path / "cdk.out" / "AcmeCdk.template.json").exists()
    ssm.put_parameter(Name="/acme/cdk/url", Value="by-hand", Overwrite=True, Type="String")
    report = ob.drift(engine=engine)
    [drifted] = report.drifted
    assert drifted.kind == "aws.Stack" and drifted.identity.endswith("/AcmeCdk")
    assert [d.path for d in drifted.diffs] == ["resources.UrlD4FAABD0.value"]
    report.reconcile()
    assert ssm.get_parameter(Name="/acme/cdk/url")["Parameter"]["Value"] == \
        "https://acme.example"


@pytest.mark.skipif(shutil.which("node") is None, reason="checks the hint with Node.js")
def test_a_python_without_the_cdk_library_gets_the_install_hint(
        engine: ob.Engine, tmp_path: Path) -> None:
    app = tmp_path / "app.py"
    app.write_text("import aws_cdk\n")
    python = sys.executable if cdk_python() != sys.executable else None
    if python is None:
        pytest.skip("this interpreter has aws-cdk-lib")
    with pytest.raises(ob.StepFailed, match=r"No module named 'aws_cdk'.*orbits_nb\[cdk\]"):
        Infra(app=str(app), stack="AcmeCdk", python=python).run(engine=engine)
    assert "orbits_nb[cdk]" in CDK_HINT
