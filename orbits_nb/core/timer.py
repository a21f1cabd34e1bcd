"""Durable timers: the step that records when a ``sleep``/``wait_until`` is due.

The step's result is its due time, recorded once: executing the run again replays
it, so a restart waits only what is left, and a timer that is over never waits again.
"""

from __future__ import annotations

import math
import time
from datetime import datetime
from typing import Any

from orbits_nb.core.action import Action
from orbits_nb.core.errors import InvalidArgument, OrbitsError


class Due(Action):
    """Records the moment a timer is due: ``seconds`` from now, or the epoch ``at``."""

    def main(self) -> float:
        if self.args.get("at") is not None:
            return float(self.args["at"])
        return time.time() + float(self.args["seconds"])


class RunParked(OrbitsError):
    """The run stops here without ending, to be executed again from ``until`` (a
    durable timer or a watcher's pause on a worker, or a worker that drains): nothing
    ends it. Its fields ``until`` (epoch, None: at once), ``reason`` (``timer``,
    ``watcher``, ``drain``) and ``watcher`` (the step that waits) are recorded with
    ``run.parked``."""

    def parked(self) -> dict[str, Any]:
        """What ``run.parked`` records of it."""
        return {"until": self.fields.get("until"), "reason": self.fields.get("reason"),
                "watcher": self.fields.get("watcher")}


def seconds_of(value: Any) -> float:
    """``value`` as a number of seconds to sleep, refusing what is not one."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            math.isnan(value) or value < 0:
        raise InvalidArgument(f"sleep(name, seconds) needs a number of seconds of at "
                              f"least 0, got {value!r}")
    return float(value)


def epoch_of(when: Any) -> float:
    """``when`` (a timezone-aware datetime, or epoch seconds) as epoch seconds."""
    if isinstance(when, datetime):
        if when.tzinfo is None:
            raise InvalidArgument(f"wait_until(name, when) needs a timezone-aware "
                                  f"datetime (e.g. datetime(..., tzinfo=timezone.utc)), "
                                  f"got the naive {when!r}")
        return when.timestamp()
    if isinstance(when, bool) or not isinstance(when, (int, float)) or math.isnan(when):
        raise InvalidArgument(f"wait_until(name, when) needs a datetime or epoch seconds, "
                              f"got {when!r}")
    return float(when)
