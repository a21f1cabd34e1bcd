"""orbits_nb: durable, Jupyter-native orchestration of platform runbooks.

>>> import orbits_nb as ob
>>> class Greet(ob.Action):
...     def main(self):
...         return f"hello {self.args['who']}"
>>> class Hello(ob.Workflow):
...     async def define(self):
...         return await self.do("greet", Greet(who=self.args["who"]))
>>> Hello(who="acme").start().wait()          # doctest: +SKIP
'hello acme'

Heavy parts (the DuckDB store, the engine, executors) are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from orbits_nb._lazy import lazy_exports
from orbits_nb.core.action import IN_PROGRESS, Action, Retry
from orbits_nb.core.errors import (
    Aborted,
    ActionNotFound,
    DuplicateStep,
    InvalidArgument,
    MissingDependency,
    NondeterminismError,
    OrbitsError,
    RemoteError,
    RunCancelled,
    RunNotFound,
    RunOwned,
    StepFailed,
    StepTimeout,
    StoreBusy,
    StoreError,
)
from orbits_nb.core.queue import Queue
from orbits_nb.core.serde import Secret
from orbits_nb.core.workflow import Workflow

if TYPE_CHECKING:
    from orbits_nb._api import get_run, history, resume, sql
    from orbits_nb.approval import Approval, ApprovalRejected
    from orbits_nb.engine.engine import Engine, default_engine
    from orbits_nb.engine.run import Run
    from orbits_nb.executors.dask import DaskExecutor
    from orbits_nb.executors.local import LocalExecutor
    from orbits_nb.executors.subprocess import SubprocessExecutor
    from orbits_nb.export import export_trace
    from orbits_nb.resources.agent import Agent
    from orbits_nb.resources.api import (
        command,
        drift,
        drift_history,
        list_resources,
        uninstall,
    )
    from orbits_nb.resources.base import Resource
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
    from orbits_nb.resources.watch import watch_drift
    from orbits_nb.store.duckdb_store import DuckDBStore
    from orbits_nb.views.dashboard import dashboard

__version__ = "0.1.0"

_LAZY = {
    "Engine": "orbits_nb.engine.engine",
    "default_engine": "orbits_nb.engine.engine",
    "Run": "orbits_nb.engine.run",
    "LocalExecutor": "orbits_nb.executors.local",
    "SubprocessExecutor": "orbits_nb.executors.subprocess",
    "DaskExecutor": "orbits_nb.executors.dask",
    "DuckDBStore": "orbits_nb.store.duckdb_store",
    "history": "orbits_nb._api",
    "sql": "orbits_nb._api",
    "get_run": "orbits_nb._api",
    "resume": "orbits_nb._api",
    "export_trace": "orbits_nb.export",
    # Notebook views and human approval (orbits_nb.views, orbits_nb.approval).
    "dashboard": "orbits_nb.views.dashboard",
    "Approval": "orbits_nb.approval",
    "ApprovalRejected": "orbits_nb.approval",
    # Resources and drift (orbits_nb.resources), imported on first use.
    "Resource": "orbits_nb.resources.base",
    "Agent": "orbits_nb.resources.agent",
    "command": "orbits_nb.resources.api",
    "plan": "orbits_nb.resources.planning",
    "LocalFile": "orbits_nb.resources.local",
    "LocalDirectory": "orbits_nb.resources.local",
    "LocalGitRepo": "orbits_nb.resources.git",
    "LocalTable": "orbits_nb.resources.table",
    "DriftReport": "orbits_nb.resources.report",
    "drift": "orbits_nb.resources.api",
    "drift_history": "orbits_nb.resources.api",
    "list_resources": "orbits_nb.resources.api",
    "uninstall": "orbits_nb.resources.api",
    "watch_drift": "orbits_nb.resources.watch",
    "ResourceError": "orbits_nb.resources.errors",
    "ResourceBusy": "orbits_nb.resources.errors",
    "ResourceInUse": "orbits_nb.resources.errors",
    "ResourceNotFound": "orbits_nb.resources.errors",
    "ConvergenceError": "orbits_nb.resources.errors",
}

__all__ = [
    "IN_PROGRESS",
    "Aborted",
    "Action",
    "ActionNotFound",
    "Agent",
    "Approval",
    "ApprovalRejected",
    "ConvergenceError",
    "DaskExecutor",
    "DriftReport",
    "DuckDBStore",
    "DuplicateStep",
    "Engine",
    "InvalidArgument",
    "LocalDirectory",
    "LocalExecutor",
    "LocalFile",
    "LocalGitRepo",
    "LocalTable",
    "MissingDependency",
    "NondeterminismError",
    "OrbitsError",
    "Queue",
    "RemoteError",
    "Resource",
    "ResourceBusy",
    "ResourceError",
    "ResourceInUse",
    "ResourceNotFound",
    "Retry",
    "Run",
    "RunCancelled",
    "RunNotFound",
    "RunOwned",
    "Secret",
    "StepFailed",
    "StepTimeout",
    "StoreBusy",
    "StoreError",
    "SubprocessExecutor",
    "Workflow",
    "command",
    "dashboard",
    "default_engine",
    "drift",
    "drift_history",
    "export_trace",
    "get_run",
    "history",
    "list_resources",
    "plan",
    "resume",
    "sql",
    "uninstall",
    "watch_drift",
]


#: Subpackages reachable as attributes (``ob.aws.AccountExecutor``), imported on first use.
_SUBPACKAGES = ("actions", "aws", "runbooks")


__getattr__ = lazy_exports(__name__, _LAZY, globals(), _SUBPACKAGES)
