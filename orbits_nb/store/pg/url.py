"""Team store locations: ``postgresql://user[:password]@host[:port]/database``.

The password is never shown: :func:`describe` is what messages, logs and the store
keep. A URL without a password leaves it to libpq (``PGPASSWORD``, ``~/.pgpass``).
"""

from __future__ import annotations

from typing import TypeGuard
from urllib.parse import urlsplit

from orbits_nb.core.errors import InvalidArgument

SCHEMES = ("postgresql://", "postgres://")


def is_url(location: object) -> TypeGuard[str]:
    """Whether ``location`` names a PostgreSQL store rather than a DuckDB file."""
    return isinstance(location, str) and location.lower().startswith(SCHEMES)


def describe(url: str) -> str:
    """``url`` without its password (nor any query option that could hold one)."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return "postgresql://<unreadable URL>"
    netloc = host or ""
    if ":" in netloc:
        netloc = f"[{netloc}]"
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    if port:
        netloc += f":{port}"
    return f"{parts.scheme}://{netloc}{parts.path}"


def target(url: str) -> tuple[str, str]:
    """``(host, database)`` of ``url``, for messages."""
    parts = urlsplit(url)
    return parts.hostname or "localhost", parts.path.lstrip("/") or "(default database)"


def check(url: str) -> str:
    """``url`` if it is a usable PostgreSQL URL, else :class:`InvalidArgument`."""
    shown = describe(url)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError as err:
        raise InvalidArgument(
            f"the team store URL {shown} is not valid ({_safe(str(err), url)}); write it "
            "as postgresql://user@host:5432/database", location=shown) from None
    if not parts.path.strip("/"):
        raise InvalidArgument(
            f"the team store URL {shown} names no database; add one, e.g. "
            f"{shown.rstrip('/')}/orbits", location=shown)
    if parts.fragment:
        raise InvalidArgument(f"the team store URL {shown} has a '#' part; percent-encode "
                              "a '#' in the password as %23", location=shown)
    return url


def _safe(text: str, url: str) -> str:
    """``text`` with the password of ``url`` taken out."""
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    return text.replace(password, "***") if password else text


def scrub(text: str, url: str) -> str:
    """``text`` (e.g. a driver's message) with the URL and its password taken out."""
    return _safe(text.replace(url, describe(url)), url)
