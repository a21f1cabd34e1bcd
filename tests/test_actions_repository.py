"""GitRepository as an agent: local bare repositories and GitHub (a fake API on loopback)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from aws_helpers import assert_nowhere
from fake_git_api import FakeGitAPI

import orbits_nb as ob
from orbits_nb.actions import GitRepository

TOKEN = "ghp_" + "r3p0" * 10


class Repo(ob.Workflow):
    async def define(self) -> Any:
        return await self.do("git", GitRepository(**self.args))


def test_a_local_repository_drifts_on_branch_and_description_and_is_put_back(
        engine: ob.Engine, tmp_path: Path) -> None:
    result = Repo(name="acme", location=str(tmp_path), description="Acme backend",
                  default_branch="trunk").run(engine=engine)
    path = tmp_path / "acme.git"
    assert result["clone_url"] == path.as_uri()
    assert ob.drift(engine=engine).ok
    subprocess.run(["git", "--git-dir", str(path), "symbolic-ref", "HEAD",
                    "refs/heads/main"], check=True)
    (path / "description").write_text("renamed by hand\n")
    report = ob.drift(engine=engine)
    assert {d.path: d.actual for d in report.drifted[0].diffs} == {
        "default_branch": "main", "description": "renamed by hand"}
    report.reconcile()
    assert ob.drift(engine=engine).ok
    assert (path / "description").read_text() == "Acme backend\n"


def test_an_existing_repository_is_adopted_with_its_settings_fixed(
        engine: ob.Engine, tmp_path: Path) -> None:
    subprocess.run(["git", "init", "--quiet", "--bare", "--initial-branch=main",
                    str(tmp_path / "acme.git")], check=True)
    Repo(name="acme", location=str(tmp_path), default_branch="trunk").run(engine=engine)
    head = subprocess.run(["git", "--git-dir", str(tmp_path / "acme.git"), "symbolic-ref",
                           "--short", "HEAD"], capture_output=True, text=True, check=True)
    assert head.stdout.strip() == "trunk"


def test_a_github_repository_made_public_by_hand_is_made_private_again(
        engine: ob.Engine, state_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_TOKEN", TOKEN)
    with FakeGitAPI(TOKEN) as api:
        args = {"name": "acme-backend", "provider": "github", "owner": "acme-group",
                "token": ob.Secret.from_env("GIT_TOKEN"), "api_url": api.base + "/gh"}
        Repo(**args).run(engine=engine)
        api.repos["acme-group/acme-backend"]["private"] = False
        report = ob.drift(engine=engine)
        assert [(d.path, d.actual) for d in report.drifted[0].diffs] == [("private", False)]
        report.reconcile()
        assert api.repos["acme-group/acme-backend"]["private"] is True
        assert [r["method"] for r in api.requests].count("PATCH") == 1
    assert_nowhere(TOKEN, state_path, store=state_path)
