"""AWS building blocks: accounts, CloudFormation stacks, and running in an account.

``Account`` and ``Stack`` are resources (drift, reconcile, uninstall); the actions
``CreateAWSAccount`` and ``DeployStack`` do the same work once, without a record.

>>> from orbits_nb.aws import CreateAWSAccount, DeployStack, AccountExecutor
>>> class Deploy(ob.Workflow):                                     # doctest: +SKIP
...     async def define(self):
...         account = await self.do("aws-create", CreateAWSAccount(
...             name="acme", email="aws+acme@example.com"))
...         return await self.do("iac-deploy", DeployStack(
...             stack_name="acme-backend", template_file="backend.yaml"),
...             executor=AccountExecutor(account_id=account["account_id"]))

Clients come from :func:`client` / :class:`AWS`, which follow the standard AWS
configuration (profiles, environment, ``AWS_ENDPOINT_URL``), so the same code runs
against AWS or a local emulator (:class:`Emulator`, moto's server on loopback).
boto3 is imported on first use, not when this package is imported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from orbits_nb._lazy import lazy_exports

if TYPE_CHECKING:
    from orbits_nb.aws.account import Account
    from orbits_nb.aws.accounts import AccountCreationFailed, CreateAWSAccount
    from orbits_nb.aws.action import AWSAction
    from orbits_nb.aws.cdk import CDKError, DeployCDKStack
    from orbits_nb.aws.emulator import Emulator
    from orbits_nb.aws.executor import AccountExecutor
    from orbits_nb.aws.session import AWS, AWSError, client, current
    from orbits_nb.aws.stack import Stack
    from orbits_nb.aws.stacks import DeployStack, StackFailed

_LAZY = {
    "CDKError": "orbits_nb.aws.cdk",
    "DeployCDKStack": "orbits_nb.aws.cdk",
    "Account": "orbits_nb.aws.account",
    "Stack": "orbits_nb.aws.stack",
    "AWS": "orbits_nb.aws.session",
    "AWSError": "orbits_nb.aws.session",
    "client": "orbits_nb.aws.session",
    "current": "orbits_nb.aws.session",
    "AWSAction": "orbits_nb.aws.action",
    "CreateAWSAccount": "orbits_nb.aws.accounts",
    "AccountCreationFailed": "orbits_nb.aws.accounts",
    "DeployStack": "orbits_nb.aws.stacks",
    "StackFailed": "orbits_nb.aws.stacks",
    "AccountExecutor": "orbits_nb.aws.executor",
    "Emulator": "orbits_nb.aws.emulator",
}

__all__ = [
    "AWS",
    "AWSAction",
    "AWSError",
    "Account",
    "AccountCreationFailed",
    "AccountExecutor",
    "CDKError",
    "CreateAWSAccount",
    "DeployCDKStack",
    "DeployStack",
    "Emulator",
    "Stack",
    "StackFailed",
    "client",
    "current",
]


__getattr__ = lazy_exports(__name__, _LAZY, globals())
