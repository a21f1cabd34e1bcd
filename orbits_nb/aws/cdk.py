"""``DeployCDKStack``: synthesize a Python CDK app, then deploy it as an ``ob.aws.Stack``.

The app runs in a subprocess (``python app.py`` with ``CDK_OUTDIR``), as ``cdk synth``
runs it, so neither the ``cdk`` CLI nor ``aws-cdk-lib`` is imported here; it needs
Node.js (Debian's ``nodejs``) and ``aws-cdk-lib`` in the app's Python (the ``[cdk]``
extra). Asset-free stacks only: the synthesized template is deployed as is.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from orbits_nb.aws.accounts import DEFAULT_ROLE
from orbits_nb.aws.session import AWSError
from orbits_nb.aws.stack import Stack
from orbits_nb.core.action import Action
from orbits_nb.core.errors import InvalidArgument
from orbits_nb.core.workflow import Workflow

NODE_HINT = "install Node.js (Debian/Ubuntu: apt-get install nodejs)"
CDK_HINT = "install the CDK library into the app's Python: pip install 'orbits_nb[cdk]'"


class CDKError(AWSError):
    """The CDK app could not be synthesized (the message says what to install or fix)."""


class SynthesizeCDKApp(Action):
    """Step: run the CDK app ``app`` into ``out_dir``; return ``{stack: template path}``."""

    timeout = 900.0

    def main(self) -> Any:
        if shutil.which("node") is None:
            raise CDKError(f"synthesizing a CDK app needs Node.js: {NODE_HINT}",
                           code="NoNode", operation="cdk synth", status=0)
        app = Path(self.args["app"])
        out = Path(self.args["out_dir"])
        env = {**os.environ, "CDK_OUTDIR": str(out)}
        proc = subprocess.run([self.args["python"], str(app)], cwd=str(app.parent),
                              env=env, capture_output=True, text=True, check=False,
                              timeout=self.timeout)
        if proc.returncode != 0:
            why = proc.stderr.strip().splitlines()[-1:] or [f"exit {proc.returncode}"]
            hint = CDK_HINT if "No module named 'aws_cdk'" in proc.stderr else \
                "run it by hand to see the whole error"
            raise CDKError(f"the CDK app {str(app)!r} failed: {why[0]}; {hint}",
                           code="SynthFailed", operation="cdk synth", status=0)
        return templates(out)


def templates(out: Path) -> dict[str, str]:
    """The CloudFormation templates of a cloud assembly, by stack name."""
    try:
        manifest = json.loads((out / "manifest.json").read_text())
    except (OSError, ValueError) as err:
        raise CDKError(f"no cloud assembly in {out} ({err}); does the app call "
                       "app.synth()?", code="NoAssembly", operation="cdk synth",
                       status=0) from None
    found: dict[str, str] = {}
    for artifact in (manifest.get("artifacts") or {}).values():
        if artifact.get("type") == "aws:cloudformation:stack":
            props = artifact.get("properties") or {}
            name = props.get("stackName") or artifact.get("displayName")
            found[str(name)] = str(out / props["templateFile"])
    return found


class DeployCDKStack(Workflow):
    """Synthesize the Python CDK app ``app`` and deploy its stack ``stack`` as an
    :class:`~orbits_nb.aws.Stack` (drift, reconcile and uninstall included).

    The result is the Stack's: ``outputs`` and ``env``. A missing Node.js or CDK
    library fails the ``cdk-synth`` step with what to install.

    >>> await self.do("iac-deploy", DeployCDKStack(
    ...     app="infra/app.py", stack="AcmeBackend", account_id=account["account_id"],
    ...     region="eu-west-1"))                                     # doctest: +SKIP
    """

    def __init__(self, *, app: str, stack: str, account_id: str | None = None,
                 region: str | None = None, role_name: str = DEFAULT_ROLE,
                 out_dir: str | None = None, python: str | None = None,
                 parameters: dict[str, Any] | None = None) -> None:
        path = Path(app).expanduser().resolve() if isinstance(app, str) and app else None
        if path is None or not path.is_file():
            raise InvalidArgument(f"DeployCDKStack: app {app!r} is not an existing file (the "
                                  "CDK app's entry point, e.g. app.py)", argument="app")
        if not isinstance(stack, str) or not stack:
            raise InvalidArgument(f"DeployCDKStack: stack must name one of the app's stacks, "
                                  f"got {stack!r}", argument="stack")
        args: dict[str, Any] = {
            "app": str(path), "stack": stack, "region": region, "role_name": role_name,
            "out_dir": out_dir or str(path.parent / "cdk.out"),
            "python": python or sys.executable, "account_id": account_id,
            "parameters": parameters}
        super().__init__(**{k: v for k, v in args.items() if v is not None})

    async def define(self) -> Any:
        found = await self.do("cdk-synth", SynthesizeCDKApp(
            app=self.args["app"], out_dir=self.args["out_dir"], python=self.args["python"]))
        if self.args["stack"] not in found:
            raise InvalidArgument(f"the CDK app has no stack {self.args['stack']!r}; its "
                                  f"stacks: {', '.join(sorted(found)) or 'none'}",
                                  argument="stack")
        return await self.do("cdk-deploy", Stack(
            stack_name=self.args["stack"], template_file=found[self.args["stack"]],
            parameters=self.args.get("parameters"), account_id=self.args.get("account_id"),
            region=self.args.get("region"),
            role_name=self.args.get("role_name", DEFAULT_ROLE)))
