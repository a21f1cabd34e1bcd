"""Executors decide where an action's work runs."""

from __future__ import annotations

from orbits_nb.executors.local import LocalExecutor
from orbits_nb.executors.subprocess import SubprocessExecutor

__all__ = ["LocalExecutor", "SubprocessExecutor"]
