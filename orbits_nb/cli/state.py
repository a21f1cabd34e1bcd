"""The state file of every command, and what reading commands do without one.

Every command resolves the state the same way (``--state``, else ``$ORBITS_NB_STATE``,
else from the working directory upwards; see :mod:`orbits_nb.store.location`). A
command that only reads creates nothing: when the file does not exist it says so on
stderr and prints no rows; a command about one thing (a run, a schedule) says that
thing is not there.
"""

from __future__ import annotations

import sys
from pathlib import Path

from orbits_nb.core.errors import OrbitsError


def state_path() -> Path | str:
    """The state file this command uses (it may not exist yet), or the URL of a team
    store (``postgresql://...``, which always exists)."""
    from orbits_nb.store.location import state_location

    path = state_location()
    if isinstance(path, str):
        return path
    if path.is_dir():
        raise OrbitsError(f"the state {path} is a folder; pass the state file itself, e.g. "
                          f"--state {path / 'state.duckdb'}", path=str(path))
    return path


def existing_state(nothing: str = "nothing recorded") -> Path | str | None:
    """The state file (or team store) if it exists; else None after a one-line note on
    stderr."""
    path = state_path()
    if isinstance(path, str) or path.exists():
        return path
    _check_settings()
    print(f"orbits-nb: no state file at {path} yet ({nothing})", file=sys.stderr)
    return None


def missing(what: str, error: type[OrbitsError] = OrbitsError,
            **fields: object) -> OrbitsError | None:
    """An ``error`` naming ``what`` as absent when there is no state file, else None."""
    path = state_path()
    if isinstance(path, str) or path.exists():
        return None
    _check_settings()
    return error(f"no {what} in {path} (there is no state file there yet); check --state "
                 "or $ORBITS_NB_STATE, or the folder you run orbits-nb from",
                 path=str(path), **fields)


def _check_settings() -> None:
    """Bad settings in the environment (ORBITS_NB_LOCK_TIMEOUT...) are named even when
    there is no file to use them on; making the engine opens nothing."""
    from orbits_nb.engine.engine import default_engine

    default_engine()
