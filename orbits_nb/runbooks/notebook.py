"""Reading runbook notebooks as plain JSON (no nbformat import: ``params`` stays fast).

A notebook is a local ``.ipynb`` file or a URL read by papermill's I/O handler for its
scheme (``s3://``, ``gs://``, ``https://``, or one registered with
``papermill.iorw.papermill_io.register``). A remote notebook is copied into a private
temporary folder first, so that what is checked is what runs; :func:`discard` removes
the copy. Notebooks older than nbformat 4 are upgraded as papermill upgrades them.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from orbits_nb.runbooks.errors import NotebookError

PARAMETERS_TAG = "parameters"
INJECTED_TAG = "injected-parameters"
STAGED_PREFIX = "orbits-nb-input-"
_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_url(location: str | Path) -> bool:
    """True for ``scheme://...`` (a notebook or output read or written by papermill's I/O)."""
    return isinstance(location, str) and bool(_URL.match(location))


def resolve(path: str | Path) -> Path:
    """The absolute path of an existing ``.ipynb`` file, or a NotebookError."""
    if str(path) == "-":
        raise NotebookError("reading the notebook from stdin ('-') is not supported; give "
                            "its path or a URL", notebook="-")
    notebook = Path(path).expanduser()
    if not notebook.exists():
        raise NotebookError(f"notebook {str(path)!r} does not exist (working directory: "
                            f"{Path.cwd()})", notebook=str(path))
    if notebook.is_dir():
        raise NotebookError(f"{str(path)!r} is a directory; give a .ipynb file",
                            notebook=str(path))
    if notebook.suffix != ".ipynb":
        raise NotebookError(f"{str(path)!r} is not a notebook (expected a .ipynb file)",
                            notebook=str(path))
    return notebook.resolve()


def fetch(url: str) -> Path:
    """Copy the notebook at ``url`` (read by papermill's I/O handler) into a private
    temporary folder; return the copy, named as the URL names it."""
    from papermill.iorw import LocalHandler, papermill_io

    if isinstance(papermill_io.get_handler(url), LocalHandler):
        scheme = url.split("://", 1)[0]
        raise NotebookError(f"no papermill I/O handler reads {scheme}:// URLs (notebook "
                            f"{url!r}); install the package that provides it (e.g. "
                            "papermill[s3]) or register one with "
                            "papermill.iorw.papermill_io.register", notebook=url)
    try:
        text = papermill_io.read(url)
    except Exception as err:  # any handler's failure: the user's URL, said in one line
        raise NotebookError(f"cannot read notebook {url}: {type(err).__name__}: {err}",
                            notebook=url) from None
    name = unquote(urlsplit(url).path.rsplit("/", 1)[-1]) or "notebook.ipynb"
    if not name.endswith(".ipynb"):
        name = f"{Path(name).stem or 'notebook'}.ipynb"
    folder = Path(tempfile.mkdtemp(prefix=STAGED_PREFIX))
    copy = folder / (_SAFE.sub("-", name).strip("-") or "notebook.ipynb")
    copy.write_text(text if isinstance(text, str) else str(text), encoding="utf-8")
    return copy


def discard(copy: Path | None) -> None:
    """Remove the folder of a copy made by :func:`fetch` (nothing else)."""
    if copy is not None and copy.parent.name.startswith(STAGED_PREFIX):
        shutil.rmtree(copy.parent, ignore_errors=True)


def load(path: Path) -> dict[str, Any]:
    """The notebook document as JSON data, as nbformat 4 (older formats are upgraded)."""
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text)
    except (OSError, UnicodeDecodeError) as err:
        raise NotebookError(f"cannot read notebook {path}: {err}", notebook=str(path)) from None
    except json.JSONDecodeError as err:
        raise NotebookError(f"{path} is not valid notebook JSON: {err}",
                            notebook=str(path)) from None
    if isinstance(data, dict) and data.get("nbformat") in (1, 2, 3):
        data = _upgraded(path, text)
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        raise NotebookError(f"{path} is not a Jupyter notebook (no 'cells' list)",
                            notebook=str(path))
    if data.get("nbformat") != 4:
        raise NotebookError(f"{path} uses nbformat {data.get('nbformat')}, which neither "
                            "papermill nor orbits-nb reads; save it as nbformat 4",
                            notebook=str(path))
    return data


def _upgraded(path: Path, text: str) -> dict[str, Any]:
    """An nbformat 1-3 document as papermill reads it: converted to nbformat 4."""
    import nbformat

    try:
        reads: Any = nbformat.reads  # nbformat ships no type hints
        return dict(reads(text, as_version=4))
    except Exception as err:  # nbformat's validation and conversion errors vary
        raise NotebookError(f"cannot upgrade {path} to nbformat 4: {err}",
                            notebook=str(path)) from None


def source(cell: dict[str, Any]) -> str:
    text = cell.get("source", "")
    return "".join(text) if isinstance(text, list) else str(text)


def tags(cell: dict[str, Any]) -> list[str]:
    found = cell.get("metadata", {}).get("tags", [])
    return [str(t) for t in found] if isinstance(found, list) else []


def parameters_cell(data: dict[str, Any]) -> int | None:
    """Index of the first code cell tagged ``parameters`` (papermill's convention)."""
    for index, cell in enumerate(data["cells"]):
        if cell.get("cell_type") == "code" and PARAMETERS_TAG in tags(cell):
            return index
    return None


def runbook_name(path: Path) -> str:
    """The runbook's name: the notebook's file name without suffix, made path-safe."""
    return _SAFE.sub("-", path.stem).strip("-") or "runbook"


def has_outputs(data: dict[str, Any]) -> list[int]:
    """Indexes of code cells that carry outputs or an execution count."""
    return [i for i, cell in enumerate(data["cells"])
            if cell.get("cell_type") == "code"
            and (cell.get("outputs") or cell.get("execution_count") is not None)]
