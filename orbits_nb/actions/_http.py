"""JSON over HTTP for the platform actions (requests), with errors that never carry URLs
or tokens.

Webhook URLs are secrets, and so are the tokens in headers; exception messages end up
in the store, in logs and in executed notebooks, so they name a ``label`` instead, and
anything of the request a server echoes back is masked. 408, 429, 5xx, a rate-limit
403, timeouts and connection failures raise :class:`TransientHTTPError` (the engine
retries it per the action's policy; :func:`honouring_retry_after` waits what the
server asked first); other answers outside 2xx raise :class:`HTTPFailed`, which is
never retried.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import logging
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from orbits_nb.core.errors import OrbitsError

if TYPE_CHECKING:
    from orbits_nb.core.action import Action

USER_AGENT = "orbits-nb/0.1"
#: A server's Retry-After is honoured up to this many seconds before the next attempt.
MAX_RETRY_AFTER = 30.0
#: urllib3 logs request paths at DEBUG level; a webhook's path is its secret.
_CHATTY_LOGGERS = ("urllib3.connectionpool", "urllib3.connection", "urllib3.util.retry")
_sending: ContextVar[bool] = ContextVar("orbits_nb_http_sending", default=False)


class HTTPFailed(OrbitsError):
    """A request was refused for good (a 4xx that is no timeout nor rate limit).

    Fields: ``status`` (HTTP status, 0 when no answer came) and ``target`` (what was
    called, never its URL when that is secret).
    """


class TransientHTTPError(Exception):
    """A request failed in a way worth retrying: 408, 429, 5xx, rate-limit 403, timeout,
    connection error.

    Deliberately not an :class:`~orbits_nb.OrbitsError`: the engine retries it
    according to the action's ``retry`` policy. ``retry_after`` holds the seconds a
    429/503 answer asked to wait (``Retry-After``), if any.
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
    """An answer: status, headers (names in lower case) and the raw body."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body.decode() or "null")


def request(method: str, url: str, *, label: str, headers: dict[str, str] | None = None,
            payload: Any = None, timeout: float = 30.0,
            ok: tuple[int, ...] = ()) -> Response:
    """Send one request; return the response if 2xx or listed in ``ok``.

    Raises :class:`TransientHTTPError` for 408/429/5xx/network failures and
    :class:`HTTPFailed` for other statuses. ``label`` names the target in errors.
    """
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise HTTPFailed(f"{label}: the URL must start with http:// or https://",
                         status=0, target=label)
    secrets = _secrets_of(url, headers or {})
    all_headers = {"User-Agent": USER_AGENT, "Accept": "application/json",
                   **(headers or {})}
    outcome = _send(method, url, all_headers, payload, timeout)
    if isinstance(outcome, str):  # the failure, described without the URL
        raise TransientHTTPError(f"{label}: {outcome}")
    if isinstance(outcome, HTTPFailed):
        raise HTTPFailed(f"{label}: {outcome.message}", status=0, target=label)
    if outcome.status in ok or 200 <= outcome.status < 300:
        return outcome
    detail = _mask(_detail(outcome.body), secrets)
    if _transient(outcome):
        raise TransientHTTPError(f"{label}: HTTP {outcome.status}{detail}", outcome.status,
                                 _wait_asked(outcome.headers))
    raise HTTPFailed(f"{label}: HTTP {outcome.status}{detail}", status=outcome.status,
                     target=label)


def _send(method: str, url: str, headers: dict[str, str], payload: Any,
          timeout: float) -> Response | HTTPFailed | str:
    """The response; or what went wrong, as text (transient) or HTTPFailed (for good).

    Nothing of the library's exceptions leaves this function: their messages and
    their chained causes carry the URL.
    """
    import requests
    from requests import exceptions as rex

    _quiet_urllib3()
    token = _sending.set(True)
    try:
        reply = requests.request(method, url, headers=headers, json=payload,
                                 timeout=timeout)
        return Response(reply.status_code, {k.lower(): v for k, v in reply.headers.items()},
                        reply.content)
    except rex.Timeout:
        return f"no answer within {timeout:g} s (timeout)"
    except rex.SSLError:
        return HTTPFailed("the TLS connection failed (certificate or protocol); check the "
                          "URL's host and its certificate")
    except rex.ConnectionError:
        return "cannot reach the server (connection failed)"
    except (rex.InvalidURL, rex.InvalidSchema, rex.MissingSchema, rex.URLRequired,
            rex.InvalidHeader, rex.TooManyRedirects, ValueError) as err:
        return HTTPFailed(f"the request cannot be sent ({type(err).__name__}); check the "
                          "URL and the headers")
    except (rex.RequestException, OSError) as err:  # a dropped or garbled answer
        return f"the request failed ({type(err).__name__})"
    finally:
        _sending.reset(token)


def _transient(reply: Response) -> bool:
    """408, 429 and 5xx; and a 403 that is a rate limit (GitHub answers those so)."""
    if reply.status in (408, 429) or reply.status >= 500:
        return True
    limited = ("retry-after" in reply.headers
               or reply.headers.get("x-ratelimit-remaining") == "0")
    return reply.status == 403 and limited


def _wait_asked(headers: dict[str, str]) -> float | None:
    """``Retry-After``, else the end of an exhausted rate limit (``X-RateLimit-Reset``)."""
    wait = retry_after(headers.get("retry-after"))
    if wait is None and headers.get("x-ratelimit-remaining") == "0":
        with contextlib.suppress(KeyError, ValueError):
            wait = max(0.0, float(headers["x-ratelimit-reset"]) - time.time())
    return wait


@contextlib.contextmanager
def honouring_retry_after(action: Action) -> Iterator[None]:
    """Wait what a 429/503 answer asked (``Retry-After``, capped) before it is retried.

    The engine's backoff is fixed per action class, so the wait the server asked for
    happens here, in the attempt that got the answer, unless it was the last one.
    """
    try:
        yield
    except TransientHTTPError as err:
        if err.retry_after and action.attempt < type(action).retry.attempts:
            time.sleep(min(err.retry_after, MAX_RETRY_AFTER))
        raise


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if value is None or not value.strip():
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


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


def _secrets_of(url: str, headers: dict[str, str]) -> list[str]:
    """What of a request must not appear in an error: the URL, its path, header values."""
    found = [url]
    with contextlib.suppress(ValueError):  # a malformed URL: requests refuses it anyway
        parts = urlsplit(url)
        found += [parts.path + (f"?{parts.query}" if parts.query else ""), parts.query]
    for value in headers.values():
        found += [value, value.split(" ", 1)[-1]]  # "Bearer <token>": the token alone too
    return sorted({s for s in found if len(s) >= 8}, key=len, reverse=True)


def _mask(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "****")
    return text


class _WhileSending(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not _sending.get()


_FILTER = _WhileSending()


def _quiet_urllib3() -> None:
    """Drop urllib3's records about our requests (they name the URL's path)."""
    for name in _CHATTY_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
