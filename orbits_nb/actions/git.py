"""``CreateGitRepo``: a repository, created once, on a path or on GitHub / GitLab."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from orbits_nb.actions._http import TransientHTTPError, honouring_retry_after
from orbits_nb.core.action import Action, Retry
from orbits_nb.core.errors import InvalidArgument, OrbitsError
from orbits_nb.core.serde import Secret

PROVIDERS = ("local", "github", "gitlab")
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,99}$")
_BRANCH = re.compile(r"^[A-Za-z0-9._/-]{1,100}$")


class GitError(OrbitsError):
    """Creating or checking the repository failed (``repo`` names it)."""


class CreateGitRepo(Action):
    """Create repository ``name``, or find it if it already exists (idempotent by name).

    - ``provider="local"`` (default): a bare repository ``<location>/<name>.git``;
      ``location`` is a directory path or a ``file://`` URL.
    - ``provider="github"`` / ``"gitlab"``: through their REST APIs with ``token`` (an
      :class:`~orbits_nb.Secret`), under ``owner`` (an organization / group; the
      token's user when omitted). ``api_url`` points at GitHub Enterprise or a
      self-managed GitLab.

    The result is ``{"provider", "name", "full_name", "url", "clone_url",
    "default_branch", "created"}``; ``created`` is False when the repository existed.

    >>> CreateGitRepo(name="acme-backend", location="/srv/git")
    CreateGitRepo(name='acme-backend', location='/srv/git')
    """

    retry = Retry(attempts=4, delay=1.0, backoff=2.0, on=(TransientHTTPError,))
    timeout = 600.0

    def __init__(self, *, name: str, location: str | None = None, provider: str = "local",
                 owner: str | None = None, token: Secret | None = None,
                 api_url: str | None = None, private: bool = True, description: str = "",
                 default_branch: str = "main") -> None:
        if not isinstance(name, str) or not _NAME.match(name) or name.endswith(".git"):
            raise InvalidArgument(
                f"CreateGitRepo: name {name!r} must be 1-100 letters, digits, '.', '_' or "
                "'-', not start with '.' or '-', nor end with '.git'", argument="name")
        if provider not in PROVIDERS:
            raise InvalidArgument(f"CreateGitRepo: provider {provider!r} is not one of "
                                  f"{list(PROVIDERS)}", argument="provider")
        if not isinstance(default_branch, str) or not _BRANCH.match(default_branch):
            raise InvalidArgument(f"CreateGitRepo: default_branch {default_branch!r} is not "
                                  "a valid branch name", argument="default_branch")
        args: dict[str, Any] = {"name": name}
        if provider == "local":
            if not location:
                raise InvalidArgument("CreateGitRepo: provider 'local' needs location= (a "
                                      "directory or file:// URL)", argument="location")
            local_path(location)  # validates the form
            args["location"] = location
        else:
            if not isinstance(token, Secret):
                raise InvalidArgument(
                    f"CreateGitRepo: provider {provider!r} needs token= as an "
                    "orbits_nb.Secret (e.g. Secret.from_env('GITHUB_TOKEN')) so it is "
                    "never stored", argument="token")
            args.update(provider=provider, token=token)
            args.update({k: v for k, v in (("owner", owner), ("api_url", api_url))
                         if v is not None})
            if not private:
                args["private"] = False
        if description:
            args["description"] = description
        if default_branch != "main":
            args["default_branch"] = default_branch
        super().__init__(**args)

    def main(self) -> Any:
        provider = self.args.get("provider", "local")
        if provider == "local":
            return self._local()
        from orbits_nb.actions._hosted import github, gitlab

        with honouring_retry_after(self):  # rate limits answer 429 or 403 + Retry-After
            return (github if provider == "github" else gitlab)(self.args, self.log)

    def _local(self) -> dict[str, Any]:
        git = shutil.which("git")
        if git is None:
            raise GitError("CreateGitRepo needs the git command on PATH", repo=self.args["name"])
        path = local_path(self.args["location"]) / f"{self.args['name']}.git"
        branch = self.args.get("default_branch", "main")
        created = False
        if path.exists():
            if not _is_bare_repo(git, path):
                raise GitError(f"{path} exists but is not a bare git repository; move it "
                               "away or choose another name", repo=str(path))
            self.log.info("repository %s already exists", path)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            _git(git, "init", "--quiet", "--bare", f"--initial-branch={branch}", str(path))
            if self.args.get("description"):
                (path / "description").write_text(self.args["description"] + "\n")
            created = True
            self.log.info("created bare repository %s", path)
        head = _git(git, "--git-dir", str(path), "symbolic-ref", "--short", "HEAD").strip()
        return {"provider": "local", "name": self.args["name"], "full_name": str(path),
                "url": path.as_uri(), "clone_url": path.as_uri(), "default_branch": head,
                "created": created}


def local_path(location: str) -> Path:
    """The directory of a ``location`` given as a path or a ``file://`` URL."""
    if not isinstance(location, str) or not location.strip():
        raise InvalidArgument(f"CreateGitRepo: location {location!r} must be a directory "
                              "path or a file:// URL", argument="location")
    if "://" in location:
        parsed = urlparse(location)
        if parsed.scheme != "file" or parsed.netloc not in ("", "localhost"):
            raise InvalidArgument(
                f"CreateGitRepo: location {location!r} must be a local path or a file:// "
                "URL; for GitHub or GitLab pass provider='github' or 'gitlab'",
                argument="location")
        return Path(unquote(parsed.path))
    return Path(location).expanduser().resolve()


def _is_bare_repo(git: str, path: Path) -> bool:
    try:
        out = _git(git, "--git-dir", str(path), "rev-parse", "--is-bare-repository")
    except GitError:
        return False
    return out.strip() == "true"


def _git(git: str, *args: str) -> str:
    proc = subprocess.run([git, *args], capture_output=True, text=True, check=False,
                          timeout=120)
    if proc.returncode != 0:
        raise GitError(f"git {args[0]} failed: {proc.stderr.strip() or proc.returncode}",
                       repo=args[-1])
    return proc.stdout
