"""Checks of the filters that select past runs (``ob.history``, ``orbits-nb runs``).

Every filter is checked where it enters, before any SQL, so a bad value is reported
by name instead of surfacing as a database error.

``since`` accepts:

* a :class:`datetime.datetime` (naive means local time) or a :class:`datetime.date`
  (local midnight);
* an ISO date or date-time string: ``"2026-11-01"``, ``"2026-11-01 14:00"``,
  ``"2026-11-01T14:00:00+02:00"``, ``"2026-11-01T12:00Z"``;
* an age, counted back from now: a :class:`datetime.timedelta` or a string such as
  ``"90s"``, ``"30m"``, ``"12h"``, ``"7d"``, ``"2w"``.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from typing import TYPE_CHECKING, Any

from orbits_nb.core.errors import InvalidArgument

if TYPE_CHECKING:
    from orbits_nb.core.rows import RunQuery

RUN_STATUSES = ("pending", "queued", "running", "succeeded", "failed", "cancelled")
#: Where a run can be started (``meta["source"]``).
RUN_SOURCES = ("kernel", "script", "cli", "runbook", "schedule", "worker")
#: The largest page of the run list.
MAX_PAGE = 1000

_AGE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_FORMS = ("an ISO date or date-time ('2026-11-01', '2026-11-01 14:00', "
          "'2026-11-01T14:00+02:00') or an age ('30m', '12h', '7d', '2w')")


def since_epoch(value: Any, label: str = "since", *, now: float | None = None) -> float:
    """``value`` (see the module docstring) as epoch seconds; InvalidArgument if it is none."""
    now = time.time() if now is None else now
    if isinstance(value, dt.datetime):
        return value.timestamp()
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day).timestamp()
    if isinstance(value, dt.timedelta):
        if value < dt.timedelta(0):
            raise InvalidArgument(f"{label}={value!r} is a negative age; give how long ago, "
                                  "e.g. timedelta(days=7)")
        return now - value.total_seconds()
    if not isinstance(value, str):
        raise InvalidArgument(f"{label}={value!r} ({type(value).__name__}) is not a date: "
                              f"give a datetime, a date, a timedelta, or {_FORMS}")
    text = value.strip()
    age = _AGE.match(text.lower())
    if age:
        return now - float(age.group(1)) * _UNIT_SECONDS[age.group(2)]
    try:
        return dt.datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise InvalidArgument(f"{label} {value!r} is not a date or time: use {_FORMS}",
                              value=value) from None


def check_limit(limit: Any, label: str = "limit") -> int | None:
    """A positive int, or None (no limit)."""
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InvalidArgument(f"{label}={limit!r} must be a positive integer (or None for "
                              "no limit)", value=limit)
    return limit


def check_status(status: Any, known: tuple[str, ...] = RUN_STATUSES,
                 label: str = "status") -> str | None:
    """None, or one of ``known``."""
    if status is None:
        return None
    if not isinstance(status, str) or status not in known:
        raise InvalidArgument(f"{label}={status!r} is not a status; use one of "
                              f"{', '.join(known)}", value=status)
    return status


def check_text(value: Any, label: str) -> str | None:
    """None, or a non-empty string (a workflow name, a run id...)."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidArgument(f"{label}={value!r} must be a non-empty string", value=value)
    return value


def check_run_query(query: RunQuery) -> None:
    """The filters and paging of one page of the run list (``Store.run_page``)."""
    check_status(query.status or None, RUN_STATUSES)
    check_status(query.source or None, RUN_SOURCES, "source")
    for label in ("workflow", "search"):
        if not isinstance(getattr(query, label), str):
            raise InvalidArgument(f"{label}={getattr(query, label)!r} must be a string",
                                  value=getattr(query, label))
    if query.had_failures not in (None, True, False):
        raise InvalidArgument(f"had_failures={query.had_failures!r} must be True, False "
                              "or None (either)", value=query.had_failures)
    if query.since is not None and (isinstance(query.since, bool) or
                                    not isinstance(query.since, (int, float))):
        raise InvalidArgument(f"since={query.since!r} must be epoch seconds (or None)",
                              value=query.since)
    if isinstance(query.offset, bool) or not isinstance(query.offset, int) or \
            query.offset < 0:
        raise InvalidArgument(f"offset={query.offset!r} must be a non-negative integer",
                              value=query.offset)
    if check_limit(query.limit) is None or query.limit > MAX_PAGE:
        raise InvalidArgument(f"limit={query.limit!r} must be at most {MAX_PAGE} runs a "
                              "page", value=query.limit)
