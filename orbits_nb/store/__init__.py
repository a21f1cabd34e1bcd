"""Stores: where runs, steps and events are persisted (DuckDB by default)."""

from __future__ import annotations

from orbits_nb.store.location import default_state_path

__all__ = ["default_state_path"]
