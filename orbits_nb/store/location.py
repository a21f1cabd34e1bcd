"""Where the state file lives, so a kernel, a papermill run and the CLI agree.

``ORBITS_NB_STATE`` wins. Otherwise the file is ``.orbits_nb/state.duckdb`` in the
project root: the nearest directory, from the working directory upwards, that holds
``.orbits_nb/``, ``pyproject.toml`` or ``.git``. A kernel whose working directory is
``notebooks/`` and a CLI started at the repository root therefore share one file.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "ORBITS_NB_STATE"
MARKERS = (".orbits_nb", "pyproject.toml", ".git")


def project_root(start: Path | None = None) -> Path:
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if any((folder / marker).exists() for marker in MARKERS):
            return folder
    return here


def default_state_path(start: Path | None = None) -> Path:
    """The state file this process uses when none is given."""
    override = os.environ.get(ENV_VAR)
    if override:
        return Path(override).expanduser().resolve()
    return project_root(start) / ".orbits_nb" / "state.duckdb"
