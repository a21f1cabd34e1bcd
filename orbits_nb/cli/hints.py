"""What the command line tells the user to do next.

Errors carry their next step twice (see :class:`orbits_nb.OrbitsError`): ``hint`` in
Python terms, ``cli_hint`` in ``orbits-nb`` terms. An error raised here, or recorded in
the store and shown by a command (``show``, ``runs``, a failed runbook), is printed
with its CLI hint in place of its Python hint.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from orbits_nb.core.errors import OrbitsError


def cli_message(message: str, fields: Mapping[str, Any] | None) -> str:
    """``message`` with its Python hint replaced by its CLI hint (or the CLI hint added)."""
    fields = fields or {}
    cli, hint = fields.get("cli_hint"), fields.get("hint")
    if not isinstance(cli, str) or not cli:
        return message
    if isinstance(hint, str) and hint and hint in message:
        return message.replace(hint, cli)
    return f"{message}; {cli}"


def swap_hint(text: str, fields: Mapping[str, Any] | None) -> str:
    """``text`` (a traceback, a cell output) with the Python hint replaced, if present."""
    fields = fields or {}
    cli, hint = fields.get("cli_hint"), fields.get("hint")
    if isinstance(cli, str) and cli and isinstance(hint, str) and hint:
        return text.replace(hint, cli)
    return text


def error_line(err: OrbitsError) -> str:
    """The one line ``orbits-nb`` prints for ``err``."""
    return cli_message(str(err), err.fields)


def recorded_fields(error: Mapping[str, Any] | None) -> dict[str, Any]:
    """The structured fields of an error recorded in the store (``error_info``)."""
    fields = (error or {}).get("fields")
    return dict(fields) if isinstance(fields, Mapping) else {}
