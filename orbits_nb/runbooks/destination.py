"""Where an executed notebook goes: a local file, stdout, or a papermill I/O URL.

``-`` writes the notebook once, at the end, to stdout. A URL (``s3://``, ``gs://``,
``abs://``, ``http(s)://``, or any scheme registered with
``papermill.iorw.papermill_io.register``) is written through papermill's I/O handler
for it, autosaves included. Everything else is a local path. The output may name
parameters, as with papermill: ``out/{client}.ipynb``.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orbits_nb.runbooks.errors import RunbookError

STDOUT = "-"
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


@dataclass(frozen=True)
class Destination:
    """An output location: an absolute local path, ``-`` or a URL."""

    location: str

    @property
    def to_stdout(self) -> bool:
        return self.location == STDOUT

    @property
    def remote(self) -> bool:
        return bool(_URL.match(self.location))

    @property
    def path(self) -> Path | None:
        """The local file, or None for stdout and URLs."""
        return None if self.to_stdout or self.remote else Path(self.location)

    def __str__(self) -> str:
        return self.location

    def autosave_target(self) -> str | None:
        """Where papermill's manager saves during execution (stdout: only at the end)."""
        return None if self.to_stdout else self.location

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
            _replace(self.path, text)


def _replace(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".orbits-nb-", suffix=".ipynb", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def resolve(output: str | Path, notebook: Path, parameters: dict[str, Any]) -> Destination:
    """Check an output given by the user; fill in parameters named in it."""
    text = str(output)
    if not text.strip():
        raise RunbookError("the output path is empty; give a .ipynb file, '-' for stdout "
                           "or a URL such as s3://bucket/out.ipynb")
    if text == STDOUT:
        return Destination(STDOUT)
    if "{" in text:
        text = _fill(text, parameters)
    if _URL.match(text):
        _check_handler(text)
        return Destination(text)
    return Destination(str(check_local(Path(text).expanduser().resolve(), notebook)))


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
        raise RunbookError(f"output {text!r} names {{{err.args[0]}}}, which is not a "
                           f"parameter of this run (parameters: "
                           f"{', '.join(sorted(parameters)) or 'none'})") from None
    except (IndexError, ValueError) as err:
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
