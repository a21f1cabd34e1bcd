"""How the store writes values: canonical JSON and text, known secrets masked."""

from __future__ import annotations

from typing import Any

from orbits_nb.core.masking import mask
from orbits_nb.core.serde import dumps, loads, mask_json


def json_text(value: Any) -> str | None:
    """``value`` as canonical JSON with every known secret masked (None stays NULL)."""
    return None if value is None else mask_json(dumps(value))


def text(value: str | None) -> str | None:
    """A free text with every known secret masked."""
    return None if value is None else mask(value)


def json_value(text_: str | None) -> Any:
    """A JSON column read back (NULL is None)."""
    return loads(text_)
