"""Errors of runbooks, schedules and the scheduler (all rooted in OrbitsError)."""

from __future__ import annotations

from orbits_nb.core.errors import OrbitsError


class RunbookError(OrbitsError):
    """Base class of the runbook errors."""


class NotebookError(RunbookError):
    """A notebook cannot be used as a runbook: missing, unreadable or malformed."""


class ParameterError(RunbookError, ValueError):
    """A runbook parameter is unknown, missing, of the wrong type, or badly declared.

    Fields: ``notebook`` and ``parameter`` (the offending name, when there is one).
    """


class ScheduleError(RunbookError):
    """A schedule is invalid (bad cron expression, duplicate name) or unknown."""


class RunbookFailed(RunbookError):
    """A notebook run ended in failure (``NotebookRun.raise_for_status``).

    Fields: ``notebook_run_id``, ``cell`` (index in the runbook, or None),
    ``ename``, ``evalue`` and ``output_path``.
    """


class RunbookWarning(UserWarning):
    """A run departs from what papermill would do with the same input (an undeclared
    parameter injected, a value read by its declared type); the run goes on."""
