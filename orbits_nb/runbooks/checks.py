"""The options of a run, checked before a kernel starts: kernel, language, engine,
timeouts, log files, the output file's mode.

Kernels are found as jupyter_client finds them (names are case-insensitive, and
``python`` means ``python3``, as its kernel manager maps it); like papermill, a
notebook without a kernelspec needs ``-k``, and one without a language needs ``-l``
when parameters are injected (papermill needs it to write the injected cell).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import IO, Any

from orbits_nb.runbooks.errors import NotebookError, RunbookError

#: papermill's engine names that mean its nbclient engine, the one orbits-nb extends.
NBCLIENT_ENGINES = (None, "nbclient")


@dataclass(frozen=True)
class Papermill:
    """papermill's execution options, as its command line has them."""

    cwd: Path | None = None
    report_mode: bool = False
    request_save_on_cell_execute: bool = True
    autosave_cell_every: int = 30
    stdout_file: str | Path | IO[str] | None = None
    stderr_file: str | Path | IO[str] | None = None
    language: str | None = None
    engine: str | None = None


def check_seconds(what: str, value: Any, allow_none: bool = False) -> None:
    """Refuse a duration that is not a positive number of seconds."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not math.isfinite(value) or value <= 0:
        raise RunbookError(f"{what} must be a positive number of seconds, got {value!r}")


def check_mode(mode: Any) -> int | None:
    """An output file mode: None (papermill's: the umask) or permission bits."""
    if mode is None:
        return None
    if isinstance(mode, bool) or not isinstance(mode, int) or not 0 <= mode <= 0o777:
        raise RunbookError(f"output mode must be permission bits such as 0o600 (0 to 0o777), "
                           f"got {mode!r}")
    return mode


def papermill_options(given: dict[str, Any]) -> Papermill:
    """papermill's options given to :func:`~orbits_nb.runbooks.execute.prepare`, checked."""
    known = {f.name for f in fields(Papermill)}
    unknown = sorted(set(given) - known)
    if unknown:
        raise RunbookError(f"unknown option(s) {', '.join(unknown)}; papermill's options "
                           f"here are {', '.join(sorted(known))}")
    options = Papermill(**given)
    if options.cwd is not None:
        cwd = Path(options.cwd).expanduser().resolve()
        if not cwd.is_dir():
            raise RunbookError(f"working directory {str(options.cwd)!r} is not a folder "
                               "(cwd)", cwd=str(options.cwd))
        options = replace(options, cwd=cwd)
    every = options.autosave_cell_every
    if isinstance(every, bool) or not isinstance(every, int) or every < 0:
        raise RunbookError(f"autosave_cell_every must be a whole number of seconds (0 "
                           f"turns it off), got {every!r}")
    for name in ("stdout_file", "stderr_file"):
        target = getattr(options, name)
        if isinstance(target, (str, Path)):
            _check_log_file(name, Path(target).expanduser())
    check_engine(options.engine)
    return options


def _check_log_file(name: str, path: Path) -> None:
    if path.is_dir():
        raise RunbookError(f"{name} {str(path)!r} is a folder; give a file")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise RunbookError(f"{name} {str(path)!r}: no folder {str(folder)!r}")
    if not os.access(folder, os.W_OK):
        raise RunbookError(f"{name} {str(path)!r}: the folder is not writable")


def check_engine(name: str | None) -> None:
    """Accept papermill's nbclient engine; refuse others, naming why."""
    if name in NBCLIENT_ENGINES:
        return
    from papermill.engines import papermill_engines
    from papermill.exceptions import PapermillException

    try:
        papermill_engines.get_engine(name)
    except PapermillException:
        raise RunbookError(f"papermill has no engine named {name!r}; leave --engine out (or "
                           "give nbclient, papermill's default)", engine=name) from None
    raise RunbookError(f"orbits-nb runs notebooks with papermill's nbclient engine (the "
                       f"runner's records, kernel tracking and secret masking are built on "
                       f"it), not with engine {name!r}; leave --engine out, or run that "
                       "engine with papermill itself", engine=name)


def kernel_for(notebook: Path, data: dict[str, Any], kernel: str | None) -> str:
    """The kernel to run: ``kernel``, else the notebook's kernelspec name (checked)."""
    spec = data.get("metadata", {}).get("kernelspec")
    name = kernel or (spec.get("name") if isinstance(spec, dict) else None)
    if not name:
        raise NotebookError(f"{notebook.name} names no kernel (its metadata has no "
                            f"kernelspec) and no kernel was given; pass -k NAME "
                            f"(installed: {_installed()}), as papermill needs too",
                            notebook=str(notebook))
    check_kernel(str(name))
    return str(name)


def check_kernel(name: str) -> None:
    """Refuse a kernel name that no installed Jupyter kernel has."""
    from jupyter_client.kernelspec import NATIVE_KERNEL_NAME, KernelSpecManager, NoSuchKernel

    # jupyter_client's KernelManager starts python3 for the name "python".
    resolved = NATIVE_KERNEL_NAME if name == "python" else name
    try:
        KernelSpecManager().get_kernel_spec(resolved)
    except NoSuchKernel:
        raise NotebookError(f"no Jupyter kernel named {name!r} (installed: {_installed()}); "
                            "pass --kernel NAME or install it (python -m ipykernel install "
                            "--user --name NAME)", kernel=name) from None


def _installed() -> str:
    from jupyter_client.kernelspec import KernelSpecManager

    return ", ".join(sorted(KernelSpecManager().find_kernel_specs())) or "none"


def check_language(notebook: Path, data: dict[str, Any], language: str | None,
                   injected: bool) -> None:
    """papermill writes the injected cell in the notebook's language: it must have one."""
    if not injected or language:
        return
    meta = data.get("metadata", {})
    info, spec = meta.get("language_info"), meta.get("kernelspec")
    if (isinstance(info, dict) and info.get("name")) or \
            (isinstance(spec, dict) and spec.get("language")):
        return
    raise NotebookError(f"{notebook.name} names no language (its metadata has no "
                        "language_info or kernelspec language), which papermill needs to "
                        "write the injected parameters; pass -l python",
                        notebook=str(notebook))
