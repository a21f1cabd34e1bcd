"""Platform actions: git repositories, SQL migrations, chat alerts.

>>> from orbits_nb.actions import CreateGitRepo, RunSQLMigrations, SendSlackAlert
>>> class Onboard(ob.Workflow):                                    # doctest: +SKIP
...     async def define(self):
...         repo = await self.do("git-create", CreateGitRepo(
...             name="acme-backend", location="/srv/git"))
...         await self.do("sql-migrate", RunSQLMigrations(
...             folder="migrations", database="duckdb:///srv/acme.duckdb"))
...         await self.do("notify", SendSlackAlert(
...             webhook=ob.Secret.from_env("SLACK_WEBHOOK_URL"),
...             text=f"acme is ready: {repo['clone_url']}"))

Secrets (webhook URLs, tokens, database URLs with passwords) are given as
:class:`orbits_nb.Secret` and never reach the store, logs or error messages.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from orbits_nb._lazy import lazy_exports

if TYPE_CHECKING:
    from orbits_nb.actions._http import HTTPFailed, TransientHTTPError
    from orbits_nb.actions.git import CreateGitRepo, GitError
    from orbits_nb.actions.receiver import WebhookReceiver
    from orbits_nb.actions.repository import GitRepository
    from orbits_nb.actions.slack import SendSlackAlert
    from orbits_nb.actions.sql import MigrationError, RunSQLMigrations

_LAZY = {
    "CreateGitRepo": "orbits_nb.actions.git",
    "GitError": "orbits_nb.actions.git",
    "GitRepository": "orbits_nb.actions.repository",
    "RunSQLMigrations": "orbits_nb.actions.sql",
    "MigrationError": "orbits_nb.actions.sql",
    "SendSlackAlert": "orbits_nb.actions.slack",
    "HTTPFailed": "orbits_nb.actions._http",
    "TransientHTTPError": "orbits_nb.actions._http",
    "WebhookReceiver": "orbits_nb.actions.receiver",
}

__all__ = [
    "CreateGitRepo",
    "GitError",
    "GitRepository",
    "HTTPFailed",
    "MigrationError",
    "RunSQLMigrations",
    "SendSlackAlert",
    "TransientHTTPError",
    "WebhookReceiver",
]


__getattr__ = lazy_exports(__name__, _LAZY, globals())
