"""Lazy exports: a package names what it offers; modules are imported on first use."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, names: Mapping[str, str | tuple[str, str]],
                 namespace: dict[str, Any], subpackages: tuple[str, ...] = ()
                 ) -> Callable[[str], Any]:
    """A module ``__getattr__`` importing ``names[attr]`` (a module, or a
    ``(module, attribute)`` pair) on first access, then caching it in ``namespace``."""

    def __getattr__(name: str) -> Any:
        if name in subpackages:
            return importlib.import_module(f"{package}.{name}")
        target = names.get(name)
        if target is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, attribute = target if isinstance(target, tuple) else (target, name)
        value = getattr(importlib.import_module(module), attribute)
        namespace[name] = value
        return value

    return __getattr__
