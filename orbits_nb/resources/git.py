"""Example resource: :class:`LocalGitRepo`, a local git repository via the ``git`` CLI."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from orbits_nb.core.drift import FieldDiff
from orbits_nb.core.errors import InvalidArgument
from orbits_nb.resources.base import Resource
from orbits_nb.resources.errors import ResourceError
from orbits_nb.resources.local import absolute


def _strings(value: dict[str, str] | None, what: str) -> dict[str, str]:
    value = dict(value or {})
    for key, item in value.items():
        if not isinstance(key, str) or not key or not isinstance(item, str):
            raise InvalidArgument(f"LocalGitRepo {what} must map names to str values, got "
                                  f"{key!r}: {item!r}")
    return value


class LocalGitRepo(Resource):
    """A git repository on this machine: bare or not, default branch, remotes, config.

    Remotes are compared by name (their order never counts); ``head`` (the current
    commit) is server-managed. Changing ``bare`` in place is refused: uninstall and
    create again.

    >>> repo = LocalGitRepo("/srv/git/acme.git", bare=True, branch="main",
    ...                     remotes={"origin": "https://example.com/acme.git"})
    """

    server_managed = ("head",)
    list_keys = {"remotes": "name"}

    def __init__(self, path: str | os.PathLike[str], *, branch: str = "main",
                 bare: bool = False, description: str | None = None,
                 remotes: dict[str, str] | None = None,
                 config: dict[str, str] | None = None) -> None:
        if not isinstance(branch, str) or not branch or branch.startswith("-"):
            raise InvalidArgument(f"LocalGitRepo branch must be a branch name, got {branch!r}")
        for key in config or {}:
            if "." not in key:
                raise InvalidArgument(f"LocalGitRepo config keys look like 'section.name', "
                                      f"got {key!r}")
        super().__init__(path=absolute(path, "LocalGitRepo"), branch=branch, bare=bool(bare),
                         description=description, remotes=_strings(remotes, "remotes"),
                         config=_strings(config, "config"))

    @property
    def path(self) -> Path:
        return Path(self.args["path"])

    def identity(self) -> str:
        return str(self.args["path"])

    def git(self, *args: str, check: bool = True) -> str:
        """Run ``git -C path args``; return stdout, or raise naming git's complaint."""
        if shutil.which("git") is None:
            raise ResourceError("LocalGitRepo needs the git program on PATH "
                                "(apt-get install git)", key=self.key())
        proc = subprocess.run(["git", "-C", str(self.path), *args], capture_output=True,
                              text=True, check=False, timeout=60,
                              env={**os.environ, "GIT_TERMINAL_PROMPT": "0"})
        if check and proc.returncode != 0:
            raise ResourceError(f"git {' '.join(args)} failed in {self.path}: "
                                f"{proc.stderr.strip() or proc.stdout.strip()}", key=self.key())
        return proc.stdout.strip() if proc.returncode == 0 else ""

    def desired(self) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "bare": self.args["bare"], "branch": self.args["branch"],
            "remotes": [{"name": n, "url": u} for n, u in self.args["remotes"].items()],
            "config": dict(self.args["config"])}
        if self.args.get("description") is not None:
            spec["description"] = self.args["description"]
        return spec

    def _git_dir(self) -> Path:
        return Path(self.git("rev-parse", "--absolute-git-dir"))

    def observe(self) -> dict[str, Any] | None:
        if not self.path.is_dir():
            return None
        inside = self.git("rev-parse", "--show-prefix", check=False)
        top = self.git("rev-parse", "--is-bare-repository", check=False)
        if not top or (top == "false" and inside):
            return None  # not a repository, or a sub-folder of another one
        state: dict[str, Any] = {
            "bare": top == "true",
            "branch": self.git("symbolic-ref", "--short", "HEAD", check=False),
            "remotes": self._remotes(),
            "config": {k: self.git("config", "--local", "--get", k, check=False) or None
                       for k in self.args["config"]},
            "head": self.git("rev-parse", "--verify", "-q", "HEAD", check=False) or None}
        if self.args.get("description") is not None:
            path = self._git_dir() / "description"
            state["description"] = path.read_text().strip() if path.exists() else None
        return state

    def _remotes(self) -> list[dict[str, str]]:
        names = self.git("remote", check=False).split()
        return [{"name": n, "url": self.git("remote", "get-url", n)} for n in names]

    def create(self) -> dict[str, Any]:
        target = self.target
        self.path.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q", *(["--bare"] if target["bare"] else []),
                 f"--initial-branch={target['branch']}", ".")
        self._apply(target, self._remotes())
        return self.output(None)

    def update(self, diff: list[FieldDiff]) -> None:
        target = self.target
        if any(d.path == "bare" for d in diff):
            raise ResourceError(f"{self.path} cannot switch between bare and non-bare in "
                                "place; uninstall it and converge again", key=self.key())
        if any(d.path == "branch" for d in diff):
            self.git("symbolic-ref", "HEAD", f"refs/heads/{target['branch']}")
        self._apply(target, self._remotes())

    def _apply(self, target: dict[str, Any], current: list[dict[str, str]]) -> None:
        have = {r["name"]: r["url"] for r in current}
        want = {r["name"]: r["url"] for r in target["remotes"]}
        for name in have.keys() - want.keys():
            self.git("remote", "remove", name)
        for name, url in want.items():
            if name not in have:
                self.git("remote", "add", name, url)
            elif have[name] != url:
                self.git("remote", "set-url", name, url)
        for key, value in target["config"].items():
            if value is None:
                self.git("config", "--local", "--unset", key, check=False)
            else:
                self.git("config", "--local", key, value)
        if "description" in target and target["description"] is not None:
            (self._git_dir() / "description").write_text(target["description"] + "\n")

    def delete(self) -> None:
        if self.observe() is None:
            if self.path.exists():
                raise ResourceError(f"{self.path} is not a git repository; not deleting it",
                                    key=self.key())
            return
        shutil.rmtree(self.path)

    def output(self, actual: Any) -> dict[str, Any]:
        return {"path": str(self.path), "url": self.path.as_uri(), "bare": self.args["bare"]}
