"""What a failure is recorded as: an exception turned into JSON (masked), and the
short line the views show of it."""

from __future__ import annotations

import traceback as tb
from typing import Any

from orbits_nb.core.errors import OrbitsError, RemoteError
from orbits_nb.core.masking import mask


def error_info(error: BaseException) -> dict[str, Any]:
    """A JSON description of an exception: type, message, traceback, fields.

    Known secret values are masked in every text of it (the message of an exception
    the user raised may well hold a revealed secret).
    """
    if isinstance(error, RemoteError):
        return {"type": error.type_name, "message": mask(error.message),
                "traceback": mask(error.traceback)}
    info: dict[str, Any] = {
        "type": f"{type(error).__module__}.{type(error).__qualname__}".removeprefix(
            "builtins.").removeprefix("orbits_nb.core.errors."),
        "message": mask(str(error)),
        "traceback": mask(user_traceback(error)),
    }
    if isinstance(error, OrbitsError):
        info["fields"] = {k: mask(v) if isinstance(v, str) else v
                          for k, v in error.fields.items()
                          if isinstance(v, (str, int, float, bool))}
    return info


_MACHINERY = ("/orbits_nb/engine/", "/orbits_nb/executors/", "/orbits_nb/core/workflow.py",
              "/concurrent/futures/",
              "/asyncio/")


def user_traceback(error: BaseException) -> str:
    """The formatted traceback without the engine's own frames (they say nothing
    about the user's code)."""
    frames = [f for f in tb.extract_tb(error.__traceback__)
              if not any(part in f.filename.replace("\\", "/") for part in _MACHINERY)]
    lines = ["Traceback (most recent call last):\n", *tb.format_list(frames),
             *tb.format_exception_only(error)]
    return "".join(lines)


def short_error(info: dict[str, Any] | None) -> str:
    if not info:
        return ""
    name = str(info.get("type", "Error")).rsplit(".", 1)[-1]
    return f"{name}: {info.get('message', '')}"
