"""Canonical JSON for arguments, results and bags, and the :class:`Secret` wrapper.

Everything persisted goes through :func:`check_json` (which names the offending value)
and :func:`dumps` (canonical: sorted keys, no whitespace), so equal arguments always
produce the same run id and secrets never reach the store.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterator
from typing import Any

from orbits_nb.core.errors import InvalidArgument

MASK = "****"


class Secret:
    """A secret value: usable by actions, never persisted, printed or logged.

    ``Secret.env("SLACK_WEBHOOK_URL")`` reads the environment when revealed, so a run
    resumed in another process finds it again; ``Secret("xoxb-...", name="slack")``
    holds the value in memory only. The store records ``{"$secret": name}``.

    >>> token = Secret("s3cr3t", name="github")
    >>> token
    Secret('github', ****)
    """

    __slots__ = ("_value", "env_var", "name")

    def __init__(self, value: str | None = None, *, name: str | None = None,
                 env: str | None = None) -> None:
        if value is None and env is None:
            raise InvalidArgument("Secret needs a value or env='VARIABLE_NAME'")
        if value is not None and not isinstance(value, str):
            raise InvalidArgument(f"Secret value must be a str, got {type(value).__name__}")
        self._value = value
        self.env_var = env
        self.name = name or env or "secret"

    @classmethod
    def from_env(cls, variable: str, *, name: str | None = None) -> Secret:
        """A secret read from the environment variable ``variable`` when used."""
        return cls(name=name, env=variable)

    def reveal(self) -> str:
        """The secret's value. Raise if it comes from an unset variable."""
        if self._value is not None:
            return self._value
        assert self.env_var is not None
        value = os.environ.get(self.env_var)
        if value is None:
            raise InvalidArgument(
                f"secret {self.name!r} reads the environment variable {self.env_var}, "
                "which is not set; export it and run again",
                secret=self.name,
            )
        return value

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"$secret": self.name}
        if self.env_var:
            data["env"] = self.env_var
        return data

    def __repr__(self) -> str:
        return f"Secret({self.name!r}, {MASK})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and self.to_json() == other.to_json()

    def __hash__(self) -> int:
        return hash((self.name, self.env_var))

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickling ships the action to a subprocess executor (never to the store).
        return (_secret, (self._value, self.name, self.env_var))


def _secret(value: str | None, name: str, env: str | None) -> Secret:
    return Secret(value, name=name, env=env)


def check_json(value: Any, what: str) -> Any:
    """Return ``value`` as plain JSON data (tuples become lists), or raise.

    ``what`` names the value in the error, e.g. ``"argument 'tags' of CreateRepo"``.
    """
    return _check(value, what, "")


def _check(value: Any, what: str, path: str) -> Any:
    if value is None or isinstance(value, (bool, str, Secret)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _bad(what, path, value, "is not a finite number")
        return value
    if isinstance(value, (list, tuple)):
        return [_check(item, what, f"{path}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise _bad(what, path, key, "has a non-string key")
            out[key] = _check(item, what, f"{path}.{key}" if path else key)
        return out
    raise _bad(what, path, value, "is not JSON-serializable")


def _bad(what: str, path: str, value: Any, problem: str) -> InvalidArgument:
    where = f"{what} at {path!r}" if path else what
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return InvalidArgument(
        f"{where} {problem}: {shown} ({type(value).__name__}). Pass only None, bool, "
        "int, float, str, lists and dicts with str keys (or orbits_nb.Secret).",
        path=path,
    )


def _default(value: Any) -> Any:
    if isinstance(value, Secret):
        return value.to_json()
    raise TypeError(f"{type(value).__name__} is not JSON-serializable")


def dumps(value: Any) -> str:
    """Canonical JSON text of already-checked data; secrets become references."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False, default=_default)


def dumps_record(value: Any) -> str:
    """JSON text of checked data for the event log (not canonical, just fast)."""
    return _codec().dumps(value)


def loads(text: str | None) -> Any:
    return None if text is None else _codec().loads(text)


class _Codec:
    """JSON for the store's hot paths: orjson when installed (several times faster
    on the write path and when replaying long runs), the standard library otherwise."""

    def __init__(self) -> None:
        try:
            import orjson
        except ImportError:
            self._orjson: Any = None
        else:
            self._orjson = orjson

    def dumps(self, value: Any) -> str:
        if self._orjson is not None:
            try:
                return str(self._orjson.dumps(value, default=_default).decode())
            except TypeError:  # e.g. an int beyond 64 bits, which json handles
                pass
        return dumps(value)

    def loads(self, text: str) -> Any:
        if self._orjson is not None:
            return self._orjson.loads(text)
        return json.loads(text)


_CODEC: list[_Codec] = []


def _codec() -> _Codec:
    if not _CODEC:  # built on first use: importing orbits_nb stays free of it
        _CODEC.append(_Codec())
    return _CODEC[0]


def digest(value: Any, size: int = 12) -> str:
    """A short stable hash of canonical JSON data."""
    return hashlib.sha256(dumps(value).encode()).hexdigest()[:size]


def secrets_in(value: Any) -> Iterator[Secret]:
    """Every :class:`Secret` nested in ``value``."""
    if isinstance(value, Secret):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from secrets_in(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from secrets_in(item)


def masked(value: Any) -> Any:
    """``value`` with every secret replaced by the mask (for display)."""
    if isinstance(value, Secret):
        return MASK
    if isinstance(value, dict):
        return {k: masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(v) for v in value]
    return value
