"""A small JSON-over-HTTP client (stdlib only) whose errors never carry URLs or tokens.

Webhook URLs are secrets, and so are the tokens in headers; exception messages end up
in the store, in logs and in executed notebooks, so they name a ``label`` instead.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from orbits_nb.core.errors import OrbitsError

USER_AGENT = "orbits-nb/0.1"


class HTTPFailed(OrbitsError):
    """A request was refused for good (4xx other than 429): retrying will not help.

    Fields: ``status`` (HTTP status) and ``target`` (what was called, never its URL
    when that is secret).
    """


class TransientHTTPError(Exception):
    """A request failed in a way worth retrying: 429, 5xx, timeout, connection error.

    Deliberately not an :class:`~orbits_nb.OrbitsError`: the engine retries it
    according to the action's ``retry`` policy.
    """

    def __init__(self, message: str, status: int = 0, retry_after: float | None = None
                 ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after

    def __reduce__(self) -> tuple[Any, ...]:
        return (TransientHTTPError, (str(self), self.status, self.retry_after))


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body.decode() or "null")


def request(method: str, url: str, *, label: str, headers: dict[str, str] | None = None,
            payload: Any = None, timeout: float = 30.0,
            ok: tuple[int, ...] = ()) -> Response:
    """Send one request; return the response if 2xx or listed in ``ok``.

    Raises :class:`TransientHTTPError` for 429/5xx/network failures and
    :class:`HTTPFailed` for other statuses. ``label`` names the target in errors.
    """
    if not url.startswith(("http://", "https://")):
        raise HTTPFailed(f"{label}: the URL must start with http:// or https://",
                         status=0, target=label)
    data = None if payload is None else json.dumps(payload).encode()
    all_headers = {"User-Agent": USER_AGENT, "Accept": "application/json",
                   **({"Content-Type": "application/json"} if data is not None else {}),
                   **(headers or {})}
    req = urllib.request.Request(url, data=data, method=method, headers=all_headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as reply:
            return Response(reply.status, dict(reply.headers.items()), reply.read())
    except urllib.error.HTTPError as err:
        body = err.read()
        response = Response(err.code, dict(err.headers.items()) if err.headers else {}, body)
    except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
        reason = getattr(err, "reason", err)
        raise TransientHTTPError(f"{label}: cannot reach the server "
                                 f"({type(reason).__name__})") from None
    if response.status in ok:
        return response
    detail = _detail(response.body)
    if response.status == 429 or response.status >= 500:
        raise TransientHTTPError(
            f"{label}: HTTP {response.status}{detail}", response.status,
            _retry_after(response.headers.get("Retry-After")))
    raise HTTPFailed(f"{label}: HTTP {response.status}{detail}", status=response.status,
                     target=label)


def _detail(body: bytes) -> str:
    text = body.decode(errors="replace").strip()
    try:
        data = json.loads(text)
        if isinstance(data, dict):
            text = str(data.get("message") or data.get("error") or text)
    except ValueError:
        pass
    text = " ".join(text.split())
    return f": {text[:300]}" if text else ""


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
