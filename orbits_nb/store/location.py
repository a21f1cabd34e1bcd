"""Where the state file lives: one rule, so a kernel, a papermill run and the CLI agree.

1. ``$ORBITS_NB_STATE`` if set (``~`` expanded, a relative path taken from the
   working directory);
2. otherwise ``.orbits_nb/state.duckdb`` in the project root: the nearest directory,
   from the working directory upwards, that holds ``.orbits_nb/``, ``pyproject.toml``
   or ``.git``;
3. with no such marker, ``.orbits_nb/state.duckdb`` in the working directory itself.

The working directory of the process decides, never where a notebook sits:
``orbits-nb run notebooks/x.ipynb``, ``orbits-nb runs`` and ``orbits-nb resume``
started in one directory use one file, and a kernel whose working directory is
``notebooks/`` finds the same file as a CLI at the repository root. (A runbook's
kernel, started in the notebook's folder, is handed the resolved path in
``$ORBITS_NB_STATE``.) Resolving a path creates nothing: the file and its folder
appear with the first write.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from orbits_nb.store.pg.url import describe, is_url

__all__ = ["ENV_VAR", "HOST", "default_state_path", "describe", "is_url", "project_root",
           "state_location", "this_host"]

ENV_VAR = "ORBITS_NB_STATE"
HOST_ENV = "ORBITS_NB_HOST"
MARKERS = (".orbits_nb", "pyproject.toml", ".git")


def this_host() -> str:
    """The id of this host in the store: ``$ORBITS_NB_HOST`` (e.g. to act as a second
    host in tests), else the host name."""
    return os.environ.get(HOST_ENV) or socket.gethostname()


#: The host id of this process, for records made without a store at hand.
HOST = this_host()


def project_root(start: Path | None = None) -> Path:
    """The nearest directory holding a project marker, from ``start`` (the working
    directory) upwards; ``start`` itself when there is none."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if any((folder / marker).exists() for marker in MARKERS):
            return folder
    return here


def state_location(start: Path | None = None) -> Path | str:
    """Where this process keeps its state: a ``postgresql://`` URL in
    ``$ORBITS_NB_STATE`` (a team store), else :func:`default_state_path`."""
    override = os.environ.get(ENV_VAR, "")
    if is_url(override):
        return override
    return default_state_path(start)


def default_state_path(start: Path | None = None) -> Path:
    """The state file this process uses when none is given (see the module's rule).

    ``start`` stands in for the working directory; callers resolving the state for
    a command pass nothing, so every command started in one directory agrees.
    """
    override = os.environ.get(ENV_VAR)
    if override:
        return Path(override).expanduser().resolve()
    return project_root(start) / ".orbits_nb" / "state.duckdb"
