"""A local Slack-compatible webhook receiver, for demos and tests.

>>> with WebhookReceiver() as hook:              # doctest: +SKIP
...     os.environ["SLACK_WEBHOOK_URL"] = hook.url
...     ...                                      # run something that alerts
...     hook.payloads[0]["text"]

It listens on 127.0.0.1 only, answers like Slack (``200 ok``), and can be told to
answer a series of failures first (``fail_with=[429, 500]``) to exercise retries.
Payloads can also be appended to a JSON-lines file.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any


class WebhookReceiver:
    """An HTTP server on loopback that records every JSON payload posted to it.

    The URL carries a random path token, like a real webhook URL, so it is a secret
    worth checking for leaks.
    """

    def __init__(self, *, fail_with: Iterable[int] = (), retry_after: float | None = None,
                 record_to: str | Path | None = None) -> None:
        self.payloads: list[Any] = []
        self.requests: list[dict[str, Any]] = []
        self.failures = list(fail_with)
        self.retry_after = retry_after
        self.record_to = Path(record_to) if record_to else None
        self.token = secrets.token_urlsafe(24)
        self._lock = threading.Lock()
        self._received = threading.Condition(self._lock)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._url: str | None = None

    @property
    def url(self) -> str:
        """The webhook URL (a secret: its path carries the token)."""
        if self._url is None:
            raise RuntimeError("the webhook receiver is not started")
        return self._url

    @property
    def address(self) -> str:
        """``http://127.0.0.1:PORT`` (the URL without its secret path)."""
        return self.url.rsplit("/services/", 1)[0]

    def start(self) -> WebhookReceiver:
        if self._server is None:
            self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
            self._server.daemon_threads = True
            port = self._server.server_address[1]
            self._url = f"http://127.0.0.1:{port}/services/{self.token}"
            self._thread = threading.Thread(target=self._server.serve_forever,
                                            name="webhook-receiver", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def wait_for(self, count: int = 1, timeout: float = 30.0) -> list[Any]:
        """Block until ``count`` payloads arrived (or ``timeout``); return them all."""
        with self._received:
            self._received.wait_for(lambda: len(self.payloads) >= count, timeout)
            return list(self.payloads)

    def _answer(self, path: str, body: bytes) -> tuple[int, str]:
        with self._received:
            try:
                payload = json.loads(body.decode() or "null")
            except ValueError:
                payload = None
            self.requests.append({"path": path, "payload": payload})
            if not path.endswith(self.token):
                return 404, "no_service"
            if self.failures:
                return self.failures.pop(0), "failure requested by the test"
            if not isinstance(payload, dict) or not payload.get("text"):
                return 400, "no_text"
            self.payloads.append(payload)
            if self.record_to is not None:
                with self.record_to.open("a", encoding="utf-8") as out:
                    out.write(json.dumps(payload) + "\n")
            self._received.notify_all()
            return 200, "ok"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                status, text = receiver._answer(self.path, self.rfile.read(length))
                self.send_response(status)
                if status == 429 and receiver.retry_after is not None:
                    self.send_header("Retry-After", str(receiver.retry_after))
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(text.encode())

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet: the URL path is the secret token

        return Handler
