"""The :class:`Secret` wrapper: a value actions use and orbits_nb never shows or keeps."""

from __future__ import annotations

import os
from typing import Any

from orbits_nb.core import masking
from orbits_nb.core.errors import InvalidArgument
from orbits_nb.core.masking import MASK


class Secret:
    """A secret value: usable by actions, never persisted, printed or logged.

    ``Secret.from_env("SLACK_WEBHOOK_URL")`` reads the environment when revealed, so a
    run resumed in another process finds it again; ``Secret("xoxb-...", name="slack")``
    holds the value in memory only. The store records ``{"$secret": name}``.

    The value is masked (``****``) in every text orbits_nb writes or shows: the store,
    captured logs, recorded errors, exception messages, executed notebooks, alerts.
    For that a literal value is remembered when the secret is created, and an
    environment value when the secret is created or revealed (see
    :mod:`orbits_nb.core.masking` for why that memory is shared by the whole process).
    Values shorter than four characters are not masked.

    A secret read back from the store (a replayed result, a recorded argument) is a
    ``Secret`` again: an environment-backed one reveals as before; a literal one keeps
    its name but not its value, and revealing it says so.

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
        known = value if value is not None else os.environ.get(env or "")
        if known:
            masking.remember(known)

    @classmethod
    def from_env(cls, variable: str, *, name: str | None = None) -> Secret:
        """A secret read from the environment variable ``variable`` when used."""
        return cls(name=name, env=variable)

    env = from_env

    @classmethod
    def _recorded(cls, name: str, env: str | None = None) -> Secret:
        """The secret a record refers to: by variable, or by name only (no value)."""
        if env:
            return cls(name=name, env=env)
        secret = cls.__new__(cls)
        secret._value, secret.env_var, secret.name = None, None, name
        return secret

    def reveal(self) -> str:
        """The secret's value. Raise if it comes from an unset variable."""
        if self._value is not None:
            return self._value
        if self.env_var is None:
            raise InvalidArgument(
                f"secret {self.name!r} was read back from the store, which never holds a "
                "secret's value, so this copy has none; pass the secret again "
                f"(ob.Secret(value, name={self.name!r})), or give it as "
                "ob.Secret.from_env('VARIABLE') so replays and resumes can read it",
                secret=self.name,
            )
        value = os.environ.get(self.env_var)
        if value is None:
            raise InvalidArgument(
                f"secret {self.name!r} reads the environment variable {self.env_var}, "
                "which is not set; export it and run again",
                secret=self.name,
            )
        masking.remember(value)
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
    return Secret(value, name=name, env=env) if value is not None else Secret._recorded(
        name, env)
