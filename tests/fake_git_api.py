"""A tiny GitHub + GitLab REST API on 127.0.0.1, enough for CreateGitRepo's calls.

GitHub lives under ``/gh`` and GitLab under ``/gl/api/v4``. Both check the token
(``Authorization: Bearer`` / ``PRIVATE-TOKEN``) and record every request (with its
arrival time, ``at``); ``fail_next`` answers failures first, with headers if asked.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

USER = "alice"


class FakeGitAPI:
    def __init__(self, token: str) -> None:
        self.token = token
        self.repos: dict[str, dict[str, Any]] = {}
        self.requests: list[dict[str, Any]] = []
        #: Answers to give first: a status, or (status, headers) for e.g. Retry-After.
        self.fail_next: list[int | tuple[int, dict[str, str]]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeGitAPI:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- routing ---------------------------------------------------------------------
    def handle(self, method: str, path: str, headers: dict[str, str],
               body: Any) -> tuple[int, Any, dict[str, str]]:
        self.requests.append({"method": method, "path": path, "headers": headers,
                              "body": body, "at": time.monotonic()})
        if self.fail_next:
            failure = self.fail_next.pop(0)
            status, extra = failure if isinstance(failure, tuple) else (failure, {})
            return status, {"message": "injected failure"}, extra
        status, reply = self._route(method, path, headers, body)
        return status, reply, {}

    def _route(self, method: str, path: str, headers: dict[str, str],
               body: Any) -> tuple[int, Any]:
        if path.startswith("/gh/"):
            if headers.get("authorization") != f"Bearer {self.token}":
                return 401, {"message": "Bad credentials"}
            return self._github(method, path[3:], body)
        if path.startswith("/gl/api/v4/"):
            if headers.get("private-token") != self.token:
                return 401, {"message": "401 Unauthorized"}
            return self._gitlab(method, path[len("/gl/api/v4"):], body)
        return 404, {"message": "Not Found"}

    def _github(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        if method == "GET" and path == "/user":
            return 200, {"login": USER}
        if method == "GET" and path.startswith("/repos/"):
            full = unquote(path[len("/repos/"):])
            return (200, self.repos[full]) if full in self.repos else (404, {})
        if method == "POST" and (path == "/user/repos" or path.startswith("/orgs/")):
            owner = USER if path == "/user/repos" else path.split("/")[2]
            full = f"{owner}/{body['name']}"
            if full in self.repos:
                return 422, {"message": "Repository creation failed.",
                             "errors": [{"message": "name already exists on this account"}]}
            self.repos[full] = {"full_name": full, "private": body["private"],
                                "html_url": f"https://github.example/{full}",
                                "clone_url": f"https://github.example/{full}.git",
                                "default_branch": "main"}
            return 201, self.repos[full]
        if method == "PATCH" and path.startswith("/repos/"):
            full = unquote(path[len("/repos/"):])
            if full not in self.repos:
                return 404, {"message": "Not Found"}
            self.repos[full].update(body)
            return 200, self.repos[full]
        return 404, {"message": "Not Found"}

    def _gitlab(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        if method == "GET" and path == "/user":
            return 200, {"username": USER}
        if method == "GET" and path.startswith("/projects/"):
            full = unquote(path[len("/projects/"):])
            return (200, self.repos[full]) if full in self.repos else (404, {})
        if method == "GET" and path.startswith("/namespaces/"):
            return 200, {"id": 42, "full_path": unquote(path[len("/namespaces/"):])}
        if method == "POST" and path == "/projects":
            full = f"{'acme-group' if body['namespace_id'] == 42 else USER}/{body['path']}"
            if full in self.repos:
                return 400, {"message": {"name": ["has already been taken"]}}
            self.repos[full] = {"path_with_namespace": full,
                                "visibility": body["visibility"],
                                "web_url": f"https://gitlab.example/{full}",
                                "http_url_to_repo": f"https://gitlab.example/{full}.git",
                                "default_branch": body["default_branch"]}
            return 201, self.repos[full]
        return 404, {"message": "404 Not Found"}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, reply, extra = api.handle(method, self.path, headers, body)
                data = json.dumps(reply).encode()
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def do_PATCH(self) -> None:
                self._serve("PATCH")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
