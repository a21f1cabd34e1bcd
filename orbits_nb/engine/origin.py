"""Where a new run is started, and by whom: recorded once, in its ``run.created`` meta."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def run_source() -> str:
    """Where a new run is started: a runbook (scheduled or not), a kernel, the
    ``orbits-nb`` command, or a plain script (a worker sets ``engine.meta``)."""
    if os.environ.get("ORBITS_NB_NOTEBOOK_RUN"):
        return "schedule" if os.environ.get("ORBITS_NB_SCHEDULE") else "runbook"
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is not None and getattr(shell, "kernel", None) is not None:
        return "kernel"
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if (spec is not None and str(spec.name).startswith("orbits_nb")) or \
            Path(sys.argv[0] if sys.argv else "").name == "orbits-nb":
        return "cli"
    return "script"


def user_name() -> str:
    """The login name of this process (``uid N`` where it has none)."""
    import getpass

    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name in this environment (a bare container)
        return f"uid {os.getuid()}" if hasattr(os, "getuid") else "unknown"

