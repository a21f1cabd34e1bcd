"""Masking of secret values in every text that leaves orbits_nb's hands.

The values come from one registry per process, filled by :class:`orbits_nb.Secret`
(a literal secret when it is created, an environment-backed one when it is created
with its variable set and whenever it is revealed) and by the runbook runner (the
secret parameters of a notebook). Every boundary calls :func:`mask`: the event log
and every other table, captured logs, recorded errors and tracebacks, orbits_nb's
exception messages, console output, executed notebooks and alert texts.

Why one registry for the whole process rather than one per engine: a secret revealed
anywhere in the process can end up in any text the process emits (a traceback, a log
line, an exception raised through several engines, a notebook output), and the code
that writes that text cannot know which engine or which run the value came from.
Masking is idempotent and touches no file, so sharing it is safe.

Values shorter than :data:`MIN_LENGTH` characters are not masked: replacing every
``"a"`` or ``"42"`` would shred ordinary text and tell anybody which value is the
secret.
"""

from __future__ import annotations

import html
import json
import re
import threading
from collections.abc import Iterable
from typing import Protocol

MASK = "****"
MIN_LENGTH = 4


def _forms(value: str) -> set[str]:
    """The ways ``value`` is spelled in the texts we mask (JSON, HTML, repr)."""
    forms = {value, json.dumps(value, ensure_ascii=False)[1:-1], json.dumps(value)[1:-1],
             html.escape(value), html.escape(value, quote=False), repr(value)[1:-1]}
    return {form for form in forms if len(form) >= MIN_LENGTH}


class _Registry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: set[str] = set()
        self._forms: list[str] = []
        self._pattern: re.Pattern[str] | None = None

    def remember(self, values: Iterable[str]) -> None:
        wanted = {v for v in values if isinstance(v, str) and len(v) >= MIN_LENGTH}
        if wanted <= self._values:
            return
        with self._lock:
            fresh = wanted - self._values
            self._values |= fresh
            forms = set(self._forms)
            for value in fresh:
                forms |= _forms(value)
            # Longest first: at one position the longest spelling wins.
            self._forms = sorted(forms, key=lambda f: (-len(f), f))
            self._pattern = re.compile("|".join(map(re.escape, self._forms)))

    def values(self) -> set[str]:
        with self._lock:
            return set(self._values)

    def clear(self) -> None:
        with self._lock:
            self._values, self._forms, self._pattern = set(), [], None

    def mask(self, text: str) -> str:
        pattern = self._pattern
        if pattern is None or not text:
            return text
        return pattern.sub(MASK, text)

    def held_back(self, text: str) -> int:
        """How many characters at the end of ``text`` could start a secret."""
        longest = 0
        for form in self._forms:
            for size in range(min(len(form) - 1, len(text)), longest, -1):
                if text.endswith(form[:size]):
                    longest = size
                    break
        return longest


_REGISTRY = _Registry()


def remember(*values: str) -> None:
    """Mask ``values`` from now on, everywhere in this process."""
    _REGISTRY.remember(values)


def remember_all(values: Iterable[str]) -> None:
    """:func:`remember` for an iterable of values."""
    _REGISTRY.remember(values)


def remembered() -> list[str]:
    """Every value remembered so far: what a child process (a subprocess step) hands
    back to its parent with its reply, so the parent masks them in the child's output."""
    return sorted(_REGISTRY.values())


def forget_all() -> None:
    """Forget every remembered value (test suites isolating one test from another)."""
    _REGISTRY.clear()


def mask(text: str) -> str:
    """``text`` with every known secret value replaced by ``****``."""
    return _REGISTRY.mask(text)


class _Writable(Protocol):
    def write(self, text: str, /) -> int: ...

    def flush(self) -> None: ...


class MaskingStream:
    """A text stream writer that masks secrets, even one split over several writes.

    The end of a write that could be the beginning of a secret is held back until the
    next write (or :meth:`close`) tells whether it is.
    """

    def __init__(self, stream: _Writable) -> None:
        self.stream = stream
        self._pending = ""

    def write(self, text: str) -> int:
        joined = self._pending + text
        keep = _REGISTRY.held_back(joined)
        ready, self._pending = joined[:len(joined) - keep], joined[len(joined) - keep:]
        if ready:
            self.stream.write(mask(ready))
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def close(self) -> None:
        """Write what was held back (nothing more can complete a secret)."""
        if self._pending:
            self.stream.write(mask(self._pending))
            self._pending = ""
        self.flush()
