"""Canonical JSON for arguments, results and bags (and :class:`Secret` references).

Everything persisted goes through :func:`check_json` (which names the offending value)
and :func:`dumps` (canonical: sorted keys, no whitespace), so equal arguments always
produce the same run id and secrets never reach the store.

The event log uses :func:`dumps_record` and :func:`loads_record`, which give back
exactly what was written: integers of any size, floats as floats (``1.0`` stays a
float, ``-0.0`` keeps its sign), key order, every string, and each :class:`Secret`
as a :class:`Secret` again (a user dict whose key happens to be ``"$secret"`` is
escaped as ``"$$secret"`` in the record, so the two never meet).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import reprlib
from collections.abc import Iterator
from typing import Any

from orbits_nb.core import masking
from orbits_nb.core.errors import InvalidArgument
from orbits_nb.core.masking import MASK
from orbits_nb.core.secret import Secret

__all__ = ["MASK", "MAX_DEPTH", "Secret", "check_json", "digest", "dumps", "dumps_record",
           "loads", "loads_record", "mask_json", "masked", "secrets_in"]

#: Containers nested deeper than this are refused by :func:`check_json` (with a clear
#: error) instead of failing later in a JSON library's recursion limit.
MAX_DEPTH = 500


def check_json(value: Any, what: str) -> Any:
    """Return ``value`` as plain JSON data (tuples become lists), or raise.

    ``what`` names the value in the error, e.g. ``"argument 'tags' of CreateRepo"``.
    """
    try:
        return _check(value, 0)
    except _Bad as bad:
        raise bad.error(what) from None


class _Bad(Exception):
    """Raised inside :func:`_check`; the path is collected on the way out (it costs
    nothing while the value is fine)."""

    def __init__(self, value: Any, problem: str, advice: str = "") -> None:
        super().__init__(problem)
        self.value, self.problem, self.advice = value, problem, advice
        self.path: list[str | int] = []

    def error(self, what: str) -> InvalidArgument:
        path = ""
        for part in reversed(self.path):
            path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else part
        where = f"{what} at {path!r}" if path else what
        advice = self.advice or ("Pass only None, bool, int, float, str, lists and dicts "
                                 "with str keys (or orbits_nb.Secret).")
        return InvalidArgument(f"{where} {self.problem}: {_shown(self.value)} "
                               f"({type(self.value).__name__}). {advice}", path=path)


def _shown(value: Any) -> str:
    shown = _REPR.repr(value)
    return shown if len(shown) <= 80 else shown[:77] + "..."


_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 80
_REPR.maxlevel = 3


def _check(value: Any, depth: int) -> Any:
    kind = type(value)
    if kind is str:
        return value if value.isascii() else _text(value)
    if value is None or kind is bool or kind is int or kind is Secret:
        return value
    if kind is float or isinstance(value, float):
        if not math.isfinite(value):
            raise _Bad(value, "is not a finite number")
        return float(value)
    if isinstance(value, (list, tuple, dict)) and depth >= MAX_DEPTH:
        raise _Bad(value, f"is nested more than {MAX_DEPTH} levels deep",
                   "Flatten it, or store it as a JSON string.")
    if isinstance(value, (list, tuple)):
        items = []
        for index, item in enumerate(value):
            try:
                items.append(_check(item, depth + 1))
            except _Bad as bad:
                bad.path.append(index)
                raise
        return items
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise _Bad(key, "has a non-string key")
            try:
                out[_text(str.__str__(key))] = _check(item, depth + 1)
            except _Bad as bad:
                bad.path.append(key)
                raise
        return out
    if isinstance(value, (str, int, Secret)):  # subclasses: str enums, IntEnum, ...
        return _check(str.__str__(value) if isinstance(value, str) else
                      value if isinstance(value, Secret) else int(value), depth)
    raise _Bad(value, "is not JSON-serializable")


def _text(value: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _Bad(value, "is not valid Unicode text (it holds a lone surrogate, e.g. "
                   "from a file name that is not UTF-8)", "Decode such text with "
                   "errors='replace', or pass the raw bytes as hex or base64.") from None
    return value


def _default(value: Any) -> Any:
    if isinstance(value, Secret):
        return value.to_json()
    raise TypeError(f"{type(value).__name__} is not JSON-serializable")


def dumps(value: Any) -> str:
    """Canonical JSON text of already-checked data; secrets become references."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False, default=_default)


def dumps_record(value: Any) -> str:
    """JSON text of checked data for the event log: exact, not canonical, fast.

    Key order is kept, secrets become references and user keys spelled like the
    reference marker are escaped; :func:`loads_record` undoes both.
    """
    codec = _codec()
    text = codec.dumps(value)
    if _MARKER.search(text):  # rare: a secret, or a key that looks like its marker
        text = codec.dumps(_encode(value))
    return text


def loads(text: str | None) -> Any:
    """Plain JSON data of ``text`` (integers of any size stay integers)."""
    return None if text is None else _codec().loads(text)


def loads_record(text: str | None) -> Any:
    """The data :func:`dumps_record` wrote, with its secrets as :class:`Secret` again."""
    if text is None:
        return None
    value = _codec().loads(text)
    return _decode(value) if _MARKER.search(text) else value


#: The reference marker as a key (``"$secret":``), or an escaped one (``"$$secret":``).
_MARKER = re.compile(r'"\$+secret"\s*:')
_ESCAPED = re.compile(r"\$+secret")
#: orjson reads integers beyond 64 bits as floats; 19 digits in a row may be one.
_LONG_INT = re.compile(r"\d{19}")


def mask_json(text: str) -> str:
    """``text`` with every known secret masked, and still valid JSON if it was JSON.

    A secret that spells part of the JSON syntax itself (say ``1234`` inside the
    number ``12345``) would break the text if replaced there; then the secrets are
    masked in the parsed values instead.
    """
    out = masking.mask(text)
    if out == text or not text.startswith(("{", "[")):
        return out
    codec = _codec()
    try:
        codec.loads(out)
        return out
    except ValueError:
        pass
    try:
        value = codec.loads(text)
    except ValueError:  # it was never JSON
        return out
    return codec.dumps(_mask_values(value))


def _mask_values(value: Any) -> Any:
    if isinstance(value, str):
        return masking.mask(value)
    if isinstance(value, dict):
        return {masking.mask(k): _mask_values(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_values(v) for v in value]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        shown = masking.mask(str(value))
        return value if shown == str(value) else shown
    return value


def _encode(value: Any) -> Any:
    if isinstance(value, Secret):
        return value.to_json()
    if isinstance(value, dict):
        return {("$" + k if _ESCAPED.fullmatch(k) else k): _encode(v)
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        name = value.get("$secret")
        if isinstance(name, str) and set(value) <= {"$secret", "env"}:
            env = value.get("env")
            return Secret._recorded(name, env if isinstance(env, str) else None)
        return {(k[1:] if k.startswith("$$") and _ESCAPED.fullmatch(k) else k): _decode(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def _plain_dumps(value: Any) -> str:
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False,
                      default=_default)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (in an error message): escape it
        text = json.dumps(value, separators=(",", ":"), allow_nan=False, default=_default)
    return text


class _Codec:
    """JSON for the store's hot paths: orjson when installed (several times faster
    on the write path and when replaying long runs), the standard library for what
    orjson refuses or would change (integers beyond 64 bits, lone surrogates, very
    deep nesting)."""

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
            except TypeError:  # big int, lone surrogate, deep nesting, float subclass
                pass
        return _plain_dumps(value)

    def loads(self, text: str) -> Any:
        if self._orjson is not None and not _LONG_INT.search(text):
            try:
                return self._orjson.loads(text)
            except self._orjson.JSONDecodeError:  # deeper than orjson reads, or a
                pass                                # lone surrogate: json reads those
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
