"""The actions' HTTP client against real local servers: what is retried, what is not,
Retry-After, and that no URL or token reaches an error, a log or the store."""

from __future__ import annotations

import contextlib
import email.utils
import json
import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aws_helpers import assert_nowhere
from fake_git_api import FakeGitAPI

import orbits_nb as ob
from orbits_nb.actions import CreateGitRepo, HTTPFailed, SendSlackAlert, TransientHTTPError
from orbits_nb.actions._http import request, retry_after
from orbits_nb.engine.table import records

TOKEN = "glpat-" + "s3cr3t" * 6
SECRET_PATH = "/services/T000/B000/" + "x" * 24


class Scripted:
    """A loopback HTTP server answering a script of (status, headers, body, delay)."""

    def __init__(self, *answers: tuple[int, dict[str, str], str] | tuple[
            int, dict[str, str], str, float]) -> None:
        self.answers = list(answers)
        self.seen: list[dict[str, Any]] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{SECRET_PATH}"

    def __enter__(self) -> Scripted:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        scripted = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                scripted.seen.append({"at": time.monotonic(), "path": self.path,
                                      "body": json.loads(body or b"null")})
                status, headers, text, *delay = (scripted.answers.pop(0) if
                                                 scripted.answers else (200, {}, "ok"))
                if delay:
                    time.sleep(delay[0])
                data = text.encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                with contextlib.suppress(OSError):  # the client may have given up
                    self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


def post(url: str, **kwargs: Any) -> Any:
    return request("POST", url, label="webhook 'HOOK'", payload={"text": "hi"}, **kwargs)


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_timeouts_rate_limits_and_server_errors_are_transient(status: int) -> None:
    with Scripted((status, {}, "busy")) as server:
        with pytest.raises(TransientHTTPError) as caught:
            post(server.url)
    assert caught.value.status == status
    assert str(caught.value) == f"webhook 'HOOK': HTTP {status}: busy"


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 410, 422])
def test_other_client_errors_fail_for_good(status: int) -> None:
    with Scripted((status, {}, '{"message": "no"}')) as server:
        with pytest.raises(HTTPFailed) as caught:
            post(server.url)
    assert caught.value.fields == {"status": status, "target": "webhook 'HOOK'"}
    assert str(caught.value) == f"webhook 'HOOK': HTTP {status}: no"
    assert isinstance(caught.value, ob.OrbitsError)  # so the engine never retries it


def test_a_rate_limited_403_is_transient_and_says_how_long() -> None:
    reset = str(int(time.time()) + 3600)
    with Scripted((403, {"Retry-After": "7"}, "secondary rate limit"),
                  (403, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset},
                   "API rate limit exceeded")) as server:
        with pytest.raises(TransientHTTPError) as first:
            post(server.url)
        with pytest.raises(TransientHTTPError) as second:
            post(server.url)
    assert first.value.retry_after == 7.0
    assert second.value.retry_after is not None and second.value.retry_after > 3000


def test_retry_after_as_seconds_or_as_an_http_date() -> None:
    now = 1_700_000_000.0
    assert retry_after("12", now) == 12.0
    assert retry_after(email.utils.formatdate(now + 30, usegmt=True), now) == 30.0
    assert retry_after(email.utils.formatdate(now - 30, usegmt=True), now) == 0.0
    assert retry_after("soon", now) is None
    assert retry_after(None, now) is None


def test_a_slow_server_and_a_closed_port_are_transient_and_name_no_url() -> None:
    with Scripted((200, {}, "late", 2.0)) as server:
        url = server.url
        with pytest.raises(TransientHTTPError, match=r"no answer within 0.2 s") as slow:
            post(url, timeout=0.2)
    with pytest.raises(TransientHTTPError, match="cannot reach the server") as closed:
        post(url)  # the server is gone: connection refused
    for err in (slow.value, closed.value):
        assert "127.0.0.1" not in str(err) and SECRET_PATH not in str(err)
        assert err.__cause__ is None and err.__context__ is None  # no library error inside


def test_an_echoed_url_or_token_is_masked_in_the_error() -> None:
    with Scripted((404, {}, "none"), (400, {}, "")) as server:
        server.answers = [(404, {}, f"no route for POST {SECRET_PATH}"),
                          (400, {}, json.dumps({"error": f"bad token Bearer {TOKEN}"}))]
        with pytest.raises(HTTPFailed) as path:
            post(server.url)
        with pytest.raises(HTTPFailed) as token:
            post(server.url, headers={"Authorization": f"Bearer {TOKEN}"})
    assert str(path.value) == "webhook 'HOOK': HTTP 404: no route for POST ****"
    assert TOKEN not in str(token.value) and "****" in str(token.value)


def test_a_url_that_cannot_be_sent_fails_for_good_without_naming_it() -> None:
    with pytest.raises(HTTPFailed, match="must start with http") as caught:
        request("POST", "ftp://example.invalid/x", label="webhook 'HOOK'")
    assert "example.invalid" not in str(caught.value)
    with pytest.raises(HTTPFailed, match="cannot be sent") as bad:
        request("POST", "http://[::1/services/secret-part", label="webhook 'HOOK'")
    assert "secret-part" not in str(bad.value)


class QuickSlack(SendSlackAlert):
    retry = ob.Retry(attempts=3, delay=0.01, backoff=1.0, on=SendSlackAlert.retry.on)


class Alert(ob.Workflow):
    async def define(self) -> Any:
        logging.getLogger("urllib3").setLevel(logging.DEBUG)  # a chatty runbook
        return await self.do("notify", QuickSlack(webhook=self.args["webhook"],
                                                  text=self.args["text"]))


@pytest.fixture
def debug_urllib3() -> Iterator[None]:
    logger = logging.getLogger("urllib3")
    level = logger.level
    yield
    logger.setLevel(level)


def test_a_webhook_waits_what_retry_after_asks(engine: ob.Engine, state_path: Path,
                                               monkeypatch: pytest.MonkeyPatch,
                                               debug_urllib3: None) -> None:
    with Scripted((503, {"Retry-After": "1"}, "maintenance"), (200, {}, "ok")) as server:
        monkeypatch.setenv("HOOK", server.url)
        run = engine.start(Alert(webhook=ob.Secret.from_env("HOOK"), text="deployed"))
        assert run.wait(60)["attempt"] == 2
    first, second = server.seen
    assert second["at"] - first["at"] >= 1.0  # the engine's own delay is 0.01 s
    logs = run.logs()
    assert "posted to webhook 'HOOK' (HTTP 200)" in logs
    engine.close()
    assert_nowhere(SECRET_PATH, state_path, store=state_path)


class QuickGit(CreateGitRepo):
    retry = ob.Retry(attempts=3, delay=0.01, backoff=1.0, on=CreateGitRepo.retry.on)


class Repo(ob.Workflow):
    async def define(self) -> Any:
        return await self.do("git-create", QuickGit(**self.args))


def test_a_git_api_rate_limit_is_waited_out_then_retried(engine: ob.Engine,
                                                         state_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    monkeypatch.setenv("GIT_TOKEN", TOKEN)
    with FakeGitAPI(TOKEN) as api:
        api.fail_next = [(429, {"Retry-After": "1"})]
        run = engine.start(Repo(name="acme", provider="gitlab", owner="acme-group",
                                token=ob.Secret.from_env("GIT_TOKEN"),
                                api_url=api.base + "/gl/api/v4"))
        result = run.wait(60)
    assert result["created"] is True
    assert records(run.steps())[0]["attempts"] == 2
    refused, retried = api.requests[0], api.requests[1]
    assert retried["at"] - refused["at"] >= 1.0
    engine.close()
    assert_nowhere(TOKEN, state_path, store=state_path)
