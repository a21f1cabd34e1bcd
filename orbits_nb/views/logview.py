"""The run-wide log: every step's lines, nested runs included, in time order.

Each line carries its time, level (``stdout``, ``stderr``, or the logging level of a
record), step path and attempt; a line of an attempt that did not end normally
(interrupted, abandoned) says so. The monitor shows a window over the filtered lines
(:func:`window`), so a run with 50,000 lines sends only what is on screen; the
static report shows the last lines (:func:`tail`). ``run.logs()`` is unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from orbits_nb.core.rows import LogLine
from orbits_nb.core.state import fold

if TYPE_CHECKING:
    from orbits_nb.core.storage import Store

LEVELS = ("stdout", "stderr", "debug", "info", "warning", "error", "critical")
_RECORD_LEVELS = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}
#: Lines the monitor sends at most at once.
WINDOW = 200
#: Seconds between two reads of a live run's lines.
REFRESH = 1.0
#: Attempt outcomes a line is labelled with (its output never mixes into the next).
MARKED = frozenset({"interrupted", "abandoned", "cancelled"})


def level_of(line: LogLine) -> str:
    """``stdout``/``stderr`` for printed output, the level of a logging record."""
    if line.stream == "log":
        first = line.message.split(" ", 1)[0]
        return first.lower() if first in _RECORD_LEVELS else "info"
    return line.stream if line.stream in ("stdout", "stderr") else line.stream.lower()


def _clock(ts: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts)) + f".{int(ts % 1 * 1000):03d}"


@dataclass
class Entry:
    """One line as the log view shows it."""

    ts: float
    step: str
    attempt: int | None
    level: str
    message: str
    #: How the line's attempt ended when that is news (``interrupted``...), else "".
    outcome: str = ""

    def as_dict(self, index: int) -> dict[str, Any]:
        where = self.step or "(run)"
        if self.attempt:
            where += f" #{self.attempt}"
        if self.outcome:
            where += f" ({self.outcome})"
        return {"i": index, "ts": self.ts, "clock": _clock(self.ts), "step": self.step,
                "attempt": self.attempt, "level": self.level, "where": where,
                "outcome": self.outcome, "message": self.message}


def entries(lines: Iterable[tuple[str, LogLine]],
            outcomes: dict[tuple[str, int], str] | None = None) -> list[Entry]:
    """Lines (each with its step path) interleaved by time; ties keep their order."""
    marks = outcomes or {}
    out = [Entry(line.ts, path, line.attempt, level_of(line), line.message,
                 marks.get((path, line.attempt or 0), ""))
           for path, line in lines]
    out.sort(key=lambda e: e.ts)
    return out


@dataclass
class Query:
    """What the log view asks for: levels (empty: all), a step, a text, a window."""

    levels: frozenset[str] = frozenset()
    step: str = ""
    text: str = ""
    #: Index of the first line of the window among the matches; -1: the last lines.
    offset: int = -1
    size: int = WINDOW

    @classmethod
    def of(cls, data: dict[str, Any]) -> Query:
        """From the widget's ``log_query`` (anything malformed falls back)."""
        levels = data.get("levels") or ()
        size = data.get("size")
        offset = data.get("offset")
        return cls(frozenset(str(v) for v in levels if str(v) in LEVELS),
                   str(data.get("step") or ""), str(data.get("text") or ""),
                   offset if isinstance(offset, int) and offset >= -1 else -1,
                   size if isinstance(size, int) and 1 <= size <= 2000 else WINDOW)

    def matches(self, entry: Entry) -> bool:
        if self.levels and entry.level not in self.levels:
            return False
        if self.step and entry.step != self.step and not entry.step.startswith(
                self.step + "/"):
            return False
        return not self.text or self.text.lower() in entry.message.lower()


def window(all_entries: list[Entry], query: Query) -> dict[str, Any]:
    """The matching lines in ``query``'s window, and what the filters can choose."""
    matched = [e for e in all_entries if query.matches(e)]
    total = len(matched)
    first = max(0, total - query.size) if query.offset < 0 else min(query.offset, total)
    shown = matched[first:first + query.size]
    return {"lines": [e.as_dict(first + i) for i, e in enumerate(shown)],
            "first": first, "matched": total, "total": len(all_entries),
            "steps": sorted({e.step for e in all_entries if e.step}),
            "levels": [lv for lv in LEVELS if any(e.level == lv for e in all_entries)],
            "following": query.offset < 0}


def tail(all_entries: list[Entry], count: int = 200) -> tuple[list[dict[str, Any]], int]:
    """The last ``count`` lines, and how many there are."""
    shown = all_entries[-count:]
    start = len(all_entries) - len(shown)
    return [e.as_dict(start + i) for i, e in enumerate(shown)], len(all_entries)


@dataclass
class LogFeed:
    """The run-wide log of one run (nested runs included), read from the store at
    most every :data:`REFRESH` seconds while the run is live, once when it ended."""

    store: Store
    run_id: str
    flush: Callable[[], None] | None = None
    _entries: list[Entry] = field(default_factory=list)
    _read_at: float = -REFRESH
    _every: float = REFRESH
    _final: bool = False

    def read(self, live: bool) -> list[Entry]:
        """The lines now: re-read at most every few seconds while the run is live, once
        more when it ended (its last lines), then not until it is live again."""
        now = time.monotonic()
        if (now - self._read_at < self._every) if live else self._final:
            return self._entries
        if self.flush is not None:
            self.flush()
        self._entries = run_entries(self.store, self.run_id)
        took = time.monotonic() - now
        # A big log costs more to read: read it less often, never most of the time.
        self._every = max(REFRESH, 4 * took)
        self._read_at, self._final = time.monotonic(), not live
        return self._entries


def run_entries(store: Store, run_id: str) -> list[Entry]:
    """Every line of ``run_id`` and its nested runs, labelled by attempt outcome."""
    lines: list[tuple[str, LogLine]] = []
    outcomes: dict[tuple[str, int], str] = {}
    for rid in store.run_tree(run_id):
        prefix = rid[len(run_id) + 1:] + "/" if rid != run_id else ""
        for line in store.logs(rid):
            lines.append((prefix + line.step if line.step else prefix.rstrip("/"), line))
        for key, step in fold(rid, store.load_run(rid)).steps.items():
            for span in step.spans:
                if span.status in MARKED:
                    outcomes[(prefix + key, span.attempt)] = span.status
    return entries(lines, outcomes)
