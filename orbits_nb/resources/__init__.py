"""Resources and drift: identity, convergence, drift detection, reconcile.

>>> import orbits_nb as ob
>>> class Deploy(ob.Workflow):
...     async def define(self):
...         return await self.do("config", ob.LocalFile("/tmp/app.cfg", content="x=1\\n"))
>>> Deploy().run()                          # doctest: +SKIP
>>> report = ob.drift()                     # doctest: +SKIP
>>> report.reconcile()                      # doctest: +SKIP

Names are imported on first use, so ``import orbits_nb.resources`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from orbits_nb._lazy import lazy_exports

if TYPE_CHECKING:
    from orbits_nb.core.drift import Comparison, FieldDiff
    from orbits_nb.resources.agent import Agent
    from orbits_nb.resources.api import (
        command,
        drift,
        drift_history,
        drifted_steps,
        list_resources,
        uninstall,
    )
    from orbits_nb.resources.base import Resource
    from orbits_nb.resources.check import ResourceCheck
    from orbits_nb.resources.commands import Reconcile, Uninstall
    from orbits_nb.resources.errors import (
        ConvergenceError,
        ResourceBusy,
        ResourceError,
        ResourceInUse,
        ResourceNotFound,
    )
    from orbits_nb.resources.git import LocalGitRepo
    from orbits_nb.resources.local import LocalDirectory, LocalFile
    from orbits_nb.resources.planning import plan
    from orbits_nb.resources.report import DriftReport
    from orbits_nb.resources.table import LocalTable
    from orbits_nb.resources.watch import DriftWatch, watch_drift

_LAZY = {
    "Comparison": "orbits_nb.core.drift",
    "FieldDiff": "orbits_nb.core.drift",
    "Resource": "orbits_nb.resources.base",
    "Agent": "orbits_nb.resources.agent",
    "command": "orbits_nb.resources.api",
    "plan": "orbits_nb.resources.planning",
    "ResourceCheck": "orbits_nb.resources.check",
    "DriftReport": "orbits_nb.resources.report",
    "DriftWatch": "orbits_nb.resources.watch",
    "watch_drift": "orbits_nb.resources.watch",
    "drift": "orbits_nb.resources.api",
    "drift_history": "orbits_nb.resources.api",
    "drifted_steps": "orbits_nb.resources.api",
    "list_resources": "orbits_nb.resources.api",
    "uninstall": "orbits_nb.resources.api",
    "Reconcile": "orbits_nb.resources.commands",
    "Uninstall": "orbits_nb.resources.commands",
    "LocalFile": "orbits_nb.resources.local",
    "LocalDirectory": "orbits_nb.resources.local",
    "LocalGitRepo": "orbits_nb.resources.git",
    "LocalTable": "orbits_nb.resources.table",
    "ResourceError": "orbits_nb.resources.errors",
    "ResourceBusy": "orbits_nb.resources.errors",
    "ResourceInUse": "orbits_nb.resources.errors",
    "ResourceNotFound": "orbits_nb.resources.errors",
    "ConvergenceError": "orbits_nb.resources.errors",
}

__all__ = [
    "Agent",
    "Comparison",
    "ConvergenceError",
    "DriftReport",
    "DriftWatch",
    "FieldDiff",
    "LocalDirectory",
    "LocalFile",
    "LocalGitRepo",
    "LocalTable",
    "Reconcile",
    "Resource",
    "ResourceBusy",
    "ResourceCheck",
    "ResourceError",
    "ResourceInUse",
    "ResourceNotFound",
    "Uninstall",
    "command",
    "drift",
    "drift_history",
    "drifted_steps",
    "list_resources",
    "plan",
    "uninstall",
    "watch_drift",
]


__getattr__ = lazy_exports(__name__, _LAZY, globals())
