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

import importlib
from typing import TYPE_CHECKING, Any

from orbits_nb.core.action import IN_PROGRESS, Action, Retry
from orbits_nb.core.errors import (
    ActionNotFound,
    DuplicateStep,
    InvalidArgument,
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
from orbits_nb.core.serde import Secret
from orbits_nb.core.workflow import Workflow

if TYPE_CHECKING:
    from orbits_nb._api import get_run, history, resume, sql
    from orbits_nb.engine.engine import Engine, default_engine
    from orbits_nb.engine.run import Run
    from orbits_nb.executors.local import LocalExecutor
    from orbits_nb.executors.subprocess import SubprocessExecutor
    from orbits_nb.store.duckdb_store import DuckDBStore

__version__ = "0.1.0"

_LAZY = {
    "Engine": "orbits_nb.engine.engine",
    "default_engine": "orbits_nb.engine.engine",
    "Run": "orbits_nb.engine.run",
    "LocalExecutor": "orbits_nb.executors.local",
    "SubprocessExecutor": "orbits_nb.executors.subprocess",
    "DuckDBStore": "orbits_nb.store.duckdb_store",
    "history": "orbits_nb._api",
    "sql": "orbits_nb._api",
    "get_run": "orbits_nb._api",
    "resume": "orbits_nb._api",
}

__all__ = [
    "IN_PROGRESS",
    "Action",
    "ActionNotFound",
    "DuckDBStore",
    "DuplicateStep",
    "Engine",
    "InvalidArgument",
    "LocalExecutor",
    "NondeterminismError",
    "OrbitsError",
    "RemoteError",
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
    "default_engine",
    "get_run",
    "history",
    "resume",
    "sql",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'orbits_nb' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
