"""CreateGitRepo (bare repos, GitHub, GitLab) and SendSlackAlert, through the engine."""

from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path
from typing import Any

import pytest
from aws_helpers import assert_nowhere
from fake_git_api import FakeGitAPI

import orbits_nb as ob
from orbits_nb.actions import CreateGitRepo, SendSlackAlert, WebhookReceiver
from orbits_nb.actions.slack import MAX_TEXT
from orbits_nb.engine.table import records

TOKEN = "ghp_" + "t0k3n" * 8
ACTIONS = {"git": CreateGitRepo, "slack": SendSlackAlert}


class Step(ob.Workflow):
    async def define(self) -> Any:
        return await self.do(self.args["kind"], ACTIONS[self.args["kind"]](
            **self.args["kwargs"]))


class FastSlack(SendSlackAlert):
    retry = ob.Retry(attempts=4, delay=0.05, backoff=1.0,
                     on=SendSlackAlert.retry.on)


class Alert(ob.Workflow):
    async def define(self) -> Any:
        return await self.do("notify", FastSlack(webhook=self.args["webhook"],
                                                 text=self.args["text"]))


def run_step(engine: ob.Engine, kind: str, **kwargs: Any) -> ob.Run:
    run = engine.start(Step(kind=kind, kwargs=kwargs), fresh=True)
    with contextlib.suppress(ob.OrbitsError):
        run.wait(60)
    return run


def error_of(run: ob.Run) -> str:
    return str(run.state().ordered_steps()[0].error)


# -- CreateGitRepo, local -------------------------------------------------------------
def test_bare_repository_created_once(engine: ob.Engine, tmp_path: Path) -> None:
    first = run_step(engine, "git", name="acme-backend", location=str(tmp_path / "git")).wait()
    path = tmp_path / "git" / "acme-backend.git"
    assert first["created"] is True and first["clone_url"] == path.as_uri()
    assert first["default_branch"] == "main"
    out = subprocess.run(["git", "--git-dir", str(path), "rev-parse", "--is-bare-repository"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "true"
    # The repository is usable: clone it, push a commit, see it arrive.
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", first["clone_url"], str(clone)], check=True)
    (clone / "README.md").write_text("acme\n")
    git = ["git", "-C", str(clone), "-c", "user.name=t", "-c", "user.email=t@e.co"]
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "init"], check=True)
    subprocess.run([*git, "push", "-q", "origin", "HEAD:main"], check=True)
    # Same name, by file:// URL this time: found, not recreated, the commit still there.
    again = run_step(engine, "git", name="acme-backend",
                     location=(tmp_path / "git").as_uri()).wait()
    assert again["created"] is False and again["clone_url"] == first["clone_url"]
    log = subprocess.run(["git", "--git-dir", str(path), "log", "--oneline", "main"],
                         capture_output=True, text=True, check=True)
    assert "init" in log.stdout


def test_a_non_repository_in_the_way_fails_clearly(engine: ob.Engine, tmp_path: Path) -> None:
    (tmp_path / "acme-backend.git").mkdir()
    (tmp_path / "acme-backend.git" / "notes.txt").write_text("not a repo")
    run = run_step(engine, "git", name="acme-backend", location=str(tmp_path))
    assert run.status == "failed"
    assert "exists but is not a bare git repository" in error_of(run)
    assert (tmp_path / "acme-backend.git" / "notes.txt").read_text() == "not a repo"


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"name": "../escape", "location": "/tmp"}, "must be 1-100 letters"),
    ({"name": "x.git", "location": "/tmp"}, "nor end with '.git'"),
    ({"name": "acme"}, "needs location="),
    ({"name": "acme", "location": "https://github.com/acme"}, "provider='github'"),
    ({"name": "acme", "provider": "bitbucket"}, "is not one of"),
    ({"name": "acme", "provider": "github", "token": TOKEN}, "as an orbits_nb.Secret"),
    ({"name": "acme", "location": "/tmp", "default_branch": "a b"}, "not a valid branch"),
])
def test_git_arguments_are_checked(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ob.InvalidArgument, match=message):
        CreateGitRepo(**kwargs)


# -- CreateGitRepo, GitHub and GitLab -------------------------------------------------
@pytest.mark.parametrize("provider", ["github", "gitlab"])
def test_hosted_repository_created_once(provider: str, engine: ob.Engine,
                                        state_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_TOKEN", TOKEN)
    with FakeGitAPI(TOKEN) as api:
        base = api.base + ("/gh" if provider == "github" else "/gl/api/v4")
        kwargs = {"name": "acme-backend", "provider": provider, "owner": "acme-group",
                  "token": ob.Secret.from_env("GIT_TOKEN"), "api_url": base}
        first = run_step(engine, "git", **kwargs).wait()
        again = run_step(engine, "git", **kwargs).wait()
        api.fail_next = [502]  # a flaky API is retried
        third = run_step(engine, "git", **kwargs)
        assert third.wait()["created"] is False
        assert records(third.steps())[0]["attempts"] == 2
    assert first["created"] is True and again["created"] is False
    assert first["full_name"] == "acme-group/acme-backend"
    assert first["clone_url"].endswith("acme-group/acme-backend.git")
    assert list(api.repos) == ["acme-group/acme-backend"]
    creations = [r for r in api.requests if r["method"] == "POST"]
    assert len(creations) == 1
    visibility = creations[0]["body"].get("private", creations[0]["body"].get("visibility"))
    assert visibility in (True, "private")
    engine.close()
    assert_nowhere(TOKEN, state_path, store=state_path)


def test_a_refused_token_fails_without_retries(engine: ob.Engine,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_TOKEN", "wrong-token-value")
    with FakeGitAPI(TOKEN) as api:
        run = run_step(engine, "git", name="acme", provider="github",
                       token=ob.Secret.from_env("GIT_TOKEN"), api_url=api.base + "/gh")
    assert run.status == "failed" and records(run.steps())[0]["attempts"] == 1
    assert "the token was refused (HTTP 401)" in error_of(run)
    assert "wrong-token-value" not in error_of(run)


# -- SendSlackAlert ---------------------------------------------------------------------
def test_alert_is_posted(engine: ob.Engine, state_path: Path,
                         monkeypatch: pytest.MonkeyPatch) -> None:
    with WebhookReceiver() as hook:
        monkeypatch.setenv("SLACK_WEBHOOK_URL", hook.url)
        result = run_step(engine, "slack", webhook=ob.Secret.from_env("SLACK_WEBHOOK_URL"),
                          text="acme deployed", username="orbits").wait()
    assert hook.payloads == [{"text": "acme deployed", "username": "orbits"}]
    assert result["delivered"] is True and result["status"] == 200
    engine.close()
    assert_nowhere(hook.url, state_path, store=state_path)
    assert_nowhere(hook.token, state_path, store=state_path)


def test_429_and_5xx_are_retried(engine: ob.Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    with WebhookReceiver(fail_with=[429, 503], retry_after=0) as hook:
        monkeypatch.setenv("HOOK", hook.url)
        run = engine.start(Alert(webhook=ob.Secret.from_env("HOOK"), text="retry me"))
        assert run.wait(60)["attempt"] == 3
    assert hook.payloads == [{"text": "retry me"}]
    assert [r["payload"]["text"] for r in hook.requests] == ["retry me"] * 3
    assert records(run.steps())[0]["attempts"] == 3


def test_other_errors_fail_at_once_without_leaking_the_url(
        engine: ob.Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    with WebhookReceiver(fail_with=[403]) as hook:
        monkeypatch.setenv("HOOK", hook.url)
        run = engine.start(Alert(webhook=ob.Secret.from_env("HOOK"), text="nope"))
        with pytest.raises(ob.StepFailed) as caught:
            run.wait(60)
    assert records(run.steps())[0]["attempts"] == 1
    assert "webhook 'HOOK': HTTP 403" in str(caught.value)
    assert hook.token not in str(caught.value) and hook.token not in str(run.error)


def test_an_unreachable_webhook_is_retried_then_fails(engine: ob.Engine,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    hook = WebhookReceiver().start()
    url = hook.url
    hook.stop()  # nobody listens there any more
    monkeypatch.setenv("HOOK", url)
    run = engine.start(Alert(webhook=ob.Secret.from_env("HOOK"), text="lost"))
    with pytest.raises(ob.StepFailed, match="cannot reach the server"):
        run.wait(60)
    assert records(run.steps())[0]["attempts"] == 4


def test_alert_arguments_are_checked() -> None:
    with pytest.raises(ob.InvalidArgument, match="must be an orbits_nb.Secret"):
        SendSlackAlert(webhook="https://hooks.slack.com/services/x", text="hi")  # type: ignore[arg-type]
    with pytest.raises(ob.InvalidArgument, match="non-empty string"):
        SendSlackAlert(webhook=ob.Secret("https://x", name="w"), text=" ")
    long = SendSlackAlert(webhook=ob.Secret("https://x", name="w"), text="x" * 10_000)
    assert len(long.args["text"]) == MAX_TEXT and long.args["text"].endswith("…")
    assert "https://x" not in repr(long)
