"""Argument types of the command line: every option is checked where it enters.

A bad value ends in argparse's usage error (exit code 2) naming the option and the
value, before any state file, notebook or kernel is touched.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable
from pathlib import Path

from orbits_nb.core.errors import InvalidArgument


def _number(text: str, kind: Callable[[str], float], what: str) -> float:
    try:
        value = kind(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
    return value


def positive_int(text: str) -> int:
    """A whole number of at least 1 (``--limit``, ``--concurrency``, ``--max-parallel``)."""
    value = int(_number(text, int, "a whole number"))
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be 1 or more")
    return value


def count(text: str) -> int:
    """A whole number of at least 0 (``--autosave-cell-every``: 0 turns it off)."""
    value = int(_number(text, int, "a whole number"))
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be 0 or more")
    return value


def seconds(text: str) -> float:
    """A positive duration in seconds (timeouts, poll intervals)."""
    value = _number(text, float, "a number of seconds")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be more than 0 seconds")
    return value


def seconds_or_zero(text: str) -> float:
    """A duration in seconds, 0 allowed (``--grace``)."""
    value = _number(text, float, "a number of seconds")
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be 0 seconds or more")
    return value


def epoch(text: str) -> float:
    """A point in time as epoch seconds."""
    return _number(text, float, "a time in epoch seconds")


def since(text: str) -> str:
    """A date, date-time or age (``2026-11-01``, ``'2026-11-01 14:00'``, ``7d``, ``12h``)."""
    from orbits_nb._filters import since_epoch

    try:
        since_epoch(text, "")
    except InvalidArgument as err:
        raise argparse.ArgumentTypeError(str(err).lstrip()) from None
    return text


def text(value: str) -> str:
    """A non-empty string (names, run ids, steps)."""
    if not value.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return value


def directory(value: str) -> str:
    """An existing folder (``--cwd``)."""
    if not value.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    path = Path(value).expanduser()
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{value!r} is not a folder" if path.exists()
                                         else f"no folder {value!r}")
    return str(path)


def executable(value: str) -> str:
    """An executable file (``schedule crontab --python``)."""
    path = Path(value).expanduser()
    if not path.is_file() or not os.access(path, os.X_OK):
        raise argparse.ArgumentTypeError(f"{value!r} is not an executable file")
    return str(path)
