"""Where an executed notebook goes: a local file, stdout, or a papermill I/O URL.

``-`` writes the notebook once, at the end, to stdout. A URL (``s3://``, ``gs://``,
``abs://``, ``http(s)://``, or any scheme registered with
``papermill.iorw.papermill_io.register``) is written through papermill's I/O handler
for it, autosaves included. Everything else is a local path. The output may name
parameters, as with papermill: ``out/{client}.ipynb`` (and papermill's
``{pm[run_uuid]}``, ``{pm[current_datetime_local]}``, ``{pm[current_datetime_utc]}``).

A local file is replaced atomically at every save, never left torn. Its mode is what
papermill's would be: an existing file keeps its mode, a new one gets the user's umask
(``0o666 & ~umask``), unless ``mode`` asks for another (e.g. ``0o600`` for reports
that may show sensitive output).
"""

from __future__ import annotations

import os
import secrets
import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from orbits_nb.runbooks.errors import RunbookError
from orbits_nb.runbooks.notebook import is_url

STDOUT = "-"


@dataclass(frozen=True)
class Destination:
    """An output location: an absolute local path, ``-`` or a URL.

    ``given`` is the output as the user wrote it, templates filled (what papermill
    records in the notebook's metadata); ``mode`` the permission bits of a local file
    (None: papermill's rule, see the module docstring).
    """

    location: str
    given: str = ""
    mode: int | None = None

    @property
    def to_stdout(self) -> bool:
        return self.location == STDOUT

    @property
    def remote(self) -> bool:
        return is_url(self.location)

    @property
    def path(self) -> Path | None:
        """The local file, or None for stdout and URLs."""
        return None if self.to_stdout or self.remote else Path(self.location)

    def __str__(self) -> str:
        return self.location

    def make_room(self) -> None:
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, nb: Any) -> None:
        """Write ``nb`` (a local file is replaced atomically, never left torn)."""
        import nbformat

        writes: Any = nbformat.writes  # nbformat ships no type hints
        text = str(writes(nb))
        if self.to_stdout:
            sys.stdout.write(text if text.endswith("\n") else text + "\n")
            sys.stdout.flush()
        elif self.path is None:
            from papermill.iorw import papermill_io

            papermill_io.write(text, self.location)
        else:
            self.make_room()
            replace(self.path, text, self.mode)


def replace(path: Path, text: str, mode: int | None = None) -> None:
    """Write ``text`` to ``path`` atomically, with papermill's mode unless ``mode``."""
    try:
        keep: int | None = path.stat().st_mode & 0o7777
    except FileNotFoundError:
        keep = None
    wanted = mode if mode is not None else keep
    while True:
        tmp = path.parent / f".orbits-nb-{secrets.token_hex(6)}.ipynb"
        try:
            # 0o666 as open() uses: the umask applies, as it does to papermill's files.
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            break
        except FileExistsError:
            continue
    try:
        if wanted is not None:
            os.fchmod(fd, wanted)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def builtins() -> dict[str, Any]:
    """papermill's ``pm`` values for output templates (``{pm[run_uuid]}``...)."""
    return {"pm": {"run_uuid": str(uuid.uuid4()),
                   "current_datetime_local": datetime.now(),
                   "current_datetime_utc": datetime.now(UTC)}}


def resolve(output: str | Path, notebook: Path, parameters: dict[str, Any],
            mode: int | None = None) -> Destination:
    """Check an output given by the user; fill in parameters named in it."""
    text = str(output)
    if not text.strip():
        raise RunbookError("the output path is empty; give a .ipynb file, '-' for stdout "
                           "or a URL such as s3://bucket/out.ipynb")
    if text == STDOUT:
        return Destination(STDOUT, STDOUT)
    if "{" in text:
        text = _fill(text, {**builtins(), **parameters})
    if is_url(text):
        _check_handler(text)
        return Destination(text, text)
    local = check_local(Path(text).expanduser().resolve(), notebook)
    return Destination(str(local), text, mode)


def check_local(target: Path, notebook: Path) -> Path:
    """A local output file: a .ipynb, not the runbook, in a folder that can be made."""
    if target.suffix != ".ipynb":
        raise RunbookError(f"output {str(target)!r} must be a .ipynb file")
    if target == notebook:
        raise RunbookError(f"output {target} would overwrite the runbook itself")
    if target.is_dir():
        raise RunbookError(f"output {target} is a folder; give a file name in it, e.g. "
                           f"{target / notebook.name}")
    folder = target.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise RunbookError(f"cannot write output {target}: {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise RunbookError(f"cannot write output {target}: the folder {folder} is not "
                           "writable; choose another --output-dir or output path")
    return target


def _fill(text: str, parameters: dict[str, Any]) -> str:
    try:
        return text.format(**parameters)
    except KeyError as err:
        known = sorted(name for name in parameters if name != "pm")
        raise RunbookError(f"output {text!r} names {{{err.args[0]}}}, which is not a "
                           f"parameter of this run (parameters: "
                           f"{', '.join(known) or 'none'})") from None
    except (IndexError, ValueError, AttributeError, TypeError) as err:
        raise RunbookError(f"output {text!r} is not a valid template ({err}); write "
                           "{name} for a parameter, {{ and }} for braces") from None


def _check_handler(url: str) -> None:
    from papermill.iorw import LocalHandler, papermill_io

    handler = papermill_io.get_handler(url)
    if isinstance(handler, LocalHandler):  # papermill's fallback for unknown schemes
        scheme = url.split("://", 1)[0]
        raise RunbookError(f"no papermill I/O handler writes {scheme}:// URLs (output "
                           f"{url!r}); install the package that provides it (e.g. "
                           "papermill[s3]) or register one with "
                           "papermill.iorw.papermill_io.register", output=url)
