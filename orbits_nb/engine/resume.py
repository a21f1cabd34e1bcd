"""Rebuilding recorded workflows by import, to resume them from another process."""

from __future__ import annotations

import importlib
from typing import Any

from orbits_nb.core.errors import ActionNotFound
from orbits_nb.core.serde import Secret
from orbits_nb.core.workflow import Workflow


def import_class(type_name: str) -> type[Any]:
    """Import ``module:QualName``, or raise ActionNotFound saying what to do."""
    module_name, _, qualname = type_name.partition(":")
    hint = ("it was defined in a notebook or script, so resume by re-running that "
            "notebook (orbits-nb resume re-executes runbooks)"
            if module_name in ("__main__", "") else
            f"make sure module {module_name!r} is importable (installed or on PYTHONPATH)")
    try:
        target: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as err:
        raise ActionNotFound(f"cannot import {type_name}: {err}; {hint}",
                             action=type_name) from None
    if not isinstance(target, type):
        raise ActionNotFound(f"{type_name} is not a class", action=type_name)
    return target


def revive(value: Any) -> Any:
    """Turn recorded ``{"$secret": ...}`` references back into secrets."""
    if isinstance(value, Secret) and value.env_var is None:
        value = value.to_json()  # read back without its value: same rule as below
    if isinstance(value, dict):
        if "$secret" in value and set(value) <= {"$secret", "env"}:
            # A literal secret is not stored: it is read back from NAME in upper case.
            env = value.get("env") or str(value["$secret"]).upper()
            return Secret(name=value["$secret"], env=env)
        return {k: revive(v) for k, v in value.items()}
    if isinstance(value, list):
        return [revive(v) for v in value]
    return value


def load_workflow(type_name: str, args: dict[str, Any]) -> Workflow:
    cls = import_class(type_name)
    if not issubclass(cls, Workflow):
        raise ActionNotFound(f"{type_name} is not a Workflow", action=type_name)
    workflow: Workflow = cls(**revive(args))
    return workflow
