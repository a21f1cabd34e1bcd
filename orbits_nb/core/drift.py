"""Drift: the field-level difference between a resource's desired and observed state.

Pure and fast: no I/O, no store. Both sides are first *normalized* (so values that
serialize differently but mean the same, like ``1`` and ``1.0``, a tuple and a list,
``b"x"`` and ``"x"``, an aware datetime and its UTC ISO text, compare equal), then
fields the resource declares *server-managed* are removed from both sides, then the
two trees are walked. Lists are compared by position, as multisets when declared
*unordered*, or matched element by element on a key field when declared *keyed*.

Paths read like Python: ``spec.tags[0]``, ``files["README.md"]``,
``columns[name=id].type``; an element of an unordered list is ``tags[]``.
Patterns for ``ignore``/``unordered``/``keys`` use the same syntax, where ``*``
matches one key or index and ``**`` any number of them:

>>> rules = Comparison(ignore=("mtime", "**.etag"), unordered=("tags",))
>>> [d.describe() for d in diff({"tags": ["a", "b"], "size": 1},
...                             {"tags": ["b", "a"], "size": 2.0, "mtime": 5}, rules)]
['size: 1 -> 2']
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import decimal
import enum
import json
import math
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any, Final

from orbits_nb.core.errors import InvalidArgument
from orbits_nb.core.serde import Secret, dumps

IN_SYNC: Final = "in_sync"
DRIFTED: Final = "drifted"
MISSING_STATUS: Final = "missing"
ERROR: Final = "error"
STATUSES: Final = (IN_SYNC, DRIFTED, MISSING_STATUS, ERROR)
#: The pseudo-path of a resource class whose ``version`` changed since it converged.
VERSION_PATH: Final = "$version"

_IDENT = re.compile(r"[A-Za-z_$][A-Za-z0-9_$-]*\Z")
_TOKEN = re.compile(r'\.?([A-Za-z_$*][A-Za-z0-9_$*-]*)|\[(\d+|\*|\*\*|)\]|\["((?:[^"\\]|\\.)*)"\]'
                    r"|\[([A-Za-z_][A-Za-z0-9_-]*)=([^\]]*)\]")


class _Absent:
    """A field that exists on one side only (``desired`` or ``actual``)."""

    _instance: _Absent | None = None

    def __new__(cls) -> _Absent:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "ABSENT"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:
        return "ABSENT"


ABSENT = _Absent()


@dataclass(frozen=True)
class Key:
    """A path segment naming the element of a keyed list whose ``field`` is ``value``."""

    field: str
    value: Any

    def __str__(self) -> str:
        return f"[{self.field}={_scalar_text(self.value)}]"


@dataclass(frozen=True)
class Element:
    """A path segment naming "an element of" an unordered list."""

    def __str__(self) -> str:
        return "[]"


Segment = str | int | Key | Element
Path = tuple[Segment, ...]


def _scalar_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def render_path(path: Iterable[Segment]) -> str:
    """``("files", "a.txt", 0)`` -> ``files["a.txt"][0]``; the root is ``""``."""
    out = ""
    for seg in path:
        if isinstance(seg, int):
            out += f"[{seg}]"
        elif isinstance(seg, (Key, Element)):
            out += str(seg)
        elif _IDENT.match(seg):
            out += f".{seg}" if out else seg
        else:
            out += "[" + json.dumps(seg) + "]"
    return out


def parse_pattern(text: str) -> Path:
    """Parse a path pattern; raise InvalidArgument naming the bad part."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidArgument(f"a field path must be a non-empty string, got {text!r}")
    segments: list[Segment] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos or (pos == 0 and text.startswith(".")):
            raise InvalidArgument(
                f"cannot parse field path {text!r} at {text[pos:]!r}; write paths like "
                "'spec.tags', 'items[0].name', 'files[\"a.txt\"]', 'columns[name=id]', "
                "with * and ** as wildcards", path=text)
        name, index, quoted, key_field, key_value = match.groups()
        if name is not None:
            segments.append(name)
        elif index is not None:
            segments.append(int(index) if index.isdigit() else (index or Element()))
        elif quoted is not None:
            segments.append(json.loads(f'"{quoted}"'))
        else:
            segments.append(Key(key_field, _key_value(key_value)))
        pos = match.end()
    return tuple(segments)


def _key_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def matches(pattern: Path, path: Path) -> bool:
    """Whether ``path`` matches ``pattern`` (``*`` one segment, ``**`` any number)."""
    if not pattern:
        return not path
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        return any(matches(rest, path[i:]) for i in range(len(path) + 1))
    if not path:
        return False
    seg = path[0]
    if head == "*":
        ok = True
    elif isinstance(head, Key):
        ok = isinstance(seg, Key) and seg == head
    elif isinstance(head, Element):
        ok = isinstance(seg, Element)
    else:
        ok = not isinstance(seg, (Key, Element)) and seg == head and type(seg) is type(head)
    return ok and matches(rest, path[1:])


@dataclass(frozen=True)
class Comparison:
    """How a resource's states are compared.

    ``ignore``: server-managed fields (ids, timestamps, sizes) left out of the
    comparison. ``unordered``: lists whose order carries no meaning. ``keys``: lists of
    objects matched on a key field (``{"columns": "name"}``), so reordering them is no
    drift and a change reads ``columns[name=id].type``.
    """

    ignore: tuple[str, ...] = ()
    unordered: tuple[str, ...] = ()
    keys: Mapping[str, str] = field(default_factory=dict)
    #: Relative tolerance for floats (serialization round trips, not real drift).
    rel_tol: float = 1e-9
    _ignore: tuple[Path, ...] = field(init=False, repr=False, compare=False)
    _unordered: tuple[Path, ...] = field(init=False, repr=False, compare=False)
    _keys: tuple[tuple[Path, str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("ignore", "unordered"):
            value = getattr(self, name)
            if isinstance(value, str) or not isinstance(value, (tuple, list, frozenset, set)):
                raise InvalidArgument(
                    f"Comparison({name}=...) must be a tuple of field paths, got {value!r}")
        if not isinstance(self.keys, Mapping) or not all(
                isinstance(v, str) and v for v in self.keys.values()):
            raise InvalidArgument(f"Comparison(keys=...) must map list paths to a key field "
                                  f"name, got {self.keys!r}")
        object.__setattr__(self, "_ignore", tuple(parse_pattern(p) for p in self.ignore))
        object.__setattr__(self, "_unordered",
                           tuple(parse_pattern(p) for p in self.unordered))
        object.__setattr__(self, "_keys",
                           tuple((parse_pattern(p), k) for p, k in self.keys.items()))

    def ignored(self, path: Path) -> bool:
        return any(matches(p, path) for p in self._ignore)

    def is_unordered(self, path: Path) -> bool:
        return any(matches(p, path) for p in self._unordered)

    def key_for(self, path: Path) -> str | None:
        for pattern, key in self._keys:
            if matches(pattern, path):
                return key
        return None


@dataclass(frozen=True)
class FieldDiff:
    """One difference: the field's path, its desired and its actual value.

    ``ABSENT`` on one side means the field exists on the other side only.
    """

    path: str
    desired: Any
    actual: Any

    @property
    def change(self) -> str:
        """``changed``, ``added`` (only in actual) or ``removed`` (only in desired)."""
        if self.desired is ABSENT:
            return "added"
        if self.actual is ABSENT:
            return "removed"
        return "changed"

    def describe(self, width: int = 60) -> str:
        return f"{self.path or '(root)'}: {_short(self.desired, width)} -> " \
               f"{_short(self.actual, width)}"

    def to_json(self) -> dict[str, Any]:
        """JSON form; an absent side is ``null`` and ``change`` says which."""
        return {"path": self.path, "change": self.change,
                "desired": None if self.desired is ABSENT else self.desired,
                "actual": None if self.actual is ABSENT else self.actual}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FieldDiff:
        change = data.get("change", "changed")
        return cls(str(data["path"]),
                   ABSENT if change == "added" else data.get("desired"),
                   ABSENT if change == "removed" else data.get("actual"))


def _short(value: Any, width: int) -> str:
    if value is ABSENT:
        return "(absent)"
    text = dumps(value) if not isinstance(value, str) else json.dumps(value)
    return text if len(text) <= width else text[: width - 1] + "…"


# -- normalization ----------------------------------------------------------------------
def normalize(value: Any, what: str = "state") -> Any:
    """Canonical JSON-like data for comparison; raise InvalidArgument naming the path."""
    return _norm(value, what, ())


def _norm(value: Any, what: str, path: Path) -> Any:
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, enum.Enum):
        return _norm(value.value, what, path)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, (float, decimal.Decimal)):
        return _number(value)
    if isinstance(value, Mapping):
        return {_dict_key(k, what, path): _norm(v, what, (*path, _dict_key(k, what, path)))
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_norm(v, what, (*path, i)) for i, v in enumerate(value)]
    if isinstance(value, (set, frozenset)):
        return sorted((_norm(v, what, (*path, Element())) for v in value), key=dumps)
    simple = _simple(value)
    if simple is not _UNKNOWN:
        return simple
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _norm(dataclasses.asdict(value), what, path)
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item) and type(value).__module__.startswith("numpy"):
        return _norm(item(), what, path)
    where = f" at {render_path(path)!r}" if path else ""
    raise InvalidArgument(
        f"{what}{where} holds a {type(value).__name__} ({value!r:.60}) that cannot be "
        "compared; return plain data (dict, list, str, int, float, bool, None) from "
        "desired()/observe()", path=render_path(path))


_UNKNOWN = object()


def _simple(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC)
        return value.isoformat()
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return _number(value.total_seconds())
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return "base64:" + base64.b64encode(raw).decode()
    if isinstance(value, (uuid.UUID, PurePath)):
        return str(value)
    if isinstance(value, Secret):
        return value.to_json()
    return _UNKNOWN


def _number(value: float | decimal.Decimal) -> Any:
    number = float(value)
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "Infinity" if number > 0 else "-Infinity"
    if number.is_integer() and abs(number) < 2**53:
        return int(number)
    return number


def _dict_key(key: Any, what: str, path: Path) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, enum.Enum):
        key = key.value
    if isinstance(key, (int, float, bool)) or key is None:
        return json.dumps(_number(key) if isinstance(key, float) else key)
    if isinstance(key, (uuid.UUID, PurePath)):
        return str(key)
    raise InvalidArgument(f"{what} at {render_path(path)!r} has a dict key of type "
                          f"{type(key).__name__} ({key!r:.40}); use str keys",
                          path=render_path(path))


# -- comparison ------------------------------------------------------------------------
def strip(value: Any, rules: Comparison, path: Path = ()) -> Any:
    """``value`` (normalized) without the fields ``rules`` ignores."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not rules.ignored((*path, k)):
                kept = strip(v, rules, (*path, k))
                # A container left empty only by ignored fields is server-managed too.
                if kept or not v or not isinstance(v, (dict, list)):
                    out[k] = kept
        return out
    if isinstance(value, list):
        seg_of = _element_segments(value, rules, path)
        return [strip(v, rules, (*path, seg)) for v, seg in zip(value, seg_of, strict=True)
                if not rules.ignored((*path, seg))]
    return value


def _element_segments(items: list[Any], rules: Comparison, path: Path) -> list[Segment]:
    key = rules.key_for(path)
    if key is not None:
        return [Key(key, item.get(key)) if isinstance(item, dict) and key in item else i
                for i, item in enumerate(items)]
    if rules.is_unordered(path):
        return [Element()] * len(items)
    return list(range(len(items)))


def diff(desired: Any, actual: Any, rules: Comparison | None = None) -> list[FieldDiff]:
    """Every field where ``actual`` differs from ``desired`` under ``rules``.

    >>> [d.to_json() for d in diff({"a": 1}, {"a": 1, "b": 2})]
    [{'path': 'b', 'change': 'added', 'desired': None, 'actual': 2}]
    """
    rules = rules or Comparison()
    out: list[FieldDiff] = []
    left = strip(normalize(desired, "desired state"), rules)
    right = strip(normalize(actual, "observed state"), rules)
    _walk(left, right, (), rules, out)
    return out


def _walk(d: Any, a: Any, path: Path, rules: Comparison, out: list[FieldDiff]) -> None:
    if d is ABSENT or a is ABSENT:
        out.append(FieldDiff(render_path(path), d, a))
    elif isinstance(d, dict) and isinstance(a, dict):
        for k in sorted(set(d) | set(a)):
            _walk(d.get(k, ABSENT), a.get(k, ABSENT), (*path, k), rules, out)
    elif isinstance(d, list) and isinstance(a, list):
        key = rules.key_for(path)
        if key is not None and _all_keyed(d, key) and _all_keyed(a, key):
            _walk_keyed(d, a, key, path, rules=rules, out=out)
        elif rules.is_unordered(path) or key is not None:
            _walk_unordered(d, a, path, out)
        else:
            for i in range(max(len(d), len(a))):
                _walk(d[i] if i < len(d) else ABSENT, a[i] if i < len(a) else ABSENT,
                      (*path, i), rules, out)
    elif not equal(d, a, rules.rel_tol):
        out.append(FieldDiff(render_path(path), d, a))


def _all_keyed(items: list[Any], key: str) -> bool:
    values = [dumps(item.get(key)) for item in items if isinstance(item, dict) and key in item]
    return len(values) == len(items) and len(set(values)) == len(values)


def _walk_keyed(d: list[Any], a: list[Any], key: str, path: Path, *, rules: Comparison,
                out: list[FieldDiff]) -> None:
    left = {dumps(item[key]): item for item in d}
    right = {dumps(item[key]): item for item in a}
    for text in sorted(set(left) | set(right)):
        item = left.get(text) or right[text]
        _walk(left.get(text, ABSENT), right.get(text, ABSENT),
              (*path, Key(key, item[key])), rules, out)


def _walk_unordered(d: list[Any], a: list[Any], path: Path, out: list[FieldDiff]) -> None:
    remaining = [dumps(x) for x in a]
    missing = []
    for item in d:
        text = dumps(item)
        if text in remaining:
            remaining.remove(text)
        else:
            missing.append(item)
    where = render_path((*path, Element()))
    out.extend(FieldDiff(where, item, ABSENT) for item in sorted(missing, key=dumps))
    extra = sorted((json.loads(t) for t in remaining), key=dumps)
    out.extend(FieldDiff(where, ABSENT, item) for item in extra)


def equal(d: Any, a: Any, rel_tol: float = 1e-9) -> bool:
    """Type-aware equality of normalized scalars (``True`` is not ``1``)."""
    if isinstance(d, bool) or isinstance(a, bool):
        return d is a
    if isinstance(d, (int, float)) and isinstance(a, (int, float)):
        if d == a:
            return True
        exact = isinstance(d, int) and isinstance(a, int)
        return not exact and math.isclose(d, a, rel_tol=rel_tol)
    return type(d) is type(a) and bool(d == a)


def verdict(desired: Any, actual: Any, rules: Comparison | None = None
            ) -> tuple[str, list[FieldDiff]]:
    """``(status, diffs)``: ``missing`` when ``actual`` is None, else in sync or drifted."""
    if actual is None:
        return MISSING_STATUS, []
    diffs = diff(desired, actual, rules)
    return (DRIFTED if diffs else IN_SYNC), diffs


def check_status(status: str) -> str:
    if status not in STATUSES:
        raise InvalidArgument(f"unknown drift status {status!r}; expected one of "
                              f"{', '.join(STATUSES)}", status=status)
    return status
