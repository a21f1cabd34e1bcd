"""The ``orbits-nb`` command line.

Each command family lives in its own module with a ``register(subparsers)`` function
that adds its sub-commands; :data:`MODULES` lists them in help order.

Every engine a command opened is closed as it returns (:func:`close_engines`), so a
command never leaves a lease, a writer or the state file open behind it.

A user mistake never ends in a traceback: an :class:`~orbits_nb.OrbitsError`, or an
OS or value error (a missing file, a folder that may not be written), prints one line
and exits with code 2. ``ORBITS_NB_DEBUG=1`` prints the traceback too.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from collections.abc import Sequence

from orbits_nb.cli.hints import error_line
from orbits_nb.core.errors import OrbitsError

MODULES = [
    "orbits_nb.cli.runs",
    "orbits_nb.cli.trace",
    "orbits_nb.cli.control",
    "orbits_nb.cli.runbooks",
    "orbits_nb.cli.approvals",
    "orbits_nb.cli.demo",
    "orbits_nb.cli.resources",
    "orbits_nb.cli.agents",
    "orbits_nb.cli.migrate",
    "orbits_nb.cli.worker",
    "orbits_nb.cli.queues",
]

DEBUG_ENV = "ORBITS_NB_DEBUG"


def parser() -> argparse.ArgumentParser:
    from orbits_nb import __version__

    root = argparse.ArgumentParser(
        prog="orbits-nb",
        description="orbits_nb: durable notebook runbooks. Runs, runbooks and schedules, "
                    "approvals, resources and drift, on one DuckDB state file.",
    )
    root.add_argument("--version", action="version", version=f"orbits-nb {__version__}")
    root.add_argument("--state", metavar="PATH",
                      help="state file, or a team store postgresql://user@host/db "
                           "(default: $ORBITS_NB_STATE, else "
                           ".orbits_nb/state.duckdb in the project root: the nearest "
                           "folder, from the working directory up, with .orbits_nb/, "
                           "pyproject.toml or .git; else the working directory)")
    commands = root.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    for name in MODULES:
        importlib.import_module(name).register(commands)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``orbits-nb`` command; return its exit code."""
    root = parser()
    args, extra = root.parse_known_args(argv)
    # argparse cannot take an optional positional after options (`run NB -p a b OUT`).
    if getattr(args, "output_path", "") is None and len(extra) == 1 and \
            (extra[0] == "-" or not extra[0].startswith("-")):
        args.output_path = extra[0]
    elif extra:
        root.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        if args.state is not None:
            _use_state(args.state)
        try:
            code: int = args.handler(args)
        finally:
            close_engines()
    except OrbitsError as err:
        return _fail(error_line(err), err)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`orbits-nb runs | head`): stop quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except OSError as err:
        return _fail(_os_error(err), err)
    except (ValueError, UnicodeError) as err:
        return _fail(f"{type(err).__name__}: {err}", err)
    return code


def close_engines() -> None:
    """Close the engines the command opened (none if it never imported the engine)."""
    module = sys.modules.get("orbits_nb.engine.engine")
    if module is not None:
        module.close_engines()


def _use_state(path: str) -> None:
    if not path.strip():
        raise OrbitsError("--state needs a path to a state file, e.g. "
                          ".orbits_nb/state.duckdb")
    os.environ["ORBITS_NB_STATE"] = path


def _fail(line: str, err: BaseException) -> int:
    if os.environ.get(DEBUG_ENV) not in (None, "", "0"):
        traceback.print_exception(err)
    print(f"orbits-nb: error: {line}", file=sys.stderr)
    return 2


def _os_error(err: OSError) -> str:
    what = err.strerror or str(err) or type(err).__name__
    where = " -> ".join(str(f) for f in (err.filename, err.filename2) if f is not None)
    return f"{what}: {where}" if where else what
