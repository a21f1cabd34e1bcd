"""GitHub and GitLab repository creation through their REST APIs (used by CreateGitRepo)."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

from orbits_nb.actions._http import HTTPFailed, request

GITHUB_API = "https://api.github.com"
GITLAB_API = "https://gitlab.com/api/v4"


def github(args: dict[str, Any], log: logging.Logger) -> dict[str, Any]:
    """Find or create ``owner/name`` on GitHub (or GitHub Enterprise)."""
    api = str(args.get("api_url") or GITHUB_API).rstrip("/")
    headers = {"Authorization": f"Bearer {args['token'].reveal()}",
               "Accept": "application/vnd.github+json",
               "X-GitHub-Api-Version": "2022-11-28"}
    name = args["name"]
    login = str(_call("GET", f"{api}/user", headers, "GitHub user").json()["login"])
    owner = args.get("owner") or login
    found = _call("GET", f"{api}/repos/{quote(owner)}/{quote(name)}", headers,
                  f"GitHub repository {owner}/{name}", ok=(404,))
    created = False
    if found.status == 404:
        target = f"{api}/user/repos" if owner == login else f"{api}/orgs/{quote(owner)}/repos"
        body = {"name": name, "private": args.get("private", True),
                "description": args.get("description", ""), "auto_init": False}
        reply = _call("POST", target, headers, f"GitHub repository {owner}/{name}",
                      payload=body, ok=(422,))
        if reply.status == 422:  # maybe created meanwhile by someone else: use theirs
            reply = _meanwhile(reply, f"{api}/repos/{quote(owner)}/{quote(name)}", headers,
                               f"GitHub repository {owner}/{name}")
        else:
            created = True
            log.info("created GitHub repository %s/%s", owner, name)
        found = reply
    repo = found.json()
    return {"provider": "github", "name": name, "full_name": repo["full_name"],
            "url": repo.get("html_url"), "clone_url": repo.get("clone_url"),
            "default_branch": repo.get("default_branch") or args.get("default_branch",
                                                                      "main"),
            "created": created}


def gitlab(args: dict[str, Any], log: logging.Logger) -> dict[str, Any]:
    """Find or create project ``owner/name`` on GitLab (or a self-managed GitLab)."""
    api = str(args.get("api_url") or GITLAB_API).rstrip("/")
    headers = {"PRIVATE-TOKEN": args["token"].reveal()}
    name = args["name"]
    owner = args.get("owner") or str(
        _call("GET", f"{api}/user", headers, "GitLab user").json()["username"])
    path = f"{owner}/{name}"
    found = _call("GET", f"{api}/projects/{quote(path, safe='')}", headers,
                  f"GitLab project {path}", ok=(404,))
    created = False
    if found.status == 404:
        namespace = _call("GET", f"{api}/namespaces/{quote(owner, safe='')}", headers,
                          f"GitLab namespace {owner}").json()
        body = {"name": name, "path": name, "namespace_id": namespace["id"],
                "visibility": "private" if args.get("private", True) else "public",
                "description": args.get("description", ""),
                "default_branch": args.get("default_branch", "main")}
        reply = _call("POST", f"{api}/projects", headers, f"GitLab project {path}",
                      payload=body, ok=(400,))
        if reply.status == 400:  # maybe "has already been taken": created meanwhile
            reply = _meanwhile(reply, f"{api}/projects/{quote(path, safe='')}", headers,
                               f"GitLab project {path}")
        else:
            created = True
            log.info("created GitLab project %s", path)
        found = reply
    project = found.json()
    return {"provider": "gitlab", "name": name, "full_name": project["path_with_namespace"],
            "url": project.get("web_url"), "clone_url": project.get("http_url_to_repo"),
            "default_branch": project.get("default_branch") or args.get("default_branch",
                                                                         "main"),
            "created": created}


def _meanwhile(refused: Any, url: str, headers: dict[str, str], label: str) -> Any:
    """The repository a refused creation collided with, or the refusal as an error."""
    found = _call("GET", url, headers, label, ok=(404,))
    if found.status != 404:
        return found
    detail = " ".join(refused.body.decode(errors="replace").split())[:300]
    raise HTTPFailed(f"{label}: creation refused (HTTP {refused.status}): {detail}",
                     status=refused.status, target=label)


def _call(method: str, url: str, headers: dict[str, str], label: str,
          payload: Any = None, ok: tuple[int, ...] = ()) -> Any:
    try:
        return request(method, url, label=label, headers=headers, payload=payload, ok=ok)
    except HTTPFailed as err:
        if err.fields.get("status") in (401, 403):
            raise HTTPFailed(f"{label}: the token was refused (HTTP {err.fields['status']}); "
                             "check it is valid and may create repositories",
                             status=err.fields["status"], target=label) from None
        raise
