"""Runbooks: notebooks executed headlessly with papermill, recorded, resumed, scheduled.

>>> from orbits_nb import runbooks
>>> runbooks.parameters("notebooks/quickstart.ipynb")            # doctest: +SKIP
>>> nr = runbooks.run("notebooks/quickstart.ipynb", {"client": "acme"})  # doctest: +SKIP
>>> nr.status, nr.output_path, nr.workflow_runs                  # doctest: +SKIP
>>> runbooks.resume("DeployBackend-1a2b3c4d5e")                   # doctest: +SKIP

Inside a runbook, :func:`is_headless` and :func:`context` tell how it runs. Papermill
and nbclient are imported only when a notebook executes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from orbits_nb._lazy import lazy_exports
from orbits_nb.runbooks.errors import (
    NotebookError,
    ParameterError,
    RunbookError,
    RunbookFailed,
    RunbookWarning,
    ScheduleError,
)
from orbits_nb.runbooks.kernel import Context, context, is_headless

if TYPE_CHECKING:
    from orbits_nb.runbooks.execute import prepare, run
    from orbits_nb.runbooks.parameters import Parameter, Signature
    from orbits_nb.runbooks.parameters import inspect as parameters
    from orbits_nb.runbooks.records import NotebookRun
    from orbits_nb.runbooks.resume import Resumed, resume
    from orbits_nb.runbooks.scheduler import Scheduler
    from orbits_nb.runbooks.schedules import Schedule, ScheduleBusy

_LAZY = {
    "run": ("orbits_nb.runbooks.execute", "run"),
    "prepare": ("orbits_nb.runbooks.execute", "prepare"),
    "parameters": ("orbits_nb.runbooks.parameters", "inspect"),
    "Parameter": ("orbits_nb.runbooks.parameters", "Parameter"),
    "Signature": ("orbits_nb.runbooks.parameters", "Signature"),
    "NotebookRun": ("orbits_nb.runbooks.records", "NotebookRun"),
    "resume": ("orbits_nb.runbooks.resume", "resume"),
    "Resumed": ("orbits_nb.runbooks.resume", "Resumed"),
    "Scheduler": ("orbits_nb.runbooks.scheduler", "Scheduler"),
    "Schedule": ("orbits_nb.runbooks.schedules", "Schedule"),
    "ScheduleBusy": ("orbits_nb.runbooks.schedules", "ScheduleBusy"),
}

__all__ = [
    "Context",
    "NotebookError",
    "NotebookRun",
    "Parameter",
    "ParameterError",
    "Resumed",
    "RunbookError",
    "RunbookFailed",
    "RunbookWarning",
    "Schedule",
    "ScheduleBusy",
    "ScheduleError",
    "Scheduler",
    "Signature",
    "context",
    "is_headless",
    "parameters",
    "prepare",
    "resume",
    "run",
]


__getattr__ = lazy_exports(__name__, _LAZY, globals())
