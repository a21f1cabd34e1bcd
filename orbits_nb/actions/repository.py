"""``GitRepository``: a git repository as an agent (local bare, or on GitHub).

Its install is the :class:`~orbits_nb.actions.git.CreateGitRepo` step; drift covers the
default branch and the description (and the visibility of a GitHub repository), which
reconcile puts back in a ``settings`` step.
"""

from __future__ import annotations

import shutil
from typing import Any
from urllib.parse import quote

from orbits_nb.actions.git import CreateGitRepo, GitError, _git, _is_bare_repo, local_path
from orbits_nb.core.action import Action
from orbits_nb.core.drift import FieldDiff
from orbits_nb.core.errors import InvalidArgument
from orbits_nb.core.serde import Secret
from orbits_nb.resources.agent import Agent

#: What ``git init`` writes in a bare repository's description file.
GIT_DEFAULT_DESCRIPTION = "Unnamed repository; edit this file 'description' to name the"
GITHUB_API = "https://api.github.com"


def _git_bin() -> str:
    git = shutil.which("git")
    if git is None:
        raise GitError("GitRepository needs the git command on PATH")
    return git


class _GitHub:
    """The GitHub calls of one repository (token from a Secret, never stored)."""

    def __init__(self, args: dict[str, Any]) -> None:
        self.api = str(args.get("api_url") or GITHUB_API).rstrip("/")
        self.headers = {"Authorization": f"Bearer {args['token'].reveal()}",
                        "Accept": "application/vnd.github+json"}
        self.args = args

    def url(self) -> str:
        from orbits_nb.actions._hosted import _call

        owner = self.args.get("owner") or str(_call(
            "GET", f"{self.api}/user", self.headers, "GitHub user").json()["login"])
        return f"{self.api}/repos/{quote(owner)}/{quote(self.args['name'])}"

    def get(self) -> dict[str, Any] | None:
        from orbits_nb.actions._hosted import _call

        reply = _call("GET", self.url(), self.headers, "GitHub repository", ok=(404,))
        return None if reply.status == 404 else dict(reply.json())

    def patch(self, fields: dict[str, Any]) -> None:
        from orbits_nb.actions._hosted import _call

        _call("PATCH", self.url(), self.headers, "GitHub repository", payload=fields)


class GitSettings(Action):
    """Step: set a repository's default branch, description (and visibility)."""

    def main(self) -> Any:
        wanted = self.args["settings"]
        if self.args.get("provider", "local") == "github":
            _GitHub(self.args).patch(dict(wanted))
            return wanted
        git = _git_bin()
        path = local_path(self.args["location"]) / f"{self.args['name']}.git"
        if "default_branch" in wanted:
            _git(git, "--git-dir", str(path), "symbolic-ref", "HEAD",
                 f"refs/heads/{wanted['default_branch']}")
        if "description" in wanted:
            (path / "description").write_text(wanted["description"] + "\n")
        return wanted


class GitRepository(Agent):
    """A git repository: a bare one under ``location``, or ``provider="github"``.

    Identity: the bare repository's path, or ``github:<owner>/<name>``. Desired state:
    ``default_branch`` and ``description`` (and ``private`` on GitHub). Install creates
    it (adopting an existing one), update applies the settings that drifted.

    >>> await self.do("git", ob.actions.GitRepository(name="acme-backend",
    ...                                               location="/srv/git"))  # doctest: +SKIP
    """

    def __init__(self, *, name: str, location: str | None = None, provider: str = "local",
                 owner: str | None = None, token: Secret | None = None,
                 api_url: str | None = None, private: bool = True, description: str = "",
                 default_branch: str = "main") -> None:
        if provider not in ("local", "github"):
            raise InvalidArgument(f"GitRepository: provider must be 'local' or 'github', got "
                                  f"{provider!r}; for GitLab use CreateGitRepo",
                                  argument="provider")
        create = CreateGitRepo(name=name, location=location, provider=provider, owner=owner,
                               token=token, api_url=api_url, private=private,
                               description=description, default_branch=default_branch)
        super().__init__(**create.args)

    def _create(self) -> CreateGitRepo:
        return CreateGitRepo(**self.args)

    def identity(self) -> str:
        if self.args.get("provider", "local") == "github":
            return f"github:{self.args.get('owner') or '~'}/{self.args['name']}"
        return str(local_path(self.args["location"]) / f"{self.args['name']}.git")

    def desired(self) -> Any:
        state = {"default_branch": self.args.get("default_branch", "main"),
                 "description": self.args.get("description", "")}
        if self.args.get("provider", "local") == "github":
            state["private"] = self.args.get("private", True)
        return state

    def observe(self) -> Any:
        if self.args.get("provider", "local") == "github":
            repo = _GitHub(self.args).get()
            if repo is None:
                return None
            return {"default_branch": repo.get("default_branch"),
                    "description": repo.get("description") or "",
                    "private": bool(repo.get("private"))}
        git = _git_bin()
        path = local_path(self.args["location"]) / f"{self.args['name']}.git"
        if not path.exists() or not _is_bare_repo(git, path):
            return None
        head = _git(git, "--git-dir", str(path), "symbolic-ref", "--short", "HEAD").strip()
        text = (path / "description").read_text().strip() \
            if (path / "description").exists() else ""
        return {"default_branch": head,
                "description": "" if text.startswith(GIT_DEFAULT_DESCRIPTION) else text}

    def _settings(self, fields: list[str]) -> GitSettings:
        where = ("name", "location", "provider", "owner", "token", "api_url")
        return GitSettings(settings={f: self.target[f] for f in fields},
                           **{k: v for k, v in self.args.items() if k in where})

    async def install(self) -> Any:
        created = await self.do("create", self._create())
        after = await self.call(self.observe)
        fields = [f for f in self.target if after is not None and after.get(f) != self.target[f]]
        if fields:  # an adopted repository with other settings
            await self.do("settings", self._settings(fields))
        return created

    async def update(self, diff: list[FieldDiff]) -> Any:
        fields = sorted({d.path.split(".")[0] for d in diff if d.path in self.target})
        await self.do("settings", self._settings(fields))
        return None
